/**
 * @module test/health — liveness and readiness probes answered by the server before the app: exact
 * bytes on raw sockets, keep-alive and pipelining around them, methods, exact-path matching, WSGI
 * and fetch apps, HTTPS, the drain before a stop, and SIGTERM with `timeouts.drain_delay` in a real
 * process, alone and with workers.
 */

import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Application } from "../src/index.ts";
import { Proc } from "./binary.ts";
import { exchange, makeCertificates, RawClient, type Running, serve, serveFetch } from "./helpers.ts";

const PROBES = { health: { live: "/livez", ready: "/readyz" } };
const dir = mkdtempSync(join(tmpdir(), "bunwsgi-health-"));
const running: Running[] = [];
const procs: Proc[] = [];
afterAll(() => {
  for (const r of running) r.server.close();
  for (const p of procs) p.kill("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
});

/** A WSGI app that counts its calls and echoes the path it was asked for. */
function counting(): { app: Application; calls: string[] } {
  const calls: string[] = [];
  const app: Application = (env, startResponse) => {
    calls.push(String(env.PATH_INFO) + (env.QUERY_STRING ? `?${env.QUERY_STRING}` : ""));
    startResponse("200 OK", [["Content-Type", "text/plain"]]);
    return [`app ${env.PATH_INFO}`];
  };
  return { app, calls };
}

function start(app: Application, options = {}): Running {
  const r = serve(app, { ...PROBES, ...options });
  running.push(r);
  return r;
}

/** A response's bytes with its Date line's value replaced, so they can be compared exactly. */
const undated = (raw: string): string =>
  raw.replace(/\r\nDate: [A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT\r\n/, "\r\nDate: D\r\n");

const OK =
  "HTTP/1.1 200 OK\r\nDate: D\r\nCache-Control: no-store\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 3\r\n\r\nok\n";
const READY =
  "HTTP/1.1 200 OK\r\nDate: D\r\nCache-Control: no-store\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 6\r\n\r\nready\n";

describe("probes on raw sockets", () => {
  test("GET of the liveness and readiness paths: exact bytes, the connection kept, the app never called, nothing logged", async () => {
    const { app, calls } = counting();
    const r = start(app);
    const c = await RawClient.connect(r.port);
    c.send("GET /livez HTTP/1.1\r\nHost: x\r\n\r\n");
    expect(undated((await c.response()).raw)).toBe(OK);
    c.send("GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n");
    expect(undated((await c.response()).raw)).toBe(READY);
    c.send("GET /after HTTP/1.1\r\nHost: x\r\n\r\n");
    expect((await c.response()).body).toBe("app /after");
    c.close();
    expect(calls).toEqual(["/after"]);
    expect(r.access.length).toBe(1);
    expect(r.access[0]).toContain("GET /after");
    // A probe is not a request for max_requests.
    expect(r.server.requests).toBe(1);
  });

  test("HEAD gets the same head without the body; HTTP/1.0 gets Connection: close, or keep-alive when it asked", async () => {
    const r = start(counting().app);
    const head = await exchange(r.port, "HEAD /readyz HTTP/1.1\r\nHost: x\r\n\r\n", { head: true });
    expect(undated(head.raw)).toBe(READY.slice(0, -"ready\n".length));
    expect(head.closed).toBe(false);
    const old = await exchange(r.port, "GET /livez HTTP/1.0\r\n\r\n");
    expect(undated(old.raw)).toBe(OK.replace("\r\n\r\n", "\r\nConnection: close\r\n\r\n"));
    expect(old.closed).toBe(true);
    const kept = await exchange(r.port, "GET /livez HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    expect(undated(kept.raw)).toBe(OK.replace("\r\n\r\n", "\r\nConnection: keep-alive\r\n\r\n"));
    expect(kept.closed).toBe(false);
    const closing = await exchange(r.port, "GET /livez HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    expect(closing.header("connection")).toBe("close");
    expect(closing.closed).toBe(true);
  });

  test("other methods get 405 with Allow: GET, HEAD; a probe with a body is answered and its connection closed unread", async () => {
    const { app, calls } = counting();
    const r = start(app);
    const post = await exchange(r.port, "POST /readyz HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello");
    expect(undated(post.raw)).toBe(
      "HTTP/1.1 405 Method Not Allowed\r\nDate: D\r\nCache-Control: no-store\r\nAllow: GET, HEAD\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 19\r\nConnection: close\r\n\r\nmethod not allowed\n",
    );
    expect(post.closed).toBe(true);
    const del = await exchange(r.port, "DELETE /livez HTTP/1.1\r\nHost: x\r\n\r\n");
    expect(del.status).toBe(405);
    expect(del.header("allow")).toBe("GET, HEAD");
    expect(del.closed).toBe(false);
    const chunked = await exchange(r.port, "GET /livez HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
    expect(chunked.status).toBe(200);
    expect(chunked.header("connection")).toBe("close");
    expect(chunked.closed).toBe(true);
    expect(calls).toEqual([]);
  });

  test("only the exact request-target is a probe: a query, a trailing slash, another case or an absolute-form target reach the app", async () => {
    const { app, calls } = counting();
    const r = start(app);
    for (const target of ["/livez?verbose=1", "/livez/", "/LIVEZ", "/readyz2", "/ready", "http://x/livez"]) {
      const res = await exchange(r.port, `GET ${target} HTTP/1.1\r\nHost: x\r\n\r\n`, { closeWaitMs: 20 });
      expect(res.body).toStartWith("app /");
    }
    expect(calls).toEqual(["/livez?verbose=1", "/livez/", "/LIVEZ", "/readyz2", "/ready", "/livez"]);
  });

  test("pipelined: a probe after a slow app request is answered after it, in order, and an app request after a probe goes to the app", async () => {
    const slow: Application = (env, startResponse) => {
      startResponse("200 OK", [["Content-Type", "text/plain"]]);
      return (async function* () {
        await Bun.sleep(50);
        yield `slow ${env.PATH_INFO}`;
      })();
    };
    const r = start(slow);
    const c = await RawClient.connect(r.port);
    c.send("GET /one HTTP/1.1\r\nHost: x\r\n\r\nGET /readyz HTTP/1.1\r\nHost: x\r\n\r\nGET /two HTTP/1.1\r\nHost: x\r\n\r\n");
    expect((await c.response()).body).toBe("slow /one");
    expect(undated((await c.response()).raw)).toBe(READY);
    expect((await c.response()).body).toBe("slow /two");
    c.close();
  });

  test("off by default: without probe paths the app sees /livez", async () => {
    const { app, calls } = counting();
    const r = serve(app);
    running.push(r);
    expect(r.server.health).toBeNull();
    expect((await exchange(r.port, "GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")).body).toBe("app /livez");
    expect(calls).toEqual(["/livez"]);
  });

  test("one probe alone: a readiness path without a liveness path leaves /livez to the app", async () => {
    const { app, calls } = counting();
    const r = start(app, { health: { live: null, ready: "/readyz" } });
    expect((await exchange(r.port, "GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")).body).toBe("ready\n");
    expect((await exchange(r.port, "GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")).body).toBe("app /livez");
    expect(calls).toEqual(["/livez"]);
  });

  test("a path that is not a plain absolute path, or the same path twice, is refused at construction", () => {
    const { app } = counting();
    expect(() => serve(app, { health: { live: "/livez?x=1", ready: null } })).toThrow(
      'health.live_path must be a path such as "/healthz"',
    );
    expect(() => serve(app, { health: { live: "livez", ready: null } })).toThrow("health.live_path");
    expect(() => serve(app, { health: { live: "/h", ready: "/h" } })).toThrow("must differ");
  });
});

describe("drain before a stop", () => {
  test("drain(): readiness turns 503 at once while liveness and the app are still served (each response closing its connection); then stop() ends it", async () => {
    const { app, calls } = counting();
    const r = start(app);
    const kept = await RawClient.connect(r.port);
    kept.send("GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n");
    expect((await kept.response()).status).toBe(200);
    const t0 = performance.now();
    const drained = r.server.drain(0.6);
    // On the connection opened before the drain, and on new ones: the listener still accepts.
    kept.send("GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n");
    const notReady = await kept.response();
    expect(undated(notReady.raw)).toBe(
      "HTTP/1.1 503 Service Unavailable\r\nDate: D\r\nCache-Control: no-store\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 10\r\nConnection: close\r\n\r\nnot ready\n",
    );
    await kept.waitClosed(1000);
    const live = await exchange(r.port, "GET /livez HTTP/1.1\r\nHost: x\r\n\r\n");
    expect(live.status).toBe(200);
    expect(live.closed).toBe(true);
    const served = await exchange(r.port, "GET /during HTTP/1.1\r\nHost: x\r\n\r\n");
    expect(served.body).toBe("app /during");
    expect(served.header("connection")).toBe("close");
    await drained;
    expect(performance.now() - t0).toBeGreaterThanOrEqual(550);
    await r.server.stop(1);
    expect(calls).toEqual(["/during"]);
    await expect(RawClient.connect(r.port)).rejects.toThrow();
  });

  test("close() during a drain ends the drain at once", async () => {
    const r = start(counting().app);
    const t0 = performance.now();
    const drained = r.server.drain(30);
    setTimeout(() => r.server.close(), 50);
    await drained;
    expect(performance.now() - t0).toBeLessThan(2000);
  });
});

describe("kinds and schemes", () => {
  test("a fetch app gets the same probes; the app is not called for them", async () => {
    let called = 0;
    const r = serveFetch(() => {
      called++;
      return new Response("fetch app");
    }, PROBES);
    try {
      const live = await exchange(r.port, "GET /livez HTTP/1.1\r\nHost: x\r\n\r\n");
      expect(undated(live.raw)).toBe(OK);
      expect(await (await fetch(`http://127.0.0.1:${r.port}/readyz`)).text()).toBe("ready\n");
      expect(await (await fetch(`http://127.0.0.1:${r.port}/other`)).text()).toBe("fetch app");
      expect(called).toBe(1);
      void r.server.drain(5);
      const res = await fetch(`http://127.0.0.1:${r.port}/readyz`);
      expect(res.status).toBe(503);
      expect(res.headers.get("cache-control")).toBe("no-store");
    } finally {
      r.server.close();
    }
  });

  test("over HTTPS, with a certificate made at test time", async () => {
    const certs = join(dir, "certs");
    mkdirSync(certs);
    await makeCertificates(certs);
    const r = start(counting().app, {
      tls: { cert: Bun.file(join(certs, "srv.pem")), key: Bun.file(join(certs, "srv.key")) },
    });
    const ca = await Bun.file(join(certs, "ca.pem")).text();
    const res = await fetch(`https://127.0.0.1:${r.port}/livez`, { tls: { ca, serverName: "localhost" } });
    expect(res.status).toBe(200);
    expect(res.headers.get("cache-control")).toBe("no-store");
    expect(await res.text()).toBe("ok\n");
    const head = await fetch(`https://127.0.0.1:${r.port}/readyz`, { method: "HEAD", tls: { ca, serverName: "localhost" } });
    expect(head.status).toBe(200);
    expect(head.headers.get("content-length")).toBe("6");
  });
});

describe("SIGTERM with timeouts.drain_delay, as a process", () => {
  const APP = `export default (env: Record<string, unknown>, startResponse: (s: string, h: [string, string][]) => unknown) => {
  startResponse("200 OK", [["Content-Type", "text/plain"]]);
  return [\`app \${process.pid}\`];
};
`;
  let sites = 0;
  function site(toml: string): Proc {
    const d = join(dir, `site${++sites}`);
    mkdirSync(d);
    writeFileSync(join(d, "app.ts"), APP);
    writeFileSync(join(d, "bunwsgi.toml"), toml);
    const p = new Proc([join(import.meta.dir, "..", "src", "cli.ts")], d, process.execPath);
    procs.push(p);
    return p;
  }
  const get = async (port: number, path: string): Promise<number> =>
    (await fetch(`http://127.0.0.1:${port}${path}`, { headers: { connection: "close" } })).status;

  for (const workers of [0, 2]) {
    test(`${workers === 0 ? "alone" : "with 2 workers (each answers its probes)"}: readiness 503 from the signal on, the app served through the delay, then a graceful stop`, async () => {
      const p = site(
        `app = "app.ts"\nbind = "127.0.0.1:0"\nworkers = ${workers}\n[health]\nlive_path = "/livez"\nready_path = "/readyz"\n[timeouts]\ndrain_delay = 1.5\nshutdown = 2\n[log]\naccess = "none"\n`,
      );
      const port = await p.port();
      if (workers > 0) await p.waitFor(/worker 1 \(pid \d+\) ready/, 15_000);
      expect(await get(port, "/readyz")).toBe(200);
      const t0 = performance.now();
      p.kill("SIGTERM");
      // The signal is handled within a few milliseconds: poll until readiness turns.
      const seen: number[] = [];
      while (performance.now() - t0 < 1000) {
        const s = await get(port, "/readyz");
        seen.push(s);
        if (s === 503) break;
        await Bun.sleep(10);
      }
      expect(seen.at(-1)).toBe(503);
      expect(performance.now() - t0).toBeLessThan(1000);
      // Still serving during the delay, with liveness 200; every probe with workers says 503.
      for (let i = 0; i < 5; i++) expect(await get(port, "/readyz")).toBe(503);
      expect(await get(port, "/livez")).toBe(200);
      expect(await get(port, "/")).toBe(200);
      expect(await p.exit()).toBe(0);
      const took = performance.now() - t0;
      expect(took).toBeGreaterThanOrEqual(1400);
      expect(took).toBeLessThan(6000);
      expect(p.stderr).toContain("draining for 1.5s");
    }, 20_000);
  }
});
