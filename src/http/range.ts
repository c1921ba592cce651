/** @module http/range — byte-range requests for a representation of known size (RFC 9110 §14): a single Range parsed, If-Range judged by strong comparison, and the validators a file gets. */

/** What a Range field asks of a representation of `size` bytes. */
export type RangeVerdict =
  /** No usable Range (absent, not bytes, malformed, or several ranges): send the whole (§14.2 lets a server ignore it). */
  | { kind: "whole" }
  /** One satisfiable range, `start`..`end` inclusive: 206. */
  | { kind: "part"; start: number; end: number }
  /** No byte of it exists: 416 with `Content-Range: bytes *\/size`. */
  | { kind: "unsatisfiable" };

const WHOLE: RangeVerdict = { kind: "whole" };
const UNSATISFIABLE: RangeVerdict = { kind: "unsatisfiable" };

/** A non-empty run of digits as a number; NaN otherwise (no sign, no space: RFC 9110 §14.1.1's 1*DIGIT). */
function digits(s: string): number {
  if (s.length === 0) return Number.NaN;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return Number.NaN;
  }
  return Number(s);
}

/**
 * Judge `Range: bytes=first-last | first- | -suffix` (RFC 9110 §14.1.2) against `size`. Only a
 * single range is served: a request for several gets the whole representation, which §14.2
 * allows, instead of a multipart/byteranges body.
 */
export function parseRange(value: string, size: number): RangeVerdict {
  const v = value.trim();
  if (v.length < 7 || v.slice(0, 6).toLowerCase() !== "bytes=") return WHOLE;
  const spec = v.slice(6).trim();
  if (spec.includes(",")) return WHOLE;
  const dash = spec.indexOf("-");
  if (dash < 0) return WHOLE;
  const first = spec.slice(0, dash).trim();
  const last = spec.slice(dash + 1).trim();
  if (first === "") {
    // A suffix: the last N bytes; N = 0 asks for nothing that exists (§14.1.3).
    const n = digits(last);
    if (Number.isNaN(n)) return WHOLE;
    if (n === 0 || size === 0) return UNSATISFIABLE;
    return { kind: "part", start: Math.max(0, size - n), end: size - 1 };
  }
  const start = digits(first);
  if (Number.isNaN(start)) return WHOLE;
  let end = size - 1;
  if (last !== "") {
    const e = digits(last);
    // last < first is invalid syntax (§14.1.1): ignored like any malformed Range.
    if (Number.isNaN(e) || e < start) return WHOLE;
    end = Math.min(e, size - 1);
  }
  if (start >= size) return UNSATISFIABLE;
  return { kind: "part", start, end };
}

/**
 * Whether an If-Range condition holds, so the Range applies (RFC 9110 §13.1.5): an entity-tag
 * by strong comparison (a weak one never matches), a date only when it equals the
 * Last-Modified exactly.
 */
export function ifRangeHolds(ifRange: string, etag: string | null, lastModified: string | null): boolean {
  const v = ifRange.trim();
  if (v.startsWith("W/")) return false;
  if (v.startsWith('"')) return etag !== null && !etag.startsWith("W/") && v === etag;
  return lastModified !== null && v === lastModified;
}

/** A strong entity-tag for a file version: its size and modification time, as nginx makes them. */
export const fileETag = (size: number, mtimeMs: number): string =>
  `"${Math.floor(mtimeMs / 1000).toString(16)}-${size.toString(16)}"`;

/** The Content-Range of a part, and of an unsatisfiable request (RFC 9110 §14.4). */
export const contentRange = (start: number, end: number, size: number): string => `bytes ${start}-${end}/${size}`;
export const unsatisfiedRange = (size: number): string => `bytes */${size}`;
