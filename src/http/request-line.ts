/** @module http/request-line — the request line (RFC 9112 §3), scanned as it arrives in resumable named states: method (interned when common, 501 when longer than any implemented), request-target by its grammar (§3.2, RFC 3986: a byte-class table and %HH) and its form against the method, and version (§2.3), as offsets or an error code. */

import { authorityError, isAuthority, isHttpScheme, SCHEME_CHAR } from "./authority.ts";
import { ascii, COLON, CR, isAlpha, isHex, LF, SP, TCHAR } from "./bytes.ts";
import { ParseError } from "./codes.ts";

/** The four request-target forms (RFC 9112 §3.2), as {@link RequestLine.targetForm}. */
export const TargetForm = {
  ORIGIN: 0,
  ABSOLUTE: 1,
  AUTHORITY: 2,
  ASTERISK: 3,
} as const;

/** What a request line is parsed into (the request parser is one), offsets relative to the head start. */
export interface RequestLine {
  /** Where the line begins (after skipped blank lines) and ends (without its CRLF). */
  lineStart: number;
  lineEnd: number;
  method: string;
  targetStart: number;
  targetEnd: number;
  /** Which of the four forms the target has ({@link TargetForm}). */
  targetForm: number;
  /**
   * The target's authority (absolute-form and authority-form; empty otherwise): with
   * absolute-form it replaces Host (RFC 9112 §3.2.2).
   */
  authorityStart: number;
  authorityEnd: number;
  /** Major version 1 is the only one admitted (others are 505): the minor version is all there is. */
  versionMinor: number;
  /** The last "[" or "]" in the target, or -1: only an IP-literal host in the authority may hold one. */
  bracketAt: number;
  /** Where {@link scanRequestLine} resumes: its {@link LineState} and offset (START after a reset). */
  lineState: number;
  linePos: number;
}

/** Common methods, so the hot path hands out interned strings instead of decoding bytes. */
const METHODS = ["GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH", "CONNECT", "TRACE"].map(
  (m) => [m, ascii(m)] as const,
);

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

/**
 * Where {@link scanRequestLine} stands in a request line, llhttp-style: it stops in one of these
 * when the bytes run out and resumes there, so every byte is looked at once and a verdict falls
 * on the byte that decides it, however the line is split across reads.
 */
export const LineState = {
  /** Nothing scanned yet: the next byte starts the line, or a blank line before it. */
  START: 0,
  METHOD: 1,
  TARGET: 2,
  VERSION: 3,
} as const;

/**
 * Longest method accepted: longer is 501, as a method longer than any the server implements
 * (RFC 9112 §3), decided at its first byte too many rather than at the request-line limit. The
 * longest in the IANA HTTP Method Registry is 17 bytes (UPDATEREDIRECTREF); extension methods get
 * room to spare, and 32 is below the smallest request-line limit (64), so a method is never 414.
 */
export const MAX_METHOD = 32;

/** Bytes of CRLFs tolerated before a request line (RFC 9112 §2.2: a few, not a stream of them). */
const MAX_LEADING_BLANK = 8;

// Request-target byte classes (RFC 9112 §3.2, RFC 3986 §2–§3).
/** Not in any form: CTLs, DEL, non-ASCII, "#" (a fragment is never sent) and `"<>\^{|}` and "`". */
const T_BAD = 0;
/** pchar less pct-encoded (unreserved / sub-delims / ":" / "@"), "/" and "?": a path, a query, a scheme or an authority. */
const T_CHAR = 1;
/** "%": pct-encoded = "%" HEXDIG HEXDIG (RFC 3986 §2.1). */
const T_PCT = 2;
/** "[" and "]": only around an IP-literal host (absolute- and authority-form, RFC 3986 §3.2.2). */
const T_BRACKET = 3;
/** SP: the end of the target. */
const T_END = 4;
const TARGET_CLASS = new Uint8Array(256);
for (const c of "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:@/?") {
  TARGET_CLASS[c.charCodeAt(0)] = T_CHAR;
}
TARGET_CLASS[0x25] = T_PCT;
TARGET_CLASS[0x5b] = TARGET_CLASS[0x5d] = T_BRACKET;
TARGET_CLASS[SP] = T_END;

/** HTTP-version = "HTTP/" DIGIT "." DIGIT (RFC 9112 §2.3): whether b may be its byte k (0–7). */
const versionByte = (k: number, b: number): boolean =>
  k < 5 ? b === HTTP_SLASH[k] : k === 6 ? b === 0x2e : b >= 0x30 && b <= 0x39;
const HTTP_SLASH = ascii("HTTP/");

/**
 * The verdict on buf[i], a byte the current state does not take: a CR waits for the byte after
 * it (CR LF ends the line, which is `ended`; anything else makes it a bare CR), an LF is bare, a
 * NUL has its own code and anything else is `bad`. 0 when the CR is the last byte read so far.
 */
function unexpected(buf: Uint8Array, i: number, end: number, bad: number, ended: number): number {
  const c = buf[i];
  if (c === CR) {
    if (i + 1 === end) return 0;
    return buf[i + 1] === LF ? -ended : -ParseError.BARE_CR;
  }
  if (c === LF) return -ParseError.BARE_LF;
  return c === 0 ? -ParseError.NUL : -bad;
}

/**
 * Scan the request line of the head at `base` in buf[…, end): method SP request-target SP
 * HTTP-version CRLF, single spaces (RFC 9112 §3), resuming where the last call stopped (the
 * state is kept in `line`). Each error is reported at the byte that decides it: a method over
 * {@link MAX_METHOD} (501), a byte outside the target's grammar (400), a version byte that is
 * not "HTTP/" DIGIT "." DIGIT (400), a bare CR or LF (400), a target that takes the line past
 * `maxLength` bytes (414); the version's major number (505) and the target's form for the method
 * once the line is complete.
 * @returns the index just past the line's LF, 0 when more bytes are needed, or a negated
 *   {@link ParseError} code.
 */
export function scanRequestLine(line: RequestLine, buf: Uint8Array, base: number, end: number, maxLength: number): number {
  let state = line.lineState;
  let i = base + line.linePos;
  if (state === LineState.START) {
    line.lineStart = 0;
    i = base;
    state = LineState.METHOD;
  }
  let s = base + line.lineStart;
  // A byte of the line at or past `limit` makes it longer than maxLength.
  let limit = s + maxLength;
  let err = 0;
  scan: for (;;) {
    switch (state) {
      case LineState.METHOD: {
        const stop = Math.min(end, s + MAX_METHOD);
        while (i < stop && TCHAR[buf[i] as number] === 1) i++;
        if (i === end) break scan;
        const c = buf[i] as number;
        if (c === SP && i > s) {
          line.method = methodName(buf, s, i);
          line.targetStart = i + 1 - base;
          line.bracketAt = -1;
          state = LineState.TARGET;
          i++;
          continue;
        }
        if (TCHAR[c] === 1) return -ParseError.METHOD_TOO_LONG;
        if (c === CR && i === s && i + 1 < end && buf[i + 1] === LF) {
          // RFC 9112 §2.2: an empty line before the request-line is ignored.
          if (i + 2 - base > MAX_LEADING_BLANK) return -ParseError.BAD_REQUEST_LINE;
          i += 2;
          s = i;
          limit = s + maxLength;
          line.lineStart = s - base;
          continue;
        }
        err = unexpected(buf, i, end, ParseError.BAD_METHOD, ParseError.BAD_REQUEST_LINE);
        break scan;
      }
      case LineState.TARGET: {
        for (;;) {
          const stop = Math.min(end, limit);
          while (i < stop && TARGET_CLASS[buf[i] as number] === T_CHAR) i++;
          if (i === end) break scan;
          const cls = TARGET_CLASS[buf[i] as number];
          if (cls === T_END) break;
          if (cls === T_BAD) {
            err = unexpected(buf, i, end, ParseError.BAD_TARGET, ParseError.BAD_REQUEST_LINE);
            break scan;
          }
          if (i >= limit) return -ParseError.URI_TOO_LONG;
          if (cls === T_BRACKET) {
            // A target that starts with "/" is origin-form, which holds no bracket: refused now.
            // In absolute-form only the authority may, which is known once the line is whole.
            if (buf[base + line.targetStart] === 0x2f) return -ParseError.BAD_TARGET;
            line.bracketAt = i - base;
            i++;
            continue;
          }
          // "%": two hex digits, each checked as it arrives; an incomplete one is resumed at its "%".
          for (let j = i + 1; j < i + 3; j++) {
            if (j === end) break scan;
            if (!isHex(buf[j] as number)) {
              err = unexpected(buf, j, end, ParseError.BAD_TARGET, ParseError.BAD_REQUEST_LINE);
              break scan;
            }
            if (j >= limit) return -ParseError.URI_TOO_LONG;
          }
          i += 3;
        }
        // Two spaces after the method, or none before the version.
        if (i === base + line.targetStart) return -ParseError.BAD_REQUEST_LINE;
        line.targetEnd = i - base;
        state = LineState.VERSION;
        i++;
        continue;
      }
      default: {
        const v = base + line.targetEnd + 1;
        for (let k = i - v; k < 8; k++, i++) {
          if (i === end) break scan;
          if (!versionByte(k, buf[i] as number)) {
            err = unexpected(buf, i, end, ParseError.BAD_VERSION, ParseError.BAD_VERSION);
            break scan;
          }
          if (i >= limit) return -ParseError.URI_TOO_LONG;
        }
        if (i === end) break scan;
        if (buf[i] !== CR || i + 1 === end || buf[i + 1] !== LF) {
          err = unexpected(buf, i, end, ParseError.BAD_VERSION, ParseError.BAD_VERSION);
          break scan;
        }
        line.lineEnd = i - base;
        // A later major version is 505 (RFC 9110 §15.6.6), once its version is whole: the HTTP/2
        // preface ("PRI * HTTP/2.0") gets 505, not the 400 its target would.
        if (buf[v + 5] !== 0x31) return -ParseError.VERSION_NOT_SUPPORTED;
        line.versionMinor = (buf[v + 7] as number) - 48;
        err = checkTarget(line, buf, base, base + line.targetStart, base + line.targetEnd);
        return err < 0 ? err : i + 2;
      }
    }
  }
  if (err < 0) return err;
  // Out of bytes (or a CR that is the last of them): resume here.
  line.lineState = state;
  line.linePos = i - base;
  return 0;
}

/**
 * The four request-target forms (RFC 9112 §3.2) and which methods may use them: authority-form
 * with CONNECT only and CONNECT with nothing else (§3.2.3), asterisk-form with OPTIONS only
 * (§3.2.4). Its bytes are already those of the union of the forms' grammars, with valid %HH.
 */
function checkTarget(line: RequestLine, buf: Uint8Array, base: number, s: number, e: number): number {
  const first = buf[s];
  const connect = line.method === "CONNECT";
  line.authorityStart = line.authorityEnd = 0;
  if (first === 0x2f) {
    // origin-form = absolute-path [ "?" query ] (§3.2.1), which holds no "[" or "]" (RFC 3986
    // §3.3, §3.4): the scan refused any.
    line.targetForm = TargetForm.ORIGIN;
    return connect ? -ParseError.TARGET_FORM : 0;
  }
  if (first === 0x2a) {
    line.targetForm = TargetForm.ASTERISK;
    if (e - s !== 1) return -ParseError.BAD_TARGET;
    return line.method === "OPTIONS" ? 0 : -ParseError.TARGET_FORM;
  }
  let i = s;
  while (i < e && SCHEME_CHAR[buf[i] as number] === 1) i++;
  if (isAlpha(first as number) && e - i >= 3 && buf[i] === COLON && buf[i + 1] === 0x2f && buf[i + 2] === 0x2f) {
    // absolute-form (§3.2.2): an origin server serves http and https URIs only (RFC 9110 §4.2).
    line.targetForm = TargetForm.ABSOLUTE;
    if (connect) return -ParseError.TARGET_FORM;
    if (!isHttpScheme(buf, s, i)) return -ParseError.BAD_SCHEME;
    const a = i + 3;
    let ae = a;
    while (ae < e && buf[ae] !== 0x2f && buf[ae] !== 0x3f) ae++;
    // An http(s) authority has a host, and no userinfo (RFC 9110 §4.2.1, §4.2.4).
    if (!isAuthority(buf, a, ae, false)) return authorityError(buf, a, ae);
    // Brackets past the authority are in its path or query.
    if (line.bracketAt >= ae - base) return -ParseError.BAD_TARGET;
    line.authorityStart = a - base;
    line.authorityEnd = ae - base;
    return 0;
  }
  // authority-form: uri-host ":" port, the port required (§3.2.3).
  line.targetForm = TargetForm.AUTHORITY;
  if (!isAuthority(buf, s, e, true)) return connect ? authorityError(buf, s, e) : -ParseError.BAD_TARGET;
  if (!connect) return -ParseError.TARGET_FORM;
  line.authorityStart = s - base;
  line.authorityEnd = e - base;
  return 0;
}
