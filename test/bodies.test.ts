/**
 * @module test/bodies — request bodies of 0 B to 16 MiB echoed byte for byte through every way an app reads them
 * (wsgi.input's read(), read(n), readSome(n), readline(), readline(size), readlines(), async iteration; a fetch app's
 * arrayBuffer(), bytes() and body stream), framed by Content-Length and chunked, each request sent over a real
 * socket in pieces split at random points. The splits come from a seeded PRNG: the seed is in every test's name,
 * and BODIES_SEED=N replays a run.
 */

import { afterAll, describe, expect, test } from "bun:test";
import type { Socket } from "bun";
import type { Application, FetchApplication, Input } from "../src/index.ts";
import { serve, serveFetch } from "./helpers.ts";

const KiB = 1024;
const MiB = 1024 * KiB;
/**
 * Around the sizes the engine turns on: a 16 KiB head buffer, 64 KiB socket reads, the 256 KiB unread-input
 * high-water mark (reading pauses past it), the fetch body stream's 256 KiB chunks; then 1 MiB and 16 MiB.
 */
const SIZES = [0, 1, 16 * KiB - 1, 16 * KiB + 1, 64 * KiB - 1, 64 * KiB, 64 * KiB + 1, 256 * KiB + 1, MiB, 16 * MiB];

/** mulberry32: a small seeded PRNG, so a failing split can be replayed from its seed. */
function prng(seed: number): (n: number) => number {
  let a = seed >>> 0;
  return (n) => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * n);
  };
}

const BASE_SEED = process.env.BODIES_SEED !== undefined ? Number(process.env.BODIES_SEED) : Math.floor(Math.random() * 2 ** 31);

/** Random bytes (one LF in 256 on average, so lines are short and long alike), the same for a seed. */
function bodyOf(size: number, seed: number): Uint8Array {
  const out = new Uint8Array(size);
  const words = new Uint32Array(out.buffer, 0, size >>> 2);
  let x = seed | 1;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    words[i] = x >>> 0;
  }
  for (let i = words.length * 4; i < size; i++) out[i] = (i * 31) & 0xff;
  return out;
}

/** The request: head and body framed by Content-Length, or chunked in chunks of random sizes. */
function framed(path: string, body: Uint8Array, chunked: boolean, rand: (n: number) => number): Uint8Array {
  const enc = new TextEncoder();
  if (!chunked) {
    return Buffer.concat([enc.encode(`POST ${path} HTTP/1.1\r\nHost: t\r\nContent-Length: ${body.length}\r\n\r\n`), body]);
  }
  const parts: Uint8Array[] = [enc.encode(`POST ${path} HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n`)];
  for (let at = 0; at < body.length; ) {
    const n = Math.min(body.length - at, 1 + rand(rand(2) === 0 ? 300 : 300 * KiB));
    parts.push(enc.encode(`${n.toString(16)}\r\n`), body.subarray(at, at + n), enc.encode("\r\n"));
    at += n;
  }
  parts.push(enc.encode("0\r\n\r\n"));
  return Buffer.concat(parts);
}

/** Up to 8 random cut points, sorted: the request goes out in that many + 1 writes, with a pause between. */
function cuts(length: number, rand: (n: number) => number): number[] {
  const points = new Set<number>();
  const count = rand(9);
  for (let i = 0; i < count && length > 1; i++) points.add(1 + rand(length - 1));
  return [...points].sort((a, b) => a - b);
}

/** One request on a fresh connection, sent in pieces; the response's status and body (Content-Length framed). */
async function post(port: number, request: Uint8Array, splits: number[]): Promise<{ status: number; body: Uint8Array }> {
  const received: Uint8Array[] = [];
  let have = 0;
  let closed = false;
  let wake: (() => void) | null = null;
  const poke = (): void => {
    const w = wake;
    wake = null;
    w?.();
  };
  const socket: Socket<undefined> = await Bun.connect({
    hostname: "127.0.0.1",
    port,
    socket: {
      data(_s, d) {
        received.push(new Uint8Array(d));
        have += d.length;
        poke();
      },
      drain: poke,
      close() {
        closed = true;
        poke();
      },
      error() {
        closed = true;
        poke();
      },
    },
  });
  const deadline = Date.now() + 20_000;
  /** The next event (data, drain, close) or 50 ms, whichever comes first. */
  const event = (what: string): Promise<void> => {
    if (closed) throw new Error(`connection closed while waiting for ${what} (${have} bytes received)`);
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} (${have} bytes received)`);
    return new Promise<void>((resolve) => {
      wake = resolve;
      setTimeout(resolve, 50);
    });
  };
  const until = async (cond: () => boolean, what: string): Promise<void> => {
    while (!cond()) await event(what);
  };
  try {
    let from = 0;
    for (const to of [...splits, request.length]) {
      let off = from;
      while (off < to) {
        const n = socket.write(request.subarray(off, to));
        if (n < 0) throw new Error("write failed");
        off += n;
        if (off < to) await event("the socket to drain");
      }
      from = to;
      // A pause, so the server reads each piece on its own.
      await Bun.sleep(1);
    }
    const all = (): Buffer => Buffer.concat(received);
    await until(() => all().includes("\r\n\r\n"), "the response head");
    const buf = all();
    const headEnd = buf.indexOf("\r\n\r\n");
    const head = buf.subarray(0, headEnd).toString("latin1");
    const length = Number(/\r\ncontent-length: (\d+)/i.exec(head)?.[1] ?? Number.NaN);
    if (Number.isNaN(length)) throw new Error(`no Content-Length in ${JSON.stringify(head)}`);
    await until(() => have >= headEnd + 4 + length, `a ${length}-byte body`);
    return { status: Number(head.split(" ")[1]), body: all().subarray(headEnd + 4, headEnd + 4 + length) };
  } finally {
    socket.terminate();
  }
}

/** Reads until the empty piece that marks the end, which every style must give once the body is over. */
const untilEmpty = async (next: () => Promise<Uint8Array>): Promise<Uint8Array[]> => {
  const parts: Uint8Array[] = [];
  for (let p = await next(); p.length > 0; p = await next()) parts.push(p);
  return parts;
};

/** A size for read(n)-like calls: small or large, never so small that 16 MiB takes more than ~20,000 calls. */
const sizeFor = (rand: (n: number) => number, body: number): number =>
  Math.max(Math.ceil(body / 20_000), 1 + rand(rand(2) === 0 ? 100 : 300 * KiB));

const LF = 10;
/** Every piece of a line read holds at most one LF, as its last byte; `max` bounds a piece when given. */
const checkLines = (parts: Uint8Array[], max = Number.POSITIVE_INFINITY): string | null => {
  for (const [i, p] of parts.entries()) {
    const lf = p.indexOf(LF);
    if (lf >= 0 && lf !== p.length - 1) return `piece ${i} has an LF at ${lf} of ${p.length}`;
    if (p.length > max) return `piece ${i} is ${p.length} bytes, over ${max}`;
    if (lf < 0 && p.length < max && i !== parts.length - 1)
      return `piece ${i} (${p.length} bytes) ends without LF and is not the last`;
  }
  return null;
};

/** Each wsgi.input read style: the pieces it read, and what is wrong with their shapes (null: nothing). */
const WSGI_STYLES: Record<
  string,
  (input: Input, body: number, rand: (n: number) => number) => Promise<[Uint8Array[], string | null]>
> = {
  "read()": async (input) => {
    const all = await input.read();
    const after = await input.read();
    return [[all], after.length === 0 ? null : `a read after read() got ${after.length} bytes`];
  },
  "read(n)": async (input, body, rand) => {
    const n = sizeFor(rand, body);
    const parts = await untilEmpty(() => input.read(n));
    const short = parts.findIndex((p, i) => p.length !== n && i !== parts.length - 1);
    return [parts, short >= 0 ? `read(${n}) number ${short} gave ${parts[short]?.length} bytes before the end` : null];
  },
  "readSome(n)": async (input, body, rand) => {
    const n = sizeFor(rand, body);
    const parts = await untilEmpty(() => input.readSome(n));
    const over = parts.findIndex((p) => p.length > n);
    return [parts, over >= 0 ? `readSome(${n}) gave ${parts[over]?.length} bytes` : null];
  },
  "readline()": async (input) => {
    const parts = await untilEmpty(() => input.readline());
    return [parts, checkLines(parts)];
  },
  "readline(size)": async (input, body, rand) => {
    const n = sizeFor(rand, body);
    const parts = await untilEmpty(() => input.readline(n));
    return [parts, checkLines(parts, n)];
  },
  "readlines()": async (input) => {
    const parts = await input.readlines();
    return [parts, checkLines(parts)];
  },
  "for await": async (input) => {
    const parts: Uint8Array[] = [];
    for await (const line of input) parts.push(line);
    return [parts, checkLines(parts)];
  },
};

const FETCH_STYLES: Record<string, (request: Request) => Promise<Uint8Array[]>> = {
  "request.arrayBuffer()": async (request) => [new Uint8Array(await request.arrayBuffer())],
  "request.bytes()": async (request) => [await request.bytes()],
  "request.body reader": async (request) => {
    const parts: Uint8Array[] = [];
    // No body at all (Content-Length: 0) is a null body, as on Bun.serve.
    if (request.body === null) return parts;
    const reader = request.body.getReader();
    for (let r = await reader.read(); !r.done; r = await reader.read()) parts.push(r.value);
    return parts;
  },
};

/** Per request (by path): the seed of its read sizes, and what the app found wrong with its pieces. */
const seeds = new Map<string, number>();
const violations = new Map<string, string>();

const wsgiApp: Application = async (env, startResponse) => {
  const path = env.PATH_INFO;
  const style = WSGI_STYLES[decodeURIComponent(path.split("/")[1] as string)];
  if (style === undefined) throw new Error(`no style in ${path}`);
  const [parts, wrong] = await style(env["wsgi.input"], Number(env.CONTENT_LENGTH || 0), prng(seeds.get(path) ?? 0));
  if (wrong !== null) violations.set(path, wrong);
  startResponse("200 OK", [["Content-Length", String(parts.reduce((a, p) => a + p.length, 0))]]);
  return parts;
};

const fetchApp: FetchApplication = async (request) => {
  const path = new URL(request.url).pathname;
  const style = FETCH_STYLES[decodeURIComponent(path.split("/")[1] as string)];
  if (style === undefined) throw new Error(`no style in ${path}`);
  const parts = await style(request);
  return new Response(new Blob(parts), { headers: { "Content-Length": String(parts.reduce((a, p) => a + p.length, 0)) } });
};

const wsgi = serve(wsgiApp);
const fetchServer = serveFetch(fetchApp);
afterAll(() => {
  wsgi.server.close();
  fetchServer.server.close();
});

let serial = 0;
/** Send `size` bytes to `style` over `framing`, split at random, and check the echo byte for byte. */
async function echo(port: number, style: string, size: number, chunked: boolean, seed: number): Promise<void> {
  const rand = prng(seed);
  const path = `/${encodeURIComponent(style)}/${serial++}`;
  seeds.set(path, seed);
  const body = bodyOf(size, seed);
  const request = framed(path, body, chunked, rand);
  const res = await post(port, request, cuts(request.length, rand));
  expect(violations.get(path) ?? null).toBeNull();
  expect(res.status).toBe(200);
  expect(res.body.length).toBe(size);
  // Buffer#equals, not toEqual: a 16 MiB diff would be printed byte by byte.
  expect(Buffer.from(res.body).equals(body)).toBe(true);
}

const sizeName = (n: number): string =>
  n >= MiB ? `${n / MiB} MiB` : n >= KiB ? `${(n / KiB).toFixed(3).replace(/\.?0+$/, "")} KiB` : `${n} B`;

describe.each([
  ["WSGI", Object.keys(WSGI_STYLES), () => wsgi.port],
  ["fetch", Object.keys(FETCH_STYLES), () => fetchServer.port],
] as const)("%s app: bodies echoed byte for byte", (_kind, styles, port) => {
  for (const style of styles) {
    for (const chunked of [false, true]) {
      const seed = (BASE_SEED + styles.indexOf(style) * 104729 + (chunked ? 7919 : 0)) >>> 0;
      test(`${style}, ${chunked ? "chunked" : "Content-Length"}: ${SIZES.map(sizeName).join(", ")} (seed ${seed})`, async () => {
        for (const [i, size] of SIZES.entries()) await echo(port(), style, size, chunked, (seed + i) >>> 0);
      }, 30_000);
    }
  }
});
