/**
 * @module test/metrics — the Prometheus page on metrics_bind: its text format (checked by
 * promtool when installed), counters that agree exactly with the requests sent, rejections by
 * the access log's reason, and with workers = 2 the master's page summed over its workers,
 * keeping a killed worker's counts and counting its restart. The compiled binary is served.
 */

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseCommandLine } from "../src/config/args.ts";
import { resolveConfig } from "../src/config/resolve.ts";
import { Aggregate, exposition, Histogram, type Samples } from "../src/observe/metrics.ts";
import { buildBinary, Proc } from "./binary.ts";
import { exchange } from "./helpers.ts";

const PROMTOOL = Bun.which("promtool");
if (PROMTOOL === null) console.log("metrics: promtool not found (Debian package prometheus): the format checks are skipped");

const dir = mkdtempSync(join(tmpdir(), "bunwsgi-metrics-"));
const binary = join(dir, "bin", "bunwsgi");

const APP = `export default function app(env: Record<string, unknown>, startResponse: (s: string, h: [string, string][]) => unknown) {
  const found = env.PATH_INFO !== "/missing";
  startResponse(found ? "200 OK" : "404 Not Found", [["Content-Type", "text/plain"]]);
  return [\`\${process.pid}\`];
}
`;

beforeAll(async () => {
  mkdirSync(join(dir, "bin"));
  await buildBinary(["--outfile", binary]);
}, 120_000);

const running: Proc[] = [];
afterAll(async () => {
  for (const p of running) p.kill("SIGKILL");
  await Bun.sleep(200);
  rmSync(dir, { recursive: true, force: true });
});

let sites = 0;
function start(toml: string): Proc {
  const d = join(dir, `site${++sites}`);
  mkdirSync(d);
  writeFileSync(join(d, "app.ts"), APP);
  writeFileSync(join(d, "bunwsgi.toml"), toml);
  const p = new Proc([], d, binary);
  running.push(p);
  return p;
}

const CONFIG = (workers: number): string =>
  `app = "app.ts"\nbind = "127.0.0.1:0"\nmetrics_bind = "127.0.0.1:0"\nworkers = ${workers}\n[log]\naccess = "none"\n[limits]\nheader_bytes = 1024\n`;

/** The page's samples: series → value. */
async function scrape(url: string): Promise<{ text: string; samples: Map<string, number> }> {
  const res = await fetch(url);
  expect(res.headers.get("content-type")).toBe("text/plain; version=0.0.4; charset=utf-8");
  const text = await res.text();
  const samples = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const space = line.lastIndexOf(" ");
    samples.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return { text, samples };
}

async function promtoolCheck(text: string): Promise<void> {
  if (PROMTOOL === null) return;
  const p = Bun.spawn([PROMTOOL, "check", "metrics"], { stdin: new TextEncoder().encode(text), stdout: "pipe", stderr: "pipe" });
  const [code, out, err] = await Promise.all([p.exited, new Response(p.stdout).text(), new Response(p.stderr).text()]);
  expect(`${out}${err}`).toBe("");
  expect(code).toBe(0);
}

/** `clients` loops sending `each` requests (GET /, GET /missing, POST / in turn) on keep-alive connections; counts by [method, status]. */
async function load(port: number, clients: number, each: number, during?: () => Promise<void>): Promise<Map<string, number>> {
  const sent = new Map<string, number>();
  const count = (k: string): void => void sent.set(k, (sent.get(k) ?? 0) + 1);
  const loops = Array.from({ length: clients }, async () => {
    for (let i = 0; i < each; i++) {
      const kind = i % 3;
      const res =
        kind === 2
          ? await fetch(`http://127.0.0.1:${port}/`, { method: "POST", body: "x".repeat(100) })
          : await fetch(`http://127.0.0.1:${port}/${kind === 1 ? "missing" : ""}`);
      await res.arrayBuffer();
      count(`${kind === 2 ? "POST" : "GET"} ${Math.floor(res.status / 100)}xx`);
    }
  });
  if (during !== undefined) await during();
  await Promise.all(loops);
  return sent;
}

const requests = (s: Map<string, number>, method: string, cls: string): number =>
  s.get(`bunwsgi_requests_total{method="${method}",status_class="${cls}"}`) ?? 0;

/** Poll the page until `ok` holds (a worker's snapshot comes with its next heartbeat, within a second). */
async function scrapeUntil(url: string, ok: (s: Map<string, number>) => boolean, ms = 5000): Promise<Map<string, number>> {
  const deadline = Date.now() + ms;
  for (;;) {
    const { samples } = await scrape(url);
    if (ok(samples) || Date.now() > deadline) return samples;
    await Bun.sleep(100);
  }
}

/** Send the test's two bad requests: a bare CR in a field (400 bare_cr) and a header section over 1 KiB (431). */
async function badRequests(port: number): Promise<void> {
  const bareCr = await exchange(port, "GET / HTTP/1.1\r\nHost: x\rY: 1\r\n\r\n");
  expect(bareCr.status).toBe(400);
  const big = await exchange(port, `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(2000)}\r\n\r\n`);
  expect(big.status).toBe(431);
}

function expectCounts(s: Map<string, number>, sent: Map<string, number>): void {
  expect(requests(s, "GET", "2xx")).toBe(sent.get("GET 2xx") ?? 0);
  expect(requests(s, "GET", "4xx")).toBe(sent.get("GET 4xx") ?? 0);
  expect(requests(s, "POST", "2xx")).toBe(sent.get("POST 2xx") ?? 0);
}

describe("the metrics page's format", () => {
  test("each family has one HELP and TYPE line, histograms are cumulative, and unknown series are left out", () => {
    const h = new Histogram([0.1, 1]);
    for (const v of [0.05, 0.5, 0.5, 3]) h.observe(v);
    const s: Samples = { bunwsgi_connections_open: 2, some_unknown_total: 1 };
    h.write(s, "bunwsgi_request_duration_seconds");
    const page = exposition(s);
    expect(page).not.toContain("some_unknown_total");
    expect(page.match(/# TYPE bunwsgi_request_duration_seconds histogram/g)?.length).toBe(1);
    expect(page).toContain('bunwsgi_request_duration_seconds_bucket{le="0.1"} 1\n');
    expect(page).toContain('bunwsgi_request_duration_seconds_bucket{le="1"} 3\n');
    expect(page).toContain('bunwsgi_request_duration_seconds_bucket{le="+Inf"} 4\n');
    expect(page).toContain("bunwsgi_request_duration_seconds_count 4\n");
    expect(page).toContain("# TYPE bunwsgi_connections_open gauge\nbunwsgi_connections_open 2\n");
  });

  test("an exited worker's counters stay in the sum and its gauges leave it", () => {
    const a = new Aggregate();
    a.update(1, { bunwsgi_connections_accepted_total: 5, bunwsgi_connections_open: 2 });
    a.update(2, { bunwsgi_connections_accepted_total: 7, bunwsgi_connections_open: 1 });
    a.update(1, { bunwsgi_connections_accepted_total: 6, bunwsgi_connections_open: 3 });
    a.exited(1);
    const out: Samples = {};
    a.write(out);
    expect(out).toEqual({ bunwsgi_connections_accepted_total: 13, bunwsgi_connections_open: 1 });
  });

  test("metrics_bind takes a TCP host:port only", () => {
    // The errors about metrics_bind alone (the app named does not exist).
    const check = (v: string): string[] =>
      resolveConfig({
        commandLine: parseCommandLine(["check", "--metrics-bind", v, "app.ts"]),
        cwd: dir,
        embedded: false,
      }).errors.filter((e) => e.includes("metrics_bind"));
    expect(check("127.0.0.1:9101")).toEqual([]);
    expect(check("[::1]:9101")).toEqual([]);
    expect(check("unix:/tmp/m.sock")).toHaveLength(1);
    expect(check("127.0.0.1:9101 proxy_protocol=v2")).toHaveLength(1);
  });
});

describe("metrics of a lone server", () => {
  test("a scrape under load passes promtool; afterwards the counters equal the requests sent, by method and status class, and the bad requests by reason", async () => {
    const p = start(CONFIG(0));
    const port = await p.port();
    const url = ((await p.waitFor(/metrics on (http:\S+)/)) as RegExpMatchArray)[1] as string;
    const sent = await load(port, 4, 60, async () => {
      await Bun.sleep(50);
      await promtoolCheck((await scrape(url)).text);
    });
    await badRequests(port);
    const { text, samples } = await scrape(url);
    await promtoolCheck(text);
    expectCounts(samples, sent);
    expect(requests(samples, "none", "4xx")).toBe(2);
    expect(samples.get('bunwsgi_requests_rejected_total{reason="bare_cr"}')).toBe(1);
    expect(samples.get('bunwsgi_requests_rejected_total{reason="headers_too_large"}')).toBe(1);
    expect(samples.get("bunwsgi_request_duration_seconds_count")).toBe(240 + 2);
    expect(samples.get("bunwsgi_requests_in_flight")).toBe(0);
    expect(samples.get("bunwsgi_connections_accepted_total")).toBeGreaterThanOrEqual(6);
    expect(samples.get("bunwsgi_received_bytes_total")).toBeGreaterThan(240 * 30);
    expect(samples.get("process_resident_memory_bytes")).toBeGreaterThan(1_000_000);
    expect(samples.has('bunwsgi_event_loop_lag_seconds_bucket{le="+Inf"}')).toBe(true);
    p.kill();
    expect(await p.exit()).toBe(0);
  }, 30_000);
});

/** Open a connection to `port`, write `data`, and read until the server closes (or resets: a refused PROXY header) it: the bytes it sent back. */
function sendAll(port: number, data: string): Promise<number> {
  return new Promise((resolve) => {
    let got = 0;
    const s = connect({ host: "127.0.0.1", port }, () => s.write(data));
    s.on("data", (d) => {
      got += d.length;
    });
    s.on("close", () => resolve(got));
    s.on("error", () => resolve(got));
  });
}

describe("bytes in and out of a lone server", () => {
  test("received and sent bytes equal what clients sent and read, a PROXY header and the bytes of a connection refused for its header included", async () => {
    const p = start(
      `app = "app.ts"\nbind = ["127.0.0.1:0", "127.0.0.1:0 proxy_protocol=v1"]\nproxy_protocol_from = ["127.0.0.1"]\nmetrics_bind = "127.0.0.1:0"\n[log]\naccess = "none"\n`,
    );
    const url = ((await p.waitFor(/metrics on (http:\S+)/)) as RegExpMatchArray)[1] as string;
    const [plain, proxied] = [...p.stderr.matchAll(/listening on http:\/\/127\.0\.0\.1:(\d+)/g)].map((m) => Number(m[1]));
    const request = "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    const sent = [
      [plain, request],
      [proxied, `PROXY TCP4 192.0.2.1 192.0.2.2 1000 80\r\n${request}`],
      [proxied, "PROXY NOPE\r\n"],
      [proxied, request],
    ] as const;
    let read = 0;
    for (const [port, data] of sent) read += await sendAll(port as number, data);
    const { samples } = await scrape(url);
    expect(samples.get("bunwsgi_received_bytes_total")).toBe(sent.reduce((n, [, data]) => n + data.length, 0));
    expect(samples.get("bunwsgi_sent_bytes_total")).toBe(read);
    expect(samples.get('bunwsgi_proxy_rejected_total{reason="proxy_v1_malformed"}')).toBe(1);
    expect(samples.get('bunwsgi_proxy_rejected_total{reason="proxy_missing"}')).toBe(1);
    expect(samples.get("bunwsgi_connections_open")).toBe(0);
    p.kill();
    expect(await p.exit()).toBe(0);
  }, 30_000);
});

describe("metrics with workers = 2", () => {
  test("the master's page sums both workers exactly, keeps a killed worker's counts, and counts its restart", async () => {
    const p = start(CONFIG(2));
    const port = await p.port();
    const url = ((await p.waitFor(/metrics on (http:\S+)/)) as RegExpMatchArray)[1] as string;
    const ready = (): number[] => [...p.stderr.matchAll(/worker \d+ \(pid (\d+)\) ready/g)].map((m) => Number(m[1]));
    const deadline = Date.now() + 15_000;
    while (ready().length < 2 && Date.now() < deadline) await Bun.sleep(25);
    const sent = await load(port, 4, 60, async () => {
      await Bun.sleep(50);
      await promtoolCheck((await scrape(url)).text);
    });
    await badRequests(port);
    const total = 240 + 2;
    const done = (s: Map<string, number>): boolean => s.get("bunwsgi_request_duration_seconds_count") === total;
    let s = await scrapeUntil(url, done);
    expectCounts(s, sent);
    expect(requests(s, "none", "4xx")).toBe(2);
    expect(s.get('bunwsgi_requests_rejected_total{reason="bare_cr"}')).toBe(1);
    expect(s.get('bunwsgi_requests_rejected_total{reason="headers_too_large"}')).toBe(1);
    expect(s.get('bunwsgi_workers{state="serving"}')).toBe(2);
    await promtoolCheck((await scrape(url)).text);

    // Every count above came in a snapshot: a worker killed now loses none of them.
    const victim = ready()[0] as number;
    process.kill(victim, "SIGKILL");
    const replaced = (x: Map<string, number>): boolean =>
      x.get('bunwsgi_worker_restarts_total{reason="exited"}') === 1 && x.get('bunwsgi_workers{state="serving"}') === 2;
    s = await scrapeUntil(url, replaced, 15_000);
    expect(s.get('bunwsgi_worker_restarts_total{reason="exited"}')).toBe(1);
    expect(s.get('bunwsgi_workers{state="serving"}')).toBe(2);
    expectCounts(s, sent);
    expect(s.get("bunwsgi_request_duration_seconds_count")).toBe(total);

    // The replacement's requests add to the exited worker's.
    const more = await load(port, 2, 30);
    for (const [k, v] of more) sent.set(k, (sent.get(k) ?? 0) + v);
    s = await scrapeUntil(url, (x) => x.get("bunwsgi_request_duration_seconds_count") === total + 60);
    expectCounts(s, sent);
    p.kill();
    expect(await p.exit()).toBe(0);
  }, 60_000);
});

/** A TCP port nothing listens on now (bound, read and let go): for a metrics_bind that a new master must take over. */
function freePort(): number {
  const l = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = l.port;
  l.stop(true);
  return port;
}

describe("metrics_bind at start and across a binary upgrade", () => {
  test.each([0, 2])(
    "workers = %d: a metrics port already taken fails the start (exit 2, said in the error log) before any bind is said to listen, and leaves no socket file",
    async (workers) => {
      const taken = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
      try {
        const p = start(
          `app = "app.ts"\nbind = ["127.0.0.1:0", "unix:./m.sock"]\nmetrics_bind = "127.0.0.1:${taken.port}"\nworkers = ${workers}\n[log]\naccess = "none"\n`,
        );
        expect(await p.exit()).toBe(2);
        expect(p.stderr).toContain(`cannot start: metrics_bind 127.0.0.1:${taken.port}: cannot listen`);
        expect(p.stderr).not.toContain("listening on");
        expect(p.stderr).not.toContain("    at ");
        expect(existsSync(join(dir, `site${sites}`, "m.sock"))).toBe(false);
      } finally {
        taken.stop(true);
      }
    },
    20_000,
  );

  test("SIGUSR2 with metrics_bind: the new master serves, and opens the metrics page once the old master stops", async () => {
    const metricsPort = freePort();
    const p = start(
      `app = "app.ts"\nbind = "127.0.0.1:0"\nmetrics_bind = "127.0.0.1:${metricsPort}"\nworkers = 1\n[log]\naccess = "none"\n`,
    );
    const port = await p.port();
    await p.waitFor("ready");
    const answer = async (): Promise<number> =>
      Number(await (await fetch(`http://127.0.0.1:${port}/`, { headers: { connection: "close" } })).text());
    const oldWorker = await answer();
    const url = `http://127.0.0.1:${metricsPort}/metrics`;
    expect((await scrape(url)).samples.get('bunwsgi_workers{state="serving"}')).toBe(1);
    p.kill("SIGUSR2");
    const heir = Number(((await p.waitFor(/started a new master \(pid (\d+)\)/)) as RegExpMatchArray)[1]);
    await p.waitFor("the previous master's until it stops");
    // The new master's worker serves beside the old one's before the old master is stopped.
    const deadline = Date.now() + 15_000;
    while ((await answer()) === oldWorker) {
      if (Date.now() > deadline) throw new Error(`the new master's worker never answered; stderr:\n${p.stderr}`);
      await Bun.sleep(50);
    }
    p.kill("SIGTERM");
    expect(await p.p.exited).toBe(0);
    // The old master said it at its start; the new one says it once the port is free.
    const opened = `metrics on http://127.0.0.1:${metricsPort}/metrics`;
    const by = Date.now() + 5000;
    while (p.stderr.split(opened).length < 3 && Date.now() < by) await Bun.sleep(50);
    expect((await scrape(url)).samples.get('bunwsgi_workers{state="serving"}')).toBe(1);
    expect(await answer()).not.toBe(oldWorker);
    process.kill(heir, "SIGTERM");
  }, 40_000);
});
