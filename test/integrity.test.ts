/** @module test/integrity — a body the client did not finish is never handed over as complete; errors keep their class across module graphs; refusals keep their reason. */

import { describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Application, ClientDisconnected } from "../src/index.ts";
import { RawClient, serveFetch, serverPool, waitFor } from "./helpers.ts";

const start = serverPool();
const root = join(import.meta.dir, "..");
const text = (b: Uint8Array): string => Buffer.from(b).toString("latin1");

/** Reads the body the way `how` says and records what the read did. */
const reader =
  (how: "read" | "read10" | "readline" | "iterate", seen: string[]): Application =>
  async (env, sr) => {
    const input = env["wsgi.input"];
    try {
      if (how === "read") seen.push(text(await input.read()));
      else if (how === "read10") seen.push(text(await input.read(10)));
      else if (how === "readline") seen.push(text(await input.readline()));
      else for await (const line of input) seen.push(text(line));
    } catch (e) {
      seen.push(e instanceof ClientDisconnected ? `ClientDisconnected ${e.received}/${e.expected}` : String(e));
      throw e;
    }
    sr("200 OK", []);
    return ["complete"];
  };

describe("a truncated request body (peer ends before the declared length or the last chunk)", () => {
  const cases: Array<[string, string, "read" | "read10" | "readline" | "iterate", string]> = [
    ["chunked body cut after 'thi', read(10)", "Transfer-Encoding: chunked\r\n\r\n5\r\nthi", "read10", "ClientDisconnected 3/-1"],
    ["chunked body cut inside a chunk, read()", "Transfer-Encoding: chunked\r\n\r\n5\r\nthi", "read", "ClientDisconnected 3/-1"],
    [
      "chunked body cut before the last chunk, read()",
      "Transfer-Encoding: chunked\r\n\r\n3\r\nthi\r\n",
      "read",
      "ClientDisconnected 3/-1",
    ],
    ["Content-Length 10 with 3 bytes, read()", "Content-Length: 10\r\n\r\nthi", "read", "ClientDisconnected 3/10"],
    ["Content-Length 10 with 3 bytes, read(10)", "Content-Length: 10\r\n\r\nthi", "read10", "ClientDisconnected 3/10"],
    [
      "Content-Length 10 with a line cut short, readline()",
      "Content-Length: 10\r\n\r\nthi",
      "readline",
      "ClientDisconnected 3/10",
    ],
    ["Content-Length 10, iterated by lines", "Content-Length: 10\r\n\r\nab\nthi", "iterate", "ClientDisconnected 6/10"],
  ];
  for (const [name, rest, how, expected] of cases) {
    test(`${name}: the read rejects with ClientDisconnected; a half-closed client gets 400`, async () => {
      const seen: string[] = [];
      const { port, access, errors } = start(reader(how, seen), { logFormat: "json" });
      const c = await RawClient.connect(port);
      c.send(`POST /up HTTP/1.1\r\nHost: a\r\n${rest}`);
      await Bun.sleep(30);
      c.endWrite();
      const r = await c.response();
      expect(r.status).toBe(400);
      await c.waitClosed();
      expect(seen.at(-1)).toBe(expected);
      expect(seen).not.toContain("complete");
      await waitFor(() => access.length > 0);
      const record = JSON.parse(access[0] as string);
      expect([record.status, record.reason]).toEqual([400, "client_disconnected"]);
      expect(errors.join("")).toContain("client closed its side before the request body was complete");
      expect(errors.join("")).toContain("answered 400");
    });
  }

  test("a client that resets the connection mid-body: the read rejects, the request is logged with the reason for its missing status", async () => {
    const seen: string[] = [];
    const { port, access, errors } = start(reader("read10", seen), { logFormat: "json" });
    const c = net.connect({ port, host: "127.0.0.1" });
    await new Promise<void>((resolve) => c.on("connect", resolve));
    c.write("POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nthi");
    await Bun.sleep(50);
    c.resetAndDestroy();
    await waitFor(() => access.length > 0);
    expect(seen).toEqual(["ClientDisconnected 3/10"]);
    const record = JSON.parse(access[0] as string);
    expect([record.status, record.reason]).toEqual([null, "client_disconnected"]);
    expect(errors.join("")).toContain(
      "client reset the connection before the request body was complete (received 3 of 10 bytes); no response sent",
    );
  });

  const echoes: Array<[string, () => { port: number; access: string[]; errors: string[]; server: { close(): void } }]> = [
    ["a fetch app's new Response(request.body)", () => serveFetch((request) => new Response(request.body))],
    [
      "a WSGI app yielding what it reads",
      () =>
        start((env, sr) => {
          sr("200 OK", []);
          return (async function* () {
            for (let b = await env["wsgi.input"].read(16384); b.length > 0; b = await env["wsgi.input"].read(16384)) yield b;
          })();
        }),
    ],
  ];
  for (const [kind, serve] of echoes) {
    test(`${kind}, its client half-closed mid-body: the error log says the 200 under way was cut short, not that none was sent`, async () => {
      const r = serve();
      const c = await RawClient.connect(r.port);
      c.send(`POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n${"x".repeat(50_000)}`);
      await waitFor(() => c.take().length > 0);
      c.endWrite();
      await c.waitClosed();
      await waitFor(() => r.access.length > 0 && r.errors.length > 0);
      expect(r.access[0]).toContain('" 200 ');
      const line = r.errors.join("");
      expect(line).toContain("client closed its side before the request body was complete (received 50000 of 100000 bytes)");
      expect(line).toMatch(/the 200 response was cut short after \d+ body bytes; connection closed/);
      expect(line).not.toContain("no response sent");
      r.server.close();
    });
  }

  test("a body that arrived whole is read whole even when the client closes right after it", async () => {
    const seen: string[] = [];
    const { port } = start(reader("read", seen));
    const c = await RawClient.connect(port);
    c.send("POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nthi\r\n1\r\ns\r\n0\r\n\r\n");
    c.endWrite();
    expect((await c.response()).body).toBe("complete");
    expect(seen).toEqual(["this"]);
  });
});

describe("rejection reasons reach the access log", () => {
  const cases: Array<[string, string, number, string]> = [
    ["bare CR", "GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n", 400, "bare_cr"],
    ["missing Host", "GET / HTTP/1.1\r\nX: y\r\n\r\n", 400, "missing_host"],
    [
      "both Content-Length and chunked",
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
      400,
      "cl_and_te",
    ],
    ["malformed chunk size", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400, "bad_chunk_size"],
    ["Content-Length over the limit", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999\r\n\r\n", 413, "body_too_large"],
  ];
  for (const [name, request, status, reason] of cases) {
    test(`${name}: ${status} with reason ${reason} in the json record and the {reason} field`, async () => {
      const json = start(reader("read", []), { logFormat: "json", limits: { maxBodySize: 1000 } });
      const tmpl = start(reader("read", []), { logFormat: "{status} {reason}", limits: { maxBodySize: 1000 } });
      for (const { port } of [json, tmpl]) {
        const c = await RawClient.connect(port);
        c.send(request);
        expect((await c.response()).status).toBe(status);
        c.close();
      }
      await waitFor(() => json.access.length > 0 && tmpl.access.length > 0);
      expect(JSON.parse(json.access[0] as string).reason).toBe(reason);
      expect(tmpl.access[0]).toBe(`${status} ${reason}\n`);
    });
  }

  test("an ordinary request has no reason: null in json, - in a template", async () => {
    const json = start(
      (_e, sr) => {
        sr("200 OK", []);
        return ["ok"];
      },
      { logFormat: "json" },
    );
    const c = await RawClient.connect(json.port);
    c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    await c.response();
    c.close();
    await waitFor(() => json.access.length > 0);
    expect(JSON.parse(json.access[0] as string).reason).toBeNull();
  });
});

test("at log level debug, the error log says why each refused request was refused", async () => {
  const debug = start(reader("read", []), { logLevel: 10 });
  const info = start(reader("read", []));
  for (const { port } of [debug, info]) {
    const c = await RawClient.connect(port);
    c.send("GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n");
    expect((await c.response()).status).toBe(400);
    c.close();
  }
  await waitFor(() => debug.errors.length > 0);
  expect(debug.errors.join("")).toMatch(
    /refused "GET \/ HTTP\/1\.1" from 127\.0\.0\.1:\d+: 400 bare CR in request head \(bare_cr\)/,
  );
  expect(info.errors.join("")).toBe("");
});

describe("bunwsgi's errors thrown by an app in another module graph", () => {
  test("an app loaded by the CLI that throws HTTPError(413) gets 413, not a 500 with a stack", async () => {
    const dir = mkdtempSync(join(tmpdir(), "bunwsgi-brand-"));
    try {
      writeFileSync(
        join(dir, "app.ts"),
        `import { HTTPError } from ${JSON.stringify(join(root, "src", "index.ts"))};
export default () => { throw new HTTPError(413, "upload too big for this route"); };\n`,
      );
      const p = Bun.spawn([process.execPath, join(root, "src", "cli.ts"), "app.ts", "--bind", "127.0.0.1:0"], {
        cwd: dir,
        stdout: "pipe",
        stderr: "pipe",
      });
      let stderr = "";
      const decoder = new TextDecoder();
      const reading = (async () => {
        for await (const chunk of p.stderr) stderr += decoder.decode(chunk);
      })();
      try {
        await waitFor(() => /listening on http:\/\/127\.0\.0\.1:\d+/.test(stderr), 10000);
        const port = Number((stderr.match(/listening on http:\/\/127\.0\.0\.1:(\d+)/) as RegExpMatchArray)[1]);
        const res = await fetch(`http://127.0.0.1:${port}/`);
        expect(res.status).toBe(413);
        await res.text();
        await Bun.sleep(50);
        expect(stderr).not.toContain("Error handling");
      } finally {
        p.kill("SIGTERM");
        await p.exited;
        await reading;
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("the strictness classes on the wire: exact bytes in, a precise status and a closed connection out", () => {
  const cases: Array<[string, string, number, string]> = [
    [
      "whitespace after a chunk size (RFC 9112 §7.1)",
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n",
      400,
      "ws_after_chunk_size",
    ],
    [
      "a tab after a chunk size",
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\t\r\nhello\r\n0\r\n\r\n",
      400,
      "ws_after_chunk_size",
    ],
    ["a Host with a non-numeric port", "GET / HTTP/1.1\r\nHost: a.example:x\r\n\r\n", 400, "bad_host"],
    ["a Host with two ports", "GET / HTTP/1.1\r\nHost: a.example:80:80\r\n\r\n", 400, "bad_host"],
    ["an IPv6 Host without brackets", "GET / HTTP/1.1\r\nHost: ::1\r\n\r\n", 400, "bad_host"],
    ["an unclosed IP-literal", "GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", 400, "bad_host"],
    ["a Host that is a list", "GET / HTTP/1.1\r\nHost: a.example,b.example\r\n\r\n", 400, "bad_host"],
    ["CONNECT with an origin-form target", "CONNECT / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "target_form"],
    ["CONNECT without a port", "CONNECT a.example HTTP/1.1\r\nHost: a\r\n\r\n", 400, "bad_authority"],
    ["an authority-form target on GET", "GET a.example:80 HTTP/1.1\r\nHost: a\r\n\r\n", 400, "target_form"],
    ["asterisk-form on GET", "GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400, "target_form"],
    ["userinfo in an absolute-form target", "GET http://u@a.example/ HTTP/1.1\r\nHost: a\r\n\r\n", 400, "target_userinfo"],
  ];
  for (const [name, request, status, reason] of cases) {
    test(`${name}: ${status} (${reason})`, async () => {
      const { port, access } = start(reader("read", []), { logFormat: "{status} {reason}" });
      const c = await RawClient.connect(port);
      c.send(request);
      const r = await c.response();
      expect(r.status).toBe(status);
      expect(r.header("connection")).toBe("close");
      await c.waitClosed();
      await waitFor(() => access.length > 0);
      expect(access[0]).toBe(`${status} ${reason}\n`);
    });
  }

  test("valid forms keep working: leading zeros in a chunk size, port-less and IPv6 Hosts, OPTIONS *", async () => {
    const { port } = start(reader("read", []));
    const c = await RawClient.connect(port);
    c.send(
      "POST / HTTP/1.1\r\nHost: a.example:\r\nTransfer-Encoding: chunked\r\n\r\n0000000000000000000005\r\nhello\r\n0\r\n\r\n",
    );
    expect((await c.response()).status).toBe(200);
    c.send("POST / HTTP/1.1\r\nHost: [::1]:80\r\nContent-Length: 0\r\n\r\n");
    expect((await c.response()).status).toBe(200);
    c.send("OPTIONS * HTTP/1.1\r\nHost: 127.0.0.1:80\r\nContent-Length: 0\r\n\r\n");
    expect((await c.response()).status).toBe(200);
    c.close();
  });
});
