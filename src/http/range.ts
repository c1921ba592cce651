/** @module http/range — byte-range requests for a representation of known size (RFC 9110 §14): a Range parsed exactly to its grammar, If-Range judged by strong comparison and a strong date, Accept-Ranges read, and the validators a file gets. */

import { HTAB, SP } from "./bytes.ts";
import { type EntityTag, parseEntityTag, parseHttpDate } from "./conditional.ts";

/** What a Range field asks of a representation of `size` bytes. */
export type RangeVerdict =
  /** No usable Range (not bytes, invalid, or several ranges): send the whole (§14.2 lets a server ignore it). */
  | { kind: "whole" }
  /** One satisfiable range, `start`..`end` inclusive: 206. */
  | { kind: "part"; start: number; end: number }
  /** No byte of it exists: 416 with `Content-Range: bytes *\/size`. */
  | { kind: "unsatisfiable" };

const WHOLE: RangeVerdict = { kind: "whole" };
const UNSATISFIABLE: RangeVerdict = { kind: "unsatisfiable" };

const COMMA = 0x2c;
const DASH = 0x2d;
const isDigit = (c: number): boolean => c >= 48 && c <= 57;
const skipOWS = (s: string, i: number): number => {
  while (i < s.length && (s.charCodeAt(i) === SP || s.charCodeAt(i) === HTAB)) i++;
  return i;
};

/** A range-spec read by rangeSpecAt: `first` (-1 for a suffix-range), `last` (-1 when absent), and where it ends. */
interface Spec {
  first: number;
  last: number;
  end: number;
}

/** The digits at `i` (1*DIGIT): their value into `spec.last`, their end into `spec.end`; false when there are none. */
function digitsAt(s: string, i: number, spec: Spec): boolean {
  let v = 0;
  const from = i;
  while (i < s.length && isDigit(s.charCodeAt(i))) v = v * 10 + s.charCodeAt(i++) - 48;
  spec.last = v;
  spec.end = i;
  return i > from;
}

/**
 * The byte range-spec at `i` (RFC 9110 §14.1.2): `int-range = first-pos "-" [ last-pos ]` or
 * `suffix-range = "-" suffix-length`, digits only (no sign, no space). False when there is
 * none there, or when last-pos is less than first-pos (§14.1.1: invalid).
 */
function rangeSpecAt(s: string, i: number, spec: Spec): boolean {
  if (s.charCodeAt(i) === DASH) {
    spec.first = -1;
    return digitsAt(s, i + 1, spec);
  }
  if (!digitsAt(s, i, spec) || s.charCodeAt(spec.end) !== DASH) return false;
  spec.first = spec.last;
  if (!digitsAt(s, spec.end + 1, spec)) spec.last = -1;
  return spec.last < 0 || spec.last >= spec.first;
}

/**
 * Judge `Range: bytes=first-last | first- | -suffix` (RFC 9110 §14.1.2) against `size`, to the
 * grammar exactly: `"bytes" "=" 1#range-spec`, the unit in any case (§14.1), whitespace only
 * around the list's commas and empty list elements allowed (§5.6.1.2), nothing else. A Range
 * that is not that is ignored (§14.2: the whole is sent), as is one of another unit. Only a
 * single range is served: a request for several gets the whole representation, which §14.2
 * allows, instead of a multipart/byteranges body.
 */
export function parseRange(value: string, size: number): RangeVerdict {
  if (value.length < 6 || value.slice(0, 6).toLowerCase() !== "bytes=") return WHOLE;
  const n = value.length;
  const spec: Spec = { first: 0, last: 0, end: 0 };
  let first = 0;
  let last = 0;
  let count = 0;
  // 1#range-spec as a recipient reads it: *( "," OWS ) range-spec *( OWS "," OWS [ range-spec ] ).
  let i = 6;
  while (i < n && value.charCodeAt(i) === COMMA) i = skipOWS(value, i + 1);
  while (i < n) {
    if (!rangeSpecAt(value, i, spec)) return WHOLE;
    if (count++ === 0) {
      first = spec.first;
      last = spec.last;
    }
    i = spec.end;
    let separated = false;
    for (let j = skipOWS(value, i); j < n && value.charCodeAt(j) === COMMA; j = skipOWS(value, i)) {
      i = skipOWS(value, j + 1);
      separated = true;
    }
    if (i < n && !separated) return WHOLE;
  }
  if (count !== 1) return WHOLE;
  if (first < 0) {
    // A suffix: the last N bytes; N = 0 asks for nothing that exists (§14.1.3).
    if (last === 0 || size === 0) return UNSATISFIABLE;
    return { kind: "part", start: Math.max(0, size - last), end: size - 1 };
  }
  if (first >= size) return UNSATISFIABLE;
  return { kind: "part", start: first, end: last < 0 ? size - 1 : Math.min(last, size - 1) };
}

/**
 * Whether a validator dated `lastModified` (seconds) is strong in a response dated `date`
 * (RFC 9110 §8.8.2.2): only when it is at least a second older than the Date, else the file
 * may change again within its second and keep it.
 */
export const strongAt = (lastModified: number, date: number): boolean => lastModified < date;

/**
 * Whether an If-Range condition holds, so the Range applies (RFC 9110 §13.1.5): an entity-tag
 * by strong comparison (a weak one never matches); an HTTP-date only when it equals the
 * Last-Modified exactly and that is strong: at least a second before the response's `date`
 * (seconds; §8.8.2.2). Anything else (no validator at all) is false: the whole is sent.
 */
export function ifRangeHolds(ifRange: string, etag: EntityTag | null, lastModified: string | null, date: number): boolean {
  const tag = parseEntityTag(ifRange);
  if (tag !== null) return !tag.weak && etag !== null && !etag.weak && tag.opaque === etag.opaque;
  if (lastModified === null || ifRange !== lastModified) return false;
  const modified = parseHttpDate(lastModified, date);
  return !Number.isNaN(modified) && strongAt(modified, date);
}

/**
 * Whether a response's Accept-Ranges (`1#range-unit`, RFC 9110 §14.3; null when it has none)
 * lets the server answer byte ranges: absent, or naming `bytes`. `none` (or any other unit
 * alone) is the app saying no: its Range requests get the whole representation.
 */
export function acceptsBytes(value: string | null): boolean {
  if (value === null) return true;
  let i = 0;
  while (i < value.length) {
    const from = skipOWS(value, i);
    let end = value.indexOf(",", from);
    if (end < 0) end = value.length;
    let to = end;
    while (to > from && (value.charCodeAt(to - 1) === SP || value.charCodeAt(to - 1) === HTAB)) to--;
    if (to - from === 5 && value.slice(from, to).toLowerCase() === "bytes") return true;
    i = end + 1;
  }
  return false;
}

/**
 * An entity-tag for a file version: its modification time and size, as nginx makes them; weak
 * (`W/`) unless the time is at least a second before the response's Date (`strong`), as Apache
 * does: within that second the file may change again and keep the same tag.
 */
export const fileETag = (size: number, mtimeMs: number, strong: boolean): string =>
  `${strong ? "" : "W/"}"${Math.floor(mtimeMs / 1000).toString(16)}-${size.toString(16)}"`;

/** The Content-Range of a part, and of an unsatisfiable request (RFC 9110 §14.4). */
export const contentRange = (start: number, end: number, size: number): string => `bytes ${start}-${end}/${size}`;
export const unsatisfiedRange = (size: number): string => `bytes */${size}`;
