/** @module http/authority — the authority grammar of RFC 3986 §3.2 as byte loops: uri-host (reg-name, IPv4, IP-literal with IPv6 or IPvFuture), port, and the http(s) scheme. */

import { COLON, isDigit, isHex, lower } from "./bytes.ts";
import { ParseError } from "./codes.ts";

/**
 * reg-name bytes other than pct-encoded (RFC 3986 §3.2.2: unreserved / sub-delims), less ",":
 * no DNS name holds one, and in Host it is what joins two field lines into a list (RFC 9110
 * §5.3), so "a,b" is refused like two Host lines (RFC 9112 §3.2).
 */
export const REG_NAME_CHAR = new Uint8Array(256);
for (const c of "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+;=") {
  REG_NAME_CHAR[c.charCodeAt(0)] = 1;
}
/** The tail of an IPvFuture: unreserved / sub-delims / ":" (RFC 3986 §3.2.2), "," refused as above. */
const IPVFUTURE_CHAR = REG_NAME_CHAR.slice();
IPVFUTURE_CHAR[COLON] = 1;
/** scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) (RFC 3986 §3.1). */
export const SCHEME_CHAR = new Uint8Array(256);
for (const c of "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-.") {
  SCHEME_CHAR[c.charCodeAt(0)] = 1;
}

/** "http" or "https" in buf[s, e), case-insensitively (RFC 3986 §3.1). */
export function isHttpScheme(buf: Uint8Array, s: number, e: number): boolean {
  const n = e - s;
  if (n !== 4 && n !== 5) return false;
  if (lower(buf[s] as number) !== 0x68 || lower(buf[s + 1] as number) !== 0x74) return false;
  if (lower(buf[s + 2] as number) !== 0x74 || lower(buf[s + 3] as number) !== 0x70) return false;
  return n === 4 || lower(buf[s + 4] as number) === 0x73;
}

/**
 * A Host field value (RFC 9110 §7.2): uri-host [ ":" port ], or empty, which is allowed there for
 * a target without an authority, and so accepted for every target. The common plain name and port
 * are checked here; pct-encoding, IP-literals and the rest by isAuthority.
 */
export function isHostValue(buf: Uint8Array, s: number, e: number): boolean {
  let i = s;
  while (i < e && REG_NAME_CHAR[buf[i] as number] === 1) i++;
  if (i > s && i < e && buf[i] === COLON) {
    i++;
    while (i < e && isDigit(buf[i] as number)) i++;
  }
  return i === e || isAuthority(buf, s, e, false);
}

/**
 * uri-host [ ":" port ] in buf[s, e) (RFC 3986 §3.2.2–3.2.3, as Host in RFC 9110 §7.2 and
 * authority-form in RFC 9112 §3.2.3): a non-empty host (RFC 9110 §4.2.1: an http URI with an
 * empty host is invalid), and with `portRequired` a non-empty port. No userinfo: "@" is in
 * neither grammar.
 */
export function isAuthority(buf: Uint8Array, s: number, e: number, portRequired: boolean): boolean {
  let i = s;
  if (s < e && buf[s] === 0x5b) {
    // IP-literal = "[" ( IPv6address / IPvFuture ) "]"
    i = s + 1;
    while (i < e && buf[i] !== 0x5d) i++;
    if (i === e || !isIPLiteral(buf, s + 1, i)) return false;
    i++;
  } else {
    // reg-name = *( unreserved / pct-encoded / sub-delims ); IPv4address is one of them.
    while (i < e) {
      const c = buf[i] as number;
      if (REG_NAME_CHAR[c] === 1) i++;
      else if (c === 0x25 && i + 2 < e && isHex(buf[i + 1] as number) && isHex(buf[i + 2] as number)) i += 3;
      else break;
    }
    if (i === s) return false;
  }
  if (i === e) return !portRequired;
  if (buf[i] !== COLON) return false;
  i++;
  // port = *DIGIT
  if (portRequired && i === e) return false;
  while (i < e && isDigit(buf[i] as number)) i++;
  return i === e;
}

/** The code for a target authority that failed {@link isAuthority}: userinfo has its own. */
export function authorityError(buf: Uint8Array, s: number, e: number): number {
  for (let i = s; i < e; i++) if (buf[i] === 0x40) return -ParseError.TARGET_USERINFO;
  return -ParseError.BAD_AUTHORITY;
}

/** IPv6address / IPvFuture, the inside of an IP-literal (RFC 3986 §3.2.2). */
function isIPLiteral(buf: Uint8Array, s: number, e: number): boolean {
  if (((buf[s] as number) | 0x20) !== 0x76) return isIPv6(buf, s, e);
  // IPvFuture = "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" )
  let i = s + 1;
  while (i < e && isHex(buf[i] as number)) i++;
  if (i === s + 1 || i >= e - 1 || buf[i] !== 0x2e) return false;
  for (i++; i < e; i++) if (IPVFUTURE_CHAR[buf[i] as number] !== 1) return false;
  return true;
}

/**
 * IPv6address (RFC 3986 §3.2.2): eight h16 pieces (1–4 HEXDIG) separated by ":", the last two
 * of which may be one IPv4address, and one "::" at most, standing for one or more zero pieces.
 */
function isIPv6(buf: Uint8Array, s: number, e: number): boolean {
  let i = s;
  let pieces = 0;
  let elided = false;
  if (e - s >= 2 && buf[s] === COLON && buf[s + 1] === COLON) {
    elided = true;
    i += 2;
  }
  while (i < e) {
    const h = i;
    while (i < e && i - h < 5 && isHex(buf[i] as number)) i++;
    if (i === h) return false;
    if (i < e && buf[i] === 0x2e) {
      // ls32's IPv4address: only as the last piece, and worth two.
      if (!isIPv4(buf, h, e)) return false;
      pieces += 2;
      break;
    }
    if (i - h > 4) return false;
    pieces++;
    if (i === e) break;
    if (buf[i] !== COLON) return false;
    i++;
    if (i < e && buf[i] === COLON) {
      if (elided) return false;
      elided = true;
      i++;
    } else if (i === e) {
      return false;
    }
  }
  return elided ? pieces <= 7 : pieces === 8;
}

/** IPv4address = dec-octet "." dec-octet "." dec-octet "." dec-octet, no leading zeros (RFC 3986 §3.2.2). */
function isIPv4(buf: Uint8Array, s: number, e: number): boolean {
  let i = s;
  for (let octet = 0; octet < 4; octet++) {
    if (octet > 0) {
      if (buf[i] !== 0x2e) return false;
      i++;
    }
    const d = i;
    let n = 0;
    while (i < e && i - d < 3 && isDigit(buf[i] as number)) n = n * 10 + (buf[i++] as number) - 48;
    if (i === d || n > 255 || (i - d > 1 && buf[d] === 48)) return false;
  }
  return i === e;
}

/**
 * The authority of an absolute-form target as the parser admitted it ("http://host:port/p?q" is
 * "host:port"): what names the request's host in place of Host (RFC 9112 §3.2.2).
 */
export function targetAuthority(target: string): string {
  const at = target.indexOf("://") + 3;
  let end = target.indexOf("/", at);
  const q = target.indexOf("?", at);
  if (q >= 0 && (end < 0 || q < end)) end = q;
  return end < 0 ? target.slice(at) : target.slice(at, end);
}
