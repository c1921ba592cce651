/**
 * @module test/hostile — a hostile client against the deadlines, each test named after its attack:
 * a TLS handshake stalled, trickled or failed (plain HTTP, old versions, no shared cipher,
 * garbage), the rest of an answered request's body dribbled or held, a body stalled while the
 * app's deadline falls at the same tick, a connection flood past the descriptor limit,
 * pipelined requests sent by a client that does not read their responses, a half-close (FIN)
 * behind pipelined requests, chunked bodies made mostly of framing (1-byte chunks held unread,
 * chunk-extension and leading-zero floods). Raw sockets, exact bytes.
 */

import { heapStats } from "bun:jsc";
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { connect as netConnect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect as tlsConnect } from "node:tls";
import { counters } from "../src/engine/counters.ts";
import type { Application } from "../src/index.ts";
import type { Samples } from "../src/observe/metrics.ts";
import { makeCertificates, RawClient, serve, serveFetch, serverPool, waitFor } from "./helpers.ts";

const start = serverPool();
const dir = mkdtempSync(join(tmpdir(), "bunwsgi-hostile-"));
beforeAll(() => makeCertificates(dir), 30_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const hello: Application = (_env, sr) => {
  sr("200 OK", [["Content-Type", "text/plain"]]);
  return ["hi"];
};

const tlsOptions = (extra: object = {}) => ({
  tls: { cert: readFileSync(join(dir, "srv.pem"), "utf8"), key: readFileSync(join(dir, "srv.key"), "utf8"), ...extra },
});

/** Milliseconds until `c` is closed by the server (at most `ms`), sending `trickle`'s bytes one per `every` ms meanwhile. */
async function closedAfter(c: RawClient, ms: number, trickle: Uint8Array = new Uint8Array(0), every = 0): Promise<number> {
  const began = Date.now();
  let i = 0;
  while (!c.closed && Date.now() - began < ms) {
    if (i < trickle.length && every > 0) c.send(trickle.subarray(i, ++i));
    await Bun.sleep(every > 0 ? every : 20);
  }
  return Date.now() - began;
}

describe("TLS handshake deadline (timeouts.header from the accept)", () => {
  test("handshake never started: a TCP connection to a TLS bind that sends nothing is cut, and a debug line says so", async () => {
    const { port, errors } = start(hello, { ...tlsOptions(), logLevel: 10, timeouts: { header: 1, keepAlive: 30 } });
    const c = await RawClient.connect(port);
    const took = await closedAfter(c, 4000);
    expect(c.closed).toBe(true);
    expect(took).toBeGreaterThanOrEqual(950);
    expect(took).toBeLessThan(3000);
    expect(errors.join("")).toContain("TLS handshake not done within 1s");
  });

  test("ClientHello trickled a byte every 400 ms: cut at the deadline however the bytes keep coming", async () => {
    const { port } = start(hello, { ...tlsOptions(), timeouts: { header: 1, keepAlive: 30 } });
    const c = await RawClient.connect(port);
    // A TLS handshake record's header and the start of a ClientHello, never completed.
    const partial = new Uint8Array([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03, 0x00, 0x01, 0x02]);
    const took = await closedAfter(c, 5000, partial, 400);
    expect(c.closed).toBe(true);
    expect(took).toBeLessThan(3000);
  });

  test("a completed handshake is served as before, and client_auth = require still refuses a client without a certificate", async () => {
    const ca = readFileSync(join(dir, "ca.pem"), "utf8");
    const { port } = start(hello, {
      ...tlsOptions({ ca, requestCert: true, rejectUnauthorized: true }),
      timeouts: { header: 2 },
    });
    const get = (withCert: boolean): Promise<string> =>
      new Promise((resolve) => {
        let got = "";
        const s = tlsConnect({
          port,
          host: "127.0.0.1",
          ca,
          servername: "localhost",
          ...(withCert
            ? { cert: readFileSync(join(dir, "client.pem"), "utf8"), key: readFileSync(join(dir, "client.key"), "utf8") }
            : {}),
        });
        const timer = setTimeout(() => {
          s.destroy();
          resolve(`${got}(open)`);
        }, 3000);
        s.on("secureConnect", () => s.write("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"));
        s.on("data", (d: Buffer) => {
          got += d.toString("latin1");
        });
        s.on("error", () => {});
        s.on("close", () => {
          clearTimeout(timer);
          resolve(got);
        });
      });
    expect(await get(true)).toStartWith("HTTP/1.1 200 OK\r\n");
    expect(await get(false)).toBe("");
  });
});

describe("failed TLS handshakes (bots, scanners, misconfigured clients)", () => {
  /**
   * A Python client making `n` handshakes that fail, by kind in turn; prints the kinds' slowest
   * close in seconds, as JSON. Each waits at most 5 s for the server to close.
   */
  const FAILING = `
import json, socket, ssl, sys, time
port, n, folder = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
def plain(s): s.sendall(b"GET / HTTP/1.1\\r\\nHost: a\\r\\n\\r\\n"); s.recv(100)
def garbage(s): s.sendall(bytes(range(256))); s.recv(100)
def handshake(s, **kw):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
    if "version" in kw:
        ctx.set_ciphers("ALL:@SECLEVEL=0"); ctx.minimum_version = ctx.maximum_version = kw["version"]
    if "ciphers" in kw:
        ctx.set_ciphers(kw["ciphers"]); ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    if "alpn" in kw: ctx.set_alpn_protocols(kw["alpn"])
    if "cert" in kw: ctx.load_cert_chain(folder + "/" + kw["cert"] + ".pem", folder + "/" + kw["cert"] + ".key")
    t = ctx.wrap_socket(s); t.sendall(b"GET / HTTP/1.1\\r\\nHost: a\\r\\n\\r\\n"); t.recv(100)
kinds = {
    "plain_http": plain,
    "protocol_version": lambda s: handshake(s, version=ssl.TLSVersion.TLSv1_1),
    "no_application_protocol": lambda s: handshake(s, alpn=["h2"]),
    "no_shared_cipher": lambda s: handshake(s, ciphers="AES128-SHA"),
    "other": garbage,
    "client_certificate": lambda s: handshake(s, cert="stranger"),
}
slowest = {k: 0.0 for k in kinds}
for i in range(n):
    kind = list(kinds)[i % len(kinds)]
    s = socket.create_connection(("127.0.0.1", port)); s.settimeout(5)
    began = time.time()
    try: kinds[kind](s)
    except (OSError, ssl.SSLError): pass
    slowest[kind] = max(slowest[kind], time.time() - began)
    s.close()
print(json.dumps(slowest))
`;

  test("plain HTTP, TLS 1.1, h2-only ALPN, no shared cipher, garbage, an unverified client certificate: each closed at once, counted by reason, a debug line each, no descriptor left after 600", async () => {
    const ca = readFileSync(join(dir, "ca.pem"), "utf8");
    const lines: string[] = [];
    const { port } = start(hello, {
      ...tlsOptions({ ca, requestCert: true, rejectUnauthorized: true }),
      logLevel: 10,
      errorLog: { write: (line: string, level?: string) => lines.push(`${level} ${line}`) },
    });
    const failures = (): Record<string, number> => {
      const out: Samples = {};
      counters.write(out);
      return Object.fromEntries(
        Object.entries(out)
          .filter(([k]) => k.startsWith("bunwsgi_tls_handshake_failures_total"))
          .map(([k, v]) => [(k.match(/reason="(\w+)"/) as RegExpMatchArray)[1], v]),
      );
    };
    const before = failures();
    const descriptors = readdirSync("/proc/self/fd").length;
    const client = Bun.spawn(["python3", "-c", FAILING, String(port), "600", dir], {
      stdout: "pipe",
      stderr: "pipe",
      timeout: 60_000,
    });
    const [out, err] = [await new Response(client.stdout).text(), await new Response(client.stderr).text()];
    expect(await client.exited, err).toBe(0);
    const slowest = JSON.parse(out) as Record<string, number>;
    for (const [kind, seconds] of Object.entries(slowest)) expect([kind, seconds < 1]).toEqual([kind, true]);
    const after = failures();
    const counted = Object.fromEntries(Object.keys(slowest).map((k) => [k, (after[k] ?? 0) - (before[k] ?? 0)]));
    expect(counted).toEqual(Object.fromEntries(Object.keys(slowest).map((k) => [k, 100])));
    // At debug level: a scanner's failures are no error of the server's.
    const log = lines.filter((l) => l.includes("TLS handshake failed ("));
    expect(log.length).toBe(600);
    expect(log.filter((l) => !l.startsWith("DEBUG "))).toEqual([]);
    expect(log.join("")).toMatch(/closing connection from 127\.0\.0\.1:\d+: TLS handshake failed \(plain_http: .*HTTP_REQUEST\)/);
    expect(log.join("")).toContain("(client_certificate: its certificate did not verify: self signed certificate)");
    await waitFor(() => readdirSync("/proc/self/fd").length <= descriptors, 3000);
  }, 90_000);
});

describe("the rest of an answered request's body (DISCARD)", () => {
  /** Answers after a pause, never reading its body. */
  const napper: Application = async (_env, sr) => {
    await Bun.sleep(300);
    sr("200 OK", [["Content-Type", "text/plain"]]);
    return ["napped"];
  };

  test("discard trickle: the unread rest dribbled a byte every 700 ms is cut by limits.min_body_rate, logged", async () => {
    const { port, errors } = start(napper, {
      limits: { minBodyRate: 100 },
      timeouts: { body: 1, minBodyRateGrace: 1, keepAlive: 30 },
    });
    const c = await RawClient.connect(port);
    c.send("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\nab");
    expect((await c.response()).status).toBe(200);
    const took = await closedAfter(c, 6000, new Uint8Array(20).fill(0x78), 700);
    expect(c.closed).toBe(true);
    expect(took).toBeLessThan(4500);
    expect(errors.join("")).toContain("the rest of the request body came slower than 100 bytes/s");
  });

  test("discard paused: the rest of a body held by the input high-water mark is read after the response, and the next request answered", async () => {
    const { port } = start(napper, { timeouts: { body: 10, keepAlive: 30 } });
    const c = await RawClient.connect(port);
    // 300 KiB arrive before the response: over INPUT_HIGH_WATER, so reading paused for the app.
    await c.sendAll(
      new Uint8Array([
        ...new TextEncoder().encode("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 400000\r\n\r\n"),
        ...new Uint8Array(300_000),
      ]),
    );
    expect((await c.response()).status).toBe(200);
    await c.sendAll(new Uint8Array(100_000));
    const began = Date.now();
    c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    const second = await c.response({ ms: 3000 });
    expect(second.status).toBe(200);
    expect(Date.now() - began).toBeLessThan(1000);
    c.close();
  });
});

describe("chunked bodies made mostly of framing (1-byte chunks, chunk extensions, leading zeros)", () => {
  /** Reads the whole body once `gate` opens (at once when it is open), and answers its length. */
  const gated =
    (gate: { open: Promise<void> }): Application =>
    async (env, sr) => {
      await gate.open;
      const body = await env["wsgi.input"].read();
      sr("200 OK", [["Content-Type", "text/plain"]]);
      return [`read ${body.length}`];
    };
  const CHUNKED = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";

  test("1-byte chunks held unread by the app: their bytes are kept in a few buffers, not an object per chunk (200 KiB of them held 200,000 views, ~150 bytes of memory per byte)", async () => {
    let open = (): void => {};
    const { port } = start(gated({ open: new Promise<void>((r) => (open = r)) }));
    const c = await RawClient.connect(port);
    const n = 200_000;
    const before = counters.bytesIn;
    Bun.gc(true);
    const views = heapStats().objectTypeCounts.Uint8Array ?? 0;
    await c.sendAll(Buffer.from(CHUNKED + "1\r\nx\r\n".repeat(n), "latin1"));
    await waitFor(() => counters.bytesIn - before >= CHUNKED.length + 6 * n, 5000);
    Bun.gc(true);
    expect((heapStats().objectTypeCounts.Uint8Array ?? 0) - views).toBeLessThan(10_000);
    open();
    c.send("0\r\n\r\n");
    expect((await c.response()).body).toBe(`read ${n}`);
    c.close();
  });

  test("chunk-extension flood: 1-byte chunks each with a 4 KiB extension get 400 chunk_overhead within a few KiB, instead of being read for as long as the client sends (RFC 9112 §7.1.1)", async () => {
    const { port, access } = start(gated({ open: Promise.resolve() }), { logFormat: "{status} {reason}" });
    const c = await RawClient.connect(port);
    c.send(CHUNKED);
    // 8 MiB: before, all of it was read and more awaited, the app's read() never settling.
    void c.sendAll(Buffer.from(`1;e=${"a".repeat(4000)}\r\nx\r\n`.repeat(2048), "latin1"), 3000).catch(() => {});
    expect((await c.response({ ms: 3000 })).status).toBe(400);
    await waitFor(() => access.length > 0);
    expect(access[0]).toBe("400 chunk_overhead\n");
    c.abort();
  });

  test("leading-zero flood: 1-byte chunks each with a 255-digit size get 400 chunk_overhead, the same", async () => {
    const { port, access } = start(gated({ open: Promise.resolve() }), { logFormat: "{status} {reason}" });
    const c = await RawClient.connect(port);
    c.send(CHUNKED);
    void c.sendAll(Buffer.from(`${"0".repeat(255)}1\r\nx\r\n`.repeat(16_384), "latin1"), 3000).catch(() => {});
    expect((await c.response({ ms: 3000 })).status).toBe(400);
    await waitFor(() => access.length > 0);
    expect(access[0]).toBe("400 chunk_overhead\n");
    c.abort();
  });
});

describe("a body stalled while the app waits for it", () => {
  test("body and app deadlines at the same tick: 408 body_timeout (the client's), not 503 app_timeout", async () => {
    const reader: Application = async (env, sr) => {
      const body = await env["wsgi.input"].read();
      sr("200 OK", []);
      return [body];
    };
    const { port, access } = start(reader, { logFormat: "{status} {reason}", timeouts: { body: 1, app: 1 } });
    const c = await RawClient.connect(port);
    c.send("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nabc");
    const r = await c.response({ ms: 4000 });
    expect(r.status).toBe(408);
    expect(access.join("")).toContain("408 body_timeout");
  });
});

describe("a response that closes its connection (CLOSING) while the client reads it slowly", () => {
  // More than loopback's socket buffers hold (their autotuning reaches several MiB each way).
  const SIZE = 64 * 1024 * 1024;
  const body = Buffer.alloc(SIZE, 0x61);
  const big: Application = (_env, sr) => {
    sr("200 OK", [["Content-Type", "application/octet-stream"]]);
    return [body];
  };

  /** Ask for the body with Connection: close, read nothing for `stallMs`, then read to the end: bytes of body received. */
  /**
   * A client that sends its request, reads nothing for `stallMs` (a Python socket that does not
   * call recv: nothing reads for it, where a JavaScript socket's pause() was seen reading on),
   * then reads to the end (or 2 s more): the body bytes it got. Its receive buffer is fixed
   * small (SO_RCVBUF, no autotuning): a growing one kept taking bytes from a reader that never
   * reads, the kernel compacting what it held, and that is progress to the server.
   */
  async function stalledRead(port: number, stallMs: number): Promise<number> {
    const script = `
import socket, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32768)
s.connect(("127.0.0.1", ${port}))
s.sendall(b"GET / HTTP/1.1\\r\\nHost: a\\r\\nConnection: close\\r\\n\\r\\n")
time.sleep(${stallMs / 1000})
s.settimeout(2)
data, got = b"", 0
try:
    while True:
        d = s.recv(1 << 20)
        if not d:
            break
        if data is not None:
            data += d
            at = data.find(b"\\r\\n\\r\\n")
            if at >= 0:
                got, data = len(data) - at - 4, None
        else:
            got += len(d)
except (socket.timeout, ConnectionError):
    pass
print(got)
`;
    const p = Bun.spawn(["python3", "-c", script], { stdout: "pipe", stderr: "inherit" });
    const out = await new Response(p.stdout).text();
    await p.exited;
    return Number(out.trim());
  }

  test("close-delimited response read after a 6.5 s stall arrives whole: the linger counts once it is out, not from the close decision", async () => {
    const { port } = start(big, { limits: { minResponseRate: 0 }, timeouts: { write: 30 } });
    expect(await stalledRead(port, 6500)).toBe(SIZE);
  }, 15_000);

  test("a client that never reads it is cut at timeouts.write, and the error log says so", async () => {
    const { port, errors } = start(big, { limits: { minResponseRate: 0 }, timeouts: { write: 1 } });
    // The cut comes at the first tick (once a second) a second after the last progress: a stall
    // of 4.5 s leaves it a margin on a loaded machine, where one of 2.5 s was seen outlasted.
    const got = await stalledRead(port, 4500);
    expect(got).toBeLessThan(SIZE);
    expect(errors.join("")).toContain("no response bytes accepted for 1s");
  }, 15_000);
});

/** An app whose /hold request waits until `release()`; any other path answers "ok" at once. */
function holding(): { holder: Application; release: () => void } {
  let release = (): void => {};
  const held = new Promise<void>((resolve) => {
    release = resolve;
  });
  const holder: Application = async (env, sr) => {
    if (env.PATH_INFO === "/hold") await held;
    sr("200 OK", [["Content-Type", "text/plain"]]);
    return ["ok"];
  };
  return { holder, release };
}

describe("a connection parked for a spawn slot", () => {
  test("parked past timeouts.header behind a busy slot: 503 spawn_wait and closed, instead of holding its socket for as long as the slot stays busy", async () => {
    const { holder, release } = holding();
    const { port, access, server } = start(holder, { spawn: 1, logFormat: "{status} {reason}", timeouts: { header: 1 } });
    const busy = await RawClient.connect(port);
    busy.send("GET /hold HTTP/1.1\r\nHost: a\r\n\r\n");
    await Bun.sleep(100);
    const parked = await RawClient.connect(port);
    parked.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    const began = Date.now();
    const r = await parked.response({ ms: 4000 });
    expect(r.status).toBe(503);
    expect(r.header("Connection")).toBe("close");
    expect(Date.now() - began).toBeLessThan(3000);
    await parked.waitClosed(2000);
    expect(access.join("")).toContain("503 spawn_wait");
    // Refused over the limit, it gives its place back once it closes.
    parked.close();
    await waitFor(() => server.pool.active === 1, 2000);
    release();
    expect((await busy.response()).status).toBe(200);
    busy.close();
  });
});

describe("silent closes say so at log.level debug", () => {
  test("idle before the first byte: closed at timeouts.keep_alive with a debug line", async () => {
    const { port, errors } = start(hello, { logLevel: 10, timeouts: { keepAlive: 1 } });
    const c = await RawClient.connect(port);
    await c.waitClosed(3000);
    expect(c.take()).toBe("");
    expect(errors.join("")).toMatch(/closed idle connection from 127\.0\.0\.1:\d+: no request for 1s/);
  });
});

test("parked past timeouts.keep_alive, then given its slot: its idle time counts from the slot, not from its accept", async () => {
  const { holder, release } = holding();
  const { port } = start(holder, { spawn: 1, timeouts: { header: 10, keepAlive: 2 } });
  const busy = await RawClient.connect(port);
  busy.send("GET /hold HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
  await Bun.sleep(100);
  const parked = await RawClient.connect(port);
  await Bun.sleep(2500);
  release();
  expect((await busy.response()).status).toBe(200);
  // Given the slot now; 1.5 s idle since then is inside timeouts.keep_alive.
  await Bun.sleep(1500);
  expect(parked.closed).toBe(false);
  parked.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
  expect((await parked.response()).status).toBe(200);
  parked.close();
});

describe("a connection flood past the process's descriptor limit (RLIMIT_NOFILE)", () => {
  /** Ticks of CPU (user + system, 1/100 s each) process `pid` has used. */
  const cpuTicks = (pid: number): number => {
    const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(")")[1]?.trim().split(" ") ?? [];
    return Number(f[11]) + Number(f[12]);
  };

  test("300 idle connections to a server allowed 160 descriptors: the ones past its room are answered 503 or closed, the server idles instead of spinning on EMFILE, and serves again once they go", async () => {
    const root = join(import.meta.dir, "..");
    const free = (): number => {
      const probe = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
      const port = probe.port;
      probe.stop(true);
      return port;
    };
    const port = free();
    const metrics = free();
    const cli = `"${process.execPath}" "${join(root, "src/cli.ts")}" "${join(root, "examples/hello.ts")}"`;
    const flags = `--bind 127.0.0.1:${port} --metrics-bind 127.0.0.1:${metrics} --timeouts-header 30 --timeouts-keep-alive 30 --log-access none`;
    // `ulimit -n` sets the hard limit too: Bun raises the soft one only up to it.
    const server = Bun.spawn(["bash", "-c", `ulimit -n 160 && exec ${cli} ${flags}`], {
      stdin: "ignore",
      stdout: "ignore",
      stderr: "pipe",
    });
    let log = "";
    const reading = (async () => {
      for await (const chunk of server.stderr) log += new TextDecoder().decode(chunk);
    })();
    const clients: Socket[] = [];
    try {
      await waitFor(() => log.includes("listening on"), 10_000);
      const answers: string[] = [];
      for (let i = 0; i < 300; i++) {
        const s = netConnect({ host: "127.0.0.1", port });
        const k = answers.push("");
        s.on("data", (d: Buffer) => {
          answers[k - 1] += d.toString("latin1");
        });
        s.on("close", () => {
          answers[k - 1] += "(closed)";
        });
        s.on("error", () => {});
        clients.push(s);
      }
      await Bun.sleep(1500);
      const before = cpuTicks(server.pid);
      await Bun.sleep(1000);
      // Spinning on EMFILE used the whole core, 100 ticks a second.
      expect(cpuTicks(server.pid) - before).toBeLessThan(30);
      expect(readdirSync(`/proc/${server.pid}/fd`).length).toBeLessThan(160);
      const refused = answers.filter((a) => a.startsWith("HTTP/1.1 503 Service Unavailable\r\n")).length;
      const closed = answers.filter((a) => a === "(closed)").length;
      const open = answers.filter((a) => a === "").length;
      expect(refused).toBeGreaterThan(0);
      expect(refused + closed + open).toBe(300);
      // Every socket the server holds is a client's open connection, served.
      expect(open).toBeLessThan(160);
      expect(log).toContain("WARNING] bunwsgi: descriptor limit:");
      // Every connection turned away is counted, the ones closed at once too.
      const page = await (await fetch(`http://127.0.0.1:${metrics}/metrics`)).text();
      expect(page).toContain(`bunwsgi_requests_rejected_total{reason="descriptor_limit"} ${refused + closed}\n`);
      for (const s of clients) s.destroy();
      let status = 0;
      for (const until = Date.now() + 10_000; status !== 200 && Date.now() < until; ) {
        status = await fetch(`http://127.0.0.1:${port}/`, { headers: { connection: "close" } })
          .then(async (r) => {
            await r.text();
            return r.status;
          })
          .catch(() => 0);
        if (status !== 200) await Bun.sleep(100);
      }
      expect(status).toBe(200);
    } finally {
      for (const s of clients) s.destroy();
      server.kill("SIGKILL");
      await server.exited;
      await reading;
    }
  }, 30_000);
});

/** Bytes of `n` pipelined GETs, `/0` … `/n-1`. */
function pipelined(n: number, from = 0): string {
  let s = "";
  for (let i = from; i < from + n; i++) s += `GET /${i} HTTP/1.1\r\nHost: a\r\n\r\n`;
  return s;
}

/** A raw client that can stop reading: its socket paused, what it received kept as buffers. */
async function pausedClient(
  port: number,
): Promise<{ socket: Socket; received: () => Buffer; length: () => number; ended: () => boolean }> {
  const socket = netConnect({ host: "127.0.0.1", port, allowHalfOpen: true });
  await new Promise<void>((resolve, reject) => socket.once("connect", resolve).once("error", reject));
  const parts: Buffer[] = [];
  let length = 0;
  let ended = false;
  socket.on("data", (d: Buffer) => {
    parts.push(d);
    length += d.length;
  });
  socket.on("close", () => {
    ended = true;
  });
  socket.on("error", () => {
    ended = true;
  });
  socket.pause();
  return { socket, received: () => Buffer.concat(parts), length: () => length, ended: () => ended };
}

/** The statuses and first body bytes (the path each app below echoes) of the responses in `b`, sized by Content-Length. */
function framed(b: Buffer, tag = 8): Array<[number, string]> {
  const out: Array<[number, string]> = [];
  let pos = 0;
  while (pos < b.length) {
    const end = b.indexOf("\r\n\r\n", pos);
    if (end < 0) break;
    const head = b.toString("latin1", pos, end);
    const length = Number(/content-length: (\d+)/i.exec(head)?.[1] ?? 0);
    if (end + 4 + length > b.length) break;
    out.push([Number(head.slice(9, 12)), b.toString("latin1", end + 4, end + 4 + Math.min(tag, length)).trim()]);
    pos = end + 4 + length;
  }
  return out;
}

describe("pipelined requests to a client that does not read its responses", () => {
  const SIZE = 64 * 1024;
  /** Answers each request at once with SIZE bytes that begin with its path, counting the calls. */
  function sized(calls: { n: number }, wait = false): Application {
    return (env, sr) => {
      calls.n++;
      const body = Buffer.alloc(SIZE, 0x20);
      body.write(env.PATH_INFO, "latin1");
      if (!wait) {
        sr("200 OK", [["Content-Length", String(SIZE)]]);
        return [body];
      }
      return (async () => {
        await Bun.sleep(1);
        sr("200 OK", [["Content-Length", String(SIZE)]]);
        return [body];
      })();
    };
  }

  for (const wait of [false, true]) {
    test(`pipelining flood without reading (${wait ? "async" : "sync"} app): 2000 GETs of a 64 KiB response are answered only as the client takes them, then all arrive in order`, async () => {
      const calls = { n: 0 };
      const { port } = start(sized(calls, wait));
      const c = await pausedClient(port);
      c.socket.write(pipelined(2000));
      await Bun.sleep(1000);
      // The kernel's socket buffers (a few MiB on loopback) and the 256 KiB high-water mark hold
      // what was answered: every request answered at once held 125 MiB for a client that never read.
      expect(calls.n).toBeLessThan(400);
      c.socket.resume();
      // The bodies first (cheap to count), then the last heads.
      await waitFor(() => c.length() >= 2000 * SIZE, 20_000);
      await waitFor(() => framed(c.received()).length === 2000, 3000);
      const responses = framed(c.received());
      expect(responses.length).toBe(2000);
      expect(responses.every(([status, path], i) => status === 200 && path === `/${i}`)).toBe(true);
      expect(calls.n).toBe(2000);
      c.socket.destroy();
    }, 30_000);
  }

  test("pipelined requests and a head held while the client does not read: neither timeouts.header nor timeouts.keep_alive cuts them, the write deadlines judge the client", async () => {
    const calls = { n: 0 };
    const { port, access } = start(sized(calls), {
      logFormat: "{status} {reason}",
      timeouts: { header: 1, keepAlive: 1, write: 10 },
    });
    const c = await pausedClient(port);
    c.socket.write(`${pipelined(400)}GET /400 HT`);
    await Bun.sleep(3500);
    c.socket.resume();
    await waitFor(() => c.length() >= 400 * SIZE, 20_000);
    c.socket.write("TP/1.1\r\nHost: a\r\n\r\n");
    await waitFor(() => c.length() >= 401 * SIZE || c.ended(), 5000);
    await waitFor(() => framed(c.received()).length === 401 || c.ended(), 3000);
    const responses = framed(c.received());
    expect(responses.length).toBe(401);
    expect(responses.every(([status, path], i) => status === 200 && path === `/${i}`)).toBe(true);
    expect(access.filter((l) => !l.startsWith("200"))).toEqual([]);
    c.socket.destroy();
  }, 30_000);
});

describe("a client that half-closes (FIN) after pipelined requests", () => {
  const slow: Application = async (env, sr) => {
    await Bun.sleep(env.PATH_INFO === "/0" ? 300 : 10);
    sr("200 OK", [["Content-Length", String(env.PATH_INFO.length)]]);
    return [env.PATH_INFO];
  };

  test("half-close after three pipelined requests to a slow app: all three answered in order, then the connection closes", async () => {
    const { port } = start(slow);
    const c = await pausedClient(port);
    c.socket.resume();
    c.socket.end(pipelined(3));
    await waitFor(() => c.ended(), 5000);
    expect(framed(c.received())).toEqual([
      [200, "/0"],
      [200, "/1"],
      [200, "/2"],
    ]);
  });

  test("half-close after two pipelined requests and an incomplete head: both answered, then closed at once (no wait for timeouts.header)", async () => {
    const { port } = start(slow, { timeouts: { header: 20 } });
    const c = await pausedClient(port);
    c.socket.resume();
    const began = Date.now();
    c.socket.end(`${pipelined(2)}GET /2 HT`);
    await waitFor(() => c.ended(), 5000);
    expect(framed(c.received())).toEqual([
      [200, "/0"],
      [200, "/1"],
    ]);
    expect(Date.now() - began).toBeLessThan(2000);
  });

  test("half-close after a pipelined request whose body is cut short by the FIN: the first answered, the second's read rejects (ClientDisconnected), then closed", async () => {
    let failure = "";
    const reader: Application = async (env, sr) => {
      await Bun.sleep(env.PATH_INFO === "/0" ? 300 : 10);
      try {
        await env["wsgi.input"].read();
      } catch (e) {
        failure = String(e);
      }
      sr("200 OK", [["Content-Length", String(env.PATH_INFO.length)]]);
      return [env.PATH_INFO];
    };
    const { port } = start(reader);
    const c = await pausedClient(port);
    c.socket.resume();
    c.socket.end("GET /0 HTTP/1.1\r\nHost: a\r\n\r\nPOST /1 HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc");
    await waitFor(() => c.ended(), 5000);
    expect(framed(c.received())[0]).toEqual([200, "/0"]);
    expect(failure).toContain("received 3 of 10 bytes");
  });
});

describe("a client that resets (RST) under a request at the app", () => {
  const MiB = new Uint8Array(1 << 20).fill(97);
  /** A WSGI app: /stream streams 64 MiB, /slow answers after 300 ms, / at once. */
  const wsgi: Application = async (env, sr) => {
    if (env.PATH_INFO === "/slow") await Bun.sleep(300);
    sr("200 OK", []);
    if (env.PATH_INFO !== "/stream") return ["done"];
    return (function* () {
      for (let i = 0; i < 64; i++) yield MiB;
    })();
  };
  const fetchApp = {
    async fetch(request: Request): Promise<Response> {
      const path = new URL(request.url).pathname;
      if (path === "/slow") await Bun.sleep(300);
      if (path !== "/stream") return new Response("done");
      let i = 0;
      return new Response(
        new ReadableStream({
          pull(c) {
            if (i++ < 64) c.enqueue(MiB);
            else c.close();
          },
        }),
      );
    },
  };

  /** Send `path`'s request, read `bytes` of the response (none: wait 100 ms), then reset (SO_LINGER 0). */
  async function resetAfter(port: number, path: string, bytes: number): Promise<void> {
    const socket = netConnect({ host: "127.0.0.1", port });
    await new Promise<void>((resolve, reject) => socket.once("connect", resolve).once("error", reject));
    let got = 0;
    socket.on("data", (d: Buffer) => {
      got += d.length;
    });
    socket.on("error", () => {});
    socket.write(`GET ${path} HTTP/1.1\r\nHost: a\r\n\r\n`);
    if (bytes > 0) await waitFor(() => got >= bytes, 3000);
    else await Bun.sleep(100);
    socket.resetAndDestroy();
  }

  for (const kind of ["wsgi", "fetch"] as const) {
    test(`${kind}: reset mid-response, reset while the app runs, reset after a complete response: the first two logged client_disconnected, the last not`, async () => {
      const options = { logFormat: "{path} {status} {reason}" };
      const running = kind === "wsgi" ? serve(wsgi, options) : serveFetch(fetchApp, options);
      try {
        await resetAfter(running.port, "/stream", 1000);
        await waitFor(() => running.access.length === 1, 3000);
        await resetAfter(running.port, "/slow", 0);
        await waitFor(() => running.access.length === 2, 3000);
        await resetAfter(running.port, "/", 10);
        await waitFor(() => running.access.length === 3, 3000);
        await Bun.sleep(100);
        expect(running.access.map((l) => l.trim())).toEqual([
          "/stream 200 client_disconnected",
          `/slow ${kind === "wsgi" ? "200" : "000"} client_disconnected`,
          "/ 200 -",
        ]);
        expect(running.errors.join("")).not.toContain("nhandled");
      } finally {
        running.server.close();
      }
    });
  }
});
