/** @module test/deadlines — every connection state has a deadline, slow is not stalled: upgraded idle, minimum body and response rates, the app deadline, and deadlines that never fire early. */

import { describe, expect, test } from "bun:test";
import { rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import type { Application, Input } from "../src/index.ts";
import { pacedReader, RawClient, serverPool } from "./helpers.ts";

const start = serverPool();

async function waitFor(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("timed out");
    await Bun.sleep(10);
  }
}

const echoUpgrade =
  (extend: number | null): Application =>
  async (env, sr) => {
    if (extend !== null) env["bunwsgi.set_timeout"]("upgraded", extend);
    const raw = env["bunwsgi.raw_input"] as Input;
    sr("101 Switching Protocols", [["Upgrade", "echo"]]);
    return (async function* () {
      for (;;) {
        const b = await raw.read(1);
        if (b.length === 0) return;
        yield b;
      }
    })();
  };

describe("an upgraded connection's idle deadline (timeouts.upgraded)", () => {
  test("a silent upgraded connection is closed after timeouts.upgraded, and the error log says so", async () => {
    const { port, errors } = start(echoUpgrade(null), { timeouts: { upgraded: 1 } });
    const c = await RawClient.connect(port);
    c.send("GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: echo\r\n\r\n");
    expect((await c.response({ head: true })).status).toBe(101);
    const began = Date.now();
    c.send("x");
    expect(await c.readRaw(1)).toBe("x");
    await c.waitClosed(4000);
    const idle = Date.now() - began;
    expect(idle).toBeGreaterThanOrEqual(1000);
    expect(idle).toBeLessThan(3200);
    expect(errors.join("")).toContain("closing upgraded connection from 127.0.0.1:");
  });

  test("bytes either way keep it open, and the app may give it longer with bunwsgi.set_timeout", async () => {
    const { port } = start(echoUpgrade(3), { timeouts: { upgraded: 1 } });
    const c = await RawClient.connect(port);
    c.send("GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: echo\r\n\r\n");
    expect((await c.response({ head: true })).status).toBe(101);
    await Bun.sleep(2100);
    expect(c.closed).toBe(false);
    c.send("y");
    expect(await c.readRaw(1)).toBe("y");
    c.close();
  });
});

describe("a minimum request-body rate (limits.min_body_rate)", () => {
  const reader: Application = async (env, sr) => {
    const body = await env["wsgi.input"].read();
    sr("200 OK", []);
    return [`got ${body.length}`];
  };
  const options = { limits: { minBodyRate: 200 }, timeouts: { minBodyRateGrace: 1, body: 30 } };

  test("a body trickled at a byte every 300 ms gets 408 once the grace is over, reason body_too_slow", async () => {
    const { port, access } = start(reader, { ...options, logFormat: "{status} {reason}" });
    const c = await RawClient.connect(port);
    c.send("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\n");
    const began = Date.now();
    let sent = 0;
    while (!c.closed && sent < 30) {
      c.send("x");
      sent++;
      await Bun.sleep(300);
      if (c.take().includes(" 408 ")) break;
    }
    await c.waitClosed();
    expect(Date.now() - began).toBeLessThan(5000);
    await waitFor(() => access.length > 0);
    expect(access[0]).toBe("408 body_too_slow\n");
  });

  test("a slow but steady body (about 2 KB/s) completes", async () => {
    const { port } = start(reader, options);
    const c = await RawClient.connect(port);
    c.send("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6000\r\n\r\n");
    for (let i = 0; i < 30; i++) {
      c.send("y".repeat(200));
      await Bun.sleep(100);
    }
    const r = await c.response();
    expect(r.status).toBe(200);
    expect(r.body).toBe("got 6000");
    c.close();
  });
});

describe("slow readers of a response: progress, not drain events (timeouts.write, limits.min_response_rate)", () => {
  const stream: Application = (_env, sr) => {
    sr("200 OK", [["Content-Type", "application/octet-stream"]]);
    const chunk = new Uint8Array(64 * 1024).fill(97);
    return (async function* () {
      for (let i = 0; i < 1024; i++) yield chunk;
    })();
  };

  test("a steady reader at ~160 KiB/s is never cut by a 1 s write timeout", async () => {
    const { port, errors } = start(stream, {
      timeouts: { write: 1, minResponseRateGrace: 1 },
      limits: { minResponseRate: 1000 },
    });
    const r = await pacedReader(port, "/stream", 16384, 0.1, 4);
    expect(r.closed).toBe(false);
    expect(r.got).toBeGreaterThan(400_000);
    expect(errors.join("")).toBe("");
  }, 10_000);

  test("a reader faster than limits.min_response_rate is never cut: every byte the kernel takes counts, written at once or from the queue", async () => {
    const { port, errors } = start(stream, {
      timeouts: { write: 30, minResponseRateGrace: 1 },
      limits: { minResponseRate: 1_000_000 },
    });
    // 64 KiB every 20 ms through a 128 KiB receive buffer: 2.3–3.2 MB/s here, against 1 MB/s.
    // Much of it leaves straight from the app's chunks, between ticks at which the queue holds
    // the rest: counting only the queue's bytes made this reader look slower than 1 MB/s.
    const r = await pacedReader(port, "/stream", 65536, 0.02, 4, 131072);
    expect(errors.join("")).toBe("");
    expect(r.closed).toBe(false);
    expect(r.got).toBeGreaterThan(4_000_000);
  }, 10_000);

  test("a client on the same host reading at 4× limits.min_response_rate is never cut, though its kernel takes bytes in 46.5 KiB steps", async () => {
    const { port, errors } = start(stream, {
      timeouts: { write: 30, minResponseRateGrace: 1 },
      limits: { minResponseRate: 4096 },
    });
    // 16 KiB/s with the kernel's default receive buffer: the server's socket takes nothing for
    // ~3 s at a time, then ~46.5 KiB at once. Judged over a window of seconds, it was cut at ~2 s.
    const r = await pacedReader(port, "/stream", 4096, 0.25, 8, 0);
    expect(r.closed).toBe(false);
    expect(r.got).toBeGreaterThan(100_000);
    expect(errors.join("")).toBe("");
  }, 15_000);

  test("a reader slower than limits.min_response_rate is cut once its grace is over", async () => {
    const { port, errors } = start(stream, {
      timeouts: { write: 30, minResponseRateGrace: 1 },
      limits: { minResponseRate: 100_000 },
    });
    // The client's kernel still holds bytes sent before the cut, so it is the server that tells.
    await pacedReader(port, "/stream", 1024, 0.2, 4);
    expect(errors.join("")).toContain("reading the response slower than 100000 bytes/s");
  }, 10_000);

  test("a reader that stops reading is cut after timeouts.write", async () => {
    const { port, errors } = start(stream, { timeouts: { write: 1 }, limits: { minResponseRate: 0 } });
    const c = await RawClient.connect(port);
    c.pauseReading();
    c.send("GET /stream HTTP/1.1\r\nHost: a\r\n\r\n");
    await waitFor(() => errors.join("").includes("no response bytes accepted for 1s"), 6000);
    c.close();
  });
});

describe("the app deadline (timeouts.app)", () => {
  test("an app that produces nothing in time gets 503, its result closed, and an error-log line naming the request", async () => {
    let closed = false;
    const { port, errors, access } = start(
      (_env, sr) => {
        return (async function* () {
          try {
            await Bun.sleep(60_000);
            sr("200 OK", []);
            yield "late";
          } finally {
            closed = true;
          }
        })();
      },
      { timeouts: { app: 1 }, logFormat: "{status} {reason}" },
    );
    const c = await RawClient.connect(port);
    const began = Date.now();
    c.send("GET /slow HTTP/1.1\r\nHost: a\r\n\r\n");
    const r = await c.response({ ms: 4000 });
    expect(r.status).toBe(503);
    expect(Date.now() - began).toBeGreaterThanOrEqual(1000);
    await c.waitClosed();
    expect(errors.join("")).toMatch(/GET \/slow HTTP\/1\.1 from 127\.0\.0\.1:\d+: the application did not finish within 1s/);
    await waitFor(() => access.length > 0);
    expect(access[0]).toBe("503 app_timeout\n");
    expect(closed).toBe(false); // the generator sleeps: its finally runs when it wakes (return() is queued)
  });

  test("after its head went out, the connection is cut; a stream that turns the deadline off runs on", async () => {
    const app: Application = (env, sr) => {
      if (env.PATH_INFO === "/sse") env["bunwsgi.set_timeout"]("app", 0);
      sr("200 OK", [["Content-Type", "text/event-stream"]]);
      return (async function* () {
        for (let i = 0; i < 25; i++) {
          yield `data: ${i}\n\n`;
          await Bun.sleep(100);
        }
      })();
    };
    const { port } = start(app, { timeouts: { app: 1 } });
    const cut = await RawClient.connect(port);
    cut.send("GET /cut HTTP/1.1\r\nHost: a\r\n\r\n");
    const sse = await RawClient.connect(port);
    sse.send("GET /sse HTTP/1.1\r\nHost: a\r\n\r\n");
    await cut.waitClosed(4000);
    const r = await sse.response({ ms: 6000 });
    expect(r.body).toContain("data: 24");
    sse.close();
  });
});

describe("deadlines never fire early (timeouts.header 2)", () => {
  test("a head that never completes gets 408 no sooner than 2 s and no later than a tick after", async () => {
    const { port } = start(
      (_e, sr) => {
        sr("200 OK", []);
        return [];
      },
      { timeouts: { header: 2 } },
    );
    const waits = await Promise.all(
      [0, 250, 500, 750].map(async (delay) => {
        await Bun.sleep(delay);
        const c = await RawClient.connect(port);
        const began = performance.now();
        c.send("GET / HTTP/1.1\r\nHost");
        const r = await c.response({ ms: 5000 });
        expect(r.status).toBe(408);
        return performance.now() - began;
      }),
    );
    for (const w of waits) {
      expect(w).toBeGreaterThanOrEqual(2000);
      expect(w).toBeLessThan(3300);
    }
  });
});

describe("a keep-alive connection's idle deadline counts from its response's end (timeouts.keep_alive 1)", () => {
  test("after an app that answered synchronously for 1.5 s, with no access log: closed no sooner than 1 s after the response", async () => {
    const { port } = start(
      (_e, sr) => {
        const end = performance.now() + 1500;
        while (performance.now() < end) {}
        sr("200 OK", [["Content-Length", "2"]]);
        return ["ok"];
      },
      { timeouts: { keepAlive: 1 }, log: null },
    );
    const c = await RawClient.connect(port);
    c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    expect((await c.response({ ms: 5000 })).body).toBe("ok");
    // The callback that ran the app began 1.5 s before the response ended: idle counted from its
    // start would close the connection at the next tick.
    const answered = performance.now();
    await c.waitClosed(4000);
    const idle = performance.now() - answered;
    expect(idle).toBeGreaterThanOrEqual(990);
    expect(idle).toBeLessThan(2300);
  });

  test("a request sent in time but not yet read when the deadline is checked (the event loop was busy) is answered, not reset", async () => {
    // A proxy's pooled connection (`idle` below) sends its next request 0.4 s into its 1 s idle
    // time, while another request holds the event loop for 1.5 s: the bytes wait in the kernel,
    // and the deadline is checked before the loop reads them. Closed then, the connection was
    // reset under the request (its unread bytes made close(2) send RST): a 502 at the proxy.
    let idle: RawClient | null = null;
    const { port } = start(
      (env, sr) => {
        if (env.PATH_INFO === "/busy") {
          idle?.send("GET /next HTTP/1.1\r\nHost: a\r\n\r\n");
          const end = performance.now() + 1500;
          while (performance.now() < end) {}
        }
        sr("200 OK", [["Content-Length", "2"]]);
        return ["ok"];
      },
      { timeouts: { keepAlive: 1 }, log: null },
    );
    const pooled = await RawClient.connect(port);
    pooled.send("GET /first HTTP/1.1\r\nHost: a\r\n\r\n");
    expect((await pooled.response()).body).toBe("ok");
    await Bun.sleep(400);
    idle = pooled;
    const busy = await RawClient.connect(port);
    busy.send("GET /busy HTTP/1.1\r\nHost: a\r\n\r\n");
    expect((await busy.response({ ms: 5000 })).body).toBe("ok");
    const next = await pooled.response({ ms: 3000 });
    expect(`${next.status} ${next.body}`).toBe("200 ok");
    // Then idle as usual: closed about 1 s after that response.
    await pooled.waitClosed(3000);
    busy.close();
  });
});

describe("the process-wide budget of buffered body bytes (limits.buffered_bytes)", () => {
  /** The budget is the process's: the server runs in a process of its own, so no other test's bytes share it. */
  const SERVER = `
import { budget } from ${JSON.stringify(`${import.meta.dir}/../src/engine/budget.ts`)};
import { WSGIServer } from ${JSON.stringify(`${import.meta.dir}/../src/index.ts`)};
let open = () => {};
const gate = new Promise((resolve) => (open = resolve));
const app = async (env, sr) => {
  if (env.PATH_INFO === "/budget") { sr("200 OK", []); return [String(budget.used)]; }
  if (env.PATH_INFO === "/open") { open(); sr("200 OK", []); return ["open"]; }
  await gate;
  let n = 0;
  for (;;) {
    const part = await env["wsgi.input"].read(65536);
    if (part.length === 0) break;
    n += part.length;
  }
  sr("200 OK", []);
  return [String(n)];
};
const server = new WSGIServer("127.0.0.1:0", app, {
  // Below one connection's own mark of unread input (256 KiB): the budget, not that mark, is
  // what stops the reading, whatever the read sizes (with a larger budget, connections that
  // paused at their own mark first could leave it unspent, and no 503 is due).
  limits: { bufferedBytes: 128 * 1024, minBodyRate: 0 },
  timeouts: { body: 1 },
  logFormat: "{path} {status} {reason}",
  log: { write: (line) => process.stdout.write("ACCESS " + line) },
  errorLog: null,
});
server.start();
process.stdout.write("ready " + server.serverPort + "\\n");
`;

  test("past the budget, connections stop reading instead of buffering; one left unread past timeouts.body gets 503; the budget is given back", async () => {
    const file = `${tmpdir()}/bunwsgi-budget-${process.pid}.ts`;
    writeFileSync(file, SERVER);
    const child = Bun.spawn([process.execPath, file], { stdout: "pipe", stderr: "inherit" });
    let out = "";
    const reading = (async () => {
      for await (const chunk of child.stdout) out += Buffer.from(chunk).toString();
    })();
    try {
      await waitFor(() => /ready \d+/.test(out));
      const port = Number((out.match(/ready (\d+)/) as RegExpMatchArray)[1]);
      const used = async (): Promise<number> => Number(await (await fetch(`http://127.0.0.1:${port}/budget`)).text());
      const size = 4 * 1024 * 1024;
      const clients = await Promise.all([0, 1, 2].map(() => RawClient.connect(port)));
      for (const c of clients) {
        c.send(`POST / HTTP/1.1\r\nHost: a\r\nContent-Length: ${size}\r\n\r\n`);
        void c.sendAll(new Uint8Array(size).fill(98), 10_000).catch(() => {});
      }
      await Bun.sleep(500);
      // At most the budget and the one read each connection had in hand when it was spent.
      const held = await used();
      expect(held).toBeLessThanOrEqual(128 * 1024 + 3 * 768 * 1024);
      expect(held).toBeGreaterThan(0);
      await Bun.sleep(2200);
      await fetch(`http://127.0.0.1:${port}/open`);
      const statuses = (await Promise.all(clients.map((c) => c.response({ ms: 6000 })))).map((r) => r.status).sort();
      // Each one stalled by the budget past timeouts.body is refused; one that the gate let go on
      // in time reads its whole body.
      expect(statuses).toContain(503);
      expect(statuses.every((s) => s === 200 || s === 503)).toBe(true);
      const refused = statuses.filter((s) => s === 503).length;
      await waitFor(() => (out.match(/ACCESS \/ 503 buffered_bytes/g) ?? []).length === refused);
      for (const c of clients) c.close();
      // The budget is given back: a new body is read whole.
      const after = await fetch(`http://127.0.0.1:${port}/`, { method: "POST", body: new Uint8Array(300_000) });
      expect(await after.text()).toBe("300000");
      let left = await used();
      for (let i = 0; i < 50 && left > 0; i++) {
        await Bun.sleep(50);
        left = await used();
      }
      expect(left).toBe(0);
    } finally {
      child.kill();
      await child.exited;
      await reading;
      rmSync(file, { force: true });
    }
  }, 20_000);
});
