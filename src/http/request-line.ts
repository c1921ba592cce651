/** @module http/request-line — the request line (RFC 9112 §3): method (interned when common), request-target and its form (§3.2, checked against the method), and version (§2.3), as offsets or an error code. */

import { authorityError, isAuthority, isHttpScheme, SCHEME_CHAR } from "./authority.ts";
import { ascii, COLON, isAlpha, isDigit, SP, TCHAR } from "./bytes.ts";
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
}

/**
 * Request-target bytes: visible US-ASCII (RFC 9112 §3.2, RFC 3986). '#' is refused: a fragment
 * is never sent in a request-target, and raw octets above 0x7E are refused rather than guessed at.
 */
const TARGET_CHAR = new Uint8Array(256);
for (let i = 0x21; i < 0x7f; i++) TARGET_CHAR[i] = i === 0x23 ? 0 : 1;

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
 * Parse the request line buf[s, e) (CRLF excluded; the head starts at `base`) into `line`:
 * method SP request-target SP HTTP-version, single spaces (RFC 9112 §3). Returns 0, or a negated
 * {@link ParseError} code.
 */
export function parseRequestLine(
  line: RequestLine,
  buf: Uint8Array,
  base: number,
  s: number,
  e: number,
  maxLength: number,
): number {
  if (e - s > maxLength) return -ParseError.URI_TOO_LONG;
  line.lineStart = s - base;
  line.lineEnd = e - base;
  let i = s;
  while (i < e && TCHAR[buf[i] as number] === 1) i++;
  if (i === s) return -ParseError.BAD_METHOD;
  if (i === e) return -ParseError.BAD_REQUEST_LINE;
  if (buf[i] !== SP) return buf[i] === 0 ? -ParseError.NUL : -ParseError.BAD_METHOD;
  line.method = methodName(buf, s, i);
  const t0 = ++i;
  while (i < e && TARGET_CHAR[buf[i] as number] === 1) i++;
  if (i === t0 || i === e) return -ParseError.BAD_REQUEST_LINE;
  if (buf[i] !== SP) return buf[i] === 0 ? -ParseError.NUL : -ParseError.BAD_TARGET;
  line.targetStart = t0 - base;
  line.targetEnd = i - base;
  // Version first: an HTTP/2 preface ("PRI * HTTP/2.0") is a 505, not a bad target.
  const err = version(line, buf, i + 1, e);
  return err < 0 ? err : checkTarget(line, buf, base, t0, i);
}

/**
 * The four request-target forms (RFC 9112 §3.2) and which methods may use them: authority-form
 * with CONNECT only and CONNECT with nothing else (§3.2.3), asterisk-form with OPTIONS only
 * (§3.2.4). Its bytes are already visible ASCII without "#".
 */
function checkTarget(line: RequestLine, buf: Uint8Array, base: number, s: number, e: number): number {
  const first = buf[s];
  const connect = line.method === "CONNECT";
  line.authorityStart = line.authorityEnd = 0;
  if (first === 0x2f) {
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

function version(line: RequestLine, buf: Uint8Array, s: number, e: number): number {
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
  line.versionMinor = (buf[s + 7] as number) - 48;
  return 0;
}
