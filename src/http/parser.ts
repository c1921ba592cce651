/** @module http/parser — pure, incremental HTTP/1.1 request-head parser over Uint8Array views (RFC 9112 §2–§7). */

import { authorityError, isAuthority, isHttpScheme, REG_NAME_CHAR, SCHEME_CHAR } from "./authority.ts";
import { COLON, CR, equalsLower, HTAB, isAlpha, isDigit, LF, SP, TCHAR } from "./bytes.ts";
import { ParseError } from "./codes.ts";
import {
  checkValue,
  FIELD_SLOTS,
  FieldKind,
  fieldKind,
  findLF,
  methodName,
  valueEnd,
  W_100_CONTINUE,
  W_CHUNKED,
  W_CLOSE,
  W_KEEP_ALIVE,
  W_UPGRADE,
} from "./fields.ts";

/** Limits on a request head; exceeding one is an error code, never an exception. */
export interface HeadLimits {
  /** Longest request line in bytes, CRLF excluded (414 beyond it). */
  maxRequestLine: number;
  /** Longest header section in bytes after the request line, CRLFs included (431 beyond it). */
  maxHeaderBytes: number;
  /** Most header fields (431 beyond it). */
  maxHeaders: number;
}

/** The four request-target forms (RFC 9112 §3.2), as {@link RequestParser.targetForm}. */
export const TargetForm = {
  ORIGIN: 0,
  ABSOLUTE: 1,
  AUTHORITY: 2,
  ASTERISK: 3,
} as const;

/**
 * Request-target bytes: visible US-ASCII (RFC 9112 §3.2, RFC 3986). '#' is refused: a fragment
 * is never sent in a request-target, and raw octets above 0x7E are refused rather than guessed at.
 */
const TARGET_CHAR = new Uint8Array(256);
for (let i = 0x21; i < 0x7f; i++) TARGET_CHAR[i] = i === 0x23 ? 0 : 1;

/** Bytes of CRLFs tolerated before a request line. */
const MAX_LEADING_BLANK = 8;

/**
 * Largest Content-Length accepted: every value up to it is an exact JS integer. The value is
 * capped, not the digit count: "1*DIGIT" (RFC 9110 §8.6) allows leading zeros.
 */
const MAX_CONTENT_LENGTH = Number.MAX_SAFE_INTEGER;

/**
 * One parser per connection, reused for every request on it. Feed it the bytes of one request
 * head, always from the head's first byte (`start`) and growing `end`: it resumes where it
 * stopped, so each byte is scanned once however the head is split across reads.
 *
 * After a successful {@link execute}, offsets in {@link fields} and the target/version fields are
 * relative to `start`, and the request's framing is decoded into plain numbers and flags.
 */
export class RequestParser {
  readonly limits: HeadLimits;
  /** Field slots ({@link FIELD_SLOTS} numbers per field), offsets relative to the head start. */
  readonly fields: Int32Array;
  fieldCount = 0;

  method = "";
  targetStart = 0;
  targetEnd = 0;
  /** Which of the four forms the target has ({@link TargetForm}). */
  targetForm: number = TargetForm.ORIGIN;
  /**
   * The target's authority (absolute-form and authority-form; empty otherwise), offsets relative
   * to the head start: with absolute-form it replaces Host (RFC 9112 §3.2.2).
   */
  authorityStart = 0;
  authorityEnd = 0;
  /** The parser admits major version 1 only (others are 505): the minor version is all there is. */
  versionMinor = 1;
  /** -1 when the request has no Content-Length. */
  contentLength = -1;
  chunked = false;
  /** Connection tokens and expectations (RFC 9110 §7.6.1, §10.1.1). */
  connectionClose = false;
  connectionKeepAlive = false;
  connectionUpgrade = false;
  hasUpgrade = false;
  expectContinue = false;
  /** Length of the request line without its CRLF, and where it begins (after skipped blank lines). */
  lineStart = 0;
  lineEnd = 0;

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
  }

  /**
   * Scan buf[start, end) for a complete request head.
   * @returns the head's length in bytes when complete, 0 when more bytes are needed, or a
   *   negated {@link ParseError} code. On completion the parser is reset for the next head.
   */
  execute(buf: Uint8Array, start: number, end: number): number {
    if (this.scanned === 0) this.fieldCount = 0;
    let pos = start + this.scanned;
    while (pos < end) {
      if (this.haveRequestLine && pos === start + this.curLine) {
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
      const limitAt = this.limitAt(start);
      if (lf === lineStart || buf[lf - 1] !== CR) {
        // Whatever a byte-by-byte read meets first is the verdict: a bare CR, the limit, or this LF.
        const err = this.bareCR(buf, lineStart, lf, limitAt);
        if (err < 0) return err;
        return limitAt <= lf ? this.checkPartial(limitAt - start) : -ParseError.BARE_LF;
      }
      const lineEnd = lf - 1;
      pos = lf + 1;
      this.curLine = pos - start;
      this.scanned = this.curLine;
      let err: number;
      if (!this.haveRequestLine) {
        // RFC 9112 §2.2: ignore empty lines before the request-line (a few, not a stream of them).
        if (lineEnd === lineStart) {
          if (this.curLine > MAX_LEADING_BLANK) return -ParseError.BAD_REQUEST_LINE;
          continue;
        }
        err = this.requestLine(buf, start, lineStart, lineEnd);
        // Any other CR in the line is bare, and that is the verdict whatever else is wrong: a
        // read that ends between it and the next byte reports it before the rest of the line is
        // seen. Only a failed line can hold one (no part of its grammar admits a CR), so a good
        // line is not searched. Field lines below follow the same rule.
        if (err < 0) return this.bareCR(buf, lineStart, lineEnd, limitAt) || err;
        this.haveRequestLine = true;
      } else if (lineEnd === lineStart) {
        const used = pos - start;
        err = this.finish(buf, start);
        this.reset();
        return err < 0 ? err : used;
      } else {
        if (pos - start - this.lineEnd - 2 > this.limits.maxHeaderBytes) {
          return this.bareCR(buf, lineStart, lineEnd, limitAt) || -ParseError.HEADERS_TOO_LARGE;
        }
        err = this.fieldLine(buf, start, lineStart, lineEnd);
        if (err < 0) return this.bareCR(buf, lineStart, lineEnd, limitAt) || err;
      }
      if (err < 0) return err;
    }
    this.scanned = end - start;
    return this.checkPartial(end - start);
  }

  /**
   * The `end` (absolute) at which {@link checkPartial} first fails for the line being read:
   * where a byte-by-byte read reports the line's limit.
   */
  private limitAt(start: number): number {
    if (!this.haveRequestLine) return start + this.curLine + this.limits.maxRequestLine + 2;
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
    if (!this.haveRequestLine) return have - this.curLine > this.limits.maxRequestLine + 1 ? -ParseError.URI_TOO_LONG : 0;
    return have - this.lineEnd - 2 > this.limits.maxHeaderBytes + 2 ? -ParseError.HEADERS_TOO_LARGE : 0;
  }

  private requestLine(buf: Uint8Array, base: number, s: number, e: number): number {
    if (e - s > this.limits.maxRequestLine) return -ParseError.URI_TOO_LONG;
    this.lineStart = s - base;
    this.lineEnd = e - base;
    // method SP request-target SP HTTP-version, single spaces (RFC 9112 §3).
    let i = s;
    while (i < e && TCHAR[buf[i] as number] === 1) i++;
    if (i === s) return -ParseError.BAD_METHOD;
    if (i === e) return -ParseError.BAD_REQUEST_LINE;
    if (buf[i] !== SP) return buf[i] === 0 ? -ParseError.NUL : -ParseError.BAD_METHOD;
    this.method = methodName(buf, s, i);
    const t0 = ++i;
    while (i < e && TARGET_CHAR[buf[i] as number] === 1) i++;
    if (i === t0 || i === e) return -ParseError.BAD_REQUEST_LINE;
    if (buf[i] !== SP) return buf[i] === 0 ? -ParseError.NUL : -ParseError.BAD_TARGET;
    this.targetStart = t0 - base;
    this.targetEnd = i - base;
    // Version first: an HTTP/2 preface ("PRI * HTTP/2.0") is a 505, not a bad target.
    const err = this.version(buf, i + 1, e);
    return err < 0 ? err : this.checkTarget(buf, base, t0, i);
  }

  /**
   * The four request-target forms (RFC 9112 §3.2) and which methods may use them: authority-form
   * with CONNECT only and CONNECT with nothing else (§3.2.3), asterisk-form with OPTIONS only
   * (§3.2.4). Its bytes are already visible ASCII without "#".
   */
  private checkTarget(buf: Uint8Array, base: number, s: number, e: number): number {
    const first = buf[s];
    const connect = this.method === "CONNECT";
    this.authorityStart = this.authorityEnd = 0;
    if (first === 0x2f) {
      this.targetForm = TargetForm.ORIGIN;
      return connect ? -ParseError.TARGET_FORM : 0;
    }
    if (first === 0x2a) {
      this.targetForm = TargetForm.ASTERISK;
      if (e - s !== 1) return -ParseError.BAD_TARGET;
      return this.method === "OPTIONS" ? 0 : -ParseError.TARGET_FORM;
    }
    let i = s;
    while (i < e && SCHEME_CHAR[buf[i] as number] === 1) i++;
    if (isAlpha(first as number) && e - i >= 3 && buf[i] === COLON && buf[i + 1] === 0x2f && buf[i + 2] === 0x2f) {
      // absolute-form (§3.2.2): an origin server serves http and https URIs only (RFC 9110 §4.2).
      this.targetForm = TargetForm.ABSOLUTE;
      if (connect) return -ParseError.TARGET_FORM;
      if (!isHttpScheme(buf, s, i)) return -ParseError.BAD_SCHEME;
      const a = i + 3;
      let ae = a;
      while (ae < e && buf[ae] !== 0x2f && buf[ae] !== 0x3f) ae++;
      // An http(s) authority has a host, and no userinfo (RFC 9110 §4.2.1, §4.2.4).
      if (!isAuthority(buf, a, ae, false)) return authorityError(buf, a, ae);
      this.authorityStart = a - base;
      this.authorityEnd = ae - base;
      return 0;
    }
    // authority-form: uri-host ":" port, the port required (§3.2.3).
    this.targetForm = TargetForm.AUTHORITY;
    if (!isAuthority(buf, s, e, true)) return connect ? authorityError(buf, s, e) : -ParseError.BAD_TARGET;
    if (!connect) return -ParseError.TARGET_FORM;
    this.authorityStart = s - base;
    this.authorityEnd = e - base;
    return 0;
  }

  private version(buf: Uint8Array, s: number, e: number): number {
    // "HTTP/" DIGIT "." DIGIT (RFC 9112 §2.3); a later major version gets 505 (RFC 9110 §15.6.6).
    if (e - s < 6 || buf[s] !== 72 || buf[s + 1] !== 84 || buf[s + 2] !== 84 || buf[s + 3] !== 80 || buf[s + 4] !== 0x2f) {
      return -ParseError.BAD_VERSION;
    }
    const major = (buf[s + 5] as number) - 48;
    if (major < 0 || major > 9) return -ParseError.BAD_VERSION;
    if (major !== 1) {
      if (e - s === 6 || (e - s === 8 && buf[s + 6] === 0x2e && isDigit(buf[s + 7] as number))) {
        return -ParseError.VERSION_NOT_SUPPORTED;
      }
      return -ParseError.BAD_VERSION;
    }
    if (e - s !== 8 || buf[s + 6] !== 0x2e || !isDigit(buf[s + 7] as number)) return -ParseError.BAD_VERSION;
    this.versionMinor = (buf[s + 7] as number) - 48;
    return 0;
  }

  private fieldLine(buf: Uint8Array, base: number, s: number, e: number): number {
    const first = buf[s];
    if (first === SP || first === HTAB) return this.fold(buf, base, s, e);
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
    f[k + 5] = 0;
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

  /** obs-fold (RFC 9112 §5.2): joins the previous field; refused where framing depends on it. */
  private fold(buf: Uint8Array, base: number, s: number, e: number): number {
    if (this.fieldCount === 0) return -ParseError.BAD_FOLD;
    const err = checkValue(buf, s, e);
    if (err < 0) return err;
    const k = (this.fieldCount - 1) * FIELD_SLOTS;
    const kind = this.fields[k + 4];
    if (kind === FieldKind.CONTENT_LENGTH || kind === FieldKind.TRANSFER_ENCODING || kind === FieldKind.HOST) {
      return -ParseError.FOLD_IN_FRAMING;
    }
    let ve = e;
    while (ve > s && (buf[ve - 1] === SP || buf[ve - 1] === HTAB)) ve--;
    if (ve > s) {
      // An empty previous value starts at the fold's text; otherwise the fold becomes one SP.
      if (this.fields[k + 2] === this.fields[k + 3]) {
        let v = s;
        while (buf[v] === SP || buf[v] === HTAB) v++;
        this.fields[k + 2] = v - base;
      } else {
        this.fields[k + 5] = 1;
      }
      this.fields[k + 3] = ve - base;
    }
    return 0;
  }

  /** Framing decisions once the whole head is in (RFC 9112 §6, RFC 9110 §7.2, §7.6.1, §10.1.1). */
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
    const f = this.fields;
    for (let n = 0; n < this.fieldCount; n++) {
      const k = n * FIELD_SLOTS;
      const vs = base + (f[k + 2] as number);
      const ve = base + (f[k + 3] as number);
      let err = 0;
      switch (f[k + 4]) {
        case FieldKind.HOST: {
          hosts++;
          // Host = uri-host [ ":" port ] (RFC 9110 §7.2); an empty value is allowed there, for a
          // target without an authority, and so accepted for every target. The common plain
          // name and port are checked here; pct-encoding, IP-literals and errors by isAuthority.
          let i = vs;
          while (i < ve && REG_NAME_CHAR[buf[i] as number] === 1) i++;
          if (i > vs && i < ve && buf[i] === COLON) {
            i++;
            while (i < ve && isDigit(buf[i] as number)) i++;
          }
          if (i !== ve && !isAuthority(buf, vs, ve, false)) return -ParseError.BAD_HOST;
          break;
        }
        case FieldKind.CONTENT_LENGTH:
          err = this.contentLengthValue(buf, vs, ve);
          break;
        case FieldKind.TRANSFER_ENCODING:
          sawTE = true;
          err = this.transferEncodingValue(buf, vs, ve);
          break;
        case FieldKind.CONNECTION:
          this.connectionValue(buf, vs, ve);
          break;
        case FieldKind.UPGRADE:
          this.hasUpgrade = true;
          break;
        case FieldKind.EXPECT:
          // HTTP/1.0 clients cannot expect (RFC 9110 §10.1.1): the field is ignored there.
          if (this.versionMinor === 0) break;
          if (ve - vs === W_100_CONTINUE.length && equalsLower(buf, vs, W_100_CONTINUE)) this.expectContinue = true;
          else return -ParseError.EXPECTATION_FAILED;
          break;
      }
      if (err < 0) return err;
    }
    if (hosts > 1) return -ParseError.DUPLICATE_HOST;
    if (hosts === 0 && this.versionMinor >= 1) return -ParseError.MISSING_HOST;
    if (sawTE) {
      if (this.versionMinor === 0) return -ParseError.TE_IN_HTTP10;
      if (this.contentLength !== -1) return -ParseError.CL_AND_TE;
      if (!this.chunked) return -ParseError.TE_NOT_CHUNKED;
    }
    return 0;
  }

  /** 1*DIGIT, or a list of identical values (RFC 9110 §8.6); anything else is an error. */
  private contentLengthValue(buf: Uint8Array, s: number, e: number): number {
    let i = s;
    while (i <= e) {
      let n = 0;
      const d0 = i;
      while (i < e && isDigit(buf[i] as number)) {
        // n is at most 2^53 - 1 before this step, so the comparison after it is still exact enough.
        n = n * 10 + ((buf[i] as number) - 48);
        if (n > MAX_CONTENT_LENGTH) return -ParseError.BAD_CONTENT_LENGTH;
        i++;
      }
      if (i === d0) return -ParseError.BAD_CONTENT_LENGTH;
      if (this.contentLength !== -1 && this.contentLength !== n) return -ParseError.BAD_CONTENT_LENGTH;
      this.contentLength = n;
      while (i < e && (buf[i] === SP || buf[i] === HTAB)) i++;
      if (i === e) return 0;
      if (buf[i] !== 0x2c) return -ParseError.BAD_CONTENT_LENGTH;
      i++;
      while (i < e && (buf[i] === SP || buf[i] === HTAB)) i++;
    }
    return -ParseError.BAD_CONTENT_LENGTH;
  }

  /**
   * Transfer codings in order across all TE fields. chunked must be last and only once
   * (RFC 9112 §6.3 → 400); any other coding is one we do not implement (§6.1 → 501).
   */
  private transferEncodingValue(buf: Uint8Array, s: number, e: number): number {
    let i = s;
    for (;;) {
      while (i < e && (buf[i] === SP || buf[i] === HTAB || buf[i] === 0x2c)) i++;
      if (i >= e) return 0;
      const t = i;
      while (i < e && TCHAR[buf[i] as number] === 1) i++;
      if (i === t) return -ParseError.TE_NOT_CHUNKED;
      const isChunked = i - t === W_CHUNKED.length && equalsLower(buf, t, W_CHUNKED);
      // A coding after chunked means chunked is not final.
      if (this.chunked) return -ParseError.TE_NOT_CHUNKED;
      if (!isChunked) {
        // Skip parameters, then see whether anything follows: unknown-but-final is still 400.
        while (i < e && buf[i] !== 0x2c) i++;
        let j = i;
        while (j < e && (buf[j] === SP || buf[j] === HTAB || buf[j] === 0x2c)) j++;
        return j < e ? -ParseError.UNKNOWN_CODING : -ParseError.TE_NOT_CHUNKED;
      }
      this.chunked = true;
      while (i < e && (buf[i] === SP || buf[i] === HTAB)) i++;
      if (i < e && buf[i] !== 0x2c) return -ParseError.TE_NOT_CHUNKED;
    }
  }

  private connectionValue(buf: Uint8Array, s: number, e: number): void {
    let i = s;
    while (i < e) {
      while (i < e && (buf[i] === SP || buf[i] === HTAB || buf[i] === 0x2c)) i++;
      const t = i;
      while (i < e && buf[i] !== 0x2c && buf[i] !== SP && buf[i] !== HTAB) i++;
      const len = i - t;
      if (len === 5 && equalsLower(buf, t, W_CLOSE)) this.connectionClose = true;
      else if (len === 10 && equalsLower(buf, t, W_KEEP_ALIVE)) this.connectionKeepAlive = true;
      else if (len === 7 && equalsLower(buf, t, W_UPGRADE)) this.connectionUpgrade = true;
    }
  }
}
