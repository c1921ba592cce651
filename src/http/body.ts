/** @module http/body — pure request-body framing decoder: Content-Length and chunked (RFC 9112 §6, §7.1). */

import { CR, hexValue, isOWS, LF, TCHAR, VALUE_CHAR } from "./bytes.ts";
import { BodyError } from "./codes.ts";

export interface BodyLimits {
  /** Largest decoded body in bytes (413 beyond it). */
  maxBody: number;
  /** Longest chunk-ext run on one chunk line. */
  maxChunkExt: number;
  /** Largest trailer section in bytes, each field line's CRLF included (431 beyond it). */
  maxTrailerBytes: number;
  /** Most trailer fields. */
  maxTrailers: number;
}

/**
 * chunk-size = 1*HEXDIG (RFC 9112 §7.1): leading zeros are valid, so the value is capped, not the
 * digit count. A value past 2^53 - 1 is no longer exact in a double, and far beyond any body limit.
 */
const MAX_CHUNK_SIZE = Number.MAX_SAFE_INTEGER;
/** Hex digits in one chunk-size, leading zeros included: a bound on the line, not on the value. */
const MAX_SIZE_DIGITS = 256;
/**
 * Framing bytes each chunk may bring free of charge: this many, plus twice its data (Go's
 * net/http rule, CVE-2023-39326). A 1-byte chunk's "1\r\n" and CRLF (5) are free; what a line's
 * leading zeros and extensions bring beyond it is excess, which a chunk's data pays back.
 */
const FREE_FRAMING = 16;
/** Excess framing a body may run up, in its longest chunk lines (size digits and extensions at their limits). */
const EXCESS_LINES = 4;

// Chunked decoder states.
const S_SIZE = 0; // reading chunk-size hex digits
const S_EXT = 1; // after size: BWS / chunk-ext until CR
const S_SIZE_LF = 2; // CR seen after size line
const S_DATA = 3;
const S_DATA_CR = 4;
const S_DATA_LF = 5;
const S_TRAILER = 6; // inside a trailer line (or at its start)
const S_TRAILER_LF = 7;
const S_DONE = 8;

// chunk-ext sub-states (RFC 9112 §7.1.1: *( BWS ";" BWS name [ BWS "=" BWS value ] )).
/** BWS after a value: only ";" (or more BWS) may follow, never the line end. */
const X_BEFORE_SEMI = 0;
const X_NAME_START = 1;
const X_NAME = 2;
const X_VALUE_START = 3;
const X_TOKEN = 4;
const X_QUOTED = 5;
const X_QUOTED_ESC = 6;
const X_AFTER_QUOTE = 7;
/** "name BWS" may be followed by "=" or ";" (not the end); X_BEFORE_SEMI may not take "=". */
const X_BEFORE_SEMI_OR_EQ = 8;
/** Right after the chunk-size: BWS then ";" only. */
const X_SIZE_BWS = 9;

/**
 * Decodes one request body. Call {@link execute} repeatedly over incoming bytes: each call
 * consumes framing and at most one run of body data, reported as [dataStart, dataEnd) in the
 * caller's buffer (no copy). {@link done} turns true after the last byte of the body.
 */
export class BodyDecoder {
  readonly limits: BodyLimits;
  chunked = false;
  done = true;
  dataStart = 0;
  dataEnd = 0;
  /** Decoded body bytes so far. */
  received = 0;
  /** Trailer fields of a chunked body, as [name, value] pairs, once {@link done}. */
  trailers: Array<[string, string]> = [];

  private remaining = 0;
  private state = S_SIZE;
  private digits = 0;
  private ext = 0;
  private xstate = X_BEFORE_SEMI;
  /**
   * Framing bytes the body has sent beyond what its data allows (see {@link FREE_FRAMING}):
   * bounded, so that a body's wire bytes are bounded by its data, which limits.body bounds.
   */
  private excess = 0;
  private trailerBytes: number[] = [];
  /** Bytes of the trailer section so far: the limit is on the section, not on one line. */
  private trailerTotal = 0;

  constructor(limits: BodyLimits) {
    this.limits = limits;
  }

  /** Start a body of `length` bytes. */
  startLength(length: number): void {
    this.chunked = false;
    this.remaining = length;
    this.received = 0;
    this.done = length === 0;
    this.trailers = [];
  }

  /** Start a chunked body. */
  startChunked(): void {
    this.chunked = true;
    this.remaining = 0;
    this.received = 0;
    this.done = false;
    this.state = S_SIZE;
    this.digits = 0;
    this.ext = 0;
    this.excess = 0;
    this.trailers = [];
    this.trailerBytes = [];
    this.trailerTotal = 0;
  }

  /**
   * Consume buf[start, end).
   * @returns bytes consumed (≥ 0), or a negated {@link BodyError} code. The data run, if any,
   *   is buf[dataStart, dataEnd); it is empty when dataStart === dataEnd.
   */
  execute(buf: Uint8Array, start: number, end: number): number {
    this.dataStart = this.dataEnd = start;
    if (this.done) return 0;
    if (!this.chunked) {
      const n = Math.min(this.remaining, end - start);
      this.remaining -= n;
      this.received += n;
      this.dataEnd = start + n;
      if (this.remaining === 0) this.done = true;
      return n;
    }
    let i = start;
    while (i < end) {
      const b = buf[i] as number;
      switch (this.state) {
        case S_SIZE: {
          const h = hexValue(b);
          if (h >= 0) {
            if (++this.digits > MAX_SIZE_DIGITS) return -BodyError.CHUNK_SIZE_TOO_LONG;
            // The previous value is at most 2^53 - 1, so this product is still compared correctly.
            this.remaining = this.remaining * 16 + h;
            if (this.remaining > MAX_CHUNK_SIZE) return -BodyError.CHUNK_SIZE_OVERFLOW;
            i++;
            break;
          }
          if (this.digits === 0) return -BodyError.BAD_CHUNK_SIZE;
          if (b === CR) {
            this.state = S_SIZE_LF;
            i++;
            break;
          }
          if (!isOWS(b) && b !== 0x3b) return -BodyError.BAD_CHUNK_SIZE;
          this.state = S_EXT;
          this.xstate = X_SIZE_BWS;
          break;
        }
        case S_EXT: {
          if (b === CR) {
            // "5 \r\n": BWS is only allowed before a ";" (RFC 9112 §7.1.1), never as a line's end.
            if (this.xstate === X_SIZE_BWS) return -BodyError.WS_AFTER_CHUNK_SIZE;
            if (!extCanEnd(this.xstate)) return -BodyError.BAD_CHUNK_EXT;
            this.state = S_SIZE_LF;
            i++;
            break;
          }
          if (++this.ext > this.limits.maxChunkExt) return -BodyError.CHUNK_EXT_TOO_LONG;
          const next = extStep(this.xstate, b);
          if (next < 0) return -BodyError.BAD_CHUNK_EXT;
          this.xstate = next;
          i++;
          break;
        }
        case S_SIZE_LF: {
          if (b !== LF) return -BodyError.BAD_CHUNK_SIZE;
          i++;
          // RFC 9112 §7.1.1: a server ought to limit the total length of a request's chunk
          // extensions. Each line is within its own limits, but line after line on tiny chunks
          // is bounded neither by limits.body (it counts data) nor by the rate limits (data per
          // second): a body of 1-byte chunks each with a 4 KiB extension was read as long as it
          // came. The line with its CRLF and the data's CRLF, against what the data allows:
          const framing = this.digits + this.ext + 4;
          this.excess = Math.max(0, this.excess + framing - FREE_FRAMING - 2 * this.remaining);
          if (this.excess > EXCESS_LINES * (MAX_SIZE_DIGITS + this.limits.maxChunkExt)) return -BodyError.CHUNK_OVERHEAD;
          this.digits = 0;
          this.ext = 0;
          if (this.remaining === 0) {
            this.state = S_TRAILER;
            this.trailerBytes = [];
          } else {
            if (this.received + this.remaining > this.limits.maxBody) return -BodyError.TOO_LARGE;
            this.state = S_DATA;
          }
          break;
        }
        case S_DATA: {
          const n = Math.min(this.remaining, end - i);
          this.remaining -= n;
          this.received += n;
          this.dataStart = i;
          this.dataEnd = i + n;
          if (this.remaining === 0) this.state = S_DATA_CR;
          return i + n - start;
        }
        case S_DATA_CR:
          if (b !== CR) return -BodyError.BAD_CHUNK_END;
          this.state = S_DATA_LF;
          i++;
          break;
        case S_DATA_LF:
          if (b !== LF) return -BodyError.BAD_CHUNK_END;
          this.state = S_SIZE;
          i++;
          break;
        case S_TRAILER: {
          // The limit is on the trailer section's bytes, each field line's CRLF included, as the
          // header limit counts the header section's; the empty line that ends it is not part
          // of it (RFC 9112 §7.1.2: trailer-section = *( field-line CRLF )).
          if (b === LF) return -BodyError.BAD_TRAILER;
          if (b === CR) {
            this.state = S_TRAILER_LF;
            if (this.trailerBytes.length === 0) {
              i++;
              break;
            }
          } else {
            this.trailerBytes.push(b);
          }
          if (++this.trailerTotal > this.limits.maxTrailerBytes) return -BodyError.TRAILERS_TOO_LARGE;
          i++;
          break;
        }
        case S_TRAILER_LF: {
          if (b !== LF) return -BodyError.BAD_TRAILER;
          i++;
          const line = this.trailerBytes;
          if (line.length === 0) {
            this.state = S_DONE;
            this.done = true;
            return i - start;
          }
          if (++this.trailerTotal > this.limits.maxTrailerBytes) return -BodyError.TRAILERS_TOO_LARGE;
          if (this.trailers.length >= this.limits.maxTrailers) return -BodyError.TRAILERS_TOO_LARGE;
          // obs-fold is refused in a trailer section as in a header section (RFC 9112 §5.2).
          if (isOWS(line[0] as number)) return -BodyError.OBS_FOLD_IN_TRAILER;
          const field = parseTrailer(line);
          if (field === null) return -BodyError.BAD_TRAILER;
          if (FORBIDDEN_TRAILERS.has(field[0].toLowerCase())) return -BodyError.FORBIDDEN_TRAILER;
          this.trailers.push(field);
          this.trailerBytes = [];
          this.state = S_TRAILER;
          break;
        }
        default:
          return i - start;
      }
    }
    return i - start;
  }
}

function extStep(x: number, b: number): number {
  switch (x) {
    case X_SIZE_BWS:
      return isOWS(b) ? X_SIZE_BWS : b === 0x3b ? X_NAME_START : -1;
    case X_BEFORE_SEMI:
      return isOWS(b) ? X_BEFORE_SEMI : b === 0x3b ? X_NAME_START : -1;
    case X_NAME_START:
      return isOWS(b) ? X_NAME_START : TCHAR[b] === 1 ? X_NAME : -1;
    case X_NAME:
      if (TCHAR[b] === 1) return X_NAME;
      if (b === 0x3d) return X_VALUE_START;
      return b === 0x3b ? X_NAME_START : isOWS(b) ? X_BEFORE_SEMI_OR_EQ : -1;
    case X_BEFORE_SEMI_OR_EQ:
      if (isOWS(b)) return X_BEFORE_SEMI_OR_EQ;
      return b === 0x3d ? X_VALUE_START : b === 0x3b ? X_NAME_START : -1;
    case X_VALUE_START:
      if (isOWS(b)) return X_VALUE_START;
      if (b === 0x22) return X_QUOTED;
      return TCHAR[b] === 1 ? X_TOKEN : -1;
    case X_TOKEN:
      if (TCHAR[b] === 1) return X_TOKEN;
      return b === 0x3b ? X_NAME_START : isOWS(b) ? X_BEFORE_SEMI : -1;
    case X_QUOTED:
      if (b === 0x22) return X_AFTER_QUOTE;
      if (b === 0x5c) return X_QUOTED_ESC;
      return VALUE_CHAR[b] === 1 ? X_QUOTED : -1;
    case X_QUOTED_ESC:
      return VALUE_CHAR[b] === 1 ? X_QUOTED : -1;
    case X_AFTER_QUOTE:
      return isOWS(b) ? X_BEFORE_SEMI : b === 0x3b ? X_NAME_START : -1;
    default:
      return -1;
  }
}

/**
 * chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] ) (RFC 9112 §7.1.1):
 * BWS only ever precedes ";", "=" or a name or value, so a line may not end in whitespace.
 */
const extCanEnd = (x: number): boolean => x === X_NAME || x === X_TOKEN || x === X_AFTER_QUOTE;

/**
 * Fields that only mean something in the header section: framing, routing, connection controls
 * and expectations are decided before the content (RFC 9110 §6.5.1), so a trailer carrying one
 * is a request trying to re-frame or re-route itself after the fact, and refused.
 */
const FORBIDDEN_TRAILERS = new Set([
  "content-length",
  "transfer-encoding",
  "trailer",
  "te",
  "host",
  "connection",
  "keep-alive",
  "upgrade",
  "expect",
]);

/** A trailer line as a header field (RFC 9112 §7.1.2); one starting with whitespace is refused before. */
function parseTrailer(line: number[]): [string, string] | null {
  let i = 0;
  while (i < line.length && TCHAR[line[i] as number] === 1) i++;
  if (i === 0 || i === line.length || line[i] !== 0x3a) return null;
  const name = chars(line, 0, i);
  let v = i + 1;
  while (v < line.length && isOWS(line[v] as number)) v++;
  let e = line.length;
  while (e > v && isOWS(line[e - 1] as number)) e--;
  for (let k = v; k < e; k++) if (VALUE_CHAR[line[k] as number] !== 1) return null;
  return [name, chars(line, v, e)];
}

/** Bytes per String.fromCharCode call in {@link chars}. */
const CHAR_RUN = 4096;

/**
 * line[s, e) as a latin-1 string, a run at a time: spread as one call's arguments, a line of a
 * few million bytes (limits.trailer_bytes goes to 16 MiB) threw a RangeError out of the decoder,
 * and a valid request got no response.
 */
function chars(line: number[], s: number, e: number): string {
  let out = "";
  for (let k = s; k < e; k += CHAR_RUN) out += String.fromCharCode(...line.slice(k, Math.min(e, k + CHAR_RUN)));
  return out;
}
