/** @module http/fields — field lines at the byte level: which fields frame a request, the scans for line ends and field-value bytes, and the values of the framing fields (Content-Length, Transfer-Encoding, Connection). */

import { ascii, CR, equalsLower, HTAB, isDigit, LF, SP, TCHAR, VALUE_CHAR } from "./bytes.ts";
import { ParseError } from "./codes.ts";

/** Header kinds the parser recognises for framing; every other field is kind OTHER. */
export const FieldKind = {
  OTHER: 0,
  HOST: 1,
  CONTENT_LENGTH: 2,
  TRANSFER_ENCODING: 3,
  CONNECTION: 4,
  EXPECT: 5,
  UPGRADE: 6,
  CONTENT_TYPE: 7,
  COOKIE: 8,
} as const;

/** Slots per field in {@link RequestParser.fields}: nameStart, nameEnd, valueStart, valueEnd, kind, folded. */
export const FIELD_SLOTS = 6;

export const W_HOST = ascii("host");
export const W_EXPECT = ascii("expect");
export const W_UPGRADE = ascii("upgrade");
export const W_CONNECTION = ascii("connection");
export const W_CONTENT_TYPE = ascii("content-type");
export const W_CONTENT_LENGTH = ascii("content-length");
export const W_TRANSFER_ENCODING = ascii("transfer-encoding");
export const W_COOKIE = ascii("cookie");
export const W_CHUNKED = ascii("chunked");
export const W_CLOSE = ascii("close");
export const W_KEEP_ALIVE = ascii("keep-alive");
export const W_100_CONTINUE = ascii("100-continue");

export function fieldKind(buf: Uint8Array, s: number, e: number): number {
  switch (e - s) {
    case 4:
      return equalsLower(buf, s, W_HOST) ? FieldKind.HOST : FieldKind.OTHER;
    case 6:
      if (equalsLower(buf, s, W_EXPECT)) return FieldKind.EXPECT;
      return equalsLower(buf, s, W_COOKIE) ? FieldKind.COOKIE : FieldKind.OTHER;
    case 7:
      return equalsLower(buf, s, W_UPGRADE) ? FieldKind.UPGRADE : FieldKind.OTHER;
    case 10:
      return equalsLower(buf, s, W_CONNECTION) ? FieldKind.CONNECTION : FieldKind.OTHER;
    case 12:
      return equalsLower(buf, s, W_CONTENT_TYPE) ? FieldKind.CONTENT_TYPE : FieldKind.OTHER;
    case 14:
      return equalsLower(buf, s, W_CONTENT_LENGTH) ? FieldKind.CONTENT_LENGTH : FieldKind.OTHER;
    case 17:
      return equalsLower(buf, s, W_TRANSFER_ENCODING) ? FieldKind.TRANSFER_ENCODING : FieldKind.OTHER;
    default:
      return FieldKind.OTHER;
  }
}

/** Lines up to this long are searched for their LF here: cheaper than the native search. */
const SHORT_LINE = 64;

/** The first LF in buf[pos, end), or -1 (or an index past end) when there is none yet. */
export function findLF(buf: Uint8Array, pos: number, end: number): number {
  const stop = end - pos > SHORT_LINE ? pos + SHORT_LINE : end;
  for (let i = pos; i < stop; i++) if (buf[i] === LF) return i;
  return stop < end ? buf.indexOf(LF, stop) : -1;
}

/** The first byte in buf[i, end) that is not a field-value byte, or end. */
export function valueEnd(buf: Uint8Array, i: number, end: number): number {
  // Four bytes a step: values are most of a head's bytes, and one test per four cuts the loop's cost by about a third.
  while (
    i + 4 <= end &&
    ((VALUE_CHAR[buf[i] as number] as number) &
      (VALUE_CHAR[buf[i + 1] as number] as number) &
      (VALUE_CHAR[buf[i + 2] as number] as number) &
      (VALUE_CHAR[buf[i + 3] as number] as number)) ===
      1
  ) {
    i += 4;
  }
  while (i < end && VALUE_CHAR[buf[i] as number] === 1) i++;
  return i;
}

export function checkValue(buf: Uint8Array, s: number, e: number): number {
  for (let i = s; i < e; i++) {
    const c = buf[i] as number;
    if (VALUE_CHAR[c] !== 1) return c === 0 ? -ParseError.NUL : c === CR ? -ParseError.BARE_CR : -ParseError.BAD_HEADER_VALUE;
  }
  return 0;
}

/**
 * Largest Content-Length accepted: every value up to it is an exact JS integer. The value is
 * capped, not the digit count: "1*DIGIT" (RFC 9110 §8.6) allows leading zeros.
 */
const MAX_CONTENT_LENGTH = Number.MAX_SAFE_INTEGER;

/**
 * A Content-Length value: 1*DIGIT, or a list of identical values (RFC 9110 §8.6), which must also
 * equal `prev`, the value of an earlier Content-Length field (-1 if none). Returns the length, or
 * a negated {@link ParseError} code.
 */
export function contentLengthValue(buf: Uint8Array, s: number, e: number, prev: number): number {
  let length = prev;
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
    if (length !== -1 && length !== n) return -ParseError.BAD_CONTENT_LENGTH;
    length = n;
    while (i < e && (buf[i] === SP || buf[i] === HTAB)) i++;
    if (i === e) return length;
    if (buf[i] !== 0x2c) return -ParseError.BAD_CONTENT_LENGTH;
    i++;
    while (i < e && (buf[i] === SP || buf[i] === HTAB)) i++;
  }
  return -ParseError.BAD_CONTENT_LENGTH;
}

/**
 * The transfer codings of one Transfer-Encoding field, after those of earlier ones (`chunked`:
 * they ended with chunked). chunked must be last and only once (RFC 9112 §6.3 → 400); any other
 * coding is one we do not implement (§6.1 → 501). Returns 1 when the codings so far end with
 * chunked, 0 when there are none yet, or a negated {@link ParseError} code.
 */
export function transferEncodingValue(buf: Uint8Array, s: number, e: number, chunked: boolean): number {
  let i = s;
  for (;;) {
    while (i < e && (buf[i] === SP || buf[i] === HTAB || buf[i] === 0x2c)) i++;
    if (i >= e) return chunked ? 1 : 0;
    const t = i;
    while (i < e && TCHAR[buf[i] as number] === 1) i++;
    if (i === t) return -ParseError.TE_NOT_CHUNKED;
    const isChunked = i - t === W_CHUNKED.length && equalsLower(buf, t, W_CHUNKED);
    // A coding after chunked means chunked is not final.
    if (chunked) return -ParseError.TE_NOT_CHUNKED;
    if (!isChunked) {
      // Skip parameters, then see whether anything follows: unknown-but-final is still 400.
      while (i < e && buf[i] !== 0x2c) i++;
      let j = i;
      while (j < e && (buf[j] === SP || buf[j] === HTAB || buf[j] === 0x2c)) j++;
      return j < e ? -ParseError.UNKNOWN_CODING : -ParseError.TE_NOT_CHUNKED;
    }
    chunked = true;
    while (i < e && (buf[i] === SP || buf[i] === HTAB)) i++;
    if (i < e && buf[i] !== 0x2c) return -ParseError.TE_NOT_CHUNKED;
  }
}

/** The Connection options the server acts on (RFC 9110 §7.6.1), as bits of {@link connectionOptions}. */
export const ConnectionOption = {
  CLOSE: 1,
  KEEP_ALIVE: 2,
  UPGRADE: 4,
} as const;

/** The options of a Connection field value that the server acts on, as {@link ConnectionOption} bits. */
export function connectionOptions(buf: Uint8Array, s: number, e: number): number {
  let options = 0;
  let i = s;
  while (i < e) {
    while (i < e && (buf[i] === SP || buf[i] === HTAB || buf[i] === 0x2c)) i++;
    const t = i;
    while (i < e && buf[i] !== 0x2c && buf[i] !== SP && buf[i] !== HTAB) i++;
    const len = i - t;
    if (len === 5 && equalsLower(buf, t, W_CLOSE)) options |= ConnectionOption.CLOSE;
    else if (len === 10 && equalsLower(buf, t, W_KEEP_ALIVE)) options |= ConnectionOption.KEEP_ALIVE;
    else if (len === 7 && equalsLower(buf, t, W_UPGRADE)) options |= ConnectionOption.UPGRADE;
  }
  return options;
}
