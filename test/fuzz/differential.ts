/**
 * @module test/fuzz/differential — the same inputs through bunwsgi (the sans-IO driver) and
 * through Node's llhttp (one node process per batch, inputs framed over stdin). Wherever
 * bunwsgi accepts a request, llhttp must accept it with the same method, target, version,
 * field lines, body and trailers, or a listed exception must cover the difference.
 */

import { type BodyEvent, type DriverEvent, drive, type HeadEvent } from "./driver.ts";
import { type Divergence, EXCEPTIONS, type LlhttpMessage, type LlhttpResult } from "./exceptions.ts";

const WORKER = new URL("./llhttp-worker.mjs", import.meta.url).pathname;

/** llhttp's verdict on each input, in order. */
export function runLlhttp(inputs: readonly Uint8Array[]): LlhttpResult[] {
  let size = 0;
  for (const b of inputs) size += 4 + b.length;
  const frames = new Uint8Array(size);
  const view = new DataView(frames.buffer);
  let pos = 0;
  for (const b of inputs) {
    view.setUint32(pos, b.length, true);
    frames.set(b, pos + 4);
    pos += 4 + b.length;
  }
  const r = Bun.spawnSync(["node", WORKER], { stdin: frames, stdout: "pipe", stderr: "pipe", timeout: 600_000 });
  if (r.exitCode !== 0) throw new Error(`llhttp worker exited ${r.exitCode}: ${r.stderr.toString()}`);
  const lines = r.stdout.toString().trimEnd().split("\n");
  if (lines.length !== inputs.length) throw new Error(`llhttp worker gave ${lines.length} results for ${inputs.length} inputs`);
  return lines.map((l) => JSON.parse(l) as LlhttpResult);
}

export type Verdict =
  /** bunwsgi accepted every request it saw and llhttp agreed on each. */
  | { kind: "same" }
  /** bunwsgi rejected a request llhttp accepted (after agreeing on the ones before it). */
  | { kind: "stricter" }
  /** A difference on a request bunwsgi accepted, covered by a listed exception. */
  | { kind: "exception"; id: string }
  | { kind: "mismatch"; index: number; what: string };

const pairs = (fields: ReadonlyArray<readonly [string, string]>): string[] => fields.flat();

function firstDifference(head: HeadEvent, body: BodyEvent | undefined, m: LlhttpMessage | undefined, why: string | null): string {
  if (m === undefined) return `llhttp rejected the head (${why})`;
  if (m.method !== head.method) return `method ${JSON.stringify(m.method)} vs ${JSON.stringify(head.method)}`;
  if (m.url !== head.target) return `target ${JSON.stringify(m.url)} vs ${JSON.stringify(head.target)}`;
  if (m.versionMajor !== 1 || m.versionMinor !== head.versionMinor) return `version ${m.versionMajor}.${m.versionMinor}`;
  const ours = JSON.stringify(pairs(head.fields));
  if (JSON.stringify(m.headers) !== ours) return `fields ${JSON.stringify(m.headers)} vs ${ours}`;
  if (body === undefined) return "";
  if (!m.complete) return `llhttp did not complete the body (${why})`;
  if (m.body !== body.data) return `body ${JSON.stringify(m.body)} vs ${JSON.stringify(body.data)}`;
  const trailers = JSON.stringify(pairs(body.trailers));
  if (JSON.stringify(m.trailers) !== trailers) return `trailers ${JSON.stringify(m.trailers)} vs ${trailers}`;
  return "";
}

/** Compare bunwsgi's events for `input` with llhttp's result, request by request. */
export function compare(input: Uint8Array, ours: readonly DriverEvent[], theirs: LlhttpResult): Verdict {
  let index = 0;
  let previous: HeadEvent | undefined;
  for (let i = 0; i < ours.length; i++) {
    const e = ours[i] as DriverEvent;
    if (e.kind === "error") {
      // A body error (or a 413 from the head) belongs to the request whose head came just before.
      const failed = ours[i - 1]?.kind === "head" ? index - 1 : index;
      return theirs.msgs[failed]?.complete === true ? { kind: "stricter" } : { kind: "same" };
    }
    if (e.kind !== "head") continue;
    const next = ours[i + 1];
    const body = next?.kind === "body" ? next : undefined;
    const what = firstDifference(e, body, theirs.msgs[index], theirs.error);
    if (what !== "") {
      const d: Divergence = { input, index, head: e, body, previous, llhttp: theirs };
      const ex = EXCEPTIONS.find((x) => x.applies(d));
      return ex === undefined ? { kind: "mismatch", index, what } : { kind: "exception", id: ex.id };
    }
    // llhttp hands everything after an upgrade to the caller, also on HTTP/1.0, where bunwsgi
    // ignores Upgrade (RFC 9110 §7.8) and reads on: llhttp has no verdict on those bytes.
    if (e.tunnel || theirs.msgs[index]?.upgrade === true) break;
    previous = e;
    index++;
  }
  return { kind: "same" };
}

export interface Tally {
  inputs: number;
  same: number;
  stricter: number;
  exceptions: Record<string, number>;
  mismatches: Array<{ input: string; index: number; what: string }>;
}

export const newTally = (): Tally => ({ inputs: 0, same: 0, stricter: 0, exceptions: {}, mismatches: [] });

/** Run a batch through both parsers and add the verdicts to `tally`. */
export function differential(inputs: readonly Uint8Array[], tally: Tally): void {
  const theirs = runLlhttp(inputs);
  for (let i = 0; i < inputs.length; i++) {
    const input = inputs[i] as Uint8Array;
    const v = compare(input, drive(input, []), theirs[i] as LlhttpResult);
    tally.inputs++;
    if (v.kind === "same") tally.same++;
    else if (v.kind === "stricter") tally.stricter++;
    else if (v.kind === "exception") tally.exceptions[v.id] = (tally.exceptions[v.id] ?? 0) + 1;
    else tally.mismatches.push({ input: JSON.stringify(String.fromCharCode(...input)), index: v.index, what: v.what });
  }
}
