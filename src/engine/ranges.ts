/** @module engine/ranges — a file response answers Range requests (RFC 9110 §14): its validators and Accept-Ranges added, a single range sent as 206, an unsatisfiable one answered 416. */

import { contentRange, fileETag, ifRangeHolds, parseRange, unsatisfiedRange } from "../http/range.ts";
import type { ResponseHeaders } from "../http/response.ts";
import type { ResponseWriter } from "./response.ts";

/** The bytes of a file to send: `start` and `length`. */
export interface Span {
  start: number;
  length: number;
}

const fieldOf = (fields: ReadonlyArray<readonly [string, string]>, lower: string): string | null => {
  for (let i = 0; i < fields.length; i++) {
    const f = fields[i] as readonly [string, string];
    if (f[0].length === lower.length && f[0].toLowerCase() === lower) return f[1];
  }
  return null;
};

/**
 * Decide what of a file of `size` bytes (modified at `mtimeMs`, NaN when unknown) a 200
 * response sends. The response gets `Accept-Ranges: bytes` and, when the file's time is known,
 * a strong `ETag` and `Last-Modified`, each unless the app set it. A GET with one satisfiable
 * `Range` (and an `If-Range` that holds, if any) becomes `206 Partial Content` with its
 * `Content-Range`; one with no byte of the file becomes `416` with `Content-Range: bytes *\/size`
 * and an empty body. Responses that are not a plain 200, or whose Content-Length or
 * Content-Range the app set, are left as they are.
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
  const headers: ResponseHeaders = [...own];
  if (fieldOf(own, "accept-ranges") === null) headers.push(["Accept-Ranges", "bytes"]);
  const known = Number.isFinite(mtimeMs);
  const etag = fieldOf(own, "etag") ?? (known ? fileETag(size, mtimeMs) : null);
  const modified = fieldOf(own, "last-modified") ?? (known ? new Date(mtimeMs).toUTCString() : null);
  if (etag !== null && fieldOf(own, "etag") === null) headers.push(["ETag", etag]);
  if (modified !== null && fieldOf(own, "last-modified") === null) headers.push(["Last-Modified", modified]);
  let status = writer.status as string;
  let span = whole;
  const range = method === "GET" ? fieldOf(request, "range") : null;
  const ifRange = fieldOf(request, "if-range");
  if (range !== null && (ifRange === null || ifRangeHolds(ifRange, etag, modified))) {
    const verdict = parseRange(range, size);
    if (verdict.kind === "part") {
      status = "206 Partial Content";
      headers.push(["Content-Range", contentRange(verdict.start, verdict.end, size)]);
      span = { start: verdict.start, length: verdict.end - verdict.start + 1 };
    } else if (verdict.kind === "unsatisfiable") {
      status = "416 Range Not Satisfiable";
      headers.push(["Content-Range", unsatisfiedRange(size)]);
      span = { start: 0, length: 0 };
    }
  }
  writer.accept(status, headers, false);
  return span;
}
