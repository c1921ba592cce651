/** @module http/fields — field lines at the byte level: which fields frame a request, interned method names, and the scans for line ends and field-value bytes. */

import { ascii, CR, equalsLower, LF, VALUE_CHAR } from "./bytes.ts";
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

/** Common methods, so the hot path hands out interned strings instead of decoding bytes. */
const METHODS = ["GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH", "CONNECT", "TRACE"].map(
  (m) => [m, ascii(m)] as const,
);

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

export function methodName(buf: Uint8Array, s: number, e: number): string {
  // Indexed, not for-of with destructuring: that goes through the iterator protocol per request.
  for (let m = 0; m < METHODS.length; m++) {
    const entry = METHODS[m] as (typeof METHODS)[number];
    const name = entry[0];
    const bytes = entry[1];
    if (bytes.length === e - s) {
      let same = true;
      for (let i = 0; i < bytes.length; i++) {
        if (buf[s + i] !== bytes[i]) {
          same = false;
          break;
        }
      }
      if (same) return name;
    }
  }
  return String.fromCharCode(...buf.subarray(s, e));
}
