/**
 * @module bench/run — bunwsgi vs Bun.serve vs node:http (and a bare Bun.listen floor) under wrk: interleaved rounds, server on
 * CPU 0 and wrk on CPU 1 (taskset), server CPU time per request from /proc, RSS, medians and
 * ratios to Bun.serve. Usage: bun run bench [--rounds N] [--duration S] [--only a,b] [--servers a,b] [--baseline DIR] [--markdown FILE]
 * "bare Bun.listen" is the floor: Bun.listen with just enough HTTP for the scenarios, no server code.
 * The Hono scenarios serve one Hono app object (servers/hono-app.ts) on Bun.serve and on bunwsgi's
 * FetchServer, in the same rounds; their ratios are to "Bun.serve + Hono".
 * --only and --servers match names by substring, case-insensitively (--only hono: the Hono scenarios;
 * --servers node: node:http and its reference). A group's reference runs whenever any of its servers does.
 * The file scenarios (--only file) download a 1 MiB and a 100 MiB file that this script writes once into a
 * temporary directory (deterministic bytes, removed at exit) and hands to the servers as BENCH_FILES; they run
 * only on the servers that serve files (not the bare floor), each server's bytes checked once before timing, and on
 * nginx (Debian's, static files with sendfile, one worker, as a non-root user) as the reference for the physical limit:
 * skipped with the reason printed when nginx is not installed or cannot start.
 * "1 MiB POST echo, streamed" is each server's streaming echo (bunwsgi: read(65536) in an async generator, chunked;
 * Bun.serve: `new Response(req.body)`; node:http: `req.pipe(res)`); the bare floor has none.
 */

import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";

const here = import.meta.dir;
const args = process.argv.slice(2);
const opt = (name: string, fallback: string): string => {
  const i = args.indexOf(name);
  return i >= 0 && args[i + 1] !== undefined ? (args[i + 1] as string) : fallback;
};
const ROUNDS = Number(opt("--rounds", "3"));
const DURATION = Number(opt("--duration", "5"));
/** A comma-separated option as a list; empty when absent. */
const listOpt = (name: string): string[] =>
  opt(name, "")
    .split(",")
    .filter((s) => s !== "");
const ONLY = listOpt("--only");
const ONLY_SERVERS = listOpt("--servers");
const MARKDOWN = opt("--markdown", "");
const CONNECTIONS = 50;

for (const tool of ["wrk", "taskset", "node"]) {
  if (Bun.which(tool) === null) {
    console.error(
      `bench: ${tool} is not installed. On Debian/Ubuntu: sudo apt-get install -y ${tool === "taskset" ? "util-linux" : tool === "node" ? "nodejs" : "wrk"}`,
    );
    process.exit(2);
  }
}

/** Which app a server runs: the plain benchmark app, or the Hono one; a scenario runs on the servers of its group. */
type Group = "plain" | "Hono";
/** The server each group's ratios are to. */
const REFERENCE: Record<Group, string> = { plain: "Bun.serve", Hono: "Bun.serve + Hono" };

interface ServerKind {
  name: string;
  group: Group;
  cmd: (port: number) => string[];
  /** Serves /file1 and /file100 from BENCH_FILES: runs the file scenarios. */
  files?: boolean;
  /** Serves nothing but the files (nginx). */
  filesOnly?: boolean;
  /** Scenarios it has no route for. */
  lacks?: string[];
}

/** Whether a name passes a list filter: no filter, or one of its words as a substring, case-insensitively. */
const picked = (name: string, filters: string[]): boolean =>
  filters.length === 0 || filters.some((o) => name.toLowerCase().includes(o.toLowerCase()));

/** `--baseline DIR`: another checkout of bunwsgi (an earlier commit) measured in the same rounds, for before/after. */
const BASELINE = opt("--baseline", "");

/** A server of a --baseline checkout, when that checkout has its entry file (older ones have no Hono server); it runs the file scenarios when its entry reads BENCH_FILES. */
const baseline = (name: string, group: Group, file: string): ServerKind[] =>
  BASELINE === "" || !existsSync(join(BASELINE, file))
    ? []
    : [
        {
          name,
          group,
          cmd: (p: number) => [process.execPath, join(BASELINE, file), String(p)],
          files: readFileSync(join(BASELINE, file), "utf8").includes("BENCH_FILES"),
        },
      ];

/** nginx's temporary prefixes (config, pid, temp folders), removed at exit. */
const nginxDirs: string[] = [];
/** Why the file scenarios have no nginx row, when they have none. */
let noNginx = "";

/**
 * Debian's nginx serving the bench's files with sendfile, the physical limit's reference: one process (no master,
 * worker_processes 1, so its CPU and RSS are read like the others'), access log off, keep-alive without a request cap
 * (like the other servers), run as `nobody` when this script runs as root. Its command picks its own free port and
 * says "ready PORT" before exec'ing nginx (startServer then waits for the port to accept).
 */
function nginxKind(): ServerKind[] {
  const nginx = Bun.which("nginx") ?? (existsSync("/usr/sbin/nginx") ? "/usr/sbin/nginx" : null);
  if (nginx === null) {
    noNginx = "nginx is not installed (Debian/Ubuntu: apt-get install -y nginx)";
    return [];
  }
  const asNobody = process.getuid?.() === 0 && Bun.which("setpriv") !== null;
  return [
    {
      name: "nginx",
      group: "plain",
      files: true,
      filesOnly: true,
      cmd: () => {
        const probe = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
        const port = probe.port;
        probe.stop(true);
        const prefix = mkdtempSync(join(tmpdir(), "bunwsgi-bench-nginx-"));
        nginxDirs.push(prefix);
        // nobody writes its pid and temp folders here and reads the files.
        chmodSync(prefix, 0o777);
        chmodSync(FILES_DIR, 0o755);
        const files = ["file1", "file100"]
          .map((f) => `    location = /${f} { alias ${join(FILES_DIR, `${f}.bin`)}; }`)
          .join("\n");
        writeFileSync(
          join(prefix, "nginx.conf"),
          `daemon off;\nmaster_process off;\nworker_processes 1;\npid ${join(prefix, "nginx.pid")};\nerror_log stderr warn;\n` +
            "events { worker_connections 1024; }\n" +
            "http {\n  access_log off;\n  sendfile on;\n  tcp_nopush on;\n  keepalive_requests 1000000000;\n  default_type application/octet-stream;\n" +
            // Debian's build keeps its temp folders in /var/lib/nginx, which nobody cannot write.
            ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"].map((t) => `  ${t}_temp_path ${join(prefix, t)};\n`).join("") +
            `  server {\n    listen 127.0.0.1:${port};\n${files}\n  }\n}\n`,
        );
        const run = `${asNobody ? "setpriv --reuid=nobody --regid=nogroup --clear-groups " : ""}${nginx} -e stderr -p ${prefix} -c ${join(prefix, "nginx.conf")}`;
        return ["sh", "-c", `echo ready ${port}; exec ${run}`];
      },
    },
  ];
}

const ALL_SERVERS: ServerKind[] = [
  {
    name: "bunwsgi",
    group: "plain",
    cmd: (p) => [process.execPath, join(here, "servers/bunwsgi.ts"), String(p)],
    files: true,
  },
  ...baseline("bunwsgi (baseline)", "plain", "bench/servers/bunwsgi.ts"),
  {
    name: "Bun.serve",
    group: "plain",
    cmd: (p) => [process.execPath, join(here, "servers/bunserve.ts"), String(p)],
    files: true,
  },
  { name: "node:http", group: "plain", cmd: (p) => ["node", join(here, "servers/node.mjs"), String(p)], files: true },
  {
    name: "bare Bun.listen",
    group: "plain",
    cmd: (p) => [process.execPath, join(here, "servers/bare.ts"), String(p)],
    lacks: ["1 MiB POST echo, streamed"],
  },
  ...nginxKind(),
  {
    name: "bunwsgi + Hono",
    group: "Hono",
    cmd: (p) => [process.execPath, join(here, "servers/hono-bunwsgi.ts"), String(p)],
  },
  ...baseline("bunwsgi + Hono (baseline)", "Hono", "bench/servers/hono-bunwsgi.ts"),
  {
    name: "Bun.serve + Hono",
    group: "Hono",
    cmd: (p) => [process.execPath, join(here, "servers/hono-bunserve.ts"), String(p)],
  },
];

interface Scenario {
  name: string;
  group: Group;
  /** wrk arguments after the common ones; the URL is appended. */
  wrk: string[];
  path: string;
  /** Bytes moved per request that count as throughput (request or response body). */
  bytesPerRequest: number;
  /** The group's keep-alive run: the RSS high-water mark is read after it (it runs first, before the echo's). */
  peak?: boolean;
  /** Downloads one of the bench's files (size bytesPerRequest): runs only on servers with `files`. */
  file?: boolean;
  /** wrk connections, when not CONNECTIONS. */
  connections?: number;
  /** wrk's --timeout in seconds, when not 10. */
  timeout?: number;
}

const MiB = 1024 * 1024;
const pipeline = join(here, "pipeline.lua");
const post = join(here, "post.lua"); // posts 1 MiB to the URL's path
const ALL_SCENARIOS: Scenario[] = [
  { name: "keep-alive", group: "plain", wrk: [], path: "/", bytesPerRequest: 0, peak: true },
  { name: "16 pipelined", group: "plain", wrk: ["-s", pipeline], path: "/", bytesPerRequest: 0 },
  { name: "Connection: close", group: "plain", wrk: ["-H", "Connection: close"], path: "/", bytesPerRequest: 0 },
  { name: "browser request", group: "plain", wrk: ["-s", join(here, "browser.lua")], path: "/", bytesPerRequest: 0 },
  { name: "1 MiB POST echo", group: "plain", wrk: ["-s", post], path: "/echo", bytesPerRequest: MiB },
  { name: "1 MiB POST echo, streamed", group: "plain", wrk: ["-s", post], path: "/echo-stream", bytesPerRequest: MiB },
  { name: "1 MiB streamed response", group: "plain", wrk: [], path: "/stream", bytesPerRequest: MiB },
  // 50 connections take 50 MiB at a time; for 100 MiB that would be 5 GiB in flight, a run too short to finish
  // any, so 4 (a request then takes ~0.1–1 s; those still in flight when wrk stops are not counted, by every server
  // alike). wrk counts a request older than --timeout as an error: 60 s is far beyond any 100 MiB on loopback.
  { name: "1 MiB file download", group: "plain", wrk: [], path: "/file1", bytesPerRequest: MiB, file: true },
  {
    name: "100 MiB file download",
    group: "plain",
    wrk: [],
    path: "/file100",
    bytesPerRequest: 100 * MiB,
    file: true,
    connections: 4,
    timeout: 60,
  },
  { name: "Hono keep-alive", group: "Hono", wrk: [], path: "/", bytesPerRequest: 0, peak: true },
  { name: "Hono JSON /json/:id", group: "Hono", wrk: [], path: "/json/42", bytesPerRequest: 0 },
  { name: "Hono 16 pipelined", group: "Hono", wrk: ["-s", pipeline], path: "/", bytesPerRequest: 0 },
  { name: "Hono 1 MiB POST echo", group: "Hono", wrk: ["-s", post], path: "/echo", bytesPerRequest: MiB },
  { name: "Hono 1 MiB streamed response", group: "Hono", wrk: [], path: "/stream", bytesPerRequest: MiB },
];
const chosenScenarios = ALL_SCENARIOS.filter((s) => picked(s.name, ONLY));
/** Whether a server can run a scenario: its group's, and a file download only on a server that serves files. */
const able = (k: ServerKind, s: Scenario): boolean =>
  k.group === s.group && (s.file === true ? k.files === true : k.filesOnly !== true) && !(k.lacks ?? []).includes(s.name);
/** Whether a scenario runs on a server: it passes --servers, or it is the reference and another server it runs on does. */
const runs = (k: ServerKind, s: Scenario): boolean =>
  able(k, s) &&
  (picked(k.name, ONLY_SERVERS) ||
    (k.name === REFERENCE[k.group] && ALL_SERVERS.some((o) => able(o, s) && picked(o.name, ONLY_SERVERS))));
const SCENARIOS = chosenScenarios.filter((s) => ALL_SERVERS.some((k) => runs(k, s)));
const SERVERS = ALL_SERVERS.filter((k) => SCENARIOS.some((s) => runs(k, s)));
if (SCENARIOS.length === 0) {
  console.error(`bench: no scenario left by --only/--servers; scenarios: ${ALL_SCENARIOS.map((s) => s.name).join(", ")}`);
  process.exit(2);
}
if (noNginx !== "" && SCENARIOS.some((s) => s.file === true)) console.log(`bench: no nginx row: ${noNginx}`);
const NAME_WIDTH = Math.max(...SERVERS.map((k) => k.name.length));
/** wrk -c, with the scenarios that use another count. */
const connectionsNote = (): string =>
  [
    `-c${CONNECTIONS}`,
    ...SCENARIOS.filter((s) => s.connections !== undefined).map((s) => `-c${s.connections} for ${s.name}`),
  ].join(", ");
const SCENARIO_WIDTH = Math.max(...SCENARIOS.map((s) => s.name.length));

interface Sample {
  rps: number;
  cpuUsPerReq: number;
  gbps: number;
  errors: number;
}

const TICK = 100; // USER_HZ: /proc/PID/stat counts clock ticks of 1/100 s on Linux.

function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // Fields after the ")" that ends the command name: state is field 3, utime 14, stime 15.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / TICK;
}

function memoryKiB(pid: number, field: "VmRSS" | "VmHWM"): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const m = status.match(new RegExp(`${field}:\\s+(\\d+) kB`));
  return m ? Number(m[1]) : Number.NaN;
}

/** The servers alive now: killed at exit too, should this script be stopped mid-round. */
const alive = new Set<Subprocess>();

/** The bench's files (file scenarios only): file1.bin (1 MiB) and file100.bin (100 MiB) in a temporary directory, the servers' BENCH_FILES. */
const FILES_DIR = SCENARIOS.some((s) => s.file === true) ? mkdtempSync(join(tmpdir(), "bunwsgi-bench-")) : "";
/** Each file route's expected size and hash. */
const EXPECTED = new Map<string, { size: number; hash: bigint | number }>();
process.on("exit", () => {
  for (const proc of alive) proc.kill("SIGKILL");
  if (FILES_DIR !== "") rmSync(FILES_DIR, { recursive: true, force: true });
  for (const d of nginxDirs) rmSync(d, { recursive: true, force: true });
});
for (const signal of ["SIGINT", "SIGTERM"] as const) process.on(signal, () => process.exit(signal === "SIGINT" ? 130 : 143));
if (FILES_DIR !== "") {
  // Deterministic bytes that differ in every MiB (xorshift32 from a fixed seed), so a misplaced block shows.
  const all = new Uint8Array(100 * MiB);
  const words = new Uint32Array(all.buffer);
  let x = 2463534242;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    words[i] = x >>> 0;
  }
  for (const [route, size] of [
    ["/file1", MiB],
    ["/file100", 100 * MiB],
  ] as const) {
    const bytes = all.subarray(0, size);
    writeFileSync(join(FILES_DIR, `${route.slice(1)}.bin`), bytes);
    EXPECTED.set(route, { size, hash: Bun.hash(bytes) });
  }
}

/** The file routes' bodies from a server, once before timing: the status, Content-Length and every byte must be the file's. */
async function checkFiles(kind: ServerKind, port: number): Promise<void> {
  for (const [route, want] of EXPECTED) {
    const res = await fetch(`http://127.0.0.1:${port}${route}`, { signal: AbortSignal.timeout(60_000) });
    const body = new Uint8Array(await res.arrayBuffer());
    const length = res.headers.get("content-length");
    if (res.status !== 200 || length !== String(want.size) || body.length !== want.size || Bun.hash(body) !== want.hash) {
      const bytes = body.length === want.size ? "the file's size but not its bytes" : `${body.length} bytes`;
      throw new Error(`${kind.name} ${route}: status ${res.status}, Content-Length ${length}, ${bytes} (want 200, ${want.size})`);
    }
  }
}

async function startServer(kind: ServerKind): Promise<{ proc: Subprocess<"ignore", "pipe", "inherit">; port: number }> {
  const proc = Bun.spawn(["taskset", "-c", "0", ...kind.cmd(0)], {
    stdin: "ignore",
    stdout: "pipe",
    stderr: "inherit",
    env: FILES_DIR === "" ? process.env : { ...process.env, BENCH_FILES: FILES_DIR },
  });
  alive.add(proc);
  const reader = proc.stdout.getReader();
  let text = "";
  const deadline = Date.now() + 10_000;
  while (!/ready \d+/.test(text)) {
    if (Date.now() > deadline) throw new Error(`${kind.name} did not start`);
    const { value, done } = await reader.read();
    if (done) throw new Error(`${kind.name} exited: ${text}`);
    text += new TextDecoder().decode(value);
  }
  reader.releaseLock();
  const port = Number((text.match(/ready (\d+)/) as RegExpMatchArray)[1]);
  // nginx says ready before it has bound its port (its command prints, then execs it): wait until it accepts.
  for (;;) {
    const up = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } }).then(
      (s) => {
        s.end();
        return true;
      },
      () => false,
    );
    if (up) break;
    if (proc.exitCode !== null || Date.now() > deadline) throw new Error(`${kind.name} did not start listening on ${port}`);
    await Bun.sleep(20);
  }
  return { proc, port };
}

async function runWrk(port: number, s: Scenario, seconds: number): Promise<{ requests: number; errors: number; out: string }> {
  const cmd = [
    "taskset",
    "-c",
    "1",
    "wrk",
    "-t1",
    `-c${s.connections ?? CONNECTIONS}`,
    `-d${seconds}s`,
    "--timeout",
    `${s.timeout ?? 10}s`,
    ...s.wrk,
    `http://127.0.0.1:${port}${s.path}`,
  ];
  const p = Bun.spawn(cmd, { stdout: "pipe", stderr: "pipe" });
  const timer = setTimeout(() => p.kill("SIGKILL"), (seconds + 30) * 1000);
  const [out, err] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text()]);
  clearTimeout(timer);
  await p.exited;
  const requests = Number(out.match(/(\d+) requests in/)?.[1] ?? Number.NaN);
  const sock = out.match(/Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/);
  const non2xx = Number(out.match(/Non-2xx or 3xx responses: (\d+)/)?.[1] ?? 0);
  const errors = non2xx + (sock ? Number(sock[1]) + Number(sock[3]) + Number(sock[4]) : 0);
  if (Number.isNaN(requests)) throw new Error(`wrk failed: ${out}${err}`);
  return { requests, errors, out };
}

const results = new Map<string, Sample[]>();
const rss = new Map<string, { idle: number[]; warm: number[]; peak: number[] }>();
const key = (server: string, scenario: string): string => `${server}\u0000${scenario}`;
/** The map's entry for k, made on first use. */
function entry<V>(map: Map<string, V>, k: string, make: () => V): V {
  let v = map.get(k);
  if (v === undefined) {
    v = make();
    map.set(k, v);
  }
  return v;
}
const memory = (server: string) => entry(rss, server, () => ({ idle: [], warm: [], peak: [] }));

console.log(
  `bench: ${ROUNDS} rounds × ${SCENARIOS.length} scenarios × ${SERVERS.length} servers, ${DURATION}s each, wrk -t1 ${connectionsNote()}`,
);
console.log(`       server pinned to CPU 0, wrk to CPU 1; Bun ${Bun.version}, ${(await Bun.$`node --version`.text()).trim()}`);

for (let round = 1; round <= ROUNDS; round++) {
  // Every server of a round runs at once (idle ones cost nothing), so each scenario is measured
  // on all of them back to back: on a machine whose speed drifts from minute to minute, the
  // samples a ratio compares are seconds apart, not a whole server's run apart. The order
  // rotates each round so drift does not favour one server.
  const order = SERVERS.map((_, i) => SERVERS[(i + round - 1) % SERVERS.length] as ServerKind);
  const running: Array<{ kind: ServerKind; proc: Subprocess<"ignore", "pipe", "inherit">; port: number }> = [];
  try {
    for (const kind of order) {
      const { proc, port } = await startServer(kind);
      running.push({ kind, proc, port });
      memory(kind.name).idle.push(memoryKiB(proc.pid, "VmRSS"));
    }
    for (const { kind, proc, port } of running) {
      // Warm-up (JIT and pools) with the server's first scenario; SERVERS keeps only servers that run one.
      await runWrk(port, SCENARIOS.find((s) => runs(kind, s)) as Scenario, 1);
      memory(kind.name).warm.push(memoryKiB(proc.pid, "VmRSS"));
    }
    if (round === 1) {
      for (const { kind, port } of running) {
        if (SCENARIOS.some((s) => s.file === true && runs(kind, s))) await checkFiles(kind, port);
      }
    }
    for (const s of SCENARIOS) {
      for (const { kind, proc, port } of running) {
        if (!runs(kind, s)) continue;
        const before = cpuSeconds(proc.pid);
        const { requests, errors } = await runWrk(port, s, DURATION);
        const cpu = cpuSeconds(proc.pid) - before;
        const sample: Sample = {
          rps: requests / DURATION,
          cpuUsPerReq: (cpu / requests) * 1e6,
          gbps: (requests * s.bytesPerRequest) / DURATION / 1e9,
          errors,
        };
        entry(results, key(kind.name, s.name), (): Sample[] => []).push(sample);
        // Keep-alive runs first, so the high-water mark here is its peak, not the echo's.
        if (s.peak === true) memory(kind.name).peak.push(memoryKiB(proc.pid, "VmHWM"));
        console.log(
          `round ${round} ${kind.name.padEnd(NAME_WIDTH)} ${s.name.padEnd(SCENARIO_WIDTH)} ${sample.rps.toFixed(0).padStart(7)} req/s  ${sample.cpuUsPerReq.toFixed(2).padStart(7)} µs CPU/req${s.bytesPerRequest > 0 ? `  ${sample.gbps.toFixed(2)} GB/s` : ""}${errors > 0 ? `  ${errors} errors` : ""}`,
        );
      }
    }
  } finally {
    for (const { proc } of running) {
      proc.kill("SIGKILL");
      await proc.exited;
      alive.delete(proc);
    }
  }
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
};
const range = (xs: number[], digits: number): string => `${Math.min(...xs).toFixed(digits)}–${Math.max(...xs).toFixed(digits)}`;

/** Each round's figure over the other server's of the same round (seconds apart): their median (min–max). */
const pairedRatio = (mine: number[], theirs: number[]): string => {
  if (mine.length === 0 || theirs.length !== mine.length) return "—";
  const r = mine.map((m, i) => m / (theirs[i] as number));
  return `${median(r).toFixed(2)} (${range(r, 2)})`;
};

const lines: string[] = [];
lines.push(
  `Bun ${Bun.version}, ${(await Bun.$`node --version`.text()).trim()}, wrk ${(await Bun.$`wrk --version`.nothrow().text()).split(" ")[1] ?? "?"}; ` +
    `${ROUNDS} interleaved rounds × ${DURATION}s; server on CPU 0, \`wrk -t1\` (${connectionsNote()}) on CPU 1; median (min–max); ratio = each round's figure ÷ the reference's in the same round (Bun.serve; Bun.serve + Hono for the Hono scenarios), median (min–max) of the rounds.`,
  "",
  "| scenario | server | req/s | server CPU µs/req | throughput | ratio req/s | ratio CPU/req |",
  "|---|---|---|---|---|---|---|",
);
for (const s of SCENARIOS) {
  const ref = results.get(key(REFERENCE[s.group], s.name)) ?? [];
  for (const kind of SERVERS) {
    const xs = results.get(key(kind.name, s.name)) ?? [];
    if (xs.length === 0) continue;
    const rps = xs.map((x) => x.rps);
    const cpu = xs.map((x) => x.cpuUsPerReq);
    const gb = xs.map((x) => x.gbps);
    const errors = xs.reduce((a, x) => a + x.errors, 0);
    const isRef = kind.name === REFERENCE[s.group];
    const ratio = (mine: number[], theirs: number[]): string => (isRef ? "1.00" : pairedRatio(mine, theirs));
    lines.push(
      `| ${s.name} | ${kind.name} | ${median(rps).toFixed(0)} (${range(rps, 0)}) | ${median(cpu).toFixed(2)} (${range(cpu, 2)}) | ${
        s.bytesPerRequest > 0 ? `${median(gb).toFixed(2)} GB/s (${range(gb, 2)})` : "—"
      } | ${ratio(
        rps,
        ref.map((x) => x.rps),
      )} | ${ratio(
        cpu,
        ref.map((x) => x.cpuUsPerReq),
      )}${errors > 0 ? ` (${errors} errors)` : ""} |`,
    );
  }
}
const ours = (server: string, scenario: string, pick: (x: Sample) => number): number[] =>
  (results.get(key(server, scenario)) ?? []).map(pick);
// bunwsgi against node:http and the floor: the plain app's scenarios only (neither runs Hono).
if (SERVERS.some((k) => k.name === "bunwsgi") && SERVERS.filter((k) => k.group === "plain").length > 2) {
  lines.push(
    "",
    "| scenario | bunwsgi ÷ node:http req/s | bunwsgi ÷ bare Bun.listen req/s | bunwsgi ÷ bare Bun.listen CPU/req |",
    "|---|---|---|---|",
  );
  for (const s of SCENARIOS) {
    if (s.group !== "plain") continue;
    const rps = (server: string): number[] => ours(server, s.name, (x) => x.rps);
    const cpu = (server: string): number[] => ours(server, s.name, (x) => x.cpuUsPerReq);
    lines.push(
      `| ${s.name} | ${pairedRatio(rps("bunwsgi"), rps("node:http"))} | ${pairedRatio(rps("bunwsgi"), rps("bare Bun.listen"))} | ${pairedRatio(cpu("bunwsgi"), cpu("bare Bun.listen"))} |`,
    );
  }
}
lines.push(
  "",
  "| server | RSS idle MiB (started, no request yet) | RSS after 1 s warm-up MiB | RSS peak under keep-alive MiB |",
  "|---|---|---|---|",
);
for (const kind of SERVERS) {
  const m = rss.get(kind.name);
  if (m === undefined) continue;
  const mib = (xs: number[]): string =>
    xs.length === 0
      ? "— (keep-alive not run)"
      : `${(median(xs) / 1024).toFixed(1)} (${range(
          xs.map((x) => x / 1024),
          1,
        )})`;
  lines.push(`| ${kind.name} | ${mib(m.idle)} | ${mib(m.warm)} | ${mib(m.peak)} |`);
}
const table = lines.join("\n");
console.log(`\n${table}`);
if (MARKDOWN !== "") {
  writeFileSync(MARKDOWN, `${table}\n`);
  console.log(`\nwritten to ${MARKDOWN}`);
}
if (!existsSync("/proc/self/stat")) console.error("bench: /proc is missing, CPU figures are not valid here");
