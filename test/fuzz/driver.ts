/**
 * @module test/fuzz/driver — a sans-IO stand-in for the connection: request heads through
 * RequestParser, bodies through BodyDecoder by their framing, pipelined requests one after
 * another, over input that arrives in pieces. Its events depend on the bytes alone, never on
 * where the pieces were cut.
 */

import { defaultBodyLimits, defaultHeadLimits } from "../../src/config/limits.ts";
import { BodyDecoder, type BodyLimits } from "../../src/http/body.ts";
import { BODY_ERRORS, PARSE_ERRORS } from "../../src/http/codes.ts";
import { FIELD_SLOTS } from "../../src/http/fields.ts";
import { type HeadLimits, RequestParser } from "../../src/http/parser.ts";

export interface HeadEvent {
  kind: "head";
  method: string;
  target: string;
  versionMinor: number;
  fields: Array<[string, string]>;
  contentLength: number;
  chunked: boolean;
  /** A tunnel follows (CONNECT, or an HTTP/1.1 Upgrade): the driver stops reading, as llhttp does. */
  tunnel: boolean;
  /** The client closes after this request (RFC 9112 §9.3): what follows its body is not read, as in llhttp. */
  closes: boolean;
  /** Offsets of the head in the whole input. */
  start: number;
  end: number;
}

export interface BodyEvent {
  kind: "body";
  data: string;
  trailers: Array<[string, string]>;
  /** Offsets of the body's framed bytes in the whole input. */
  start: number;
  end: number;
}

export interface ErrorEvent {
  kind: "error";
  stage: "head" | "body";
  code: number;
  status: number;
}

export interface EndEvent {
  kind: "end";
  /** What the input stopped in the middle of, if anything; `partial` is a partial body's data. */
  pending: "none" | "head" | "body" | "tunnel" | "closed" | "error";
  partial: string;
}

export type DriverEvent = HeadEvent | BodyEvent | ErrorEvent | EndEvent;

export interface DriverLimits {
  head: HeadLimits;
  body: BodyLimits;
}

export const DRIVER_LIMITS: DriverLimits = { head: defaultHeadLimits(), body: defaultBodyLimits() };

const latin1 = (b: Uint8Array, s: number, e: number): string => {
  let out = "";
  for (let i = s; i < e; i++) out += String.fromCharCode(b[i] as number);
  return out;
};

const Stage = { HEAD: 0, BODY: 1, TUNNEL: 2, DEAD: 3, CLOSED: 4 } as const;

/**
 * Feed `input` cut at `cuts` (positions strictly inside it, any order, duplicates ignored) and
 * return what happened. Bytes not yet arrived read as CR and LF, so a parser that looks past
 * the end of what it was given sees line ends that are not there. Throws only when the
 * parser or decoder stalls (no progress on available bytes) or runs past a step bound.
 */
export function drive(input: Uint8Array, cuts: readonly number[], limits: DriverLimits = DRIVER_LIMITS): DriverEvent[] {
  const buf = new Uint8Array(input.length + 8).map((_, i) => (i % 2 === 0 ? 13 : 10));
  const ends = [...new Set(cuts.filter((c) => c > 0 && c < input.length))].sort((a, b) => a - b);
  ends.push(input.length);
  const parser = new RequestParser(limits.head);
  const body = new BodyDecoder(limits.body);
  const events: DriverEvent[] = [];
  let stage: number = Stage.HEAD;
  let have = 0;
  let pos = 0;
  let bodyStart = 0;
  let data = "";
  let closes = false;
  let steps = 0;
  const maxSteps = 4 * (input.length + ends.length) + 16;
  for (const end of ends) {
    buf.set(input.subarray(have, end), have);
    have = end;
    while (pos < have && (stage === Stage.HEAD || stage === Stage.BODY)) {
      if (++steps > maxSteps) throw new Error(`driver: more than ${maxSteps} steps`);
      if (stage === Stage.HEAD) {
        const n = parser.execute(buf, pos, have);
        if (n === 0) break;
        if (n < 0) {
          events.push(error("head", -n));
          stage = Stage.DEAD;
          break;
        }
        const head = headEvent(parser, buf, pos, pos + n);
        events.push(head);
        pos += n;
        closes = head.closes;
        if (head.tunnel) {
          stage = Stage.TUNNEL;
        } else if (head.chunked) {
          body.startChunked();
        } else if (head.contentLength > limits.body.maxBody) {
          // The connection answers this 413 from the head alone.
          events.push({ kind: "error", stage: "head", code: 0, status: 413 });
          stage = Stage.DEAD;
          break;
        } else {
          body.startLength(Math.max(0, head.contentLength));
        }
        if (stage === Stage.HEAD) {
          stage = Stage.BODY;
          bodyStart = pos;
          data = "";
        }
      }
      if (stage === Stage.BODY) {
        if (!body.done) {
          if (pos === have) break;
          const n = body.execute(buf, pos, have);
          if (n < 0) {
            events.push(error("body", -n));
            stage = Stage.DEAD;
            break;
          }
          if (n === 0) throw new Error(`driver: body decoder made no progress at ${pos} of ${have}`);
          data += latin1(buf, body.dataStart, body.dataEnd);
          pos += n;
        }
        if (body.done) {
          events.push({ kind: "body", data, trailers: body.chunked ? body.trailers : [], start: bodyStart, end: pos });
          stage = closes ? Stage.CLOSED : Stage.HEAD;
        }
      }
    }
  }
  const pending =
    stage === Stage.DEAD
      ? "error"
      : stage === Stage.TUNNEL
        ? "tunnel"
        : stage === Stage.CLOSED
          ? "closed"
          : stage === Stage.BODY
            ? "body"
            : pos < input.length
              ? "head"
              : "none";
  events.push({ kind: "end", pending, partial: stage === Stage.BODY ? data : "" });
  return events;
}

function error(stage: "head" | "body", code: number): ErrorEvent {
  const entry = (stage === "head" ? PARSE_ERRORS : BODY_ERRORS)[code];
  if (entry === undefined) throw new Error(`driver: ${stage} error code ${code} has no status`);
  return { kind: "error", stage, code, status: entry[0] };
}

function headEvent(p: RequestParser, buf: Uint8Array, start: number, end: number): HeadEvent {
  const fields: Array<[string, string]> = [];
  const f = p.fields;
  for (let i = 0; i < p.fieldCount; i++) {
    const k = i * FIELD_SLOTS;
    fields.push([
      latin1(buf, start + (f[k] as number), start + (f[k + 1] as number)),
      latin1(buf, start + (f[k + 2] as number), start + (f[k + 3] as number)),
    ]);
  }
  return {
    kind: "head",
    method: p.method,
    target: latin1(buf, start + p.targetStart, start + p.targetEnd),
    versionMinor: p.versionMinor,
    fields,
    contentLength: p.contentLength,
    chunked: p.chunked,
    tunnel: p.method === "CONNECT" || (p.versionMinor >= 1 && (p.connectionUpgrade || p.hasUpgrade)),
    closes: p.connectionClose || (p.versionMinor === 0 && !p.connectionKeepAlive),
    start,
    end,
  };
}
