/**
 * @module test/fuzz/properties — the fuzz properties, shared by `bun test` (short, fixed seed)
 * and `npm run fuzz` (long): (a) split invariance, (b) robustness and the valid-input oracle,
 * (c) the differential against llhttp (in differential.ts).
 */

import { defaultBodyLimits } from "../../src/config/limits.ts";
import { type DriverEvent, type DriverLimits, drive } from "./driver.ts";
import { type Case, type Req, trimOWS } from "./gen.ts";

const show = (c: Case): string => JSON.stringify(String.fromCharCode(...c.bytes));

/**
 * (a) The same events whole, byte by byte, and cut at the case's random points. (b) Nothing
 * throws or stalls: the driver bounds its steps and maps every error code to a status.
 */
export function splitInvariant(c: Case, limits?: DriverLimits): void {
  const whole = JSON.stringify(drive(c.bytes, [], limits));
  const bytewise = JSON.stringify(
    drive(
      c.bytes,
      Array.from({ length: c.bytes.length }, (_, i) => i),
      limits,
    ),
  );
  if (bytewise !== whole) throw new Error(`byte by byte differs for ${show(c)}:\n${bytewise}\nwhole:\n${whole}`);
  const cut = JSON.stringify(drive(c.bytes, c.cuts, limits));
  if (cut !== whole) throw new Error(`cut at ${JSON.stringify(c.cuts)} differs for ${show(c)}:\n${cut}\nwhole:\n${whole}`);
}

/** What a valid, unmutated request sequence must parse to, event by event. */
function expected(reqs: readonly Req[]): unknown[] {
  const out: unknown[] = [];
  for (const r of reqs) {
    out.push({
      method: r.method,
      target: r.target,
      versionMinor: r.version === "1.0" ? 0 : 1,
      fields: r.fields.map(([n, v]) => [n, trimOWS(v)]),
    });
    if (r.method === "CONNECT") return out;
    const b = r.body;
    out.push({
      data: b.kind === "none" ? "" : b.kind === "length" ? b.data : b.chunks.map((ch) => ch.data).join(""),
      trailers: b.kind === "chunked" ? b.trailers.map(([n, v]) => [n, trimOWS(v)]) : [],
    });
    const connection = r.fields.find(([n]) => n === "Connection")?.[1].toLowerCase() ?? "";
    if (connection.includes("close") || (r.version === "1.0" && !connection.includes("keep-alive"))) return out;
  }
  return out;
}

const observed = (events: readonly DriverEvent[]): unknown[] =>
  events.flatMap((e): unknown[] => {
    if (e.kind === "head") return [{ method: e.method, target: e.target, versionMinor: e.versionMinor, fields: e.fields }];
    if (e.kind === "body") return [{ data: e.data, trailers: e.trailers }];
    if (e.kind === "error") return [{ error: e.stage, code: e.code, status: e.status }];
    return e.pending === "none" || e.pending === "tunnel" || e.pending === "closed" ? [] : [{ pending: e.pending }];
  });

/** (b) A valid request sequence is accepted whole, with exactly the fields, body and trailers sent. */
export function validAccepted(c: Case): void {
  const got = JSON.stringify(observed(drive(c.bytes, c.cuts)));
  const want = JSON.stringify(expected(c.reqs));
  if (got !== want) throw new Error(`valid input ${show(c)} parsed as\n${got}\nexpected\n${want}`);
}

/** Limits small enough for generated requests to cross every one of them, at every position. */
export const TIGHT_LIMITS: DriverLimits = {
  head: { maxRequestLine: 48, maxHeaderBytes: 96, maxHeaders: 4 },
  body: { ...defaultBodyLimits(), maxBody: 48, maxChunkExt: 8, maxTrailerBytes: 24, maxTrailers: 1 },
};

/** (a) under {@link TIGHT_LIMITS}: a limit is reported at the same point however the bytes arrive. */
export const splitInvariantTight = (c: Case): void => splitInvariant(c, TIGHT_LIMITS);
