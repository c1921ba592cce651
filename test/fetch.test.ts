/**
 * @module test/fetch — real fetch apps on bunwsgi: a Hono app (routing, JSON, hono/streaming text
 * and SSE, cookies, getConnInfo, files, errors, request bodies, the abort signal) and an
 * itty-router app, driven by fetch, curl and raw sockets; app_kind's decisions; and the compiled
 * binary serving a Hono app from a config file and embedded with build.ts --app.
 */

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Hono } from "hono";
import { getConnInfo } from "hono/bun";
import { setCookie } from "hono/cookie";
import { stream, streamSSE } from "hono/streaming";
import { AutoRouter } from "itty-router";
import { kindOf } from "../src/app.ts";
import { IncomingRequest } from "../src/fetch/request.ts";
import type { FetchServe } from "../src/index.ts";
import { makeCertificates, RawClient, type Running, serveFetch, waitFor } from "./helpers.ts";

const root = join(import.meta.dir, "..");
const dir = mkdtempSync(join(tmpdir(), "bunwsgi-fetch-"));
const bigFile = join(dir, "big.bin");
const BIG = 1_500_000;

const events: string[] = [];
const hono = new Hono<{ Bindings: FetchServe }>();
hono.get("/", (c) => c.text("Hello, World!"));
hono.get("/json/:id", (c) => c.json({ id: c.req.param("id"), q: c.req.query("q") ?? null }));
hono.post("/json", async (c) => c.json({ got: await c.req.json() }));
hono.post("/form", async (c) => c.json(await c.req.parseBody()));
hono.get("/headers", (c) => c.text(`${c.req.header("x-a")}|${c.req.url}`));
hono.get("/host", (c) => c.text(`${c.req.header("host")}|${c.req.url}`));
hono.get("/cookies", (c) => {
  setCookie(c, "session", "abc", { path: "/", httpOnly: true });
  setCookie(c, "theme", "dark", { path: "/" });
  return c.text("cookies set");
});
hono.get("/ip", (c) => c.json(getConnInfo(c)));
hono.get("/file", () => new Response(Bun.file(bigFile)));
hono.get("/throw", () => {
  throw new Error("hono route failed");
});
hono.get("/text-stream", (c) =>
  stream(c, async (s) => {
    s.onAbort(() => {
      events.push("text-stream aborted");
    });
    for (let i = 0; i < 200; i++) {
      await s.write(`line ${i}\n`);
      await s.sleep(5);
    }
  }),
);
hono.get("/sse", (c) =>
  streamSSE(c, async (s) => {
    for (let i = 0; i < 3; i++) await s.writeSSE({ data: `m${i}`, event: "tick", id: String(i) });
  }),
);
hono.get("/wait-abort", async (c) => {
  const signal = c.req.raw.signal;
  await new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));
  events.push(`signal aborted: ${signal.aborted}`);
  return c.text("never seen");
});
hono.get("/upgrade", (c) => {
  try {
    c.env.upgrade(c.req.raw);
    return c.text("upgraded?");
  } catch (e) {
    return c.text((e as Error).message, 501);
  }
});

const itty = AutoRouter();
itty.get("/items/:id", ({ params }) => ({ item: params.id }));
itty.post("/items", async (req) => ({ created: await req.json() }));

let h: Running<ReturnType<typeof serveFetch>["server"]>;
let i: Running<ReturnType<typeof serveFetch>["server"]>;
beforeAll(() => {
  writeFileSync(bigFile, Buffer.alloc(BIG, 7).fill(9, 600_000, 700_000));
  h = serveFetch(hono);
  i = serveFetch(itty);
});
afterAll(() => {
  h.server.close();
  i.server.close();
  rmSync(dir, { recursive: true, force: true });
});

async function curl(...args: string[]): Promise<string> {
  const p = Bun.spawn(["curl", "-sS", "--max-time", "10", ...args], { stdout: "pipe", stderr: "pipe" });
  const [out] = await Promise.all([new Response(p.stdout).text(), p.exited]);
  return out;
}

describe("a Hono app", () => {
  test("routes, path parameters and JSON", async () => {
    const res = await fetch(`http://127.0.0.1:${h.port}/json/42?q=x`);
    expect(res.headers.get("content-type")).toBe("application/json");
    expect(await res.json()).toEqual({ id: "42", q: "x" });
    const posted = await fetch(`http://127.0.0.1:${h.port}/json`, { method: "POST", body: JSON.stringify({ a: [1, 2] }) });
    expect(await posted.json()).toEqual({ got: { a: [1, 2] } });
  });

  test("c.text() gets Bun.serve's text/plain;charset=utf-8 and a Content-Length (curl)", async () => {
    const out = await curl("-i", `http://127.0.0.1:${h.port}/`);
    expect(out).toContain("content-type: text/plain;charset=utf-8\r\n");
    expect(out).toContain("Content-Length: 13\r\n");
    expect(out.endsWith("\r\n\r\nHello, World!")).toBe(true);
  });

  test("form bodies, urlencoded and multipart (chunked by curl), parse", async () => {
    const url = await fetch(`http://127.0.0.1:${h.port}/form`, {
      method: "POST",
      body: new URLSearchParams({ a: "1", b: "two" }),
    });
    expect(await url.json()).toEqual({ a: "1", b: "two" });
    const multi = await curl(
      "-F",
      "name=ada",
      "-F",
      "file=@/etc/hostname",
      "-H",
      "Transfer-Encoding: chunked",
      `http://127.0.0.1:${h.port}/form`,
    );
    expect(JSON.parse(multi).name).toBe("ada");
  });

  test("request headers as received (duplicates combined by Headers), absolute-form targets (their authority as Host), HTTP/1.0 without Host", async () => {
    const c = await RawClient.connect(h.port);
    c.send("GET /headers HTTP/1.1\r\nHost: shop.test:8080\r\nX-A: 1\r\nX-A: 2\r\n\r\n");
    expect((await c.response()).body).toBe("1, 2|http://shop.test:8080/headers");
    c.send("GET http://other.test/headers?x=1 HTTP/1.1\r\nHost: other.test\r\nX-A: 3\r\n\r\n");
    expect((await c.response()).body).toBe("3|http://other.test/headers?x=1");
    // RFC 9112 §3.2.2: the target's authority replaces the Host received, in the fields as in the URL.
    c.send("GET https://shop.test:8443/host?y HTTP/1.1\r\nHost: elsewhere.test\r\n\r\n");
    expect((await c.response()).body).toBe("shop.test:8443|https://shop.test:8443/host?y");
    c.send("GET http://[::1]:81/host?z HTTP/1.1\r\nHost: elsewhere.test\r\n\r\n");
    expect((await c.response()).body).toBe("[::1]:81|http://[::1]:81/host?z");
    c.send("GET /host HTTP/1.1\r\nHost: elsewhere.test\r\n\r\n");
    expect((await c.response()).body).toBe("elsewhere.test|http://elsewhere.test/host");
    c.send("GET /headers HTTP/1.0\r\n\r\n");
    expect((await c.response()).body).toBe(`undefined|http://127.0.0.1:${h.port}/headers`);
    c.close();
  });

  test("several cookies go out as separate Set-Cookie fields", async () => {
    const res = await fetch(`http://127.0.0.1:${h.port}/cookies`);
    expect(res.headers.getSetCookie()).toEqual(["session=abc; Path=/; HttpOnly", "theme=dark; Path=/"]);
  });

  test("getConnInfo (hono/bun) reads the peer through server.requestIP", async () => {
    const c = await RawClient.connect(h.port);
    c.send("GET /ip HTTP/1.1\r\nHost: x\r\n\r\n");
    const info = JSON.parse((await c.response()).body);
    expect(info.remote.address).toBe("127.0.0.1");
    expect(info.remote.addressType).toBe("IPv4");
    expect(typeof info.remote.port).toBe("number");
    expect(info.remote.port).toBeGreaterThan(0);
    c.close();
  });

  test("a file response: Content-Length from its size, every byte; HEAD (Hono answers it with a null body) has no invented length", async () => {
    const res = await fetch(`http://127.0.0.1:${h.port}/file`);
    expect(res.headers.get("content-length")).toBe(String(BIG));
    const body = new Uint8Array(await res.arrayBuffer());
    expect(body.length).toBe(BIG);
    expect(Buffer.from(body).equals(await Bun.file(bigFile).bytes())).toBe(true);
    const head = await fetch(`http://127.0.0.1:${h.port}/file`, { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(head.headers.get("content-type")).toBe("application/octet-stream");
    expect(head.headers.get("content-length")).toBeNull();
  });

  test("a thrown error is Hono's 500 (its onError), and the connection stays usable", async () => {
    const c = await RawClient.connect(h.port);
    c.send("GET /throw HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n");
    expect((await c.response()).status).toBe(500);
    expect((await c.response()).body).toBe("Hello, World!");
    c.close();
  });

  test("hono/streaming text: chunked, and cancelled (onAbort) when the client goes away", async () => {
    const c = await RawClient.connect(h.port);
    c.send("GET /text-stream HTTP/1.1\r\nHost: x\r\n\r\n");
    await waitFor(() => c.take().includes("line 3"));
    c.close();
    await waitFor(() => events.includes("text-stream aborted"));
    const full = await fetch(`http://127.0.0.1:${h.port}/text-stream`);
    expect(full.headers.get("transfer-encoding")).toBe("chunked");
    const text = await full.text();
    expect(text.split("\n").length).toBe(201);
  });

  test("hono/streaming SSE: one framing of the server's own, the events in order", async () => {
    const c = await RawClient.connect(h.port);
    c.send("GET /sse HTTP/1.1\r\nHost: x\r\n\r\n");
    const r = await c.response();
    expect(r.header("content-type")).toBe("text/event-stream");
    // Hono sets Transfer-Encoding and Connection itself; the server frames and decides persistence alone.
    expect(r.headers.filter(([n]) => n.toLowerCase() === "transfer-encoding").length).toBe(1);
    expect(r.header("connection")).toBeUndefined();
    expect(r.body).toBe("event: tick\ndata: m0\nid: 0\n\nevent: tick\ndata: m1\nid: 1\n\nevent: tick\ndata: m2\nid: 2\n\n");
    c.close();
  });

  test("request.signal aborts when the client's connection closes", async () => {
    const c = await RawClient.connect(h.port);
    c.send("GET /wait-abort HTTP/1.1\r\nHost: x\r\n\r\n");
    await Bun.sleep(50);
    c.abort();
    await waitFor(() => events.includes("signal aborted: true"));
  });

  test("server.upgrade() says it is not supported instead of returning undefined", async () => {
    const res = await fetch(`http://127.0.0.1:${h.port}/upgrade`);
    expect(res.status).toBe(501);
    expect(await res.text()).toBe(
      "bunwsgi: server.upgrade() is not supported: bunwsgi has no WebSocket server yet; serve WebSocket routes from Bun.serve beside it",
    );
  });
});

describe("TLS facts for a fetch app", () => {
  test("server.tlsInfo(request) gives a verified client certificate's names; null over plain HTTP", async () => {
    const pki = join(dir, "pki");
    mkdirSync(pki);
    await makeCertificates(pki);
    const facts = (req: Request, server: FetchServe): Response => Response.json(server.tlsInfo(req));
    const secure = serveFetch(facts, {
      tls: {
        cert: Bun.file(join(pki, "srv.pem")),
        key: Bun.file(join(pki, "srv.key")),
        ca: Bun.file(join(pki, "ca.pem")),
        requestCert: true,
        rejectUnauthorized: false,
      },
    });
    const plain = serveFetch(facts);
    try {
      const cert = ["--cacert", join(pki, "ca.pem"), "--cert", join(pki, "client.pem"), "--key", join(pki, "client.key")];
      const info = JSON.parse(await curl(...cert, `https://127.0.0.1:${secure.port}/`));
      expect(info.SSL_CLIENT_VERIFY).toBe("SUCCESS");
      expect(info.SSL_CLIENT_S_DN).toBe("CN=alice,O=Example Org");
      expect(info.SSL_PROTOCOL).toMatch(/^TLSv1\.[23]$/);
      const anonymous = JSON.parse(await curl("--cacert", join(pki, "ca.pem"), `https://127.0.0.1:${secure.port}/`));
      expect(anonymous.SSL_CLIENT_VERIFY).toBe("NONE");
      expect(await curl(`http://127.0.0.1:${plain.port}/`)).toBe("null");
    } finally {
      secure.server.close();
      plain.server.close();
    }
  });
});

describe("an itty-router app", () => {
  test("routes with parameters and JSON in both directions", async () => {
    expect(await (await fetch(`http://127.0.0.1:${i.port}/items/7`)).json()).toEqual({ item: "7" });
    const res = await fetch(`http://127.0.0.1:${i.port}/items`, { method: "POST", body: JSON.stringify({ n: 1 }) });
    expect(await res.json()).toEqual({ created: { n: 1 } });
    expect((await fetch(`http://127.0.0.1:${i.port}/nope`)).status).toBe(404);
  });
});

describe("app_kind", () => {
  const wsgi = (_e: unknown, _s: unknown): string[] => [];
  test("auto: an object with a fetch method is a fetch app, a function a WSGI app, and says why", () => {
    expect(kindOf(hono, "auto", "x")).toMatchObject({ kind: "fetch", why: "auto: the export is an object with a fetch method" });
    expect(kindOf({ fetch: () => new Response() }, "auto", "x").kind).toBe("fetch");
    expect(kindOf(wsgi, "auto", "x").why).toContain('a bare fetch function needs app_kind = "fetch"');
    expect(kindOf(wsgi, "fetch", "x").kind).toBe("fetch");
  });

  test("an export that could be either, or neither, is a config error naming it", () => {
    const both = Object.assign((_e: unknown) => [], { fetch: () => new Response() });
    expect(() => kindOf(both, "auto", 'export "default" of /srv/app.ts')).toThrow(
      'app_kind = "auto" cannot tell what export "default" of /srv/app.ts is',
    );
    expect(() => kindOf({ handler: 1 }, "auto", "export x")).toThrow("export x is an object without a fetch method");
  });

  test('app_kind = "wsgi" over a fetch app says it is one, not "an object without a fetch method", and what to set', () => {
    expect(() => kindOf(hono, "wsgi", "export y")).toThrow(
      'app_kind = "wsgi": export y is a fetch app (an object with a fetch method), not a function (environ, startResponse); set app_kind = "fetch" or "auto"',
    );
    expect(() => kindOf({ handler: 1 }, "wsgi", "export z")).toThrow(
      'app_kind = "wsgi": export z is an object without a fetch method, not a function (environ, startResponse)',
    );
  });
});

describe("the binary serving a Hono app", () => {
  const site = join(dir, "site");
  const binary = join(dir, "bunwsgi");
  const embedded = join(dir, "bunwsgi-hono");
  const procs: Array<ReturnType<typeof Bun.spawn>> = [];

  async function build(args: string[]): Promise<void> {
    const p = Bun.spawn([process.execPath, "build.ts", ...args], { cwd: root, stdout: "pipe", stderr: "pipe" });
    const [code, err] = await Promise.all([p.exited, new Response(p.stderr).text()]);
    if (code !== 0) throw new Error(`build ${args.join(" ")} failed: ${err}`);
  }

  beforeAll(async () => {
    mkdirSync(site);
    // The app's own node_modules, beside it, as a deployment has them.
    symlinkSync(join(root, "node_modules"), join(site, "node_modules"));
    writeFileSync(
      join(site, "server.ts"),
      `import { Hono } from "hono";
const app = new Hono();
app.get("/", (c) => c.text("hono in the binary"));
app.get("/json/:id", (c) => c.json({ id: c.req.param("id") }));
export default app;
`,
    );
    writeFileSync(join(site, "bunwsgi.toml"), 'app = "server.ts"\nbind = "127.0.0.1:0"\n[timeouts]\nshutdown = 2\n');
    await Promise.all([build(["--outfile", binary]), build(["--outfile", embedded, "--app", join(site, "server.ts")])]);
  }, 120_000);

  afterAll(() => {
    for (const p of procs) if (p.exitCode === null) p.kill("SIGKILL");
  });

  async function portOf(p: ReturnType<typeof Bun.spawn>): Promise<{ port: number; log: string }> {
    let log = "";
    const decoder = new TextDecoder();
    const reader = (p.stderr as ReadableStream<Uint8Array>).getReader();
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      const m = log.match(/listening on http:\/\/127\.0\.0\.1:(\d+)/);
      if (m) {
        reader.releaseLock();
        return { port: Number(m[1]), log };
      }
      const { value, done } = await reader.read();
      if (done) break;
      log += decoder.decode(value, { stream: true });
    }
    throw new Error(`the binary did not start:\n${log}`);
  }

  test("check says what it decided and why", async () => {
    const p = Bun.spawn([binary, "check"], { cwd: site, stdout: "pipe", stderr: "pipe" });
    const [code, out] = await Promise.all([p.exited, new Response(p.stdout).text()]);
    expect(code).toBe(0);
    expect(out).toContain(`# app: ${join(site, "server.ts")} is a fetch app (auto: the export is an object with a fetch method)`);
  });

  test("served from a config file, then stopped gracefully", async () => {
    const p = Bun.spawn([binary], { cwd: site, stdout: "ignore", stderr: "pipe" });
    procs.push(p);
    const { port, log } = await portOf(p);
    expect(log).toContain("a fetch app");
    expect(await curl(`http://127.0.0.1:${port}/`)).toBe("hono in the binary");
    expect(await curl(`http://127.0.0.1:${port}/json/9`)).toBe('{"id":"9"}');
    p.kill("SIGTERM");
    expect(await p.exited).toBe(0);
  }, 20_000);

  test("embedded with build.ts --app, alone in an empty folder", async () => {
    const lonely = join(dir, "lonely");
    mkdirSync(lonely);
    const p = Bun.spawn([embedded, "--bind", "127.0.0.1:0"], { cwd: lonely, stdout: "ignore", stderr: "pipe" });
    procs.push(p);
    const { port } = await portOf(p);
    expect(await curl(`http://127.0.0.1:${port}/json/3`)).toBe('{"id":"3"}');
    p.kill("SIGTERM");
    expect(await p.exited).toBe(0);
  }, 20_000);

  test("SIGHUP re-imports the app; a change of kind is refused and the running app keeps serving", async () => {
    const live = join(dir, "live");
    mkdirSync(live);
    symlinkSync(join(root, "node_modules"), join(live, "node_modules"));
    const version = (v: string): string =>
      `import { Hono } from "hono";\nexport default new Hono().get("/", (c) => c.text("${v}"));\n`;
    writeFileSync(join(live, "server.ts"), version("v1"));
    writeFileSync(join(live, "bunwsgi.toml"), 'app = "server.ts"\nbind = "127.0.0.1:0"\n');
    const p = Bun.spawn([binary], { cwd: live, stdout: "ignore", stderr: "pipe" });
    procs.push(p);
    const { port, log } = await portOf(p);
    let stderr = log;
    void (async () => {
      for await (const chunk of p.stderr as ReadableStream<Uint8Array>) stderr += new TextDecoder().decode(chunk);
    })();
    expect(await curl(`http://127.0.0.1:${port}/`)).toBe("v1");
    writeFileSync(join(live, "server.ts"), version("v2"));
    p.kill("SIGHUP");
    await waitFor(() => stderr.includes("SIGHUP: reloaded"), 10_000);
    expect(await curl(`http://127.0.0.1:${port}/`)).toBe("v2");
    writeFileSync(join(live, "server.ts"), 'export default (e, sr) => { sr("200 OK", []); return ["wsgi"]; };\n');
    p.kill("SIGHUP");
    await waitFor(() => stderr.includes("restart to change the kind"), 10_000);
    expect(stderr).toContain("is now a wsgi app");
    expect(await curl(`http://127.0.0.1:${port}/`)).toBe("v2");
    p.kill("SIGTERM");
    expect(await p.exited).toBe(0);
  }, 30_000);

  test("each WSGI-only setting with a fetch app is refused, naming where it was set", async () => {
    const argv = [binary, "check", "--root-path", "/api", "--environ", "A=1"];
    const p = Bun.spawn(argv, { cwd: site, stdout: "pipe", stderr: "pipe" });
    const [code, err] = await Promise.all([p.exited, new Response(p.stderr).text()]);
    expect(code).toBe(2);
    const why = `has no effect without a WSGI app: ${join(site, "server.ts")} is a fetch app (auto: the export is an object with a fetch method)`;
    expect(err).toBe(`bunwsgi: configuration is invalid:\n  --root-path: root_path: ${why}\n  --environ: environ: ${why}\n`);
  });
});

describe("a fetch app's request body read whole (arrayBuffer, bytes, text, json), as on Bun.serve", () => {
  /** What an app sees of its body, by path: every answer a JSON value, errors by name. */
  const reads = async (request: Request): Promise<Response> => {
    const path = new URL(request.url).pathname;
    const name = (e: unknown): string => (e instanceof Error ? e.name : String(e));
    const settle = async (p: Promise<unknown>): Promise<unknown> =>
      p.then(
        (v) => ({ ok: v }),
        (e) => ({ error: name(e) }),
      );
    const described = (v: unknown): unknown =>
      v instanceof ArrayBuffer
        ? { ArrayBuffer: [...new Uint8Array(v)] }
        : v instanceof Uint8Array
          ? { [v.constructor.name]: [...v], own: v.byteOffset === 0 && v.byteLength === v.buffer.byteLength }
          : v;
    let out: unknown;
    if (path === "/straight") {
      // On bunwsgi the body is read straight from the connection, not through its stream.
      const body = request instanceof IncomingRequest ? await IncomingRequest.wholeBody(request) : await request.bytes();
      out = body === null ? null : [...body];
    } else if (path === "/twice") {
      const first = await settle(request.text());
      out = { first, used: request.bodyUsed, second: await settle(request.text()), stream: request.body?.locked };
    } else if (path === "/both-at-once") {
      out = await Promise.all([settle(request.arrayBuffer()), settle(request.text())]);
    } else if (path === "/clone") {
      const copy = request.clone();
      out = [await settle(request.text()), await settle(copy.text()), request.bodyUsed, copy.bodyUsed];
    } else if (path === "/reader-then-text") {
      const reader = (request.body as ReadableStream<Uint8Array>).getReader();
      const first = await reader.read();
      reader.releaseLock();
      out = { first: first.done, rest: await settle(request.text()) };
    } else {
      const method = path.slice(1) as "arrayBuffer" | "bytes" | "text" | "json";
      const r = await settle(request[method]());
      out = { r: "ok" in (r as object) ? { ok: described((r as { ok: unknown }).ok) } : r, used: request.bodyUsed };
    }
    return Response.json(out);
  };
  let ours: ReturnType<typeof serveFetch>;
  let bun: ReturnType<typeof Bun.serve>;
  beforeAll(() => {
    ours = serveFetch(reads);
    bun = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: reads });
  });
  afterAll(() => {
    ours.server.close();
    bun.stop(true);
  });

  const utf8 = new TextEncoder();
  const cases: Array<[string, string, Uint8Array | string, boolean]> = [
    ["arrayBuffer of a sized body", "/arrayBuffer", new Uint8Array([0, 1, 2, 255, 254]), false],
    ["arrayBuffer of a chunked body", "/arrayBuffer", new Uint8Array([9, 8, 7]), true],
    ["bytes of a sized body", "/bytes", new Uint8Array([1, 2, 3, 4]), false],
    ["bytes of a chunked body", "/bytes", new Uint8Array([5, 6]), true],
    [
      "text: the BOM removed, malformed UTF-8 replaced",
      "/text",
      new Uint8Array([0xef, 0xbb, 0xbf, 0x68, 0xc3, 0xa9, 0xff, 0x21]),
      false,
    ],
    ["json of a chunked body", "/json", '{"a":[1,2],"b":"é"}', true],
    ["json that does not parse: SyntaxError", "/json", "{nope", false],
    ["a second read after text(): the body is used, the read rejects", "/twice", "once", false],
    ["two reads at once: one body, the other rejects", "/both-at-once", "once", true],
    ["clone() then text() on both: the body twice", "/clone", "twice", false],
    ["a read of the stream, then text(): the body is used, text() rejects", "/reader-then-text", "streamed", false],
    ["a chunked body read whole, not through the stream", "/straight", new Uint8Array([3, 1, 4]), true],
  ];
  for (const [what, path, body, chunked] of cases) {
    test(`${what}: the same as Bun.serve`, async () => {
      const bytes = typeof body === "string" ? utf8.encode(body) : body;
      const send = async (port: number): Promise<unknown> => {
        // A stream body makes fetch send it chunked; bytes go with their Content-Length.
        const payload = chunked
          ? new ReadableStream<Uint8Array>({
              start(c) {
                c.enqueue(bytes);
                c.close();
              },
            })
          : bytes;
        const res = await fetch(`http://127.0.0.1:${port}${path}`, {
          method: "POST",
          body: payload,
          duplex: "half",
        } as RequestInit);
        expect(res.status).toBe(200);
        return res.json();
      };
      const [mine, theirs] = [await send(ours.port), await send(bun.port as number)];
      expect(mine).toEqual(theirs);
    });
  }
});
