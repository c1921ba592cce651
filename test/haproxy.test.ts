/**
 * @module test/haproxy — Debian's HAProxy in front of two compiled bunwsgi instances: PROXY v2 on
 * every server connection, `option httpchk` on the readiness path, keep-alive on both sides. Under
 * continuous client load, one instance gets SIGTERM (its drain turns readiness 503 first) and is
 * started again: no client request fails, and every request, including later ones on reused
 * connections, shows the client's own address and port.
 */

import { afterAll, beforeAll, expect, test } from "bun:test";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { buildBinary, Proc } from "./binary.ts";

const haproxy = Bun.which("haproxy") ?? Bun.which("/usr/sbin/haproxy");
if (haproxy === null) console.warn("SKIPPED test/haproxy: haproxy is not installed (apt-get install -y haproxy; .ci/run does)");

const dir = mkdtempSync(join(tmpdir(), "bunwsgi-haproxy-"));
// HAProxy reads its config as root, then runs as nobody: the folder must stay readable.
chmodSync(dir, 0o755);
const binary = join(dir, "bin", "bunwsgi");
const procs: Proc[] = [];
let balancer: Subprocess | null = null;
let balancerErr = "";

beforeAll(async () => {
  if (haproxy === null) return;
  mkdirSync(join(dir, "bin"));
  await buildBinary(["--outfile", binary]);
}, 120_000);

afterAll(async () => {
  for (const p of procs) p.kill("SIGKILL");
  if (balancer !== null && balancer.exitCode === null) balancer.kill("SIGKILL");
  await Promise.all([...procs.map((p) => p.exit()), balancer?.exited]);
  rmSync(dir, { recursive: true, force: true });
});

/** The app answers with what it was told of the client and of the socket's own peer (HAProxy). */
const APP = `export default (env: Record<string, unknown>, startResponse: (s: string, h: [string, string][]) => unknown) => {
  const peer = env["bunwsgi.peer"] as [string, number];
  startResponse("200 OK", [["Content-Type", "text/plain"]]);
  return [\`\${env.REMOTE_ADDR} \${env.REMOTE_PORT} \${peer[0]}:\${peer[1]} \${process.pid}\`];
};
`;

/** A loopback port free now (bound and released). */
function freePort(): number {
  const l = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = l.port;
  l.stop(true);
  return port;
}

function instance(name: string, port: number): Proc {
  const site = join(dir, name);
  mkdirSync(site, { recursive: true });
  writeFileSync(join(site, "app.ts"), APP);
  writeFileSync(
    join(site, "bunwsgi.toml"),
    `app = "app.ts"
bind = "127.0.0.1:${port} proxy_protocol=v2"
[health]
live_path = "/livez"
ready_path = "/readyz"
[timeouts]
drain_delay = 1
shutdown = 3
keep_alive = 30
[log]
access = "none"
`,
  );
  const p = new Proc([], site, binary);
  procs.push(p);
  return p;
}

/** One response off a keep-alive connection: status and body (Content-Length framed; HAProxy passes bunwsgi's). */
class KeepAliveClient {
  private buf = Buffer.alloc(0);
  private wake: (() => void) | null = null;
  private ended = false;
  readonly socket: Socket;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on("data", (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.wake?.();
    });
    const end = (): void => {
      this.ended = true;
      this.wake?.();
    };
    socket.on("end", end);
    socket.on("close", end);
    socket.on("error", end);
  }

  /** Connect to HAProxy from 127.0.0.2, an address neither HAProxy nor bunwsgi uses for itself. */
  static open(port: number): Promise<KeepAliveClient> {
    return new Promise((resolve, reject) => {
      const s = connect({ host: "127.0.0.1", port, localAddress: "127.0.0.2" }, () => resolve(new KeepAliveClient(s)));
      s.once("error", reject);
    });
  }

  get local(): string {
    return `${this.socket.localAddress} ${this.socket.localPort}`;
  }

  async get(path: string, ms = 5000): Promise<{ status: number; body: string }> {
    this.socket.write(`GET ${path} HTTP/1.1\r\nHost: site\r\n\r\n`);
    const deadline = Date.now() + ms;
    for (;;) {
      const end = this.buf.indexOf("\r\n\r\n");
      if (end >= 0) {
        const head = this.buf.subarray(0, end).toString("latin1");
        const length = Number(head.match(/\r\ncontent-length: *(\d+)/i)?.[1] ?? -1);
        if (length >= 0 && this.buf.length >= end + 4 + length) {
          const body = this.buf.subarray(end + 4, end + 4 + length).toString();
          this.buf = this.buf.subarray(end + 4 + length);
          return { status: Number(head.slice(9, 12)), body };
        }
      }
      if (this.ended) throw new Error(`connection closed; received ${JSON.stringify(this.buf.toString())}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no response in ${ms}ms`);
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        setTimeout(resolve, left);
      });
      this.wake = null;
    }
  }

  close(): void {
    this.socket.destroy();
  }
}

test.skipIf(haproxy === null)(
  "SIGTERM to one of two instances behind HAProxy (send-proxy-v2, httpchk on /readyz) and its restart fail no client request; REMOTE_ADDR is the client's on every request, reused connections included",
  async () => {
    const [portA, portB, front] = [freePort(), freePort(), freePort()];
    let a = instance("a", portA);
    const b = instance("b", portB);
    await Promise.all([a.waitFor("listening on"), b.waitFor("listening on")]);
    const root = process.getuid?.() === 0;
    writeFileSync(
      join(dir, "haproxy.cfg"),
      `global
    maxconn 256
${root ? "    uid 65534\n    gid 65534\n" : ""}
defaults
    mode http
    option http-keep-alive
    timeout connect 1s
    timeout client 10s
    timeout server 10s
    timeout http-keep-alive 5s
    retries 3
    option redispatch
    retry-on conn-failure empty-response

frontend www
    bind 127.0.0.1:${front}
    default_backend bunwsgi

backend bunwsgi
    balance roundrobin
    http-reuse safe
    option httpchk
    http-check send meth GET uri /readyz ver HTTP/1.1 hdr Host bunwsgi
    http-check expect status 200
    default-server send-proxy-v2 check inter 100ms fall 1 rise 2
    server a 127.0.0.1:${portA}
    server b 127.0.0.1:${portB}
`,
    );
    chmodSync(join(dir, "haproxy.cfg"), 0o644);
    const hp = Bun.spawn([haproxy as string, "-db", "-f", join(dir, "haproxy.cfg")], { stdout: "pipe", stderr: "pipe" });
    balancer = hp;
    void (async () => {
      for await (const c of hp.stderr) balancerErr += new TextDecoder().decode(c);
    })();

    const pidA = Number(a.stderr.match(/\(pid (\d+)\)/)?.[1]);
    const pidB = Number(b.stderr.match(/\(pid (\d+)\)/)?.[1]);
    // Both instances up in HAProxy's eyes: both answer through it.
    const seen = new Set<number>();
    const deadline = Date.now() + 10_000;
    while (seen.size < 2) {
      if (Date.now() > deadline || hp.exitCode !== null) throw new Error(`HAProxy never reached both: ${balancerErr}`);
      try {
        const c = await KeepAliveClient.open(front);
        for (let i = 0; i < 4; i++) seen.add(Number((await c.get("/warm")).body.split(" ")[3]));
        c.close();
      } catch {
        await Bun.sleep(50);
      }
    }

    // The load: 4 keep-alive client connections, each sending requests one after another, bounded
    // in time (15 s) and count (20 000 each); every answer is checked as it comes.
    let running = true;
    const failures: string[] = [];
    const pids = new Map<number, number>();
    /** Requests per server-side connection (HAProxy's address and port at bunwsgi). */
    const perServerConnection = new Map<string, number>();
    let total = 0;
    const stopBy = Date.now() + 15_000;
    const loop = async (n: number): Promise<void> => {
      const c = await KeepAliveClient.open(front);
      try {
        for (let i = 0; running && i < 20_000 && Date.now() < stopBy; i++) {
          try {
            const r = await c.get(`/load/${n}/${i}`);
            total++;
            const [addr, port, peer, pid] = r.body.split(" ") as [string, string, string, string];
            if (r.status !== 200) failures.push(`status ${r.status}: ${r.body}`);
            else if (`${addr} ${port}` !== c.local) failures.push(`REMOTE ${addr} ${port}, client ${c.local}`);
            pids.set(Number(pid), (pids.get(Number(pid)) ?? 0) + 1);
            perServerConnection.set(`${pid} ${peer}`, (perServerConnection.get(`${pid} ${peer}`) ?? 0) + 1);
          } catch (e) {
            failures.push(String(e));
            return;
          }
        }
      } finally {
        c.close();
      }
    };
    const loads = [1, 2, 3, 4].map(loop);

    await Bun.sleep(500);
    const t0 = performance.now();
    a.kill("SIGTERM");
    expect(await a.exit()).toBe(0);
    const stoppedAfter = performance.now() - t0;
    expect(a.stderr).toContain("draining for 1s");
    const servedByA = pids.get(pidA) ?? 0;
    // Started again on its port; HAProxy brings it back after two good checks.
    a = instance("a", portA);
    await a.waitFor("listening on");
    const pidA2 = Number(a.stderr.match(/\(pid (\d+)\)/)?.[1]);
    const back = Date.now() + 8000;
    while ((pids.get(pidA2) ?? 0) < 50 && Date.now() < back && running && failures.length === 0) await Bun.sleep(50);
    await Bun.sleep(300);
    running = false;
    await Promise.all(loads);

    expect(failures).toEqual([]);
    expect(total).toBeGreaterThan(500);
    expect(stoppedAfter).toBeGreaterThanOrEqual(1000);
    expect(servedByA).toBeGreaterThan(0);
    expect(pids.get(pidB) ?? 0).toBeGreaterThan(0);
    expect(pids.get(pidA2) ?? 0).toBeGreaterThanOrEqual(50);
    // Server connections were reused for many requests: the address held past the first one.
    expect(Math.max(...perServerConnection.values())).toBeGreaterThan(10);
    // HAProxy took the instance out on its readiness answer, before its listener closed.
    expect(balancerErr).toContain("Server bunwsgi/a is DOWN, reason: Layer7 wrong status, code: 503");
    expect(balancerErr).toContain("Server bunwsgi/a is UP");
    expect(hp.exitCode).toBeNull();
  },
  40_000,
);
