/**
 * @module test/behaviour — one behaviour suite run against both kinds of app (hono's runTest
 * pattern): a WSGI app and a fetch app with the same routes must get the same framing, HEAD,
 * 100-continue, chunked uploads, pipelining, limits, deadlines, error handling, cookies, access
 * log, TLS and unix sockets from the engine.
 */

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Application, FetchHandler, ListenerSpec, ServerOptions } from "../src/index.ts";
import { RawClient, type Running, serve, serveFetch } from "./helpers.ts";

const HELLO = "Hello, World!";
const TEXT = [["Content-Type", "text/plain"]] as Array<[string, string]>;

/** The routes, as a WSGI app. */
const wsgiApp: Application = (env, sr) => {
  const input = env["wsgi.input"];
  switch (env.PATH_INFO) {
    case "/":
      sr("200 OK", TEXT);
      return [HELLO];
    case "/echo":
      return (async () => {
        const body = await input.read();
        sr("200 OK", [["Content-Type", "application/octet-stream"]]);
        return [body];
      })();
    case "/count":
      return (async () => {
        let n = 0;
        for (let c = await input.read(1000); c.length > 0; c = await input.read(1000)) n += c.length;
        sr("200 OK", TEXT);
        return [String(n)];
      })();
    case "/stream":
      sr("200 OK", TEXT);
      return (async function* () {
        yield "a";
        await Bun.sleep(2);
        yield "b";
        yield "c";
      })();
    case "/error":
      throw new Error("boom in app");
    case "/midstream-error":
      sr("200 OK", TEXT);
      return (async function* () {
        yield "partial";
        await Bun.sleep(2);
        throw new Error("boom mid-stream");
      })();
    case "/slow":
      return (async () => {
        await Bun.sleep(Number(env.QUERY_STRING.slice(3)));
        sr("200 OK", TEXT);
        return ["late"];
      })();
    case "/cookies":
      sr("200 OK", [
        ["Set-Cookie", "a=1; Path=/"],
        ["Set-Cookie", "b=2; Path=/"],
      ]);
      return ["ok"];
    default:
      sr("404 Not Found", TEXT);
      return ["no such route"];
  }
};

/** The same routes, as a fetch app. */
const fetchApp: FetchHandler = async (req) => {
  const url = new URL(req.url);
  const text = { "Content-Type": "text/plain" };
  switch (url.pathname) {
    case "/":
      return new Response(HELLO, { headers: text });
    case "/echo":
      return new Response(await req.arrayBuffer(), { headers: { "Content-Type": "application/octet-stream" } });
    case "/count": {
      let n = 0;
      for await (const c of req.body ?? []) n += c.length;
      return new Response(String(n), { headers: text });
    }
    case "/stream": {
      const parts = ["a", "b", "c"];
      return new Response(
        new ReadableStream({
          async pull(c) {
            const p = parts.shift();
            if (p === undefined) return c.close();
            if (p === "b") await Bun.sleep(2);
            c.enqueue(new TextEncoder().encode(p));
          },
        }),
        { headers: text },
      );
    }
    case "/error":
      throw new Error("boom in app");
    case "/midstream-error": {
      let sent = false;
      return new Response(
        new ReadableStream({
          async pull(c) {
            if (sent) {
              await Bun.sleep(2);
              throw new Error("boom mid-stream");
            }
            sent = true;
            c.enqueue(new TextEncoder().encode("partial"));
          },
        }),
        { headers: text },
      );
    }
    case "/slow":
      await Bun.sleep(Number(url.searchParams.get("ms")));
      return new Response("late", { headers: text });
    case "/cookies": {
      const h = new Headers();
      h.append("Set-Cookie", "a=1; Path=/");
      h.append("Set-Cookie", "b=2; Path=/");
      return new Response("ok", { headers: h });
    }
    default:
      return new Response("no such route", { status: 404, headers: text });
  }
};

type Start = (
  options?: ServerOptions,
  listener?: ListenerSpec,
) => Running<Running["server"] | ReturnType<typeof serveFetch>["server"]>;

const KINDS: Array<[string, Start]> = [
  ["WSGI app", (options, listener) => serve(wsgiApp, options, listener)],
  ["fetch app", (options, listener) => serveFetch(fetchApp, options, listener)],
];

const running: Array<Running<Running["server"] | ReturnType<typeof serveFetch>["server"]>> = [];
afterAll(() => {
  for (const r of running) r.server.close();
});

let certs = "";
beforeAll(async () => {
  certs = mkdtempSync(join(tmpdir(), "bunwsgi-behaviour-"));
  const { makeCertificates } = await import("./helpers.ts");
  await makeCertificates(certs);
});
afterAll(() => rmSync(certs, { recursive: true, force: true }));

const get = (path: string, version = "1.1"): string => `GET ${path} HTTP/${version}\r\nHost: example.test\r\n\r\n`;

for (const [kind, start] of KINDS) {
  describe(`behaviour: ${kind}`, () => {
    let plain: Running<Running["server"] | ReturnType<typeof serveFetch>["server"]>;
    beforeAll(() => {
      plain = start();
      running.push(plain);
    });

    async function one(data: string, opts: { head?: boolean; port?: number } = {}) {
      const c = await RawClient.connect(opts.port ?? plain.port);
      c.send(data);
      const r = await c.response({ head: opts.head });
      c.close();
      return r;
    }

    test("a body known in advance goes out with its Content-Length, byte for byte", async () => {
      const r = await one(get("/"));
      expect(r.statusLine).toBe("HTTP/1.1 200 OK");
      expect(r.header("content-length")).toBe("13");
      expect(r.header("content-type")).toBe("text/plain");
      expect(r.header("transfer-encoding")).toBeUndefined();
      expect(r.body).toBe(HELLO);
    });

    test("a streamed body is chunked on HTTP/1.1 and close-delimited on HTTP/1.0", async () => {
      const c = await RawClient.connect(plain.port);
      c.send(get("/stream"));
      const r = await c.response();
      expect(r.header("transfer-encoding")).toBe("chunked");
      expect(r.raw.endsWith("1\r\na\r\n1\r\nb\r\n1\r\nc\r\n0\r\n\r\n")).toBe(true);
      c.close();
      const old = await RawClient.connect(plain.port);
      old.send(get("/stream", "1.0"));
      await old.waitClosed();
      const raw = old.take();
      expect(raw.startsWith("HTTP/1.1 200 OK\r\n")).toBe(true);
      expect(raw).not.toContain("chunked");
      expect(raw.endsWith("\r\n\r\nabc")).toBe(true);
    });

    test("HEAD gets the GET's Content-Length and no body; the request pipelined behind it is answered", async () => {
      const c = await RawClient.connect(plain.port);
      c.send(`HEAD / HTTP/1.1\r\nHost: x\r\n\r\n${get("/")}`);
      const head = await c.response({ head: true });
      expect(head.status).toBe(200);
      expect(head.header("content-length")).toBe("13");
      const next = await c.response();
      expect(next.body).toBe(HELLO);
      c.close();
    });

    test("100 Continue goes out when the app reads the body, and never when it does not", async () => {
      const c = await RawClient.connect(plain.port);
      c.send("POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
      expect(await c.readRaw(25)).toBe("HTTP/1.1 100 Continue\r\n\r\n");
      c.send("hello");
      expect((await c.response()).body).toBe("hello");
      c.close();
      const d = await RawClient.connect(plain.port);
      d.send("POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
      const r = await d.response();
      expect(r.statusLine).toBe("HTTP/1.1 200 OK");
      expect(r.raw).not.toContain("100 Continue");
      // The client was never told to send the body it announced: the connection cannot be reused.
      expect(r.header("connection")).toBe("close");
      await d.waitClosed();
    });

    test("a chunked upload reaches the app decoded (extensions dropped)", async () => {
      const r = await one(
        "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
      );
      expect(r.body).toBe("hello world");
    });

    test("a large body is read in pieces as it arrives", async () => {
      const c = await RawClient.connect(plain.port);
      const size = 300_000;
      c.send(`POST /count HTTP/1.1\r\nHost: x\r\nContent-Length: ${size}\r\n\r\n`);
      await c.sendAll(new Uint8Array(size).fill(120));
      expect((await c.response()).body).toBe(String(size));
      c.close();
    });

    test("pipelined requests are answered in order on one connection", async () => {
      const c = await RawClient.connect(plain.port);
      c.send(`${get("/")}POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc${get("/stream")}${get("/nope")}`);
      expect((await c.response()).body).toBe(HELLO);
      expect((await c.response()).body).toBe("abc");
      expect((await c.response()).body).toBe("abc");
      const last = await c.response();
      expect(last.status).toBe(404);
      expect(last.body).toBe("no such route");
      c.close();
    });

    test("limits: 431 for a header section too large, 413 for a body over limits.body (declared or chunked)", async () => {
      const tight = start({ limits: { maxHeaderBytes: 1024, maxBodySize: 100 } });
      running.push(tight);
      const big = await one(`GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(2000)}\r\n\r\n`, { port: tight.port });
      expect(big.status).toBe(431);
      const declared = await one("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n", { port: tight.port });
      expect(declared.status).toBe(413);
      const chunk = "a".repeat(150);
      const chunked = await one(
        `POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n${chunk.length.toString(16)}\r\n${chunk}\r\n0\r\n\r\n`,
        { port: tight.port },
      );
      expect(chunked.status).toBe(413);
    });

    test("a head not finished within timeouts.header gets 408", async () => {
      const slow = start({ timeouts: { header: 1 } });
      running.push(slow);
      const c = await RawClient.connect(slow.port);
      c.send("GET / HTTP/1.1\r\nHost: x\r\n");
      const r = await c.response({ ms: 4000 });
      expect(r.status).toBe(408);
      await c.waitClosed();
    }, 10_000);

    test("an app that does not answer within timeouts.app gets 503", async () => {
      const capped = start({ timeouts: { app: 1 } });
      running.push(capped);
      const r = await one(get("/slow?ms=4000"), { port: capped.port }).catch((e) => {
        throw e;
      });
      expect(r.status).toBe(503);
      expect(capped.errors.join("")).toContain("did not finish within 1s (timeouts.app)");
    }, 10_000);

    test("an error before the response is a 500, with the stack in the error log", async () => {
      const r = await one(get("/error"));
      expect(r.status).toBe(500);
      expect(r.header("connection")).toBe("close");
      expect(plain.errors.join("")).toContain("boom in app");
    });

    test("an error in mid-stream cuts the connection: the body has no chunked terminator", async () => {
      const c = await RawClient.connect(plain.port);
      c.send(get("/midstream-error"));
      await c.waitClosed();
      const raw = c.take();
      expect(raw).toContain("Transfer-Encoding: chunked");
      expect(raw).toContain("7\r\npartial\r\n");
      expect(raw).not.toContain("0\r\n\r\n");
      expect(plain.errors.join("")).toContain("boom mid-stream");
    });

    test("several Set-Cookie fields stay apart", async () => {
      const r = await one(get("/cookies"));
      expect(r.headers.filter(([n]) => n.toLowerCase() === "set-cookie").map(([, v]) => v)).toEqual([
        "a=1; Path=/",
        "b=2; Path=/",
      ]);
    });

    test("each request gets one access-log line with its status and length", async () => {
      const r = await one(get("/nope"));
      expect(r.status).toBe(404);
      const line = plain.access.find((l) => l.includes('"GET /nope HTTP/1.1"'));
      expect(line).toMatch(/^127\.0\.0\.1 - - \[[^\]]+\] "GET \/nope HTTP\/1\.1" 404 \d+ \d+\.\d{6}\n$/);
    });

    test("TLS: served over HTTPS with a certificate made at test time", async () => {
      const secure = start({ tls: { cert: Bun.file(join(certs, "srv.pem")), key: Bun.file(join(certs, "srv.key")) } });
      running.push(secure);
      const res = await fetch(`https://127.0.0.1:${secure.port}/`, { tls: { ca: await Bun.file(join(certs, "ca.pem")).text() } });
      expect(await res.text()).toBe(HELLO);
    });

    test("a graceful stop lets the request in flight finish with Connection: close, then refuses connections", async () => {
      const stopping = start({ timeouts: { stopIdle: 0 } });
      const c = await RawClient.connect(stopping.port);
      c.send(get("/slow?ms=300"));
      await Bun.sleep(50);
      const stopped = stopping.server.stop(5);
      const r = await c.response();
      expect(r.body).toBe("late");
      expect(r.header("connection")).toBe("close");
      await c.waitClosed();
      await stopped;
      expect(
        await RawClient.connect(stopping.port).then(
          () => "connected",
          () => "refused",
        ),
      ).toBe("refused");
    });

    test("a unix socket serves curl", async () => {
      const path = join(certs, `${kind.split(" ")[0]}.sock`);
      const r = start({}, `unix:${path}`);
      running.push(r);
      const p = Bun.spawn(["curl", "-sS", "-i", "--unix-socket", path, "http://localhost/cookies"], { stdout: "pipe" });
      const out = await new Response(p.stdout).text();
      expect(out).toContain("HTTP/1.1 200 OK");
      expect(out.match(/set-cookie: /gi)?.length).toBe(2);
      expect(out.endsWith("\r\n\r\nok")).toBe(true);
    });
  });
}
