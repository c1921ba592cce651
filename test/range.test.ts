/** @module test/range — byte ranges of file responses (RFC 9110 §14): the pure Range and If-Range judgements, then 206/416/200 on the wire for wsgi.file_wrapper and a fetch app's Bun.file, by raw socket and curl. */

import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileETag, ifRangeHolds, parseRange } from "../src/http/range.ts";
import { RawClient, type Running, serve, serveFetch } from "./helpers.ts";

describe("Range and If-Range, judged", () => {
  test("one range in each form; several, malformed or other units are ignored (the whole is sent)", () => {
    expect(parseRange("bytes=0-99", 1000)).toEqual({ kind: "part", start: 0, end: 99 });
    expect(parseRange("bytes=900-", 1000)).toEqual({ kind: "part", start: 900, end: 999 });
    expect(parseRange("bytes=-100", 1000)).toEqual({ kind: "part", start: 900, end: 999 });
    expect(parseRange("bytes=-5000", 1000)).toEqual({ kind: "part", start: 0, end: 999 });
    expect(parseRange("bytes=990-2000", 1000)).toEqual({ kind: "part", start: 990, end: 999 });
    expect(parseRange("Bytes = 5-5", 1000)).toEqual({ kind: "whole" });
    expect(parseRange("BYTES=5-5", 1000)).toEqual({ kind: "part", start: 5, end: 5 });
    for (const bad of ["bytes=0-1,5-6", "bytes=5-1", "bytes=a-", "bytes=-", "bytes=+1-2", "items=0-1", "bytes 0-1", ""]) {
      expect(parseRange(bad, 1000)).toEqual({ kind: "whole" });
    }
  });

  test("a range that starts past the end, or an empty suffix, is unsatisfiable", () => {
    expect(parseRange("bytes=1000-", 1000)).toEqual({ kind: "unsatisfiable" });
    expect(parseRange("bytes=-0", 1000)).toEqual({ kind: "unsatisfiable" });
    expect(parseRange("bytes=0-", 0)).toEqual({ kind: "unsatisfiable" });
  });

  test("If-Range: a strong entity-tag by strong comparison, a date by exact match, a weak tag never", () => {
    expect(ifRangeHolds('"abc"', '"abc"', null)).toBe(true);
    expect(ifRangeHolds('"abc"', '"abd"', null)).toBe(false);
    expect(ifRangeHolds('W/"abc"', '"abc"', null)).toBe(false);
    expect(ifRangeHolds('"abc"', 'W/"abc"', null)).toBe(false);
    const date = "Thu, 03 Dec 2026 16:00:00 GMT";
    expect(ifRangeHolds(date, null, date)).toBe(true);
    expect(ifRangeHolds("Thu, 03 Dec 2026 16:00:01 GMT", null, date)).toBe(false);
  });
});

const dir = mkdtempSync(join(tmpdir(), "bunwsgi-range-"));
const path = join(dir, "file.bin");
const SIZE = 100_000;
const content = Buffer.alloc(SIZE);
for (let i = 0; i < SIZE; i++) content[i] = (i * 13) & 0xff;
writeFileSync(path, content);
const st = statSync(path);
const etag = fileETag(st.size, st.mtimeMs);
const running: Array<Running<Running["server"] | ReturnType<typeof serveFetch>["server"]>> = [];
afterAll(() => {
  for (const r of running) r.server.close();
  rmSync(dir, { recursive: true, force: true });
});

const KINDS = [
  [
    "wsgi.file_wrapper",
    () =>
      serve((env, sr) => {
        const w = env["wsgi.file_wrapper"](path);
        sr("200 OK", [["Content-Type", "application/octet-stream"]]);
        return w;
      }),
  ],
  ["a fetch app's Bun.file", () => serveFetch(() => new Response(Bun.file(path)))],
] as const;

for (const [kind, start] of KINDS) {
  describe(`ranges: ${kind}`, () => {
    const r = start();
    running.push(r);
    const get = async (fields: string, method = "GET") => {
      const c = await RawClient.connect(r.port);
      c.send(`${method} /f HTTP/1.1\r\nHost: x\r\n${fields}\r\n`);
      const res = await c.response({ head: method === "HEAD" });
      c.close();
      return res;
    };
    const bytes = (s: string): Buffer => Buffer.from(s, "latin1");

    test("the whole file advertises Accept-Ranges and carries a strong ETag and Last-Modified", async () => {
      const res = await get("", "HEAD");
      expect(res.status).toBe(200);
      expect(res.header("accept-ranges")).toBe("bytes");
      expect(res.header("etag")).toBe(etag);
      expect(res.header("last-modified")).toBe(new Date(st.mtimeMs).toUTCString());
      expect(res.header("content-length")).toBe(String(SIZE));
    });

    test("one range: 206 with its Content-Range and exactly its bytes (first-last, first-, suffix)", async () => {
      const a = await get("Range: bytes=100-199\r\n");
      expect(a.statusLine).toBe("HTTP/1.1 206 Partial Content");
      expect(a.header("content-range")).toBe(`bytes 100-199/${SIZE}`);
      expect(a.header("content-length")).toBe("100");
      expect(bytes(a.body).equals(content.subarray(100, 200))).toBe(true);
      const b = await get(`Range: bytes=${SIZE - 10}-\r\n`);
      expect(bytes(b.body).equals(content.subarray(SIZE - 10))).toBe(true);
      const c = await get("Range: bytes=-7\r\n");
      expect(c.header("content-range")).toBe(`bytes ${SIZE - 7}-${SIZE - 1}/${SIZE}`);
      expect(bytes(c.body).equals(content.subarray(SIZE - 7))).toBe(true);
    });

    test("curl -r gets the part", async () => {
      const p = Bun.spawn(["curl", "-sS", "-r", "5000-5999", `http://127.0.0.1:${r.port}/f`], { stdout: "pipe" });
      const body = Buffer.from(await new Response(p.stdout).arrayBuffer());
      expect(body.equals(content.subarray(5000, 6000))).toBe(true);
    });

    test("an unsatisfiable range is 416 with Content-Range bytes */size and no body; the connection goes on", async () => {
      const c = await RawClient.connect(r.port);
      c.send(`GET /f HTTP/1.1\r\nHost: x\r\nRange: bytes=${SIZE}-\r\n\r\nGET /f HTTP/1.1\r\nHost: x\r\nRange: bytes=0-0\r\n\r\n`);
      const res = await c.response();
      expect(res.status).toBe(416);
      expect(res.header("content-range")).toBe(`bytes */${SIZE}`);
      expect(res.body).toBe("");
      const next = await c.response();
      expect(next.status).toBe(206);
      expect(bytes(next.body).equals(content.subarray(0, 1))).toBe(true);
      c.close();
    });

    test("If-Range: the part when the validator holds, the whole file when it does not (or is weak)", async () => {
      expect((await get(`Range: bytes=0-9\r\nIf-Range: ${etag}\r\n`)).status).toBe(206);
      const stale = await get('Range: bytes=0-9\r\nIf-Range: "0-0"\r\n');
      expect(stale.status).toBe(200);
      expect(stale.body.length).toBe(SIZE);
      expect((await get(`Range: bytes=0-9\r\nIf-Range: W/${etag}\r\n`)).status).toBe(200);
      const date = new Date(st.mtimeMs).toUTCString();
      expect((await get(`Range: bytes=0-9\r\nIf-Range: ${date}\r\n`)).status).toBe(206);
    });

    test("several ranges get the whole file (no multipart), and HEAD ignores Range", async () => {
      const multi = await get("Range: bytes=0-1,5-6\r\n");
      expect(multi.status).toBe(200);
      expect(multi.body.length).toBe(SIZE);
      const head = await get("Range: bytes=0-1\r\n", "HEAD");
      expect(head.status).toBe(200);
      expect(head.header("content-length")).toBe(String(SIZE));
    });
  });
}
