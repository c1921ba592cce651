/** @module test/range — conditional and range requests of file responses (RFC 9110 §13, §14): the pure judgements (Range to its grammar, If-Range, HTTP-dates, entity-tag lists, preconditions in order), then 304/412/206/416/200 on the wire for wsgi.file_wrapper (path and descriptor) and a fetch app's Bun.file, by raw socket and curl, the file closed on every answer. */

import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, openSync, readdirSync, readlinkSync, rmSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { conditionsOf, judgePreconditions, listMatches, parseEntityTag, parseHttpDate } from "../src/http/conditional.ts";
import { acceptsBytes, fileETag, ifRangeHolds, parseRange } from "../src/http/range.ts";
import { RawClient, type Running, serve, serveFetch, waitFor } from "./helpers.ts";

describe("Range, judged to its grammar (RFC 9110 §14.1.1)", () => {
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

  test("whitespace inside a range-spec, or before the first, makes the Range invalid: ignored", () => {
    for (const bad of [
      "bytes= 0-1",
      "bytes=0 -1",
      "bytes=0- 1",
      "bytes=\t0-1",
      "bytes =0-1",
      "bytes=0-1 x",
      "bytes=0-1;",
      "bytes=0--1",
    ]) {
      expect([bad, parseRange(bad, 1000)]).toEqual([bad, { kind: "whole" }]);
    }
  });

  test("whitespace around the list's commas and empty list elements are the grammar's (§5.6.1.2)", () => {
    expect(parseRange("bytes=0-1,", 1000)).toEqual({ kind: "part", start: 0, end: 1 });
    expect(parseRange("bytes=, 0-1", 1000)).toEqual({ kind: "part", start: 0, end: 1 });
    expect(parseRange("bytes=0-1 , ,", 1000)).toEqual({ kind: "part", start: 0, end: 1 });
    expect(parseRange("bytes=0-1 ,\t5-6", 1000)).toEqual({ kind: "whole" });
  });

  test("a range that starts past the end, or an empty suffix, is unsatisfiable", () => {
    expect(parseRange("bytes=1000-", 1000)).toEqual({ kind: "unsatisfiable" });
    expect(parseRange("bytes=-0", 1000)).toEqual({ kind: "unsatisfiable" });
    expect(parseRange("bytes=0-", 0)).toEqual({ kind: "unsatisfiable" });
  });

  test("Accept-Ranges: absent or naming bytes lets ranges be served; none does not", () => {
    expect(acceptsBytes(null)).toBe(true);
    expect(acceptsBytes("bytes")).toBe(true);
    expect(acceptsBytes("other, Bytes")).toBe(true);
    expect(acceptsBytes("none")).toBe(false);
    expect(acceptsBytes("bytesx")).toBe(false);
  });
});

describe("validators and preconditions, judged (RFC 9110 §8.8, §13)", () => {
  const date = "Thu, 03 Dec 2026 16:00:00 GMT";
  const at = Date.parse(date) / 1000;

  test("If-Range: a strong entity-tag by strong comparison, a weak tag never; a date only when equal and a second older than the Date", () => {
    const tag = parseEntityTag('"abc"');
    expect(ifRangeHolds('"abc"', tag, null, at)).toBe(true);
    expect(ifRangeHolds('"abd"', tag, null, at)).toBe(false);
    expect(ifRangeHolds('W/"abc"', tag, null, at)).toBe(false);
    expect(ifRangeHolds('"abc"', parseEntityTag('W/"abc"'), null, at)).toBe(false);
    expect(ifRangeHolds(date, null, date, at + 1)).toBe(true);
    expect(ifRangeHolds(date, null, date, at)).toBe(false);
    expect(ifRangeHolds("Thu, 03 Dec 2026 16:00:01 GMT", null, date, at + 60)).toBe(false);
    expect(ifRangeHolds('"abc", "abc"', tag, null, at)).toBe(false);
  });

  test("HTTP-dates in the three forms a recipient accepts, and nothing looser", () => {
    const t = Date.UTC(1994, 10, 6, 8, 49, 37) / 1000;
    const now = Date.UTC(2026, 0, 1) / 1000;
    expect(parseHttpDate("Sun, 06 Nov 1994 08:49:37 GMT", now)).toBe(t);
    expect(parseHttpDate("Sunday, 06-Nov-94 08:49:37 GMT", now)).toBe(t);
    expect(parseHttpDate("Sun Nov  6 08:49:37 1994", now)).toBe(t);
    // A two-digit year more than 50 years ahead is the last century's (§5.6.7).
    expect(parseHttpDate("Monday, 06-Nov-28 08:49:37 GMT", now)).toBe(Date.UTC(2028, 10, 6, 8, 49, 37) / 1000);
    for (const bad of [
      "sun, 06 Nov 1994 08:49:37 GMT",
      "Sun, 06 Nov 1994 08:49:37 UTC",
      "Sun, 6 Nov 1994 08:49:37 GMT",
      "Sun, 31 Feb 1994 08:49:37 GMT",
      "Sun, 06 Nov 1994 24:00:00 GMT",
      " Sun, 06 Nov 1994 08:49:37 GMT",
      "1994-11-06T08:49:37Z",
      "",
    ]) {
      expect([bad, parseHttpDate(bad, now)]).toEqual([bad, Number.NaN]);
    }
  });

  test("entity-tag lists: * matches, strong and weak comparison, and a list that is not of the grammar matches nothing", () => {
    const strong = parseEntityTag('"x"');
    const weak = parseEntityTag('W/"x"');
    expect(listMatches("*", strong, false)).toBe(true);
    expect(listMatches('"a", "x"', strong, false)).toBe(true);
    expect(listMatches('"a",,W/"x"', strong, false)).toBe(false);
    expect(listMatches('"a",,W/"x"', strong, true)).toBe(true);
    expect(listMatches('"x"', weak, false)).toBe(false);
    expect(listMatches('"x"', weak, true)).toBe(true);
    expect(listMatches('"x" "a"', strong, true)).toBe(false);
    expect(listMatches("x", strong, true)).toBe(false);
    expect(listMatches('"x"', null, true)).toBe(false);
  });

  test("the fields: list fields joined, a repeated singleton is no value, and a repeated If-Range drops the Range", () => {
    const c = conditionsOf([
      ["If-None-Match", '"a"'],
      ["if-none-match", '"b"'],
      ["If-Modified-Since", date],
      ["If-Modified-Since", date],
      ["Range", "bytes=0-0"],
    ]);
    expect(c.ifNoneMatch).toBe('"a", "b"');
    expect(c.ifModifiedSince).toBeNull();
    expect(c.range).toBe("bytes=0-0");
    expect(
      conditionsOf([
        ["Range", "bytes=0-0"],
        ["Range", "bytes=5-9"],
      ]).range,
    ).toBeNull();
    expect(
      conditionsOf([
        ["Range", "bytes=0-0"],
        ["If-Range", '"a"'],
        ["If-Range", '"a"'],
      ]).range,
    ).toBeNull();
  });

  test("preconditions in §13.2.2's order: If-Match, else If-Unmodified-Since; then If-None-Match, else If-Modified-Since", () => {
    const tag = parseEntityTag('"v1"');
    const judge = (fields: Array<[string, string]>, method = "GET"): number =>
      judgePreconditions(conditionsOf(fields), method, tag, at, at + 10);
    expect(judge([])).toBe(0);
    expect(judge([["If-Match", '"v0"']])).toBe(412);
    expect(judge([["If-Match", 'W/"v1"']])).toBe(412);
    expect(judge([["If-Match", "*"]])).toBe(0);
    expect(judge([["If-Unmodified-Since", "Thu, 03 Dec 2026 15:59:59 GMT"]])).toBe(412);
    expect(judge([["If-Unmodified-Since", date]])).toBe(0);
    expect(judge([["If-Unmodified-Since", "yesterday"]])).toBe(0);
    // If-Match, when present, is judged instead of If-Unmodified-Since.
    expect(
      judge([
        ["If-Match", '"v1"'],
        ["If-Unmodified-Since", "Thu, 03 Dec 2026 15:00:00 GMT"],
      ]),
    ).toBe(0);
    expect(judge([["If-None-Match", 'W/"v1"']])).toBe(304);
    expect(judge([["If-None-Match", '"v1"']], "HEAD")).toBe(304);
    expect(judge([["If-None-Match", '"v1"']], "POST")).toBe(412);
    expect(judge([["If-None-Match", "*"]])).toBe(304);
    expect(judge([["If-Modified-Since", date]])).toBe(304);
    expect(judge([["If-Modified-Since", "Thu, 03 Dec 2026 15:59:59 GMT"]])).toBe(0);
    expect(judge([["If-Modified-Since", date]], "POST")).toBe(0);
    // If-None-Match, when present, is judged instead of If-Modified-Since.
    expect(
      judge([
        ["If-None-Match", '"v0"'],
        ["If-Modified-Since", date],
      ]),
    ).toBe(0);
    // If-Match fails first, whatever If-None-Match says.
    expect(
      judge([
        ["If-Match", '"v0"'],
        ["If-None-Match", '"v1"'],
      ]),
    ).toBe(412);
    expect(
      judge([
        ["If-Match", '"v1"'],
        ["If-None-Match", '"v1"'],
      ]),
    ).toBe(304);
    expect(judge([["If-None-Match", '"v1"']], "OPTIONS")).toBe(0);
  });
});

const dir = mkdtempSync(join(tmpdir(), "bunwsgi-range-"));
const path = join(dir, "file.bin");
const SIZE = 100_000;
const content = Buffer.alloc(SIZE);
for (let i = 0; i < SIZE; i++) content[i] = (i * 13) & 0xff;
writeFileSync(path, content);
// An hour old: its validators are strong (a file changed within the response's second is the fresh-file test's).
const hourAgo = new Date(Date.now() - 3600_000);
utimesSync(path, hourAgo, hourAgo);
const st = statSync(path);
const etag = fileETag(st.size, st.mtimeMs, true);
const lastModified = new Date(Math.floor(st.mtimeMs / 1000) * 1000).toUTCString();
const running: Array<Running<Running["server"] | ReturnType<typeof serveFetch>["server"]>> = [];
afterAll(() => {
  for (const r of running) r.server.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Descriptors of this process open on `file` (the servers run in it). */
const openOn = (file: string): number =>
  readdirSync("/proc/self/fd").filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`) === file;
    } catch {
      return false;
    }
  }).length;

/** The app's own fields for a path: /none says Accept-Ranges: none. */
const ownFields = (p: string): Array<[string, string]> => [
  ["Content-Type", "application/octet-stream"],
  ["Cache-Control", "max-age=60"],
  ...(p === "/none" ? [["Accept-Ranges", "none"] as [string, string]] : []),
];

const KINDS = [
  [
    "wsgi.file_wrapper(path)",
    () =>
      serve((env, sr) => {
        const w = env["wsgi.file_wrapper"](path);
        sr("200 OK", ownFields(env.PATH_INFO));
        return w;
      }),
  ],
  [
    "wsgi.file_wrapper(descriptor)",
    () =>
      serve((env, sr) => {
        const w = env["wsgi.file_wrapper"](openSync(path, "r"));
        sr("200 OK", ownFields(env.PATH_INFO));
        return w;
      }),
  ],
  [
    "a fetch app's Bun.file",
    () => serveFetch((req) => new Response(Bun.file(path), { headers: ownFields(new URL(req.url).pathname) })),
  ],
] as const;

for (const [kind, start] of KINDS) {
  describe(`ranges and preconditions: ${kind}`, () => {
    const r = start();
    running.push(r);
    const get = async (fields: string, method = "GET", target = "/f") => {
      const c = await RawClient.connect(r.port);
      c.send(`${method} ${target} HTTP/1.1\r\nHost: x\r\n${fields}\r\n`);
      const res = await c.response({ head: method === "HEAD" });
      c.close();
      return res;
    };
    const bytes = (s: string): Buffer => Buffer.from(s, "latin1");
    const isWhole = (res: { status: number; body: string }): boolean => res.status === 200 && bytes(res.body).equals(content);

    test("the whole file advertises Accept-Ranges and carries a strong ETag and Last-Modified", async () => {
      const res = await get("", "HEAD");
      expect(res.status).toBe(200);
      expect(res.header("accept-ranges")).toBe("bytes");
      expect(res.header("etag")).toBe(etag);
      expect(res.header("last-modified")).toBe(lastModified);
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
      expect(isWhole(stale)).toBe(true);
      expect((await get(`Range: bytes=0-9\r\nIf-Range: W/${etag}\r\n`)).status).toBe(200);
      expect((await get(`Range: bytes=0-9\r\nIf-Range: ${lastModified}\r\n`)).status).toBe(206);
    });

    test("several ranges get the whole file (no multipart), and HEAD ignores Range", async () => {
      const multi = await get("Range: bytes=0-1,5-6\r\n");
      expect(isWhole(multi)).toBe(true);
      const head = await get("Range: bytes=0-1\r\n", "HEAD");
      expect(head.status).toBe(200);
      expect(head.header("content-length")).toBe(String(SIZE));
    });

    test("a Range with whitespace inside a range-spec is invalid: ignored, the whole file", async () => {
      for (const value of ["bytes= 0-1", "bytes=0 -1", "bytes=0- 1", "bytes=\t0-1"]) {
        const res = await get(`Range: ${value}\r\n`);
        expect([value, isWhole(res)]).toEqual([value, true]);
      }
    });

    test("two Range lines, or two If-Range lines, are no valid Range: the whole file", async () => {
      expect(isWhole(await get("Range: bytes=0-0\r\nRange: bytes=5-9\r\n"))).toBe(true);
      expect(isWhole(await get(`Range: bytes=0-0\r\nIf-Range: ${etag}\r\nIf-Range: ${etag}\r\n`))).toBe(true);
    });

    test("the app's Accept-Ranges: none stands, and Range is ignored", async () => {
      const res = await get("Range: bytes=0-9\r\n", "GET", "/none");
      expect(isWhole(res)).toBe(true);
      const accepts = res.headers.filter(([n]) => n.toLowerCase() === "accept-ranges").map(([, v]) => v);
      expect(accepts).toEqual(["none"]);
      expect(res.header("content-range")).toBeUndefined();
    });

    test("If-None-Match or If-Modified-Since that holds (If-None-Match decides when both are sent): 304 with the validators, no body, no representation metadata", async () => {
      const c = await RawClient.connect(r.port);
      c.send(`GET /f HTTP/1.1\r\nHost: x\r\nIf-None-Match: "other", W/${etag}\r\nRange: bytes=0-9\r\n\r\n`);
      const res = await c.response();
      expect(res.statusLine).toBe("HTTP/1.1 304 Not Modified");
      expect(res.header("etag")).toBe(etag);
      expect(res.header("last-modified")).toBe(lastModified);
      expect(res.header("cache-control")).toBe("max-age=60");
      expect(res.header("content-type")).toBeUndefined();
      expect(res.header("content-length")).toBeUndefined();
      // Nothing follows the head: the next response is the next request's.
      c.send(`GET /f HTTP/1.1\r\nHost: x\r\nIf-Modified-Since: ${lastModified}\r\n\r\n`);
      expect((await c.response()).status).toBe(304);
      c.send(`HEAD /f HTTP/1.1\r\nHost: x\r\nIf-None-Match: *\r\n\r\n`);
      expect((await c.response({ head: true })).status).toBe(304);
      c.send(`GET /f HTTP/1.1\r\nHost: x\r\nIf-Modified-Since: ${new Date(st.mtimeMs - 2000).toUTCString()}\r\n\r\n`);
      expect(isWhole(await c.response())).toBe(true);
      // If-None-Match, when present, decides instead of If-Modified-Since.
      c.send(`GET /f HTTP/1.1\r\nHost: x\r\nIf-None-Match: "other"\r\nIf-Modified-Since: ${lastModified}\r\n\r\n`);
      expect(isWhole(await c.response())).toBe(true);
      c.close();
    });

    test("If-Match or If-Unmodified-Since that fails: 412 with no body, before If-None-Match and Range", async () => {
      const a = await get(`If-Match: "other"\r\nIf-None-Match: ${etag}\r\nRange: bytes=0-9\r\n`);
      expect(a.statusLine).toBe("HTTP/1.1 412 Precondition Failed");
      expect(a.header("content-length")).toBe("0");
      expect(a.body).toBe("");
      const b = await get(`If-Unmodified-Since: ${new Date(st.mtimeMs - 2000).toUTCString()}\r\n`);
      expect(b.status).toBe(412);
      expect((await get(`If-Match: ${etag}\r\nRange: bytes=0-9\r\n`)).status).toBe(206);
      expect(isWhole(await get(`If-Unmodified-Since: ${lastModified}\r\n`))).toBe(true);
    });

    test("If-None-Match that matches on a POST: 412 (§13.1.2)", async () => {
      const res = await get(`If-None-Match: ${etag}\r\nContent-Length: 0\r\n`, "POST");
      expect(res.status).toBe(412);
    });

    test("304, 412 and 416 never send the file, and close it", async () => {
      await waitFor(() => openOn(path) === 0);
      for (const fields of [`If-None-Match: ${etag}\r\n`, `If-Match: "other"\r\n`, `Range: bytes=${SIZE}-\r\n`]) {
        const res = await get(fields);
        expect(res.body).toBe("");
        await waitFor(() => openOn(path) === 0);
      }
    });
  });
}

describe("a file changed within the second its response is dated", () => {
  const fresh = join(dir, "fresh.bin");
  const KINDS_FRESH = [
    [
      "wsgi.file_wrapper",
      () =>
        serve((env, sr) => {
          const w = env["wsgi.file_wrapper"](fresh);
          sr("200 OK", []);
          return w;
        }),
    ],
    ["a fetch app's Bun.file", () => serveFetch(() => new Response(Bun.file(fresh)))],
  ] as const;

  for (const [kind, start] of KINDS_FRESH) {
    test(`${kind}: its validators are weak, and If-Range with its Last-Modified gets the whole file (§13.1.5, §8.8.2.2)`, async () => {
      const r = start();
      running.push(r);
      // Written and asked for within one second of the clock; a try that straddles a second is tried again.
      for (let attempt = 0; ; attempt++) {
        writeFileSync(fresh, content);
        const mtime = Math.floor(statSync(fresh).mtimeMs / 1000);
        const modified = new Date(mtime * 1000).toUTCString();
        const c = await RawClient.connect(r.port);
        c.send(`GET / HTTP/1.1\r\nHost: x\r\nRange: bytes=0-9\r\nIf-Range: ${modified}\r\n\r\n`);
        const res = await c.response();
        c.close();
        if (Date.parse(res.header("date") as string) / 1000 !== mtime && attempt < 5) continue;
        expect(res.header("last-modified")).toBe(modified);
        expect(res.status).toBe(200);
        expect(Buffer.from(res.body, "latin1").equals(content)).toBe(true);
        expect(res.header("etag")).toBe(fileETag(SIZE, mtime * 1000, false));
        expect(res.header("etag")?.startsWith("W/")).toBe(true);
        break;
      }
    });
  }
});
