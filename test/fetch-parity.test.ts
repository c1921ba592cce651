/**
 * @module test/fetch-parity — the same fetch handler under Bun.serve and under bunwsgi's
 * FetchServer, compared on the wire: exact request bytes in over a raw socket, and of each
 * response the status, the header fields (names lower-cased, Date left out), the framing
 * (Content-Length, chunked, none) and the body bytes, for GET and HEAD; and what an app reads of
 * a request's body. A response is read by its own framing and followed by a pipelined sentinel
 * request, whose response must come next: a body framed wrongly fails there.
 *
 * Framing rules: bunwsgi is sized wherever Bun.serve is (it may size what Bun.serve chunks, the
 * body being equal). A HEAD response gets the fields GET gets (RFC 9110 §9.3.2; Bun.serve leaves
 * out the Content-Type it implies for a body), and a Content-Length only when it is GET's; it is
 * sized wherever Bun.serve sizes it truthfully. Where bunwsgi differs on purpose, the case says
 * what bunwsgi sends instead and why (`ours`, `why`).
 */

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Server } from "bun";
import { Hono } from "hono";
import { cors } from "hono/cors";
import { etag } from "hono/etag";
import type { FetchServer } from "../src/index.ts";
import { type Running, serveFetch } from "./helpers.ts";

const dir = mkdtempSync(join(tmpdir(), "bunwsgi-parity-"));
const textFile = join(dir, "a.txt");
const rawFile = join(dir, "raw");
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const once = (...chunks: string[]): ReadableStream<Uint8Array> =>
  new ReadableStream({
    start(c) {
      for (const s of chunks) c.enqueue(enc(s));
      c.close();
    },
  });
/** A stream whose chunks come one per timer tick: nothing is at hand when the head is decided. */
const later = (...chunks: string[]): ReadableStream<Uint8Array> => {
  let i = 0;
  return new ReadableStream({
    async pull(c) {
      await Bun.sleep(1);
      if (i < chunks.length) c.enqueue(enc(chunks[i++] as string));
      else c.close();
    },
  });
};
const form = (): FormData => {
  const f = new FormData();
  f.append("a", "1");
  f.append("b", "two words");
  return f;
};

const hono = new Hono();
hono.use("*", cors(), etag());
hono.get("/hono/text", (c) => c.text("Hello from Hono"));
hono.get("/hono/json", (c) => c.json({ hono: true, n: [1, 2, 3] }));
hono.get("/hono/static-json", () => Response.json({ made: "by Response.json" }));
hono.get("/hono/bytes", (c) => c.body(enc("raw bytes") as Uint8Array<ArrayBuffer>));
hono.get("/hono/stream", () => new Response(later("a", "b")));

/** Why a HEAD answer to a Response without a body carries no Content-Length. */
const NULL_HEAD =
  "a HEAD answer without a body says nothing of GET's length (RFC 9110 §9.3.2): Bun.serve says Content-Length: 0, which is false for Hono's HEAD, the GET route's Response with its body dropped";
const FILE_RANGES = "bunwsgi answers Range for a Blob or file body, and says so (RFC 9110 §14.3)";

interface Case {
  /** The behaviour, as the test is named. */
  name: string;
  make: () => Response | Promise<Response>;
  /** Fields bunwsgi sends differently from Bun.serve (null: leaves out), on GET and HEAD. */
  ours?: Record<string, string | null | RegExp>;
  /** Why bunwsgi differs, for a case with `ours` or `headUnsized`. */
  why?: string;
  /** HEAD gets no Content-Length though Bun.serve sends one: why. */
  headUnsized?: string;
}

const CASES: Case[] = [
  { name: "a string body is sized and typed text/plain;charset=utf-8", make: () => new Response("Hello, World!") },
  { name: "an empty string body is sized 0 and has no Content-Type", make: () => new Response("") },
  { name: "a null body is sized 0 and has no Content-Type", make: () => new Response(null), headUnsized: NULL_HEAD },
  { name: "a Uint8Array body is sized and typed application/octet-stream", make: () => new Response(enc("bytes!")) },
  { name: "an empty Uint8Array body has no Content-Type", make: () => new Response(new Uint8Array(0)) },
  { name: "an ArrayBuffer body is sized and typed application/octet-stream", make: () => new Response(enc("buffer").buffer) },
  { name: "a DataView body is sized", make: () => new Response(new DataView(enc("view").buffer)) },
  { name: "a custom Content-Type is kept", make: () => new Response("x", { headers: { "Content-Type": "text/custom" } }) },
  {
    name: "a string body under a stale, shorter Content-Length is sent whole, sized by its true length",
    make: () => new Response("0123456789", { headers: { "Content-Length": "5" } }),
  },
  {
    name: "a bytes body under a stale, longer Content-Length is sent whole, sized by its true length",
    make: () => new Response(enc("0123456789"), { headers: { "Content-Length": "50" } }),
  },
  {
    name: "a Blob body under a stale Content-Length is sent whole, sized by its true length",
    make: () => new Response(new Blob(["0123456789"], { type: "text/x-a" }), { headers: { "Content-Length": "5" } }),
    ours: { "accept-ranges": "bytes" },
    why: FILE_RANGES,
  },
  {
    name: "a typed Blob body is sized under its type",
    make: () => new Response(new Blob(["abc"], { type: "text/x-a" })),
    ours: { "accept-ranges": "bytes" },
    why: FILE_RANGES,
  },
  {
    name: "an untyped Blob of bytes is application/octet-stream",
    make: () => new Response(new Blob([enc("abc")])),
    ours: { "accept-ranges": "bytes" },
    why: FILE_RANGES,
  },
  {
    name: "an untyped Blob of strings is application/octet-stream (Bun.serve: text/plain)",
    make: () => new Response(new Blob(["abc"])),
    ours: { "accept-ranges": "bytes", "content-type": "application/octet-stream" },
    why: `JavaScript cannot see that a Blob was made from ASCII strings, which Bun.serve types text/plain; an untyped Blob is bytes of unknown type (RFC 9110 §8.3); ${FILE_RANGES}`,
  },
  {
    name: "an untyped Blob starting as a GIF is image/gif (Bun's sniff)",
    make: () => new Response(new Blob([enc("GIF89a...")])),
    ours: { "accept-ranges": "bytes" },
    why: FILE_RANGES,
  },
  {
    name: "a Blob from another Response's blob() is sized under that Response's type",
    make: async () => new Response(await new Response("from blob()").blob()),
    ours: { "accept-ranges": "bytes" },
    why: FILE_RANGES,
  },
  {
    name: "a Blob from Response.json()'s blob() is sized under the JSON type",
    make: async () => new Response(await Response.json({ j: 1 }).blob()),
    ours: { "accept-ranges": "bytes" },
    why: FILE_RANGES,
  },
  {
    name: "an empty untyped Blob has no Content-Type",
    make: () => new Response(new Blob([])),
    ours: { "accept-ranges": "bytes" },
    why: FILE_RANGES,
  },
  {
    name: "a Bun.file body is sized under the file's type",
    make: () => new Response(Bun.file(textFile)),
    ours: { "accept-ranges": "bytes", etag: /"$/, "last-modified": /GMT$/ },
    why: `${FILE_RANGES}, with the file's validators`,
  },
  {
    name: "a Bun.file without an extension is application/octet-stream without Content-Disposition",
    make: () => new Response(Bun.file(rawFile)),
    ours: { "accept-ranges": "bytes", etag: /"$/, "last-modified": /GMT$/, "content-disposition": null },
    why: `Bun.serve's Content-Disposition: filename="raw" has no disposition type, which RFC 6266 §4.1 requires; ${FILE_RANGES}, with the file's validators`,
  },
  { name: "Response.json() is sized under its own Content-Type", make: () => Response.json({ a: 1, b: ["x"] }) },
  {
    name: "Response.json() with init keeps its status and fields",
    make: () => Response.json("x", { status: 201, headers: { "x-b": "2" } }),
  },
  {
    name: "Response.redirect() is sized 0",
    make: () => Response.redirect("http://127.0.0.1/elsewhere", 302),
    headUnsized: NULL_HEAD,
  },
  {
    name: "clone() of a string Response is sized and typed as the original",
    make: () => new Response("hello").clone() as Response,
  },
  { name: "clone() of a bytes Response is sized", make: () => new Response(enc("abc")).clone() as Response },
  { name: "clone() of Response.json() is sized", make: () => Response.json({ c: 1 }).clone() as Response },
  {
    name: "clone() of a FormData Response is sized under its multipart type",
    make: () => new Response(form()).clone() as Response,
  },
  {
    name: "clone() of a Response made around another's body is sized",
    make: () => {
      const r = new Response("inner", { headers: { "x-c": "1" } });
      return new Response(r.body, r).clone() as Response;
    },
  },
  {
    name: "clone() of a stream Response is sized when the stream is at hand",
    make: () => new Response(once("x")).clone() as Response,
  },
  {
    name: "the original of a clone() is sized too",
    make: () => {
      const r = new Response("original");
      r.clone();
      return r;
    },
  },
  {
    name: "new Response(r.body, r) of a string is sized, typed application/octet-stream",
    make: () => {
      const r = new Response("hello", { headers: { "x-a": "1" } });
      return new Response(r.body, r);
    },
  },
  {
    name: "new Response(r.body, r) twice over is sized",
    make: () => {
      const r = new Response("hello", { headers: { "content-type": "text/plain" } });
      const s = new Response(r.body, r);
      return new Response(s.body, s);
    },
  },
  {
    name: "new Response(r.body, r) of Response.json() is sized under its Content-Type",
    make: () => {
      const r = Response.json({ k: "v" });
      return new Response(r.body, r);
    },
  },
  { name: "new Response(other.body) of a string is sized", make: () => new Response(new Response("hello").body) },
  { name: "new Response(other.body) of an empty string is sized 0", make: () => new Response(new Response("").body) },
  { name: "new Response(other.body) of Response.json() is sized", make: () => new Response(Response.json({ a: 1 }).body) },
  {
    name: "new Response(other.body) of a typed Blob keeps the Blob's type",
    make: () => new Response(new Response(new Blob(["abc"], { type: "a/b" })).body),
    ours: { "accept-ranges": "bytes" },
    why: FILE_RANGES,
  },
  {
    name: "new Response(other.body) of a FormData is sized under its multipart type",
    make: () => new Response(new Response(form()).body),
  },
  {
    name: "new Response(other.body) of a URLSearchParams is sized under its type",
    make: () => new Response(new Response(new URLSearchParams({ q: "a b" })).body),
  },
  {
    name: "new Response(other.body) of a stream is sized when the stream is at hand",
    make: () => new Response(new Response(once("x", "y")).body),
  },
  { name: "a ReadableStream with one chunk at hand is sized", make: () => new Response(once("one")) },
  { name: "a ReadableStream with many chunks at hand is sized", make: () => new Response(once("one", "two", "three")) },
  { name: "an empty ReadableStream is sized 0", make: () => new Response(once()) },
  {
    name: "a ReadableStream with one chunk at hand larger than what is gathered is sized",
    make: () => new Response(once("z".repeat(5 * 1024 * 1024))),
  },
  {
    name: "a ReadableStream that makes us wait is chunked",
    make: () => new Response(later("a", "bb", "ccc")),
  },
  { name: "a FormData body is sized under its multipart type", make: () => new Response(form()) },
  {
    name: "a URLSearchParams body is sized under its type",
    make: () => new Response(new URLSearchParams({ a: "1", b: "x y" })),
  },
  { name: "204 has no body, no framing and no Content-Type", make: () => new Response(null, { status: 204 }) },
  { name: "204 with a body sends none of it, nor a Content-Type", make: () => new Response("x", { status: 204 }) },
  {
    name: "204 with bytes sends none of them, nor a Content-Type",
    make: () => new Response(enc("x"), { status: 204 }),
  },
  {
    name: "204 keeps the app's own Content-Type",
    make: () => new Response("x", { status: 204, headers: { "content-type": "text/x" } }),
  },
  { name: "304 has no body, no framing and no Content-Type", make: () => new Response(null, { status: 304 }) },
  { name: "304 with a body sends none of it, nor a Content-Type", make: () => new Response("x", { status: 304 }) },
  { name: "304 with a stream sends none of it", make: () => new Response(once("x"), { status: 304 }) },
  { name: "205 is sized 0 with no Content-Type", make: () => new Response(null, { status: 205 }) },
  { name: "205 with a body sends none of it, sized 0, no Content-Type", make: () => new Response("x", { status: 205 }) },
  { name: "404 with a string body is typed", make: () => new Response("not here", { status: 404 }) },
  { name: "a Hono c.text() through cors() and etag() is sized", make: () => hono.request("/hono/text") },
  { name: "a Hono c.json() through cors() and etag() is sized", make: () => hono.request("/hono/json") },
  {
    name: "a Hono route's Response.json() through cors() and etag() is sized",
    make: () => hono.request("/hono/static-json"),
  },
  { name: "a Hono c.body(bytes) through cors() and etag() is sized", make: () => hono.request("/hono/bytes") },
  { name: "a Hono streamed Response through cors() is chunked", make: () => hono.request("/hono/stream") },
  {
    name: "a Hono HEAD (the GET's Response without its body) has no Content-Length",
    make: () => hono.request("/hono/text", { method: "HEAD" }),
    headUnsized: NULL_HEAD,
  },
];

interface Wire {
  status: number;
  /** name (lower-case) → values joined by ", " in order. */
  fields: Map<string, string>;
  framing: "length" | "chunked" | "none";
  length: number;
  body: Buffer;
}

const FRAMING_FIELDS = new Set(["content-length", "transfer-encoding", "date"]);
const BOUNDARY = /-{4}WebKitFormBoundary[0-9a-f]+/g;

/**
 * One response off `buf` at `at` by its own framing (`head`: a HEAD's, with no body); null while
 * it is incomplete (`closed`: nothing more will come, and a body without framing ends here).
 */
function parseResponse(buf: Buffer, at: number, head: boolean, closed = true): { wire: Wire; next: number } | null {
  const end = buf.indexOf("\r\n\r\n", at);
  if (end < 0) return null;
  const [statusLine = "", ...lines] = buf.subarray(at, end).toString("latin1").split("\r\n");
  const status = Number(statusLine.split(" ")[1]);
  const fields = new Map<string, string>();
  for (const line of lines) {
    const colon = line.indexOf(":");
    const name = line.slice(0, colon).toLowerCase();
    const value = line.slice(colon + 1).trim();
    fields.set(name, fields.has(name) ? `${fields.get(name)}, ${value}` : value);
  }
  const te = fields.get("transfer-encoding");
  const cl = fields.get("content-length");
  const framing = te !== undefined ? "chunked" : cl !== undefined ? "length" : "none";
  let pos = end + 4;
  let body: Buffer = Buffer.alloc(0);
  if (head || status < 200 || status === 204 || status === 304) {
    // no body
  } else if (framing === "chunked") {
    const parts: Buffer[] = [];
    for (;;) {
      const lineEnd = buf.indexOf("\r\n", pos);
      if (lineEnd < 0) return null;
      const size = Number.parseInt(buf.subarray(pos, lineEnd).toString("latin1"), 16);
      if (Number.isNaN(size))
        throw new Error(`bad chunk size line ${JSON.stringify(buf.subarray(pos, lineEnd).toString("latin1"))}`);
      pos = lineEnd + 2;
      if (size === 0) {
        const trailerEnd = buf.indexOf("\r\n", pos);
        if (trailerEnd < 0) return null;
        pos = trailerEnd + 2;
        break;
      }
      if (buf.length < pos + size + 2) return null;
      parts.push(buf.subarray(pos, pos + size));
      pos += size + 2;
    }
    body = Buffer.concat(parts);
  } else if (framing === "length") {
    if (buf.length < pos + Number(cl)) return null;
    body = buf.subarray(pos, pos + Number(cl));
    pos += body.length;
  } else {
    if (!closed) return null;
    body = buf.subarray(pos);
    pos = buf.length;
  }
  return { wire: { status, fields, framing, length: framing === "length" ? Number(cl) : -1, body }, next: pos };
}

const SENTINEL = "GET /__end HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";

/**
 * `request` (exact bytes) answered by the server on `port`, read by its framing; then, on the
 * same connection, the sentinel's answer must follow it exactly: a body framed wrongly fails.
 */
function ask(port: number, request: Buffer, head: boolean): Promise<Wire> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1");
    let buf = Buffer.alloc(0);
    let first: { wire: Wire; next: number } | null = null;
    const fail = (e: Error): void => {
      clearTimeout(timer);
      socket.destroy();
      reject(e);
    };
    const timer = setTimeout(() => fail(new Error(`no answer within 5 s; got ${JSON.stringify(buf.toString("latin1"))}`)), 5000);
    const check = (closed: boolean): void => {
      try {
        if (first === null) {
          first = parseResponse(buf, 0, head, closed);
          if (first !== null && !closed) socket.write(SENTINEL);
        }
        if (!closed) return;
        if (first === null) throw new Error(`connection closed before a response; got ${JSON.stringify(buf.toString("latin1"))}`);
        const after = parseResponse(buf, first.next, false, true);
        if (after === null || after.wire.body.toString() !== "end" || after.next !== buf.length) {
          throw new Error(`the response is not followed by exactly the next one: ${JSON.stringify(buf.toString("latin1"))}`);
        }
        clearTimeout(timer);
        resolve(first.wire);
      } catch (e) {
        fail(e as Error);
      }
    };
    socket.on("data", (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      check(false);
    });
    socket.on("end", () => check(true));
    socket.on("error", (e) => fail(e));
    socket.write(request);
  });
}

const askPath = (port: number, method: string, path: string): Promise<Wire> =>
  ask(port, Buffer.from(`${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`, "latin1"), method === "HEAD");

/** The fields compared: no framing, no Date, a FormData boundary made constant. */
function fieldsOf(w: Wire): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of w.fields) if (!FRAMING_FIELDS.has(name)) out[name] = value.replace(BOUNDARY, "BOUNDARY");
  return out;
}

/** What bunwsgi is expected to send of `bun`'s fields, given the case's deliberate differences. */
function expectedFields(c: Case, bun: Record<string, string>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...bun };
  for (const [name, value] of Object.entries(c.ours ?? {})) {
    if (value === null) delete out[name];
    else out[name] = value instanceof RegExp ? expect.stringMatching(value) : value;
  }
  return out;
}

const bodyOf = (w: Wire): string => w.body.toString("latin1").replace(BOUNDARY, "BOUNDARY");

/** What the app saw: whether the request had a body, the first read's result, bodyUsed, a second read's result. */
interface Seen {
  hadBody: boolean;
  first: unknown;
  used: boolean;
  second: unknown;
}

/** Bun.serve's view with each Blob read typed `type`. */
const typed =
  (type: string) =>
  (saw: Seen): Seen => {
    const retype = (v: unknown): unknown =>
      typeof v === "object" && v !== null && "blob" in v ? { ...(v as Record<string, unknown>), type } : v;
    return { ...saw, first: retype(saw.first), second: retype(saw.second) };
  };

interface RequestCase {
  name: string;
  /** The request after its request line and Host, up to and including its body. */
  rest: string;
  method?: string;
  read: (req: Request) => Promise<Seen>;
  /** What bunwsgi's app sees instead of what Bun.serve's does, and why. */
  ours?: (bunSaw: Seen) => Seen;
  why?: string;
}

const MULTIPART =
  '--XyZ\r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n--XyZ\r\nContent-Disposition: form-data; name="f"; filename="f.txt"\r\nContent-Type: text/plain\r\n\r\nhello\r\n--XyZ--\r\n';
const sized = (type: string | null, body: string): string =>
  `${type === null ? "" : `Content-Type: ${type}\r\n`}Content-Length: ${Buffer.byteLength(body, "latin1")}\r\n\r\n${body}`;
const chunked = (type: string | null, body: string): string =>
  `${type === null ? "" : `Content-Type: ${type}\r\n`}Transfer-Encoding: chunked\r\n\r\n${body.length > 0 ? `${Buffer.byteLength(body, "latin1").toString(16)}\r\n${body}\r\n` : ""}0\r\n\r\n`;
const BLOB_TYPE =
  "Bun.serve's request.blob() has no type (its clone()'s has, as every Request's with a body it holds); the Fetch standard's Body.blob() is typed by the body's MIME type";

async function describeValue(v: unknown): Promise<unknown> {
  if (v instanceof Blob) return { blob: v.size, type: v.type, text: await v.text() };
  if (v instanceof FormData) {
    return Promise.all(
      [...(v as unknown as Iterable<[string, string | File]>)].map(async ([k, x]) => [
        k,
        typeof x === "string" ? x : { file: x.name, type: x.type, text: await x.text() },
      ]),
    );
  }
  if (v instanceof ArrayBuffer) return { arrayBuffer: [...new Uint8Array(v)] };
  if (v instanceof Uint8Array) return { bytes: [...v], own: v.byteOffset === 0 && v.byteLength === v.buffer.byteLength };
  return v;
}

/** What an app sees of `method` on a request: its result or error, bodyUsed, and a second call's. */
const reading =
  (method: "blob" | "formData" | "json" | "text" | "arrayBuffer" | "bytes") =>
  async (req: Request): Promise<Seen> => {
    const call = async (): Promise<unknown> => {
      try {
        return await describeValue(await (req[method] as () => Promise<unknown>).call(req));
      } catch (e) {
        return { error: (e as Error).name, message: (e as Error).message };
      }
    };
    const hadBody = req.body !== null;
    const first = await call();
    return { hadBody, first, used: req.bodyUsed, second: await call() };
  };

const REQUEST_CASES: RequestCase[] = [
  {
    name: "request.blob() of a sized typed body has the request's type",
    rest: sized("text/plain", "abc"),
    read: reading("blob"),
    ours: typed("text/plain;charset=utf-8"),
    why: BLOB_TYPE,
  },
  {
    name: "request.blob() of a chunked multipart body keeps the boundary's case in its type",
    rest: chunked("multipart/form-data; boundary=XyZ", MULTIPART),
    read: reading("blob"),
    ours: typed("multipart/form-data; boundary=XyZ"),
    why: BLOB_TYPE,
  },
  {
    name: "request.blob() of a JSON body has Bun's canonical JSON type",
    rest: sized("application/json", '{"a":1}'),
    read: reading("blob"),
    ours: typed("application/json;charset=utf-8"),
    why: BLOB_TYPE,
  },
  { name: "request.blob() of an untyped body has no type", rest: sized(null, "abc"), read: reading("blob") },
  {
    name: "request.blob() of an empty typed body has the request's type",
    rest: sized("text/plain", ""),
    read: reading("blob"),
    ours: typed("text/plain;charset=utf-8"),
    why: BLOB_TYPE,
  },
  {
    name: "request.formData() parses a urlencoded body",
    rest: sized("application/x-www-form-urlencoded", "a=1&b=x+y&c=%C3%A9"),
    read: reading("formData"),
  },
  {
    name: "request.formData() parses a chunked multipart body with a file",
    rest: chunked("multipart/form-data; boundary=XyZ", MULTIPART),
    read: reading("formData"),
  },
  {
    name: "request.formData() of a body of another type fails and leaves it unread",
    rest: sized("text/plain", "a=1"),
    read: reading("formData"),
  },
  {
    name: "request.formData() of an empty urlencoded body",
    rest: sized("application/x-www-form-urlencoded", ""),
    read: reading("formData"),
  },
  { name: "request.json() parses a sized body", rest: sized("application/json", '{"a":[1,2]}'), read: reading("json") },
  { name: "request.json() parses a chunked body", rest: chunked("application/json", '{"a":[1,2]}'), read: reading("json") },
  { name: "request.json() of malformed JSON fails with JSC's SyntaxError", rest: sized(null, "{bad"), read: reading("json") },
  { name: "request.json() of an empty sized body fails", rest: sized("application/json", ""), read: reading("json") },
  {
    name: "request.json() of an empty chunked body fails as an empty sized one does",
    rest: chunked("application/json", ""),
    read: reading("json"),
    ours: (saw) => ({ ...saw, first: { error: "SyntaxError", message: "Unexpected end of JSON input" } }),
    why: "Bun.serve's request.json() gives null for an empty chunked body; parsing JSON from no bytes fails (Fetch, Body.json())",
  },
  { name: "request.text() decodes UTF-8", rest: sized(null, "caf\xc3\xa9"), read: reading("text") },
  {
    name: "request.text() drops a BOM and replaces malformed bytes",
    rest: sized(null, "\xef\xbb\xbfa\xffb"),
    read: reading("text"),
  },
  { name: "request.text() of a chunked body", rest: chunked(null, "chunky"), read: reading("text") },
  { name: "request.arrayBuffer() has the body's bytes", rest: sized(null, "\x00\x01\xff"), read: reading("arrayBuffer") },
  { name: "request.arrayBuffer() of a chunked body", rest: chunked(null, "\x00\x01\xff"), read: reading("arrayBuffer") },
  { name: "request.bytes() has the body's bytes in a buffer of their own", rest: sized(null, "xyz"), read: reading("bytes") },
  { name: "request.bytes() of an empty chunked body", rest: chunked(null, ""), read: reading("bytes") },
  { name: "a GET request has no body and reads as empty text", method: "GET", rest: "\r\n", read: reading("text") },
];

const handler = async (req: Request): Promise<Response> => {
  const url = new URL(req.url);
  if (url.pathname === "/__end") return new Response("end");
  const [, kind, index] = url.pathname.split("/");
  if (kind === "res") return (CASES[Number(index)] as Case).make();
  const c = REQUEST_CASES[Number(index)] as RequestCase;
  return new Response(JSON.stringify(await c.read(req)));
};

let bun: Server<undefined>;
let ours: Running<FetchServer>;
beforeAll(() => {
  writeFileSync(textFile, "text file contents\n");
  writeFileSync(rawFile, "raw file contents");
  ours = serveFetch(handler);
  bun = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: handler });
});
afterAll(() => {
  bun.stop(true);
  ours.server.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("a Response on the wire, as Bun.serve sends it", () => {
  for (const [i, c] of CASES.entries()) {
    const path = `/res/${i}`;

    test(`GET: ${c.name}`, async () => {
      const [b, o] = await Promise.all([askPath(bun.port as number, "GET", path), askPath(ours.port, "GET", path)]);
      expect(o.status).toBe(b.status);
      expect(fieldsOf(o)).toEqual(expectedFields(c, fieldsOf(b)) as Record<string, string>);
      expect(bodyOf(o)).toBe(bodyOf(b));
      // Sized wherever Bun.serve is; sized where it chunks only with the same body (checked above).
      if (b.framing === "length") expect(o.framing).toBe("length");
      if (o.framing === "length") expect(o.length).toBe(o.body.length);
      if (b.status === 204 || b.status === 304) expect(o.framing).toBe("none");
    });

    test(`HEAD: ${c.name}`, async () => {
      const [bGet, bHead, oGet, oHead] = await Promise.all([
        askPath(bun.port as number, "GET", path),
        askPath(bun.port as number, "HEAD", path),
        askPath(ours.port, "GET", path),
        askPath(ours.port, "HEAD", path),
      ]);
      expect(oHead.status).toBe(bHead.status);
      // The fields GET gets (RFC 9110 §9.3.2), which are Bun.serve's GET fields.
      expect(fieldsOf(oHead)).toEqual(fieldsOf(oGet));
      expect(fieldsOf(oHead)).toEqual(expectedFields(c, fieldsOf(bGet)) as Record<string, string>);
      // A Content-Length only when it is GET's; never chunked (no body follows).
      expect(oHead.framing).not.toBe("chunked");
      if (oHead.framing === "length") expect(oHead.length).toBe(oGet.body.length);
      const bunTruthful = bHead.framing === "length" && bHead.length === bGet.body.length;
      if (bunTruthful && c.headUnsized === undefined) expect(oHead.framing).toBe("length");
      if (c.headUnsized !== undefined) expect(oHead.framing).toBe("none");
    });
  }
});

describe("a request's body, as a Bun.serve app reads it", () => {
  for (const [i, c] of REQUEST_CASES.entries()) {
    test(c.name, async () => {
      const bytes = Buffer.from(`${c.method ?? "POST"} /req/${i} HTTP/1.1\r\nHost: 127.0.0.1\r\n${c.rest}`, "latin1");
      const [b, o] = await Promise.all([ask(bun.port as number, bytes, false), ask(ours.port, bytes, false)]);
      const bunSaw = JSON.parse(b.body.toString()) as Seen;
      const oursSaw = JSON.parse(o.body.toString()) as Seen;
      expect(oursSaw).toEqual(c.ours === undefined ? bunSaw : c.ours(bunSaw));
    });
  }
});
