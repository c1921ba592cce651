/** @module http/fields — field lines at the byte level: which fields frame a request, the scans for line ends and field-value bytes, and the values of the framing fields (Content-Length, Transfer-Encoding, Connection, Expect). */

import { ascii, CR, equalsLower, HTAB, isDigit, isOWS, LF, SP, TCHAR, VALUE_CHAR } from "./bytes.ts";
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

/**
 * Slots per field in {@link RequestParser.fields}: nameStart, nameEnd, valueStart, valueEnd,
 * kind. A value is always one line's bytes: obs-fold is refused (RFC 9112 §5.2).
 */
export const FIELD_SLOTS = 5;

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
 * A Content-Length field value: exactly 1*DIGIT (RFC 9110 §8.6). `prev` is the value of an
 * earlier Content-Length field line (-1 if none). A second value, in another field line or in a
 * list ("5, 5"), is refused even when it repeats the first: RFC 9110 §8.6 lets a recipient
 * either reject it or take the one value, and a repeated length is how a request is smuggled
 * past a hop that reads it differently (RFC 9112 §6.3, §11.2). Returns the length, or a
 * negated {@link ParseError} code.
 */
export function contentLengthValue(buf: Uint8Array, s: number, e: number, prev: number): number {
  if (prev !== -1) return -ParseError.DUPLICATE_CONTENT_LENGTH;
  let n = 0;
  let i = s;
  while (i < e && isDigit(buf[i] as number)) {
    // n is at most 2^53 - 1 before this step, so the comparison after it is still exact enough.
    n = n * 10 + ((buf[i] as number) - 48);
    if (n > MAX_CONTENT_LENGTH) return -ParseError.BAD_CONTENT_LENGTH;
    i++;
  }
  if (i === e && i > s) return n;
  if (i === s) return -ParseError.BAD_CONTENT_LENGTH;
  // A list: a comma after the number, with or without OWS before it.
  while (i < e && (buf[i] === SP || buf[i] === HTAB)) i++;
  return i < e && buf[i] === 0x2c ? -ParseError.DUPLICATE_CONTENT_LENGTH : -ParseError.BAD_CONTENT_LENGTH;
}

/** Bits of {@link transferCodings}: what the transfer codings of a request hold so far. */
export const TransferCoding = {
  /** The last coding so far is chunked (without parameters). */
  CHUNKED_LAST: 1,
  /** A coding other than plain chunked was seen: one the server does not implement. */
  OTHER: 2,
} as const;

/**
 * The transfer codings of one Transfer-Encoding field line, after `codings` ({@link
 * TransferCoding} bits) of earlier lines: the lines are one list (RFC 9110 §5.3).
 * Transfer-Encoding = #transfer-coding; transfer-coding = token *( OWS ";" OWS
 * transfer-parameter ); transfer-parameter = token BWS "=" BWS ( token / quoted-string ) (RFC
 * 9112 §6.1, RFC 9110 §10.1.4); empty list elements are skipped (RFC 9110 §5.6.1.2). A coding
 * after chunked is 400 at once (RFC 9112 §6.3: chunked must be final, and only once); whether the
 * last one is chunked is decided by the caller once every line is in. Returns the new bits, or a
 * negated {@link ParseError} code.
 */
export function transferCodings(buf: Uint8Array, s: number, e: number, codings: number): number {
  let i = s;
  for (;;) {
    while (i < e && (isOWS(buf[i] as number) || buf[i] === 0x2c)) i++;
    if (i === e) return codings;
    const t = i;
    while (i < e && TCHAR[buf[i] as number] === 1) i++;
    if (i === t) return -ParseError.BAD_TRANSFER_ENCODING;
    if ((codings & TransferCoding.CHUNKED_LAST) !== 0) return -ParseError.TE_NOT_CHUNKED;
    let plain = i - t === W_CHUNKED.length && equalsLower(buf, t, W_CHUNKED);
    for (;;) {
      while (i < e && isOWS(buf[i] as number)) i++;
      if (i === e || buf[i] === 0x2c) break;
      if (buf[i] !== 0x3b) return -ParseError.BAD_TRANSFER_ENCODING;
      // A parameter: chunked has none (RFC 9112 §7), so chunked with one is a coding not implemented.
      plain = false;
      i++;
      while (i < e && isOWS(buf[i] as number)) i++;
      i = tokenEnd(buf, i, e);
      if (i < 0) return -ParseError.BAD_TRANSFER_ENCODING;
      while (i < e && isOWS(buf[i] as number)) i++;
      if (i === e || buf[i] !== 0x3d) return -ParseError.BAD_TRANSFER_ENCODING;
      i++;
      while (i < e && isOWS(buf[i] as number)) i++;
      i = i < e && buf[i] === 0x22 ? quotedStringEnd(buf, i, e) : tokenEnd(buf, i, e);
      if (i < 0) return -ParseError.BAD_TRANSFER_ENCODING;
    }
    codings |= plain ? TransferCoding.CHUNKED_LAST : TransferCoding.OTHER;
  }
}

/** The end of a non-empty token at buf[i], or -1. */
function tokenEnd(buf: Uint8Array, i: number, e: number): number {
  const t = i;
  while (i < e && TCHAR[buf[i] as number] === 1) i++;
  return i > t ? i : -1;
}

/**
 * The end of the quoted-string at buf[i] (its opening DQUOTE), or -1 when it does not close
 * (RFC 9110 §5.6.4). Its bytes are field-value bytes already, so only DQUOTE and "\" matter.
 */
function quotedStringEnd(buf: Uint8Array, i: number, e: number): number {
  for (i++; i < e; i++) {
    const c = buf[i];
    if (c === 0x22) return i + 1;
    if (c === 0x5c) i++;
  }
  return -1;
}

/**
 * The expectations of one Expect field line (RFC 9110 §10.1.1): 1 when it lists 100-continue
 * (case-insensitively, without parameters: none is defined), 0 when it lists nothing (empty
 * elements are skipped, RFC 9110 §5.6.1.2), and EXPECTATION_FAILED (negated) when it lists
 * anything else, also next to 100-continue: an expectation the server cannot meet is 417 wherever
 * it is in the combined list, and "100-continue" repeated is still 100-continue.
 */
export function expectations(buf: Uint8Array, s: number, e: number): number {
  let found = 0;
  let i = s;
  for (;;) {
    while (i < e && (isOWS(buf[i] as number) || buf[i] === 0x2c)) i++;
    if (i === e) return found;
    const t = i;
    while (i < e && buf[i] !== 0x2c) i++;
    let te = i;
    while (isOWS(buf[te - 1] as number)) te--;
    if (te - t !== W_100_CONTINUE.length || !equalsLower(buf, t, W_100_CONTINUE)) return -ParseError.EXPECTATION_FAILED;
    found = 1;
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
