/** @module engine/ranges — a file response answers conditional and Range requests (RFC 9110 §13, §14): its validators and Accept-Ranges added, its preconditions judged (304, 412), a single range sent as 206, an unsatisfiable one answered 416. */

import { conditionsOf, judgePreconditions, parseEntityTag, parseHttpDate } from "../http/conditional.ts";
import { acceptsBytes, contentRange, fileETag, ifRangeHolds, parseRange, strongAt, unsatisfiedRange } from "../http/range.ts";
import type { ResponseHeaders } from "../http/response.ts";
import { clock } from "../observe/clock.ts";
import type { ResponseWriter } from "./response.ts";

/** The bytes of a file to send: `start` and `length`. */
export interface Span {
  start: number;
  length: number;
}

const NOTHING: Span = { start: 0, length: 0 };

/** A field of the app's response, its lines joined as a list (RFC 9110 §5.3); null when absent. */
const fieldOf = (fields: ReadonlyArray<readonly [string, string]>, lower: string): string | null => {
  let value: string | null = null;
  for (let i = 0; i < fields.length; i++) {
    const f = fields[i] as readonly [string, string];
    if (f[0].length === lower.length && f[0].toLowerCase() === lower) value = value === null ? f[1] : `${value}, ${f[1]}`;
  }
  return value;
};

/**
 * Representation metadata a 304 leaves out (RFC 9110 §15.4.5: it describes a body that is not
 * sent; nginx drops the same): the app's other fields stay, Cache-Control, Vary, Expires and
 * Content-Location among them, which a 304 must repeat.
 */
const NOT_IN_304 = new Set(["content-type", "content-encoding", "content-language", "content-length"]);

/**
 * Decide what of a file of `size` bytes (modified at `mtimeMs`, NaN when the body is no whole
 * file whose time is known) a 200 response sends. The response gets `Accept-Ranges: bytes` and,
 * when the time is known, an `ETag` and `Last-Modified`, each unless the app set it; the ETag is
 * weak while the file is not a second older than the response's Date, and Last-Modified is
 * never later than that Date (§8.8.2.1). Its validators, the app's or these, answer the
 * request's preconditions (§13.2.2): 304 with the validators and no body, or 412 with an empty
 * one; a response without validators (a Blob in memory) is not judged. Then a GET with one
 * satisfiable `Range` (and an `If-Range` that holds, if any) becomes `206 Partial Content` with
 * its `Content-Range`; one with no byte of the file becomes `416` with
 * `Content-Range: bytes *\/size` and an empty body; an app's `Accept-Ranges` that does not name
 * `bytes` (`none`) has Range ignored (§14.3). Responses that are not a plain 200, or whose
 * Content-Length or Content-Range the app set, are left as they are.
 */
export function fileSpan(
  writer: ResponseWriter,
  request: ReadonlyArray<readonly [string, string]>,
  method: string,
  size: number,
  mtimeMs: number,
): Span {
  const whole = { start: 0, length: size };
  const own = writer.headers;
  if (writer.code !== 200 || own === null || writer.declared >= 0 || fieldOf(own, "content-range") !== null) return whole;
  // The Date this response carries: the app's own, or the server's (engine/response adds it).
  const ownDate = fieldOf(own, "date");
  const clockDate = clock.dateSecond();
  const parsedDate = ownDate === null ? Number.NaN : parseHttpDate(ownDate, clockDate);
  const date = Number.isNaN(parsedDate) ? clockDate : parsedDate;
  const ownTag = fieldOf(own, "etag");
  const ownModified = fieldOf(own, "last-modified");
  const known = !Number.isNaN(mtimeMs);
  const fileModified = known ? Math.min(Math.floor(mtimeMs / 1000), date) : Number.NaN;
  const etag = ownTag ?? (known ? fileETag(size, mtimeMs, strongAt(fileModified, date)) : null);
  const modified = ownModified ?? (known ? new Date(fileModified * 1000).toUTCString() : null);
  const tag = etag === null ? null : parseEntityTag(etag);
  const lastModified = ownModified === null ? fileModified : parseHttpDate(ownModified, date);
  const conditions = conditionsOf(request);
  // Without a validator there is nothing the client can have seen to condition on: a Blob in
  // memory answers as the app made it.
  const validated = etag !== null || modified !== null;
  const verdict = validated ? judgePreconditions(conditions, method, tag, lastModified, date) : 0;
  const headers: ResponseHeaders = [];
  for (const f of own) if (verdict !== 304 || !NOT_IN_304.has(f[0].toLowerCase())) headers.push(f);
  const acceptRanges = fieldOf(own, "accept-ranges");
  if (acceptRanges === null && verdict !== 304) headers.push(["Accept-Ranges", "bytes"]);
  if (etag !== null && ownTag === null) headers.push(["ETag", etag]);
  if (modified !== null && ownModified === null) headers.push(["Last-Modified", modified]);
  if (verdict !== 0) {
    writer.accept(verdict === 304 ? "304 Not Modified" : "412 Precondition Failed", headers, false);
    return NOTHING;
  }
  let status = writer.status as string;
  let span = whole;
  const range = method === "GET" && acceptsBytes(acceptRanges) ? conditions.range : null;
  const ifRange = conditions.ifRange;
  if (range !== null && (ifRange === null || ifRangeHolds(ifRange, tag, modified, date))) {
    const part = parseRange(range, size);
    if (part.kind === "part") {
      status = "206 Partial Content";
      headers.push(["Content-Range", contentRange(part.start, part.end, size)]);
      span = { start: part.start, length: part.end - part.start + 1 };
    } else if (part.kind === "unsatisfiable") {
      status = "416 Range Not Satisfiable";
      headers.push(["Content-Range", unsatisfiedRange(size)]);
      span = NOTHING;
    }
  }
  writer.accept(status, headers, false);
  return span;
}
