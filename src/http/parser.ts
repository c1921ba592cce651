/** @module http/parser — pure, incremental HTTP/1.1 request-head parser over Uint8Array views (RFC 9112 §2–§7). */

import { isHostValue } from "./authority.ts";
import { COLON, CR, HTAB, LF, SP, TCHAR } from "./bytes.ts";
import { ParseError } from "./codes.ts";
import {
  ConnectionOption,
  checkValue,
  connectionOptions,
  contentLengthValue,
  expectations,
  FIELD_SLOTS,
  FieldKind,
  fieldKind,
  findLF,
  TransferCoding,
  transferCodings,
  valueEnd,
} from "./fields.ts";
import { LineState, type RequestLine, scanRequestLine, TargetForm } from "./request-line.ts";

/** Limits on a request head; exceeding one is an error code, never an exception. */
export interface HeadLimits {
  /**
   * Longest request line in bytes, CRLF excluded (414 beyond it). Only a long target can pass
   * it: the method is capped lower (501) and the version is 8 bytes (400 when malformed).
   */
  maxRequestLine: number;
  /** Longest header section in bytes after the request line, CRLFs included (431 beyond it). */
  maxHeaderBytes: number;
  /** Most header fields (431 beyond it). */
  maxHeaders: number;
}

/**
 * One parser per connection, reused for every request on it. Feed it the bytes of one request
 * head, always from the head's first byte (`start`) and growing `end`: it resumes where it
 * stopped, so each byte is scanned once however the head is split across reads.
 *
 * After a successful {@link execute}, offsets in {@link fields} and the target/version fields are
 * relative to `start`, and the request's framing is decoded into plain numbers and flags.
 */
export class RequestParser implements RequestLine {
  readonly limits: HeadLimits;
  /** Field slots ({@link FIELD_SLOTS} numbers per field), offsets relative to the head start. */
  readonly fields: Int32Array;
  fieldCount = 0;

  // The request line (http/request-line's RequestLine).
  method = "";
  targetStart = 0;
  targetEnd = 0;
  targetForm: number = TargetForm.ORIGIN;
  authorityStart = 0;
  authorityEnd = 0;
  versionMinor = 1;
  lineStart = 0;
  lineEnd = 0;
  bracketAt = -1;
  lineState: number = LineState.START;
  linePos = 0;
  /** -1 when the request has no Content-Length. */
  contentLength = -1;
  chunked = false;
  /** Connection tokens and expectations (RFC 9110 §7.6.1, §10.1.1). */
  connectionClose = false;
  connectionKeepAlive = false;
  connectionUpgrade = false;
  hasUpgrade = false;
  expectContinue = false;

  // Resumable scan state, relative to the head start.
  private scanned = 0;
  private curLine = 0;
  private haveRequestLine = false;

  constructor(limits: HeadLimits) {
    this.limits = limits;
    this.fields = new Int32Array(limits.maxHeaders * FIELD_SLOTS);
  }

  /** Forget any partial head: the next execute() starts a new request. Parsed fields stay readable. */
  reset(): void {
    this.scanned = 0;
    this.curLine = 0;
    this.haveRequestLine = false;
    this.lineState = LineState.START;
  }

  /**
   * Scan buf[start, end) for a complete request head.
   * @returns the head's length in bytes when complete, 0 when more bytes are needed, or a
   *   negated {@link ParseError} code. On completion the parser is reset for the next head.
   */
  execute(buf: Uint8Array, start: number, end: number): number {
    let pos: number;
    if (this.haveRequestLine) {
      pos = start + this.scanned;
    } else {
      // The request line is scanned byte by byte as it arrives (http/request-line), each error at its byte.
      pos = scanRequestLine(this, buf, start, end, this.limits.maxRequestLine);
      if (pos <= 0) return pos;
      this.haveRequestLine = true;
      this.fieldCount = 0;
      this.curLine = this.scanned = pos - start;
    }
    while (pos < end) {
      if (pos === start + this.curLine) {
        // A fresh field line: one pass validates it and finds its CRLF, no separate search.
        const cr = this.plainField(buf, start, pos, end);
        if (cr >= 0) {
          pos = cr + 2;
          this.curLine = this.scanned = pos - start;
          if (pos - start - this.lineEnd - 2 > this.limits.maxHeaderBytes) return -ParseError.HEADERS_TOO_LARGE;
          continue;
        }
      }
      // The blank line that ends a head needs no search: a CR then LF at pos is the first LF
      // (one found at or past end is handled below like any other).
      const lf = buf[pos] === CR && buf[pos + 1] === LF ? pos + 1 : findLF(buf, pos, end);
      if (lf === -1 || lf >= end) {
        // A CR not at the very end can never be followed by LF: fail now, not at the limit
        // (unless the limit came first). The search starts a byte back in a line begun earlier:
        // a CR that ended the last read is decided now that its next byte is here.
        const cr = buf.indexOf(CR, pos > start + this.curLine ? pos - 1 : pos);
        if (cr !== -1 && cr < end - 1 && cr + 2 <= this.limitAt(start)) return -ParseError.BARE_CR;
        this.scanned = end - start;
        return this.checkPartial(end - start);
      }
      const lineStart = start + this.curLine;
      if (lf === lineStart || buf[lf - 1] !== CR) {
        // Whatever a byte-by-byte read meets first is the verdict: a bare CR, the limit, or this LF.
        const limitAt = this.limitAt(start);
        const err = this.bareCR(buf, lineStart, lf, limitAt);
        if (err < 0) return err;
        return limitAt <= lf ? this.checkPartial(limitAt - start) : -ParseError.BARE_LF;
      }
      const lineEnd = lf - 1;
      pos = lf + 1;
      this.curLine = this.scanned = pos - start;
      if (lineEnd === lineStart) {
        const used = pos - start;
        const err = this.finish(buf, start);
        this.reset();
        return err < 0 ? err : used;
      }
      // Any other CR in the line is bare, and that is the verdict whatever else is wrong: a read
      // that ends between it and the next byte reports it before the rest of the line is seen.
      // Only a failed line can hold one (no part of a field line admits a CR), so a good line is
      // not searched.
      if (pos - start - this.lineEnd - 2 > this.limits.maxHeaderBytes) {
        return this.bareCR(buf, lineStart, lineEnd, this.limitAt(start)) || -ParseError.HEADERS_TOO_LARGE;
      }
      const err = this.fieldLine(buf, start, lineStart, lineEnd);
      if (err < 0) return this.bareCR(buf, lineStart, lineEnd, this.limitAt(start)) || err;
    }
    this.scanned = end - start;
    return this.checkPartial(end - start);
  }

  /** The `end` (absolute) at which {@link checkPartial} first fails: where a byte-by-byte read reports the header limit. */
  private limitAt(start: number): number {
    return start + this.lineEnd + this.limits.maxHeaderBytes + 5;
  }

  /**
   * BARE_CR (negated) when buf[s, e) holds a CR that a byte-by-byte read would have reported:
   * one whose next byte arrives before the line's limit is reached. 0 otherwise.
   */
  private bareCR(buf: Uint8Array, s: number, e: number, limitAt: number): number {
    const cr = buf.indexOf(CR, s);
    return cr !== -1 && cr < e && cr + 2 <= limitAt ? -ParseError.BARE_CR : 0;
  }

  private checkPartial(have: number): number {
    return have - this.lineEnd - 2 > this.limits.maxHeaderBytes + 2 ? -ParseError.HEADERS_TOO_LARGE : 0;
  }

  private fieldLine(buf: Uint8Array, base: number, s: number, e: number): number {
    const first = buf[s];
    if (first === SP || first === HTAB) return this.fold();
    let i = s;
    while (i < e && TCHAR[buf[i] as number] === 1) i++;
    if (i === e) return -ParseError.BAD_HEADER_NAME;
    const c = buf[i] as number;
    if (c !== COLON) {
      if (c === SP || c === HTAB) return -ParseError.SPACE_BEFORE_COLON;
      return c === 0 ? -ParseError.NUL : c === CR ? -ParseError.BARE_CR : -ParseError.BAD_HEADER_NAME;
    }
    if (i === s) return -ParseError.BAD_HEADER_NAME;
    if (this.fieldCount >= this.limits.maxHeaders) return -ParseError.TOO_MANY_HEADERS;
    const nameEnd = i;
    let v = i + 1;
    while (v < e && (buf[v] === SP || buf[v] === HTAB)) v++;
    const err = checkValue(buf, v, e);
    if (err < 0) return err;
    this.addField(buf, base, s, nameEnd, v, e);
    return 0;
  }

  /** Record a validated field: name [s, nameEnd), value from v to e less trailing OWS. */
  private addField(buf: Uint8Array, base: number, s: number, nameEnd: number, v: number, e: number): void {
    let ve = e;
    while (ve > v && (buf[ve - 1] === SP || buf[ve - 1] === HTAB)) ve--;
    const k = this.fieldCount++ * FIELD_SLOTS;
    const f = this.fields;
    f[k] = s - base;
    f[k + 1] = nameEnd - base;
    f[k + 2] = v - base;
    f[k + 3] = ve - base;
    f[k + 4] = fieldKind(buf, s, nameEnd);
  }

  /**
   * The common field line in one pass: a token, a colon, then value bytes up to a CRLF that is
   * within buf[s, end). Returns the CR's index with the field recorded exactly as fieldLine()
   * would, or -1 for anything else (an error, a fold, the blank line, a line not yet complete,
   * one field too many), which the line-by-line path then decides: every verdict stays its own.
   */
  private plainField(buf: Uint8Array, base: number, s: number, end: number): number {
    let i = s;
    while (i < end && TCHAR[buf[i] as number] === 1) i++;
    if (i === s || i === end || buf[i] !== COLON || this.fieldCount >= this.limits.maxHeaders) return -1;
    const nameEnd = i;
    let v = i + 1;
    while (v < end && (buf[v] === SP || buf[v] === HTAB)) v++;
    const cr = valueEnd(buf, v, end);
    if (cr + 1 >= end || buf[cr] !== CR || buf[cr + 1] !== LF) return -1;
    this.addField(buf, base, s, nameEnd, v, cr);
    return cr;
  }

  /**
   * A line starting with SP or HTAB: obs-fold (RFC 9112 §5.2), refused with 400 (the strict one
   * of the two choices a server has) wherever it is, so no field value ever holds a CR or LF and
   * none is interpreted before it is unfolded. Before any field it is whitespace after the
   * request line (§2.2), also 400. A fold after a framing field has its own code.
   */
  private fold(): number {
    if (this.fieldCount === 0) return -ParseError.BAD_FOLD;
    const kind = this.fields[(this.fieldCount - 1) * FIELD_SLOTS + 4];
    if (kind === FieldKind.CONTENT_LENGTH || kind === FieldKind.TRANSFER_ENCODING || kind === FieldKind.HOST) {
      return -ParseError.FOLD_IN_FRAMING;
    }
    return -ParseError.OBS_FOLD;
  }

  /**
   * Framing decisions once the whole head is in (RFC 9112 §6, RFC 9110 §7.2, §7.6.1, §10.1.1).
   * A list field sent as several field lines is one combined value (RFC 9110 §5.3), so
   * Transfer-Encoding and Expect are decided the same whether their elements share a line or not.
   * Verdicts go by the strength of their rule, not by field order: every MUST-400 (Host, the
   * framing fields) before the SHOULD-501 of an unknown coding, and that before the MAY-417 of an
   * unmet expectation (RFC 9110 §10.1.1), so `Expect: foo` never answers for a smuggling attempt.
   */
  private finish(buf: Uint8Array, base: number): number {
    this.contentLength = -1;
    this.chunked = false;
    this.connectionClose = false;
    this.connectionKeepAlive = false;
    this.connectionUpgrade = false;
    this.hasUpgrade = false;
    this.expectContinue = false;
    let hosts = 0;
    let sawTE = false;
    let unmetExpectation = false;
    /** {@link TransferCoding} bits of every Transfer-Encoding line so far. */
    let codings = 0;
    const f = this.fields;
    for (let n = 0; n < this.fieldCount; n++) {
      const k = n * FIELD_SLOTS;
      const vs = base + (f[k + 2] as number);
      const ve = base + (f[k + 3] as number);
      let err = 0;
      switch (f[k + 4]) {
        case FieldKind.HOST:
          hosts++;
          if (!isHostValue(buf, vs, ve)) return -ParseError.BAD_HOST;
          break;
        case FieldKind.CONTENT_LENGTH:
          err = contentLengthValue(buf, vs, ve, this.contentLength);
          if (err >= 0) this.contentLength = err;
          break;
        case FieldKind.TRANSFER_ENCODING:
          sawTE = true;
          err = codings = transferCodings(buf, vs, ve, codings);
          break;
        case FieldKind.CONNECTION: {
          const options = connectionOptions(buf, vs, ve);
          if ((options & ConnectionOption.CLOSE) !== 0) this.connectionClose = true;
          if ((options & ConnectionOption.KEEP_ALIVE) !== 0) this.connectionKeepAlive = true;
          if ((options & ConnectionOption.UPGRADE) !== 0) this.connectionUpgrade = true;
          break;
        }
        case FieldKind.UPGRADE:
          this.hasUpgrade = true;
          break;
        case FieldKind.EXPECT: {
          // HTTP/1.0 clients cannot expect (RFC 9110 §10.1.1): the field is ignored there.
          if (this.versionMinor === 0) break;
          const x = expectations(buf, vs, ve);
          if (x === 1) this.expectContinue = true;
          else if (x < 0) unmetExpectation = true;
          break;
        }
      }
      if (err < 0) return err;
    }
    if (hosts > 1) return -ParseError.DUPLICATE_HOST;
    if (hosts === 0 && this.versionMinor >= 1) return -ParseError.MISSING_HOST;
    if (sawTE) {
      if (this.versionMinor === 0) return -ParseError.TE_IN_HTTP10;
      if (this.contentLength !== -1) return -ParseError.CL_AND_TE;
      // Chunked not final is a MUST-400 (RFC 9112 §6.3) and so decided before the SHOULD-501
      // for a coding the server does not implement (§6.1): "gzip" and "gzip, gzip" are 400,
      // "gzip, chunked" is 501, in one field line or across several.
      if ((codings & TransferCoding.CHUNKED_LAST) === 0) return -ParseError.TE_NOT_CHUNKED;
      if ((codings & TransferCoding.OTHER) !== 0) return -ParseError.UNKNOWN_CODING;
      this.chunked = true;
    }
    return unmetExpectation ? -ParseError.EXPECTATION_FAILED : 0;
  }
}
