/**
 * @module test/workers — `workers = N` as real processes: the compiled binary's master and its
 * workers sharing TCP and unix listeners, supervised (crash, hang, start-up failure), recycled,
 * rolled on SIGHUP, upgraded in place on SIGUSR2, reopening logs on SIGUSR1 and stopping on
 * SIGTERM, under continuous client load that must see no failed request.
 */

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { X509Certificate } from "node:crypto";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { connect as tlsConnect } from "node:tls";
import { buildBinary, launchWithFd3, Proc } from "./binary.ts";
import { makeCertificates } from "./helpers.ts";

const dir = mkdtempSync(join(tmpdir(), "bunwsgi-workers-"));
const binary = join(dir, "bin", "bunwsgi");

const APP = `import { version } from "./version.ts";
export default function app(env: Record<string, unknown>, startResponse: (s: string, h: [string, string][]) => unknown) {
  if (env.PATH_INFO === "/block") {
    const end = Date.now() + 20_000;
    while (Date.now() < end) {}
  }
  if (env.PATH_INFO === "/busy") {
    // The whole event loop busy for 1.5 s: new connections wait in the kernel's queue meanwhile.
    const end = Date.now() + 1500;
    while (Date.now() < end) {}
  }
  if (env.PATH_INFO === "/spin") {
    // Busy for 3 ms: while one worker spins, the other accepts the next connections.
    const end = performance.now() + 3;
    while (performance.now() < end) {}
  }
  if (env.PATH_INFO === "/slow") {
    startResponse("200 OK", [["Content-Type", "text/plain"]]);
    return (async function* () {
      await Bun.sleep(700);
      yield \`\${version} \${process.pid} slow\`;
    })();
  }
  startResponse("200 OK", [["Content-Type", "text/plain"]]);
  return [\`\${version} \${process.pid} \${env["bunwsgi.worker"]} \${env["wsgi.multiprocess"]}\`];
}
`;

beforeAll(async () => {
  mkdirSync(join(dir, "bin"));
  await buildBinary(["--outfile", binary]);
}, 120_000);

const running: Proc[] = [];
afterAll(async () => {
  for (const p of running) {
    // The master's workers go with it: they stop when their master's channel closes.
    p.kill("SIGKILL");
  }
  await Bun.sleep(200);
  rmSync(dir, { recursive: true, force: true });
});

let sites = 0;
/** A fresh folder with the app (version v1) and a config; returns the folder. */
function site(toml: string): string {
  const d = join(dir, `site${++sites}`);
  mkdirSync(d);
  writeFileSync(join(d, "app.ts"), APP);
  writeFileSync(join(d, "version.ts"), 'export const version = "v1";\n');
  writeFileSync(join(d, "bunwsgi.toml"), toml);
  return d;
}

function start(cwd: string, args: string[] = []): Proc {
  const p = new Proc(args, cwd, binary);
  running.push(p);
  return p;
}

/** Each worker's pid, from the master's "ready" lines. */
function readyPids(p: Proc): number[] {
  return [...p.stderr.matchAll(/worker \d+ \(pid (\d+)\) ready/g)].map((m) => Number(m[1]));
}

async function waitReady(p: Proc, n: number, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (readyPids(p).length < n) {
    if (Date.now() > deadline || p.p.exitCode !== null) throw new Error(`not ${n} workers ready; stderr:\n${p.stderr}`);
    await Bun.sleep(25);
  }
}

/** A site for `toml` (see site()), its binary started, and its first TCP port once `workers` workers are ready. */
async function serving(toml: string, workers: number): Promise<{ d: string; p: Proc; port: number }> {
  const d = site(toml);
  const p = start(d);
  const port = await p.port();
  await waitReady(p, workers);
  return { d, p, port };
}

const get = async (url: string, unix?: string): Promise<string> => {
  const res = await fetch(url, { headers: { connection: "close" }, ...(unix ? { unix } : {}) });
  if (res.status !== 200) throw new Error(`status ${res.status}`);
  return res.text();
};

/**
 * Clients sending requests one after another on new connections until `stop()` (and at most
 * `max` each, 60 s in all): the bodies answered, and every failure with its error.
 */
function load(url: string, clients = 4, max = 20_000): { bodies: string[]; failures: string[]; stop: () => Promise<void> } {
  const bodies: string[] = [];
  const failures: string[] = [];
  let go = true;
  const until = Date.now() + 60_000;
  const loops = Array.from({ length: clients }, async () => {
    for (let i = 0; go && i < max && Date.now() < until; i++) {
      try {
        bodies.push(await get(url));
      } catch (e) {
        failures.push(String(e));
      }
    }
  });
  return {
    bodies,
    failures,
    stop: async () => {
      go = false;
      await Promise.all(loops);
    },
  };
}

/** Wait until `cond` holds (polling), or fail with `what`. */
async function until(cond: () => boolean, what: string, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(25);
  }
}

/** One request on a new connection, written raw: "200", or how it failed ("ECONNRESET", "ECONNREFUSED", "closed: …"). */
function rawGet(to: number | string, path = "/"): Promise<string> {
  return new Promise((resolve) => {
    let got = "";
    const ask = () => c.write(`GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    // A port on 127.0.0.1, or a unix socket's path.
    const c = typeof to === "number" ? connect(to, "127.0.0.1", ask) : connect(to, ask);
    c.setTimeout(15_000, () => {
      c.destroy();
      resolve(`timeout: ${got.slice(0, 40)}`);
    });
    c.on("data", (b) => {
      got += b.toString("latin1");
    });
    c.on("error", (e: Error & { code?: string }) => resolve(e.code ?? e.message));
    c.on("close", () => resolve(got.startsWith("HTTP/1.1 200 ") ? "200" : `closed: ${got.slice(0, 40)}`));
  });
}

const pidOf = (body: string): number => Number(body.split(" ")[1]);

/** Listening TCP sockets on 127.0.0.1:`port`, from the kernel's table (/proc/net/tcp: state 0A is LISTEN). */
const listeners = (port: number): number => {
  const local = `0100007F:${port.toString(16).toUpperCase().padStart(4, "0")}`;
  return readFileSync("/proc/net/tcp", "utf8")
    .split("\n")
    .filter((line) => {
      const f = line.trim().split(/\s+/);
      return f[1] === local && f[3] === "0A";
    }).length;
};

describe("workers", () => {
  test("two workers serve a TCP listener (a socket each) and a unix one (shared): over 200 connections each answers, and the environ says which it is", async () => {
    const { d, p, port } = await serving(
      'app = "app.ts"\nbind = ["127.0.0.1:0", "unix:./w.sock"]\nworkers = 2\n[log]\naccess = "none"\n',
      2,
    );
    const pids = readyPids(p);
    // 200 connections at once, again (at most 5 times) while one worker has taken them all: the
    // kernel hands a shared listener's connections to whichever worker asks first.
    const spread = async (send: () => Promise<string>): Promise<string[]> => {
      const bodies: string[] = [];
      for (let i = 0; i < 5 && new Set(bodies.map(pidOf)).size < 2; i++) {
        bodies.push(...(await Promise.all(Array.from({ length: 200 }, send))));
      }
      return bodies;
    };
    const tcp = await spread(() => get(`http://127.0.0.1:${port}/spin`));
    const unix = await spread(() => get("http://localhost/spin", join(d, "w.sock")));
    for (const bodies of [tcp, unix]) {
      expect(new Set(bodies.map(pidOf))).toEqual(new Set(pids));
      for (const b of bodies) expect(b).toMatch(/^v1 \d+ [01] true$/);
    }
    // The master serves nothing: its own pid never answers.
    expect(tcp.map(pidOf)).not.toContain(p.p.pid);
    p.kill();
    expect(await p.exit()).toBe(0);
    expect(existsSync(join(d, "w.sock"))).toBe(false);
  }, 30_000);

  test("a burst of keep-alive connections opened at once is spread over both workers (a SO_REUSEPORT socket each), not taken by the first to wake", async () => {
    const { p, port } = await serving('app = "app.ts"\nbind = "127.0.0.1:0"\nworkers = 2\n[log]\naccess = "none"\n', 2);
    expect(listeners(port)).toBe(2);
    // 100 connections opened together, as wrk or a balancer's pool opens them; each then asks once
    // and stays open. From one shared queue, the worker that woke first accepted most of them.
    const answers = await Promise.all(
      Array.from({ length: 100 }, async () => {
        const got = Promise.withResolvers<string>();
        let text = "";
        const socket = await Bun.connect({
          hostname: "127.0.0.1",
          port,
          socket: {
            data(_s, chunk) {
              text += chunk.toString();
              const m = text.match(/\r\n\r\n(v1 \d+ [01] true)$/);
              if (m !== null) got.resolve(m[1] as string);
            },
            close() {
              got.reject(new Error(`closed before an answer: ${JSON.stringify(text)}`));
            },
          },
        });
        return { socket, answer: got.promise };
      }),
    );
    for (const a of answers) a.socket.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    const bodies = await Promise.all(answers.map((a) => a.answer));
    for (const a of answers) a.socket.end();
    const perPid = new Map<number, number>();
    for (const b of bodies) perPid.set(pidOf(b), (perPid.get(pidOf(b)) ?? 0) + 1);
    expect(new Set(perPid.keys())).toEqual(new Set(readyPids(p)));
    // By their addresses' hash: fewer than 25 of 100 on one side has a probability below 1e-6.
    for (const n of perPid.values()) expect(n).toBeGreaterThanOrEqual(25);
    p.kill();
    expect(await p.exit()).toBe(0);
  }, 30_000);

  test("reuse_port = false: the workers accept from one shared socket", async () => {
    const { p, port } = await serving(
      'app = "app.ts"\nbind = "127.0.0.1:0"\nworkers = 2\nreuse_port = false\n[log]\naccess = "none"\n',
      2,
    );
    expect(listeners(port)).toBe(1);
    const pids = new Set<number>();
    for (let i = 0; i < 5 && pids.size < 2; i++) {
      for (const b of await Promise.all(Array.from({ length: 200 }, () => get(`http://127.0.0.1:${port}/spin`))))
        pids.add(pidOf(b));
    }
    expect(pids).toEqual(new Set(readyPids(p)));
    p.kill();
    expect(await p.exit()).toBe(0);
  }, 30_000);

  test("SIGUSR2 to a new binary configured as a single process: it serves every per-worker socket it inherits", async () => {
    const { d, p, port } = await serving('app = "app.ts"\nbind = "127.0.0.1:0"\nworkers = 2\n[log]\naccess = "none"\n', 2);
    writeFileSync(join(d, "version.ts"), 'export const version = "v2";\n');
    writeFileSync(join(d, "bunwsgi.toml"), 'app = "app.ts"\nbind = "127.0.0.1:0"\n[log]\naccess = "none"\n');
    p.kill("SIGUSR2");
    const heir = Number(((await p.waitFor(/started a new master \(pid (\d+)\)/)) as RegExpMatchArray)[1]);
    try {
      await p.waitFor(/\(pid \d+\)\n[^\n]*listening on[^\n]*\n[^\n]*listening on/);
      p.kill("SIGTERM");
      expect(await p.p.exited).toBe(0);
      // Both sockets stay in the kernel's group, so each keeps getting connections: all answered.
      expect(listeners(port)).toBe(2);
      const bodies = await Promise.all(Array.from({ length: 100 }, () => get(`http://127.0.0.1:${port}/`)));
      expect(new Set(bodies.map((b) => b.split(" ").slice(0, 2).join(" ")))).toEqual(new Set([`v2 ${heir}`]));
    } finally {
      process.kill(heir, "SIGTERM");
    }
  }, 30_000);

  test("a second master on a port the first serves fails at start (address in use) instead of silently sharing its connections", async () => {
    const { p, port } = await serving('app = "app.ts"\nbind = "127.0.0.1:0"\nworkers = 2\n[log]\naccess = "none"\n', 2);
    const d = site(`app = "app.ts"\nbind = "127.0.0.1:${port}"\nworkers = 2\n[log]\naccess = "none"\n`);
    const second = start(d);
    expect(await second.exit()).toBe(2);
    expect(second.stderr).toContain(`address already in use: another process listens on port ${port}`);
    p.kill();
    expect(await p.exit()).toBe(0);
  }, 30_000);

  test("an fd://3 socket from a supervisor (systemd-style) and an IPv6 bind are shared by the workers too", async () => {
    const d = site('app = "app.ts"\nbind = ["fd://3", "[::1]:0"]\nworkers = 2\n[log]\naccess = "none"\n');
    const { node, port } = await launchWithFd3(binary, d);
    let err = "";
    const reading = (async () => {
      for await (const chunk of node.stderr) err += new TextDecoder().decode(chunk);
    })();
    try {
      await until(() => (err.match(/\) ready/g) ?? []).length >= 2, "two workers ready");
      const v6 = Number(err.match(/listening on http:\/\/\[::1\]:(\d+)/)?.[1]);
      expect(v6).toBeGreaterThan(0);
      for (const url of [`http://127.0.0.1:${port}/spin`, `http://[::1]:${v6}/spin`]) {
        const pids = new Set<number>();
        for (let i = 0; i < 5 && pids.size < 2; i++) {
          for (const b of await Promise.all(Array.from({ length: 200 }, () => get(url)))) pids.add(pidOf(b));
        }
        expect(pids.size).toBe(2);
      }
    } finally {
      node.kill("SIGTERM");
    }
    expect(await node.exited).toBe(0);
    await reading;
    expect(err).toContain("master stopped");
  }, 30_000);

  test("bunwsgi check says how many workers the config resolves to", async () => {
    const d = site('app = "app.ts"\nworkers = "auto"\n');
    const p = Bun.spawnSync([binary, "check"], { cwd: d, stdout: "pipe", stderr: "pipe" });
    expect(p.exitCode).toBe(0);
    expect(p.stdout.toString()).toContain(`# workers: a master and ${availableParallelism()} worker`);
    expect(p.stdout.toString()).toContain("(auto: the CPUs this process may use)");
    expect(p.stdout.toString()).toContain('workers = "auto"');
  });

  test("kill -9 of a worker under load: it is replaced, and no request on the other worker fails", async () => {
    const { p, port } = await serving('app = "app.ts"\nbind = "127.0.0.1:0"\nworkers = 2\n[log]\naccess = "none"\n', 2);
    const [victim, survivor] = readyPids(p) as [number, number];
    const l = load(`http://127.0.0.1:${port}/`, 2);
    await until(() => l.bodies.length > 50, "load");
    process.kill(victim, "SIGKILL");
    await waitReady(p, 3);
    const replacement = readyPids(p)[2] as number;
    await until(() => l.bodies.some((b) => pidOf(b) === replacement), "the replacement answering");
    await l.stop();
    expect(p.stderr).toContain(`(pid ${victim}) exited unexpectedly (signal SIGKILL): replacing it`);
    // Only a request the killed worker had accepted can fail: at most one per client.
    expect(l.failures.length).toBeLessThanOrEqual(2);
    expect(l.bodies.some((b) => pidOf(b) === survivor)).toBe(true);
    p.kill();
    expect(await p.exit()).toBe(0);
  }, 30_000);

  test("a worker slot whose replacement failed to start is started again once its backoff has passed (it was rescheduled forever, the service a worker short)", async () => {
    const d = site('app = "app.ts"\nbind = "127.0.0.1:0"\nworkers = 2\n[log]\naccess = "none"\n');
    const ok = join(d, "ok");
    writeFileSync(ok, "");
    writeFileSync(
      join(d, "version.ts"),
      `import { existsSync } from "node:fs";\nif (!existsSync(${JSON.stringify(ok)})) throw new Error("no ok file");\nexport const version = "v1";\n`,
    );
    const p = start(d);
    await p.port();
    await waitReady(p, 2);
    rmSync(ok);
    process.kill(readyPids(p)[0] as number, "SIGKILL");
    await until(() => p.stderr.includes("starting it again"), "a failed start of the replacement");
    writeFileSync(ok, "");
    // The backoff after one or two failures is 0.5–1 s: well within this wait.
    await waitReady(p, 3, 10_000);
    p.kill();
    expect(await p.exit()).toBe(0);
  }, 30_000);

  test("a balancer's kept-alive readiness probe stays 200 while a SIGHUP replaces the worker it is connected to (the service stays ready)", async () => {
    const { p, port } = await serving(
      'app = "app.ts"\nbind = "127.0.0.1:0"\nworkers = 1\n[health]\nready_path = "/readyz"\n[log]\naccess = "none"\n',
      1,
    );
    const socket = connect(port, "127.0.0.1");
    let received = "";
    socket.on("data", (d) => {
      received += d.toString("latin1");
    });
    await new Promise<void>((resolve) => socket.once("connect", () => resolve()));
    const probe = async (): Promise<string> => {
      const before = received.length;
      socket.write("GET /readyz HTTP/1.1\r\nHost: lb\r\n\r\n");
      await until(() => received.slice(before).includes("\r\n\r\n"), "a probe's answer", 5_000);
      return received.slice(before).split("\r\n")[0] as string;
    };
    expect(await probe()).toBe("HTTP/1.1 200 OK");
    p.kill("SIGHUP");
    await p.waitFor("the previous ones are draining");
    // The old worker has its stop message: the probe on its kept connection is answered by it.
    await Bun.sleep(300);
    expect(await probe()).toBe("HTTP/1.1 200 OK");
    socket.destroy();
    p.kill();
    expect(await p.exit()).toBe(0);
  }, 30_000);

  test("a worker whose event loop blocks past timeouts.worker is killed and replaced; the other answers throughout; the log names the request", async () => {
    const { p, port } = await serving(
      'app = "app.ts"\nbind = "127.0.0.1:0"\nworkers = 2\n[timeouts]\nworker = 2\n[log]\naccess = "none"\n',
      2,
    );
    const blocked = fetch(`http://127.0.0.1:${port}/block`).then(
      () => "answered",
      () => "cut",
    );
    await Bun.sleep(200);
    const l = load(`http://127.0.0.1:${port}/`, 2);
    const m = (await p.waitFor(
      /worker \d \(pid (\d+)\) stuck: its event loop has not answered for ([\d.]+)s[^\n]*/,
    )) as RegExpMatchArray;
    expect(Number(m[2])).toBeGreaterThanOrEqual(2);
    expect(m[0]).toContain('the last request it started was "GET /block HTTP/1.1"');
    await waitReady(p, 3);
    expect(await blocked).toBe("cut");
    await p.waitFor(`(pid ${m[1]}) did not exit 3s after SIGTERM: SIGKILL`);
    await l.stop();
    expect(l.failures).toEqual([]);
    expect(l.bodies.length).toBeGreaterThan(20);
    expect(l.bodies.map(pidOf)).not.toContain(Number(m[1]));
    p.kill();
    expect(await p.exit()).toBe(0);
  }, 30_000);

  test("SIGHUP under load rolls the workers (2 to 3 of them): no request fails, and the answers switch to the new app", async () => {
    const { d, p, port } = await serving('app = "app.ts"\nbind = "127.0.0.1:0"\nworkers = 2\n[log]\naccess = "none"\n', 2);
    const l = load(`http://127.0.0.1:${port}/`);
    await until(() => l.bodies.length > 50, "load");
    writeFileSync(join(d, "version.ts"), 'export const version = "v2";\n');
    writeFileSync(join(d, "bunwsgi.toml"), 'app = "app.ts"\nbind = "127.0.0.1:0"\nworkers = 3\n[log]\naccess = "none"\n');
    p.kill("SIGHUP");
    await until(() => l.bodies.slice(-20).every((b) => b.startsWith("v2 ")) && l.bodies.length > 20, "v2 answers");
    await p.waitFor("the previous ones are draining");
    const after = l.bodies.length;
    await until(() => l.bodies.length > after + 50, "load after the roll");
    await l.stop();
    expect(l.failures).toEqual([]);
    expect(l.bodies[0]).toStartWith("v1 ");
    // Once the old generation drains it takes no new connection: past the 4 requests in flight
    // then (one per client), every answer is the new app's.
    expect(l.bodies.slice(after + 4).filter((b) => !b.startsWith("v2 "))).toEqual([]);
    // A third listening socket for the third worker, which gets its share of new connections.
    expect(listeners(port)).toBe(3);
    expect(new Set(l.bodies.slice(after + 4).map(pidOf)).size).toBe(3);
    p.kill();
    expect(await p.exit()).toBe(0);
  }, 40_000);

  test("SIGHUP to workers = 0 says a single process takes a restart, rolls the workers it has, and a later SIGHUP still rolls", async () => {
    const { d, p, port } = await serving('app = "app.ts"\nbind = "127.0.0.1:0"\nworkers = 2\n[log]\naccess = "none"\n', 2);
    writeFileSync(join(d, "version.ts"), 'export const version = "v2";\n');
    writeFileSync(join(d, "bunwsgi.toml"), 'app = "app.ts"\nbind = "127.0.0.1:0"\nworkers = 0\n[log]\naccess = "none"\n');
    p.kill("SIGHUP");
    await p.waitFor("2 new workers ready");
    expect(p.stderr).toContain("SIGHUP: workers = 0 (a single process) needs a restart; the master keeps its workers");
    await until(() => readyPids(p).length === 4, "the rolled workers");
    writeFileSync(join(d, "version.ts"), 'export const version = "v3";\n');
    writeFileSync(join(d, "bunwsgi.toml"), 'app = "app.ts"\nbind = "127.0.0.1:0"\nworkers = 3\n[log]\naccess = "none"\n');
    p.kill("SIGHUP");
    await p.waitFor("3 new workers ready");
    expect(p.stderr).not.toContain("SIGHUP ignored");
    expect(await get(`http://127.0.0.1:${port}/`)).toStartWith("v3 ");
    p.kill();
    expect(await p.exit()).toBe(0);
  }, 40_000);

  test("a SIGHUP while the previous one's workers are still starting is not lost: once they serve, the master rolls again to the newer edit", async () => {
    const { d, p, port } = await serving('app = "app.ts"\nbind = "127.0.0.1:0"\nworkers = 2\n[log]\naccess = "none"\n', 2);
    writeFileSync(join(d, "version.ts"), 'export const version = "v2";\n');
    p.kill("SIGHUP");
    await p.waitFor("SIGHUP: starting 2 workers");
    // A deploy's second edit and reload, before the first reload's workers are ready.
    writeFileSync(join(d, "version.ts"), 'export const version = "v3";\n');
    p.kill("SIGHUP");
    await p.waitFor("rolling again for the SIGHUP that came while the previous one was starting", 15_000);
    await until(
      () => (p.stderr.match(/new workers ready; the previous ones are draining/g) ?? []).length === 2,
      "the second roll",
    );
    const bodies = await Promise.all(Array.from({ length: 10 }, () => get(`http://127.0.0.1:${port}/`)));
    for (const b of bodies) expect(b).toStartWith("v3 ");
    expect(p.stderr).not.toContain("SIGHUP ignored");
    p.kill();
    expect(await p.exit()).toBe(0);
  }, 30_000);

  test("a replacement worker serves the config its master resolved, not an edit of the file nobody signalled", async () => {
    const { d, p, port } = await serving('app = "app.ts"\nbind = "127.0.0.1:0"\nworkers = 1\n[log]\naccess = "none"\n', 1);
    // A half-done edit: a missing app and a bind the master does not hold.
    writeFileSync(join(d, "bunwsgi.toml"), 'app = "missing.ts"\nbind = ["127.0.0.1:0", "127.0.0.1:1"]\nworkers = 1\n');
    process.kill(readyPids(p)[0] as number, "SIGKILL");
    await waitReady(p, 2);
    expect(await get(`http://127.0.0.1:${port}/`)).toStartWith("v1 ");
    expect(p.stderr).not.toContain("cannot start");
    p.kill();
    expect(await p.exit()).toBe(0);
  }, 30_000);

  test("SIGHUP with an app that cannot import keeps the old workers serving, and says why", async () => {
    const { d, p, port } = await serving('app = "app.ts"\nbind = "127.0.0.1:0"\nworkers = 2\n[log]\naccess = "none"\n', 2);
    writeFileSync(join(d, "version.ts"), 'export const version = "v2";\nthrow new Error("broken at import");\n');
    p.kill("SIGHUP");
    await p.waitFor("SIGHUP: reload failed, the previous workers keep serving");
    expect(p.stderr).toContain("broken at import");
    const bodies = await Promise.all(Array.from({ length: 20 }, () => get(`http://127.0.0.1:${port}/`)));
    for (const b of bodies) expect(b).toStartWith("v1 ");
    p.kill();
    expect(await p.exit()).toBe(0);
  }, 30_000);

  test("max_requests recycles workers under load: each replacement is ready before the old one stops, and no request fails", async () => {
    const d = site(
      'app = "app.ts"\nbind = "127.0.0.1:0"\nworkers = 2\nmax_requests = 300\nmax_requests_jitter = 50\n[log]\naccess = "none"\n',
    );
    const p = start(d);
    const port = await p.port();
    await waitReady(p, 2);
    const l = load(`http://127.0.0.1:${port}/`);
    await until(() => readyPids(p).length >= 5, "three recycled workers", 25_000);
    await l.stop();
    expect(l.failures).toEqual([]);
    expect(p.stderr).toMatch(/served \d+ requests \(max_requests\): starting its replacement/);
    expect(new Set(l.bodies.map(pidOf)).size).toBeGreaterThanOrEqual(4);
    p.kill();
    expect(await p.exit()).toBe(0);
  }, 40_000);

  test("SIGUSR2 starts the new binary as a new master on the same sockets; SIGTERM to the old one drains it: no request fails", async () => {
    const d = site(
      'app = "app.ts"\nbind = ["127.0.0.1:0", "unix:./u.sock"]\nworkers = 2\npidfile = "bunwsgi.pid"\n[log]\naccess = "none"\n',
    );
    const p = start(d);
    const port = await p.port();
    await waitReady(p, 2);
    const pidfile = join(d, "bunwsgi.pid");
    expect(readFileSync(pidfile, "utf8").trim()).toBe(String(p.p.pid));
    const l = load(`http://127.0.0.1:${port}/`);
    await until(() => l.bodies.length > 50, "load");
    writeFileSync(join(d, "version.ts"), 'export const version = "v2";\n');
    p.kill("SIGUSR2");
    const m = (await p.waitFor(/started a new master \(pid (\d+)\)/)) as RegExpMatchArray;
    const heir = Number(m[1]);
    await until(() => existsSync(pidfile) && readFileSync(pidfile, "utf8").trim() === String(heir), "the new pidfile");
    expect(readFileSync(`${pidfile}.oldbin`, "utf8").trim()).toBe(String(p.p.pid));
    await until(() => l.bodies.some((b) => b.startsWith("v2 ")), "the new master's workers answering");
    p.kill("SIGTERM");
    // The new master writes to the same stderr pipe, so the pipe stays open: wait for the exit only.
    expect(await p.p.exited).toBe(0);
    const after = l.bodies.length;
    await until(() => l.bodies.length > after + 50, "load after the old master left");
    // The new master's two workers serve the two per-worker sockets it inherited.
    expect(listeners(port)).toBe(2);
    await l.stop();
    expect(l.failures).toEqual([]);
    expect(l.bodies.slice(-20).every((b) => b.startsWith("v2 "))).toBe(true);
    expect(existsSync(`${pidfile}.oldbin`)).toBe(false);
    expect(await get("http://localhost/", join(d, "u.sock"))).toStartWith("v2 ");
    process.kill(heir, "SIGTERM");
    await until(() => !existsSync(pidfile), "the new master's exit");
    expect(existsSync(join(d, "u.sock"))).toBe(false);
  }, 40_000);

  test("SIGUSR1 after the access log was moved: every worker writes to the new file, lines whole and each with its pid", async () => {
    const d = site(
      'app = "app.ts"\nbind = "127.0.0.1:0"\nworkers = 2\n[log]\naccess = "access.log"\nformat = "{pid} {status} {header:x-pad}"\n',
    );
    const p = start(d);
    const port = await p.port();
    await waitReady(p, 2);
    const pids = readyPids(p);
    const log = join(d, "access.log");
    // Lines over 4 KiB (PIPE_BUF), from both workers at once.
    const pad = "x".repeat(6000);
    const send = (n: number) =>
      Promise.all(
        Array.from({ length: n }, () =>
          fetch(`http://127.0.0.1:${port}/`, { headers: { connection: "close", "x-pad": pad } }).then((r) => r.text()),
        ),
      );
    await send(100);
    renameSync(log, `${log}.1`);
    p.kill("SIGUSR1");
    await p.waitFor("SIGUSR1: log files reopened (master and workers)");
    await until(() => (p.stderr.match(/SIGUSR1: log files reopened\n/g) ?? []).length >= 2, "both workers reopening");
    await send(200);
    await until(() => existsSync(log) && readFileSync(log, "utf8").split("\n").length > 200, "200 lines in the new file");
    for (const file of [`${log}.1`, log]) {
      const lines = readFileSync(file, "utf8").trimEnd().split("\n");
      for (const line of lines) expect(line).toMatch(new RegExp(`^(${pids.join("|")}) 200 x{6000}$`));
    }
    const fresh = readFileSync(log, "utf8").trimEnd().split("\n");
    expect(new Set(fresh.map((line) => Number(line.split(" ")[0])))).toEqual(new Set(pids));
    p.kill();
    expect(await p.exit()).toBe(0);
  }, 30_000);

  test("during a graceful stop a new connection is refused, not accepted by the kernel and reset at exit", async () => {
    const { p, port } = await serving('app = "app.ts"\nbind = "127.0.0.1:0"\nworkers = 2\n[log]\naccess = "none"\n', 2);
    const slow = get(`http://127.0.0.1:${port}/slow`);
    await Bun.sleep(200);
    p.kill("SIGTERM");
    await p.waitFor("stopping 2 workers gracefully");
    await Bun.sleep(200);
    // Refused at connect (ECONNREFUSED), where the master's copy of the socket used to take it.
    const error = await new Promise<string>((resolve) => {
      const c = connect(port, "127.0.0.1");
      c.on("connect", () => {
        c.destroy();
        resolve("connected");
      });
      c.on("error", (e: Error & { code?: string }) => resolve(e.code ?? e.message));
    });
    expect(error).toBe("ECONNREFUSED");
    expect(await slow).toMatch(/^v1 \d+ slow$/);
    expect(await p.exit()).toBe(0);
  }, 30_000);

  test("SIGTERM: connections the kernel queued while the workers were busy are answered at the stop, not reset as the listeners close", async () => {
    const { p, port } = await serving(
      'app = "app.ts"\nbind = "127.0.0.1:0"\nworkers = 2\n[log]\naccess = "none"\n[timeouts]\ndrain_delay = 1\n',
      2,
    );
    p.kill("SIGTERM");
    await p.waitFor("after a 1s drain");
    // Both workers' event loops busy past the drain's end (most likely a connection each of 4).
    const busy = Array.from({ length: 4 }, () => get(`http://127.0.0.1:${port}/busy`).catch((e) => String(e)));
    await Bun.sleep(300);
    // Accepted by the kernel into the workers' queues while their loops are busy.
    const outcomes = await Promise.all(Array.from({ length: 40 }, () => rawGet(port)));
    await Promise.all(busy);
    expect(outcomes.filter((o) => o !== "200")).toEqual([]);
    expect(await p.exit()).toBe(0);
  }, 30_000);

  test("a single process (workers = 0) at SIGTERM answers the connections its socket queued while it was busy, and refuses new ones", async () => {
    const d = site('app = "app.ts"\nbind = "127.0.0.1:0"\n[log]\naccess = "none"\n[timeouts]\ndrain_delay = 1\n');
    const p = start(d);
    const port = await p.port();
    p.kill("SIGTERM");
    await p.waitFor("draining for 1s");
    const busy = get(`http://127.0.0.1:${port}/busy`);
    await Bun.sleep(300);
    const outcomes = await Promise.all(Array.from({ length: 20 }, () => rawGet(port)));
    expect(await busy).toStartWith("v1 ");
    expect(outcomes.filter((o) => o !== "200")).toEqual([]);
    expect(await p.exit()).toBe(0);
    expect(await rawGet(port)).toBe("ECONNREFUSED");
  }, 30_000);

  test("SIGTERM with workers on a unix socket: connections queued while both were busy are answered, not reset as the socket closes", async () => {
    const d = site('app = "app.ts"\nbind = "unix:u.sock"\nworkers = 2\n[log]\naccess = "none"\n[timeouts]\ndrain_delay = 1\n');
    const sock = join(d, "u.sock");
    const p = start(d);
    await waitReady(p, 2);
    p.kill("SIGTERM");
    await p.waitFor("after a 1s drain");
    const busy = Array.from({ length: 4 }, () => get("http://localhost/busy", sock).catch((e) => String(e)));
    await Bun.sleep(300);
    const outcomes = await Promise.all(Array.from({ length: 40 }, () => rawGet(sock)));
    await Promise.all(busy);
    expect(outcomes.filter((o) => o !== "200")).toEqual([]);
    expect(await p.exit()).toBe(0);
    expect(existsSync(sock)).toBe(false);
  }, 30_000);

  test("a single process on a unix socket at SIGTERM answers the connections queued while it was busy, and new ones find no socket", async () => {
    const d = site('app = "app.ts"\nbind = "unix:u.sock"\n[log]\naccess = "none"\n[timeouts]\ndrain_delay = 1\n');
    const sock = join(d, "u.sock");
    const p = start(d);
    await p.waitFor("listening on unix:");
    p.kill("SIGTERM");
    await p.waitFor("draining for 1s");
    const busy = get("http://localhost/busy", sock);
    await Bun.sleep(300);
    const outcomes = await Promise.all(Array.from({ length: 20 }, () => rawGet(sock)));
    expect(await busy).toStartWith("v1 ");
    expect(outcomes.filter((o) => o !== "200")).toEqual([]);
    expect(await p.exit()).toBe(0);
    expect(await rawGet(sock)).toBe("ENOENT");
  }, 30_000);

  test("SIGTTOU: connections queued on the removed worker's socket while it was busy are answered, not reset as its socket closes", async () => {
    const { p, port } = await serving('app = "app.ts"\nbind = "127.0.0.1:0"\nworkers = 2\n[log]\naccess = "none"\n', 2);
    const busy = Array.from({ length: 4 }, () => get(`http://127.0.0.1:${port}/busy`).catch((e) => String(e)));
    await Bun.sleep(300);
    p.kill("SIGTTOU");
    await p.waitFor("SIGTTOU: 1 worker");
    const outcomes = await Promise.all(Array.from({ length: 40 }, () => rawGet(port)));
    await Promise.all(busy);
    expect(outcomes.filter((o) => o !== "200")).toEqual([]);
    await p.waitFor(/worker 1 \(pid \d+\) stopped/);
    expect(await rawGet(port)).toBe("200");
    p.kill();
    expect(await p.exit()).toBe(0);
  }, 30_000);

  test("SIGTERM under load: every request already received is answered, then the master exits 0", async () => {
    const { p, port } = await serving('app = "app.ts"\nbind = "127.0.0.1:0"\nworkers = 2\n[log]\naccess = "none"\n', 2);
    const slow = Array.from({ length: 20 }, () => get(`http://127.0.0.1:${port}/slow`));
    await Bun.sleep(300);
    p.kill("SIGTERM");
    const bodies = await Promise.all(slow);
    for (const b of bodies) expect(b).toMatch(/^v1 \d+ slow$/);
    expect(await p.exit()).toBe(0);
    expect(p.stderr).toContain("master stopped");
  }, 30_000);

  test("SIGTERM to the master and every worker at once (systemd's control-group stop) still drains: requests in flight are answered", async () => {
    const { p, port } = await serving('app = "app.ts"\nbind = "127.0.0.1:0"\nworkers = 2\n[log]\naccess = "none"\n', 2);
    const slow = Array.from({ length: 20 }, () => get(`http://127.0.0.1:${port}/slow`));
    await Bun.sleep(300);
    for (const pid of [...readyPids(p), p.p.pid]) process.kill(pid, "SIGTERM");
    const bodies = await Promise.all(slow);
    for (const b of bodies) expect(b).toMatch(/^v1 \d+ slow$/);
    expect(await p.exit()).toBe(0);
    expect(p.stderr).not.toContain("closing all connections now");
  }, 30_000);

  test("an app that cannot import stops the master at start-up with the reason, instead of a restart loop", async () => {
    const d = site('app = "app.ts"\nbind = "127.0.0.1:0"\nworkers = 2\n');
    writeFileSync(join(d, "version.ts"), 'export const version = "v1";\nthrow new Error("broken at import");\n');
    const p = start(d);
    expect(await p.exit()).toBe(2);
    expect(p.stderr).toContain("broken at import");
    expect(p.stderr).toMatch(/cannot start the app \(exit code 2; its reason is above\): stopping/);
    // No worker is started again (the second may be stopped before it reports its own failure).
    const tries = (p.stderr.match(/\[\d+\] \[ERROR\] bunwsgi: cannot start:/g) ?? []).length;
    expect(tries).toBeGreaterThanOrEqual(1);
    expect(tries).toBeLessThanOrEqual(2);
    expect(p.stderr).not.toContain("starting it again");
  }, 30_000);

  test("SIGTTIN adds a worker and SIGTTOU removes one", async () => {
    const { p, port } = await serving('app = "app.ts"\nbind = "127.0.0.1:0"\nworkers = 1\n[log]\naccess = "none"\n', 1);
    expect(listeners(port)).toBe(1);
    p.kill("SIGTTIN");
    await waitReady(p, 2);
    expect(listeners(port)).toBe(2);
    const both = await Promise.all(Array.from({ length: 100 }, () => get(`http://127.0.0.1:${port}/spin`)));
    expect(new Set(both.map(pidOf)).size).toBe(2);
    p.kill("SIGTTOU");
    await p.waitFor("SIGTTOU: 1 worker");
    const gone = readyPids(p)[1] as number;
    await p.waitFor(`worker 1 (pid ${gone}) stopped`);
    expect(listeners(port)).toBe(1);
    const one = await Promise.all(Array.from({ length: 50 }, () => get(`http://127.0.0.1:${port}/`)));
    expect(new Set(one.map(pidOf))).toEqual(new Set([readyPids(p)[0] as number]));
    p.kill();
    expect(await p.exit()).toBe(0);
  }, 30_000);
});

describe("TLS with workers", () => {
  /** The SHA-256 fingerprint of the certificate served on `port`, and whether a GET without a client certificate is answered. */
  const served = (port: number): Promise<{ fingerprint: string; answered: boolean }> =>
    new Promise((resolve, reject) => {
      let fingerprint = "";
      let got = "";
      const s = tlsConnect({ port, host: "127.0.0.1", servername: "localhost", rejectUnauthorized: false });
      const timer = setTimeout(() => s.destroy(), 5000);
      s.on("secureConnect", () => {
        fingerprint = s.getPeerCertificate().fingerprint256;
        s.write("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
      });
      s.on("data", (d: Buffer) => {
        got += d.toString("latin1");
      });
      s.on("error", () => {});
      s.on("close", () => {
        clearTimeout(timer);
        if (fingerprint === "") reject(new Error("no handshake"));
        else resolve({ fingerprint, answered: got.startsWith("HTTP/1.1 200 OK\r\n") });
      });
    });
  /** Connect until what is served on `port` passes `ok`, for at most 5 s. */
  const servedUntil = async (
    port: number,
    ok: (s: { fingerprint: string; answered: boolean }) => boolean,
    what: string,
  ): Promise<void> => {
    const deadline = Date.now() + 5000;
    while (!ok(await served(port))) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await Bun.sleep(50);
    }
  };
  const fingerprintOf = (file: string): string => new X509Certificate(readFileSync(file)).fingerprint256;

  test("SIGHUP serves a certificate renewed in place and a new client_auth from the new workers, with no restart warning; a broken key fails the reload and the old certificate serves on", async () => {
    const [first, renewed] = [join(dir, "tls-first"), join(dir, "tls-renewed")];
    mkdirSync(first);
    mkdirSync(renewed);
    await Promise.all([makeCertificates(first), makeCertificates(renewed)]);
    const toml = (more: string): string =>
      `app = "app.ts"\nbind = "127.0.0.1:0"\nworkers = 1\n[log]\naccess = "none"\n[tls]\ncert = "cert.pem"\nkey = "key.pem"\n${more}`;
    const d = site(toml(""));
    copyFileSync(join(first, "srv.pem"), join(d, "cert.pem"));
    copyFileSync(join(first, "srv.key"), join(d, "key.pem"));
    const p = start(d);
    const port = await p.port("https");
    await waitReady(p, 1);
    const rolled = (): number => p.stderr.split("new worker ready").length - 1;
    expect((await served(port)).fingerprint).toBe(fingerprintOf(join(first, "srv.pem")));

    writeFileSync(join(d, "key.pem"), "not a key\n");
    p.kill("SIGHUP");
    await p.waitFor("SIGHUP: reload failed, the workers keep serving the previous configuration");
    expect(p.stderr).toContain("tls.key: ");
    expect((await served(port)).fingerprint).toBe(fingerprintOf(join(first, "srv.pem")));

    copyFileSync(join(renewed, "srv.pem"), join(d, "cert.pem"));
    copyFileSync(join(renewed, "srv.key"), join(d, "key.pem"));
    p.kill("SIGHUP");
    await until(() => rolled() === 1, "the renewed certificate's worker");
    // The old worker may take a connection or two more as it closes its listener.
    const renewedPrint = fingerprintOf(join(renewed, "srv.pem"));
    await servedUntil(port, (s) => s.fingerprint === renewedPrint, "the renewed certificate");
    expect(await served(port)).toEqual({ fingerprint: renewedPrint, answered: true });

    copyFileSync(join(renewed, "ca.pem"), join(d, "ca.pem"));
    writeFileSync(join(d, "bunwsgi.toml"), toml('ca = "ca.pem"\nclient_auth = "require"\n'));
    p.kill("SIGHUP");
    await until(() => rolled() === 2, "the client_auth worker");
    await servedUntil(port, (s) => !s.answered, "client_auth = require");
    expect(await served(port)).toEqual({ fingerprint: renewedPrint, answered: false });
    // The master said nothing of a restart: the new workers serve what changed.
    expect(p.stderr).not.toContain("changed on disk");
    expect(p.stderr).not.toContain("needs a restart");
    p.kill();
    expect(await p.exit()).toBe(0);
  }, 60_000);

  test("a worker replacing one that died serves its generation's certificate, not files a renewal half wrote with nobody's SIGHUP", async () => {
    const [first, renewed] = [join(dir, "tls-dead-first"), join(dir, "tls-dead-renewed")];
    mkdirSync(first);
    mkdirSync(renewed);
    await Promise.all([makeCertificates(first), makeCertificates(renewed)]);
    const d = site(
      `app = "app.ts"\nbind = "127.0.0.1:0"\nworkers = 1\n[log]\naccess = "none"\n[tls]\ncert = "cert.pem"\nkey = "key.pem"\n`,
    );
    copyFileSync(join(first, "srv.pem"), join(d, "cert.pem"));
    copyFileSync(join(first, "srv.key"), join(d, "key.pem"));
    const p = start(d);
    const port = await p.port("https");
    await waitReady(p, 1);
    const firstPrint = fingerprintOf(join(first, "srv.pem"));
    expect((await served(port)).fingerprint).toBe(firstPrint);

    // A renewal caught between its two writes: the new certificate, the key not yet written.
    copyFileSync(join(renewed, "srv.pem"), join(d, "cert.pem"));
    writeFileSync(join(d, "key.pem"), "");
    const victim = readyPids(p)[0] as number;
    process.kill(victim, "SIGKILL");
    await waitReady(p, 2);
    expect(await served(port)).toEqual({ fingerprint: firstPrint, answered: true });
    expect(p.stderr).not.toContain("tls.key");
    p.kill();
    expect(await p.exit()).toBe(0);
  }, 60_000);
});
