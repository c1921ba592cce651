/** @module test/results — an app's result is ended exactly once (return(), close()) and its request logged, on every path: HEAD, client gone, error, stop. */

import { describe, expect, test } from "bun:test";
import type { Application } from "../src/index.ts";
import { RawClient, serve, serverPool, waitFor } from "./helpers.ts";

const start = serverPool();

/** An endless stream of events, 20 ms apart, that counts what it produced and how it ended. */
function endless(events: string[]): Application {
  return (env, sr) => {
    sr("200 OK", [["Content-Type", "text/event-stream"]]);
    let produced = 0;
    const gen = (async function* () {
      try {
        for (;;) {
          yield `data: ${produced++}\n\n`;
          await Bun.sleep(20);
        }
      } finally {
        events.push(`finally ${env.REQUEST_METHOD}`);
      }
    })();
    return Object.assign(gen, {
      close: () => events.push(`close ${env.REQUEST_METHOD} after ${produced}`),
    });
  };
}

describe("HEAD on a streamed response", () => {
  test("the stream is abandoned once the head is out: finally and close() run once, the request is logged, the next request is answered", async () => {
    const events: string[] = [];
    const { port, access } = start((env, sr) => {
      if (env.PATH_INFO === "/next") {
        sr("200 OK", []);
        return ["next"];
      }
      return endless(events)(env, sr);
    });
    const c = await RawClient.connect(port);
    c.send("HEAD /events HTTP/1.1\r\nHost: a\r\n\r\nGET /next HTTP/1.1\r\nHost: a\r\n\r\n");
    const head = await c.response({ head: true });
    expect(head.status).toBe(200);
    expect(head.header("transfer-encoding")).toBeUndefined();
    const next = await c.response({ ms: 1000 });
    expect(next.body).toBe("next");
    expect(events).toEqual(["finally HEAD", "close HEAD after 1"]);
    await waitFor(() => access.length === 2);
    expect(access[0]).toContain('"HEAD /events HTTP/1.1" 200');
    c.close();
  });

  test("a synchronous generator is abandoned the same way", async () => {
    const events: string[] = [];
    const { port } = start((_env, sr) => {
      sr("200 OK", []);
      return (function* () {
        try {
          for (let i = 0; i < 1_000_000; i++) yield `${i}`;
        } finally {
          events.push("finally");
        }
      })();
    });
    const c = await RawClient.connect(port);
    c.send("HEAD / HTTP/1.1\r\nHost: a\r\n\r\n");
    expect((await c.response({ head: true })).status).toBe(200);
    await waitFor(() => events.length > 0);
    expect(events).toEqual(["finally"]);
    c.close();
  });
});

describe("empty chunks (PEP 3333: middleware yields one while it has nothing to send)", () => {
  /** Middleware that yields "" until the app it wraps has produced something, as PEP 3333's buffering section has it. */
  const lazy =
    (emptyFirst: string | Uint8Array, async: boolean): Application =>
    (_env, sr) => {
      function* sync() {
        yield emptyFirst;
        sr("200 OK", [["Content-Type", "text/plain"]]);
        yield "";
        yield "ab";
        yield new Uint8Array(0);
        yield "c";
      }
      async function* later() {
        yield* sync();
      }
      return async ? later() : sync();
    };

  for (const [name, empty, async] of [
    ["a synchronous generator's empty string", "", false],
    ["an async generator's empty bytes", new Uint8Array(0), true],
  ] as const) {
    test(`${name} before startResponse sends nothing; the head goes out with the first non-empty chunk`, async () => {
      const { port, errors } = start(lazy(empty, async));
      const c = await RawClient.connect(port);
      c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
      const r = await c.response();
      expect(r.status).toBe(200);
      // No zero-length chunk, which would end the body early: "0\r\n\r\n" only once, at the end.
      expect(r.raw.slice(r.raw.indexOf("\r\n\r\n") + 4)).toBe("2\r\nab\r\n1\r\nc\r\n0\r\n\r\n");
      expect(errors).toEqual([]);
      c.close();
    });
  }
});

describe("a stream whose client goes away", () => {
  test("stops at once: finally and close() run exactly once, and the request is logged with what was sent", async () => {
    const events: string[] = [];
    const { port, access } = start(endless(events));
    const c = await RawClient.connect(port);
    c.send("GET /events HTTP/1.1\r\nHost: a\r\n\r\n");
    await c.response({ head: true });
    await Bun.sleep(100);
    c.close();
    await waitFor(() => access.length === 1);
    expect(events.filter((e) => e.startsWith("finally"))).toEqual(["finally GET"]);
    expect(events.filter((e) => e.startsWith("close"))).toHaveLength(1);
    expect(access[0]).toMatch(/"GET \/events HTTP\/1\.1" 200 \d+/);
  });

  test("an app error mid-stream closes the result once and logs the request", async () => {
    const events: string[] = [];
    const { port, access, errors } = start((_env, sr) => {
      sr("200 OK", []);
      const gen = (function* () {
        try {
          yield "one";
          throw new Error("boom");
        } finally {
          events.push("finally");
        }
      })();
      return Object.assign(gen, { close: () => events.push("close") });
    });
    const c = await RawClient.connect(port);
    c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    await c.waitClosed();
    await waitFor(() => access.length === 1);
    expect(events).toEqual(["finally", "close"]);
    expect(errors.join("")).toContain("boom");
  });
});

describe("a stream cut by a stop", () => {
  test("at the shutdown deadline: finally and close() run once and the request is logged before stop() resolves", async () => {
    const events: string[] = [];
    const r = serve(endless(events));
    const c = await RawClient.connect(r.port);
    c.send("GET /events HTTP/1.1\r\nHost: a\r\n\r\n");
    await c.response({ head: true });
    await r.server.stop(0.3);
    expect(events.filter((e) => e.startsWith("finally"))).toEqual(["finally GET"]);
    expect(events.filter((e) => e.startsWith("close"))).toHaveLength(1);
    expect(r.access).toHaveLength(1);
    expect(r.access[0]).toMatch(/"GET \/events HTTP\/1\.1" 200 \d+/);
    await c.waitClosed();
  });

  test("an app that never settles is still logged, as abandoned, when the stop gives up on it", async () => {
    const r = serve(() => new Promise<never>(() => {}));
    const c = await RawClient.connect(r.port);
    c.send("GET /stuck HTTP/1.1\r\nHost: a\r\n\r\n");
    await Bun.sleep(50);
    await r.server.stop(0.2);
    expect(r.access).toHaveLength(1);
    expect(r.access[0]).toContain('"GET /stuck HTTP/1.1" 000');
    expect(r.errors.join("")).toContain("GET /stuck HTTP/1.1 from 127.0.0.1:");
    expect(r.errors.join("")).toContain("abandoned at stop");
    await c.waitClosed();
  });
});

describe("an answer that comes after its request is over", () => {
  // Run in a process of its own: an unhandled rejection is the process's failure, which is what is checked.
  const script = (kind: "wsgi" | "fetch"): string => `
    import { FetchServer, WSGIServer } from ${JSON.stringify(`${import.meta.dir}/../src/index.ts`)};
    process.on("unhandledRejection", (e) => { console.log("UNHANDLED " + e); process.exit(3); });
    const late = (ms) => new Promise((r) => setTimeout(r, ms));
    const server = ${
      kind === "wsgi"
        ? `new WSGIServer("127.0.0.1:0", async (env, sr) => { await late(Number(env.QUERY_STRING)); sr("200 OK", []); return ["late", "answer"]; }, { log: null, errorLog: null, timeouts: { app: 1 } })`
        : `new FetchServer("127.0.0.1:0", async (req) => { await late(Number(new URL(req.url).search.slice(1))); return new Response("late answer"); }, { log: null, errorLog: null, timeouts: { app: 1 } })`
    };
    server.start();
    // Cut before the app answers.
    const c = await Bun.connect({ hostname: "127.0.0.1", port: server.serverPort, socket: { data() {} } });
    c.write("GET /?300 HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n");
    await late(50);
    c.terminate();
    // Out of time before the app answers: 503, then the app's answer comes.
    const res = await fetch("http://127.0.0.1:" + server.serverPort + "/?2500");
    await late(1000);
    console.log("status " + res.status);
    server.close();
  `;
  for (const kind of ["wsgi", "fetch"] as const) {
    test(`${kind}: after a cut or a timeouts.app 503, the app's answer is dropped without an unhandled rejection`, async () => {
      const file = `${import.meta.dir}/.late-${kind}-${process.pid}.ts`;
      await Bun.write(file, script(kind));
      try {
        const p = Bun.spawn([process.execPath, file], { stdout: "pipe", stderr: "pipe" });
        const out = await new Response(p.stdout).text();
        expect(out.trim()).toBe("status 503");
        expect(await p.exited).toBe(0);
      } finally {
        await Bun.file(file).delete();
      }
    }, 15_000);
  }
});

describe("a large chunk the kernel does not take at once", () => {
  const size = 4 * 1024 * 1024;
  for (const [name, headers, framing] of [
    [
      "is sent as it was when write() returned, though the app reuses its buffer at once",
      [["Content-Length", String(size)]],
      undefined,
    ],
    // Chunked: the size line, the bytes and the CRLF go in one writev(2); the kernel's partial take goes on through the queue.
    ["nor a chunked one: sent whole as it was, its framing intact", [], "chunked"],
  ] as const) {
    test(name, async () => {
      const r = start(async (_env, sr) => {
        const write = sr(
          "200 OK",
          headers.map(([k, v]) => [k, v]),
        );
        // Past the read callback: a chunk this large goes to the socket from the app's buffer.
        await Bun.sleep(5);
        const buf = new Uint8Array(size).fill(49);
        void write(buf);
        buf.fill(50);
        return [];
      });
      const c = await RawClient.connect(r.port);
      c.pauseReading();
      c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
      await Bun.sleep(200);
      c.resumeReading();
      const res = await c.response({ ms: 10_000 });
      expect(res.header("transfer-encoding")).toBe(framing);
      expect(res.body.length).toBe(size);
      expect(res.body.includes("2")).toBe(false);
      c.close();
    }, 20_000);
  }

  test("a stream of 64 KiB chunks to a client that reads late arrives whole, in order, every chunk framed", async () => {
    const chunks = 128;
    const r = start((_env, sr) => {
      sr("200 OK", [["Content-Type", "application/octet-stream"]]);
      return (async function* () {
        for (let i = 0; i < chunks; i++) {
          await Bun.sleep(0);
          yield new Uint8Array(64 * 1024).fill(65 + (i % 26));
        }
      })();
    });
    const c = await RawClient.connect(r.port);
    c.pauseReading();
    c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n");
    await Bun.sleep(300);
    c.resumeReading();
    for (let n = 0; n < 2; n++) {
      const res = await c.response({ ms: 15_000 });
      expect(res.body.length).toBe(chunks * 64 * 1024);
      for (let i = 0; i < chunks; i++)
        expect(res.body.slice(i * 65536, (i + 1) * 65536)).toBe(String.fromCharCode(65 + (i % 26)).repeat(65536));
    }
    c.close();
  }, 30_000);
});

describe("a streamed part sent with MSG_MORE (more of the body follows)", () => {
  // 20,000 bytes: over the 16 KiB that go from the app's buffer, under one loopback segment
  // (65,483 bytes), so each send is a partial segment the kernel would hold. Unpushed, it
  // leaves only on TCP's probe timer (200 ms or more).
  const part = 20_000;
  const parts = 3;
  for (const [framing, headers, frame, last] of [
    ["chunked", [], "4e20\r\n", "\r\n0\r\n\r\n"],
    ["sized", [["Content-Length", String(part * parts)]], "", ""],
  ] as const) {
    test(`is not held back while the app waits before its next part (${framing}): each part arrives before the next is made`, async () => {
      let made = 0;
      let waiting = -1;
      let next = (): void => {};
      const r = start((_env, sr) => {
        sr(
          "200 OK",
          headers.map(([k, v]) => [k, v]),
        );
        return (async function* () {
          for (let i = 0; i < parts; i++) {
            // The next part is made only once the client has the one before it.
            await new Promise<void>((resolve) => {
              next = resolve;
              waiting = i;
            });
            made++;
            yield new Uint8Array(part).fill(97 + i);
          }
        })();
      });
      const c = await RawClient.connect(r.port);
      c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
      let got = "";
      const waited: number[] = [];
      for (let i = 0; i < parts; i++) {
        await waitFor(() => waiting === i);
        const t = performance.now();
        next();
        const whole = `${frame}${String.fromCharCode(97 + i).repeat(part)}`;
        await waitFor(() => {
          got += c.take();
          return got.includes(whole);
        });
        waited.push(performance.now() - t);
      }
      await waitFor(() => {
        got += c.take();
        return got.endsWith(`${"c".repeat(part)}${last}`);
      });
      expect(made).toBe(parts);
      expect(Math.max(...waited)).toBeLessThan(150);
      c.close();
    });
  }
});
