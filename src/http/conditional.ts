/** @module http/conditional — conditional requests against a representation's validators (RFC 9110 §13): the fields read once (a repeated singleton is no value), HTTP-dates and entity-tags parsed exactly, the preconditions judged in §13.2.2's order. */

import { HTAB, SP } from "./bytes.ts";

/** The conditional and range fields of a request, as http/range and judgePreconditions read them. */
export interface RequestConditions {
  /** If-Match and If-None-Match: list fields, so their lines are one list (RFC 9110 §5.3). */
  readonly ifMatch: string | null;
  readonly ifNoneMatch: string | null;
  /** If-Modified-Since and If-Unmodified-Since: one HTTP-date each; null when absent or sent twice (§13.1.3, §13.1.4: a list of dates is ignored). */
  readonly ifModifiedSince: string | null;
  readonly ifUnmodifiedSince: string | null;
  /**
   * Range: null when absent, and when sent twice (a singleton whose lines combine into no valid
   * value, so it is ignored, §14.2) or with If-Range twice (an If-Range that is no single
   * validator never holds, §13.1.5: the Range is ignored all the same).
   */
  readonly range: string | null;
  readonly ifRange: string | null;
}

const NAMES = ["if-match", "if-none-match", "if-modified-since", "if-unmodified-since", "range", "if-range"];

/** The request's conditional and range fields, from its field lines as received. */
export function conditionsOf(fields: ReadonlyArray<readonly [string, string]>): RequestConditions {
  const values: Array<string | null> = [null, null, null, null, null, null];
  const counts = [0, 0, 0, 0, 0, 0];
  for (let i = 0; i < fields.length; i++) {
    const f = fields[i] as readonly [string, string];
    const name = f[0];
    // Every name looked for starts with "i" or "r": most fields are passed over on one byte.
    const c = name.charCodeAt(0) | 0x20;
    if (c !== 0x69 && c !== 0x72) continue;
    const k = NAMES.indexOf(name.toLowerCase());
    if (k < 0) continue;
    counts[k] = (counts[k] as number) + 1;
    values[k] = values[k] === null ? f[1] : `${values[k]}, ${f[1]}`;
  }
  const single = (k: number): string | null => (counts[k] === 1 ? (values[k] as string | null) : null);
  return {
    ifMatch: values[0] as string | null,
    ifNoneMatch: values[1] as string | null,
    ifModifiedSince: single(2),
    ifUnmodifiedSince: single(3),
    range: (counts[5] as number) > 1 ? null : single(4),
    ifRange: single(5),
  };
}

const DAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const LONG_DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/** The number of `n` digits at `at` in `s`, or -1 when any is no digit. */
function num(s: string, at: number, n: number): number {
  let v = 0;
  for (let i = at; i < at + n; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return -1;
    v = v * 10 + c - 48;
  }
  return v;
}

/** "HH:MM:SS" at `at` as seconds into the day, or -1 (RFC 9110 §5.6.7: second 60 is a leap second). */
function timeOfDay(s: string, at: number): number {
  if (s.charCodeAt(at + 2) !== 58 || s.charCodeAt(at + 5) !== 58) return -1;
  const h = num(s, at, 2);
  const m = num(s, at + 3, 2);
  const sec = num(s, at + 6, 2);
  if (h < 0 || h > 23 || m < 0 || m > 59 || sec < 0 || sec > 60) return -1;
  return h * 3600 + m * 60 + sec;
}

/** Seconds since the epoch of a calendar date and a time of day; NaN for a date that does not exist (31 Feb). */
function epoch(year: number, month: number, day: number, time: number): number {
  if (month < 0 || day < 1 || time < 0) return Number.NaN;
  // setUTCFullYear, not Date.UTC: that one reads the years 0 to 99 as 1900 to 1999.
  const d = new Date(0);
  d.setUTCFullYear(year, month, day);
  if (d.getUTCDate() !== day) return Number.NaN;
  return d.getTime() / 1000 + time;
}

/**
 * An HTTP-date (RFC 9110 §5.6.7) as seconds since the epoch, or NaN when the value is not one:
 * IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"), and the obsolete forms a recipient must also
 * accept, RFC 850 ("Sunday, 06-Nov-94 08:49:37 GMT") and asctime ("Sun Nov  6 08:49:37 1994").
 * Names are case-sensitive, as the grammar's %s strings are. An RFC 850 year is taken as the
 * latest year with its two digits that is not more than 50 years after `now` (seconds).
 */
export function parseHttpDate(s: string, now: number): number {
  const comma = s.indexOf(",");
  if (comma === 3 && s.length === 29) {
    if (!DAYS.includes(s.slice(0, 3)) || s.charCodeAt(4) !== SP || s.charCodeAt(7) !== SP || s.charCodeAt(11) !== SP)
      return Number.NaN;
    if (s.charCodeAt(16) !== SP || s.charCodeAt(25) !== SP || s.slice(26) !== "GMT") return Number.NaN;
    const year = num(s, 12, 4);
    if (year < 0) return Number.NaN;
    return epoch(year, MONTHS.indexOf(s.slice(8, 11)), num(s, 5, 2), timeOfDay(s, 17));
  }
  if (comma > 3) {
    // rfc850-date: day-name-l "," SP day "-" month "-" 2DIGIT SP time-of-day SP "GMT"
    const at = comma + 2;
    if (!LONG_DAYS.includes(s.slice(0, comma)) || s.length !== at + 22 || s.charCodeAt(comma + 1) !== SP) return Number.NaN;
    if (s.charCodeAt(at + 2) !== 45 || s.charCodeAt(at + 6) !== 45 || s.charCodeAt(at + 9) !== SP) return Number.NaN;
    if (s.charCodeAt(at + 18) !== SP || s.slice(at + 19) !== "GMT") return Number.NaN;
    const yy = num(s, at + 7, 2);
    if (yy < 0) return Number.NaN;
    const latest = new Date(now * 1000).getUTCFullYear() + 50;
    const year = latest - (((latest % 100) - yy + 100) % 100);
    return epoch(year, MONTHS.indexOf(s.slice(at + 3, at + 6)), num(s, at, 2), timeOfDay(s, at + 10));
  }
  // asctime-date: day-name SP month SP ( 2DIGIT / ( SP DIGIT ) ) SP time-of-day SP 4DIGIT
  if (comma >= 0 || s.length !== 24 || !DAYS.includes(s.slice(0, 3)) || s.charCodeAt(3) !== SP) return Number.NaN;
  if (s.charCodeAt(7) !== SP || s.charCodeAt(10) !== SP || s.charCodeAt(19) !== SP) return Number.NaN;
  const day = s.charCodeAt(8) === SP ? num(s, 9, 1) : num(s, 8, 2);
  const year = num(s, 20, 4);
  if (year < 0) return Number.NaN;
  return epoch(year, MONTHS.indexOf(s.slice(4, 7)), day, timeOfDay(s, 11));
}

/** An entity-tag (RFC 9110 §8.8.3): whether it is weak, and its opaque-tag with the quotes. */
export interface EntityTag {
  readonly weak: boolean;
  readonly opaque: string;
}

/** etagc: %x21 / %x23-7E / obs-text. */
const isEtagc = (c: number): boolean => c === 0x21 || (c >= 0x23 && c <= 0x7e) || (c >= 0x80 && c <= 0xff);

/** The entity-tag that starts at `at` in `s`, and where it ends; null when there is none. */
function entityTagAt(s: string, at: number): { tag: EntityTag; end: number } | null {
  let i = at;
  const weak = s.charCodeAt(i) === 0x57 && s.charCodeAt(i + 1) === 0x2f; // %s"W/"
  if (weak) i += 2;
  if (s.charCodeAt(i) !== 0x22) return null;
  const open = i++;
  while (i < s.length && isEtagc(s.charCodeAt(i))) i++;
  if (s.charCodeAt(i) !== 0x22) return null;
  return { tag: { weak, opaque: s.slice(open, i + 1) }, end: i + 1 };
}

/** A field value that is exactly one entity-tag (an ETag, an If-Range), or null. */
export function parseEntityTag(s: string): EntityTag | null {
  const found = entityTagAt(s, 0);
  return found !== null && found.end === s.length ? found.tag : null;
}

const isOWS = (c: number): boolean => c === SP || c === HTAB;

/**
 * Whether an If-Match or If-None-Match value (`"*" / #entity-tag`, RFC 9110 §13.1.1, §13.1.2)
 * names `etag`: "*" names any current representation; a tag matches by the strong comparison
 * (both strong, same opaque-tag) or the weak one (same opaque-tag), §8.8.3.2. A value that is
 * not of that grammar names nothing. Empty list elements are allowed (§5.6.1.2).
 */
export function listMatches(value: string, etag: EntityTag | null, weakComparison: boolean): boolean {
  if (value === "*") return true;
  let matched = false;
  let i = 0;
  const n = value.length;
  for (;;) {
    while (i < n && (isOWS(value.charCodeAt(i)) || value.charCodeAt(i) === 0x2c)) i++;
    if (i === n) return matched;
    const found = entityTagAt(value, i);
    if (found === null) return false;
    const t = found.tag;
    if (etag !== null && t.opaque === etag.opaque && (weakComparison || (!t.weak && !etag.weak))) matched = true;
    i = found.end;
    while (i < n && isOWS(value.charCodeAt(i))) i++;
    if (i < n && value.charCodeAt(i) !== 0x2c) return false;
  }
}

/** What the preconditions say: go on (0), 304 Not Modified, or 412 Precondition Failed. */
export type Precondition = 0 | 304 | 412;

/**
 * Judge a request's preconditions against the selected representation's validators (`etag`,
 * null when it has none; `lastModified` in seconds, NaN when it has none), in RFC 9110
 * §13.2.2's order: If-Match (strong comparison; false → 412), else If-Unmodified-Since (modified
 * since → 412); then If-None-Match (weak comparison; a match → 304 for GET and HEAD, 412 for
 * other methods), else, for GET and HEAD, If-Modified-Since (not modified since → 304). A date
 * that is no valid HTTP-date is ignored (§13.1.3, §13.1.4). CONNECT, OPTIONS and TRACE select
 * no representation: their preconditions are ignored (§13.2.1). If-Range is the Range's affair
 * (http/range). `now` (seconds) reads the two-digit years of RFC 850 dates.
 */
export function judgePreconditions(
  c: RequestConditions,
  method: string,
  etag: EntityTag | null,
  lastModified: number,
  now: number,
): Precondition {
  if (method === "CONNECT" || method === "OPTIONS" || method === "TRACE") return 0;
  const safe = method === "GET" || method === "HEAD";
  if (c.ifMatch !== null) {
    if (!listMatches(c.ifMatch, etag, false)) return 412;
  } else if (c.ifUnmodifiedSince !== null && !Number.isNaN(lastModified)) {
    const since = parseHttpDate(c.ifUnmodifiedSince, now);
    if (lastModified > since) return 412;
  }
  if (c.ifNoneMatch !== null) {
    if (listMatches(c.ifNoneMatch, etag, true)) return safe ? 304 : 412;
  } else if (safe && c.ifModifiedSince !== null && !Number.isNaN(lastModified)) {
    const since = parseHttpDate(c.ifModifiedSince, now);
    if (lastModified <= since) return 304;
  }
  return 0;
}
