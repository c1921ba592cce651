/** @module http/request — request-head decoding: interned field names, percent-decoding, and the per-request facts framing needs. */

import { ConfigError } from "../errors.ts";
import { CR, hexValue, LF, latin1, SHORT_RUN, sameBytes, sameLatin1 } from "./bytes.ts";
import { FIELD_SLOTS } from "./fields.ts";
import type { RequestParser } from "./parser.ts";

/** The request itself ends its connection: `Connection: close`, or HTTP/1.0 without keep-alive (RFC 9112 §9.3). */
export const clientCloses = (p: RequestParser): boolean => p.connectionClose || (p.versionMinor === 0 && !p.connectionKeepAlive);

/**
 * An upgrade request (RFC 9110 §7.8): HTTP/1.1 with an Upgrade field that is also named among
 * the Connection options (§7.6.1), without which Upgrade is not meant for this hop. Any other
 * request that carries Upgrade is an ordinary request.
 */
export const isUpgradeRequest = (p: RequestParser): boolean => p.versionMinor >= 1 && p.hasUpgrade && p.connectionUpgrade;

/** "HTTP/1.0" … "HTTP/1.9" by minor version: SERVER_PROTOCOL without building a string per request. */
export const HTTP_1X: readonly string[] = Array.from({ length: 10 }, (_, minor) => `HTTP/1.${minor}`);

/**
 * Header names seen before, by their exact bytes: a repeated name costs a hash and a byte
 * compare instead of a decode, and is the same string each time (so the environ-key cache
 * finds it by its stored hash). Bounded; a collision just decodes.
 */
const knownNames = new Map<number, { bytes: Uint8Array; name: string }>();
const MAX_KNOWN_NAMES = 512;

export function headerName(buf: Uint8Array, s: number, e: number): string {
  const n = e - s;
  let h = n;
  for (let i = s; i < e; i++) h = (Math.imul(h, 31) + (buf[i] as number)) | 0;
  const known = knownNames.get(h);
  if (known !== undefined) {
    const b = known.bytes;
    if (b.length === n) {
      let i = 0;
      while (i < n && b[i] === buf[s + i]) i++;
      if (i === n) return known.name;
    }
    return latin1(buf, s, e);
  }
  const name = latin1(buf, s, e);
  if (knownNames.size < MAX_KNOWN_NAMES) knownNames.set(h, { bytes: new Uint8Array(buf.subarray(s, e)), name });
  return name;
}

/** Percent-decode to latin-1, like gevent's unquote_latin1; invalid escapes stay as they are. */
export function unquoteLatin1(s: string): string {
  if (!s.includes("%")) return s;
  let out = "";
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 37 && i + 2 < s.length) {
      const h = hexValue(s.charCodeAt(i + 1));
      const l = hexValue(s.charCodeAt(i + 2));
      if (h >= 0 && l >= 0) {
        out += String.fromCharCode(h * 16 + l);
        i += 2;
        continue;
      }
    }
    out += s[i];
  }
  return out;
}

/**
 * The request line of the head at buf[start, end), for a log: up to its first CR or LF and at
 * most 1024 bytes, latin-1, with control bytes, DEL, backslashes and non-ASCII bytes escaped.
 */
export function logLine(buf: Uint8Array, start: number, end: number): string {
  let e = start;
  const limit = Math.min(end, start + 1024);
  while (e < limit && buf[e] !== CR && buf[e] !== LF) e++;
  let out = "";
  for (let i = start; i < e; i++) {
    const c = buf[i] as number;
    out += c < 0x20 || c === 0x7f || c === 0x5c || c >= 0x80 ? `\\x${c.toString(16).padStart(2, "0")}` : String.fromCharCode(c);
  }
  return out;
}

/** Largest header section kept per connection to be recognised when repeated. */
const MAX_CACHED_FIELDS = 4096;

/**
 * Decodes the parsed request heads of one connection into strings. A keep-alive client often
 * repeats its request line (a poll, a health check, a benchmark) and its header section byte
 * for byte (a browser, a proxy): then the last strings are reused instead of decoded again.
 */
export class RequestDecoder {
  /** The last request line decoded, and the line whose target `linePath` is. */
  private lastLine = "";
  private pathLine = "";
  private pathStart = 0;
  private linePath = "";
  /** The previous request's header section (bytes) and its decoded fields. */
  private lastFields: Uint8Array | null = null;
  private lastHeaders: Array<[string, string]> | null = null;
  /** The last fields() call found the same header section as the one before it. */
  fieldsRepeated = false;

  /** The request line of the head at `base` in buf, as latin-1. */
  requestLine(p: RequestParser, buf: Uint8Array, base: number): string {
    const s = base + p.lineStart;
    const e = base + p.lineEnd;
    const last = this.lastLine;
    if (last.length === e - s && e - s <= SHORT_RUN && sameLatin1(last, buf, s)) return last;
    const line = latin1(buf, s, e);
    this.lastLine = line;
    return line;
  }

  /**
   * The request-target. It is part of the request line already decoded: a substring, not a
   * second decode (unless `line` is some other line, as an overridden hook may hand over), and
   * the last one again when the line repeats.
   */
  target(p: RequestParser, buf: Uint8Array, base: number, line: string): string {
    if (line.length !== p.lineEnd - p.lineStart) return latin1(buf, base + p.targetStart, base + p.targetEnd);
    const ts = p.targetStart - p.lineStart;
    if (line !== this.pathLine || ts !== this.pathStart || p.targetEnd - p.targetStart !== this.linePath.length) {
      this.pathLine = line;
      this.pathStart = ts;
      this.linePath = line.slice(ts, p.targetEnd - p.lineStart);
    }
    return this.linePath;
  }

  /** The header fields as received (order and duplicates kept), as fresh pairs the app may change. */
  fields(p: RequestParser, buf: Uint8Array, base: number): Array<[string, string]> {
    const f = p.fields;
    const count = p.fieldCount;
    const hs = count > 0 ? base + (f[0] as number) : 0;
    const he = count > 0 ? base + (f[(count - 1) * FIELD_SLOTS + 3] as number) : 0;
    const last = this.lastFields;
    this.fieldsRepeated = last !== null && last.length === he - hs && sameBytes(last, buf, hs);
    if (this.fieldsRepeated) {
      const cached = this.lastHeaders as Array<[string, string]>;
      const headers: Array<[string, string]> = new Array(cached.length);
      for (let i = 0; i < cached.length; i++) {
        const pair = cached[i] as [string, string];
        headers[i] = [pair[0], pair[1]];
      }
      return headers;
    }
    const headers: Array<[string, string]> = [];
    for (let n = 0; n < count; n++) {
      const k = n * FIELD_SLOTS;
      headers.push([
        headerName(buf, base + (f[k] as number), base + (f[k + 1] as number)),
        latin1(buf, base + (f[k + 2] as number), base + (f[k + 3] as number)),
      ]);
    }
    // A request that closes its connection has no successor to share these with.
    if (count > 0 && he - hs <= MAX_CACHED_FIELDS && !clientCloses(p)) {
      this.lastFields = new Uint8Array(buf.subarray(hs, he));
      this.lastHeaders = headers.map((pair) => [pair[0], pair[1]]);
    }
    return headers;
  }
}

/** A mount prefix (root_path): "" or a path starting with "/", without a trailing "/" or a query; else a ConfigError. */
export function checkRootPath(path: string): string {
  if (typeof path !== "string" || (path !== "" && (!path.startsWith("/") || path.endsWith("/") || path.includes("?")))) {
    throw new ConfigError(
      `rootPath must be "" or a path such as "/app" (no trailing "/", no query), got ${JSON.stringify(path)}`,
    );
  }
  return path;
}
