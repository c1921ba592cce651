/**
 * @module bench/run — bunwsgi vs Bun.serve vs node:http (and a bare Bun.listen floor) under wrk: interleaved rounds, server on
 * CPU 0 and wrk on CPU 1 (taskset), server CPU time per request from /proc, RSS, medians and
 * ratios to Bun.serve. Usage: bun run bench [--rounds N] [--duration S] [--warmup S] [--lead S] [--only a,b] [--servers a,b] [--baseline DIR] [--markdown FILE] (--help: each option)
 * Servers start once; every scenario runs --warmup seconds on each, unmeasured, before the rounds, and --lead
 * seconds right before each measured run.
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
 * The workers group (issue #17) runs only when an --only word names it (`--only workers`; `--only "workers: CPU"` for one
 * of its scenarios), never in the default run: its servers are NOT pinned (they may use both cores) and neither is wrk
 * (still -t1). Servers: the bunwsgi CLI serving servers/workers-app.ts as a single process, with workers = 1 and with
 * workers = 2, and Bun.serve (servers/workers-bunserve.ts). Scenarios: hello keep-alive, and a CPU-bound route (/cpu: an
 * FNV-1a checksum over a fixed buffer, servers/cpu-work.ts, its length calibrated once here to ~0.5 ms and handed to every
 * server as BENCH_CPU_BYTES; each server's checksum checked once before timing). A server's CPU and RSS are summed over
 * its process and its children (a master and its workers), each process's share reported; wrk's own CPU is reported too.
 */

import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { commandLine, wholeNumber } from "./args.ts";
import { calibrate, checksum, xorshiftFill } from "./servers/cpu-work.ts";

const here = import.meta.dir;
const TOOL = "bench";
const given = commandLine(TOOL, "bun run bench [options] (npm run bench -- [options])", {
  rounds: { type: "string", value: "N", help: "interleaved rounds (default 3)" },
  duration: { type: "string", value: "S", help: "seconds of each measured run (default 5)" },
  warmup: {
    type: "string",
    value: "S",
    help: "seconds each scenario runs on each server before the rounds, unmeasured (default 2; 0 skips)",
  },
  lead: {
    type: "string",
    value: "S",
    help: "seconds right before each measured run, unmeasured, on the same server (default 1)",
  },
  only: { type: "string", value: "a,b", help: "scenarios whose names contain one of these comma-separated words" },
  servers: { type: "string", value: "a,b", help: "servers whose names contain one of these words (and their reference)" },
  baseline: { type: "string", value: "DIR", help: "another checkout of bunwsgi (an earlier commit) measured in the same rounds" },
  markdown: { type: "string", value: "FILE", help: "also write the results table to this file" },
});
/** A whole number of at least `least` (wrk takes whole seconds), or the bench stops saying which option got what. */
const countOpt = (name: "rounds" | "duration" | "warmup" | "lead", fallback: number, least: number): number =>
  wholeNumber(TOOL, `--${name}`, given[name], fallback, least);
const ROUNDS = countOpt("rounds", 3, 1);
const DURATION = countOpt("duration", 5, 1);
/** Seconds each scenario runs on each server, unmeasured, before the first round. */
const WARMUP = countOpt("warmup", 2, 0);
/**
 * Seconds each measured run is preceded by, on the same server and scenario, unmeasured. In a
 * round a server sits idle while the others run (minutes, in a full run): without a lead-in its
 * run starts as a server does after that long idle, not as in service. An allocator gives memory
 * back after idle seconds (mimalloc: after 100 ms by default, after 10 s in the bunwsgi command),
 * and the next burst faults it in again; on the 2-core VM the first 2 s of a 1 MiB echo on
 * bunwsgi after 15 s idle cost 1582 µs of CPU per request, 452 µs the next 2 s.
 */
const LEAD = countOpt("lead", 1, 0);
const leadNote = (): string => (LEAD > 0 ? ` (each after ${LEAD}s unmeasured on the same server)` : "");
/** A comma-separated option as a list; empty when absent. */
const listOpt = (name: "only" | "servers"): string[] => (given[name] ?? "").split(",").filter((s) => s !== "");
const ONLY = listOpt("only");
const ONLY_SERVERS = listOpt("servers");
const MARKDOWN = given.markdown ?? "";
const CONNECTIONS = 50;

for (const tool of ["wrk", "taskset", "node"]) {
  if (Bun.which(tool) === null) {
    console.error(
      `bench: ${tool} is not installed. On Debian/Ubuntu: sudo apt-get install -y ${tool === "taskset" ? "util-linux" : tool === "node" ? "nodejs" : "wrk"}`,
    );
    process.exit(2);
  }
}

/** Which app a server runs: the plain benchmark app, the Hono one, or the workers group's; a scenario runs on the servers of its group. */
type Group = "plain" | "Hono" | "workers";
/** The server each group's ratios are to (the workers group's: the one that also runs whenever another of its servers does). */
const REFERENCE: Record<Group, string> = { plain: "Bun.serve", Hono: "Bun.serve + Hono", workers: "bunwsgi, workers = 1" };

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
  /** The bunwsgi CLI with this `--workers` (0: a single process): ready once its error log says it listens and every worker is ready. */
  workers?: number;
}

/** Whether a name passes a list filter: no filter, or one of its words as a substring, case-insensitively. */
const picked = (name: string, filters: string[]): boolean =>
  filters.length === 0 || filters.some((o) => name.toLowerCase().includes(o.toLowerCase()));

/** `--baseline DIR`: another checkout of bunwsgi (an earlier commit) measured in the same rounds, for before/after. */
const BASELINE = given.baseline ?? "";
// A path that is no checkout would leave the rounds without their baseline, silently.
if (BASELINE !== "" && !existsSync(join(BASELINE, "bench/servers/bunwsgi.ts"))) {
  console.error(`${TOOL}: --baseline ${BASELINE} is no checkout of bunwsgi (it has no bench/servers/bunwsgi.ts)`);
  process.exit(2);
}

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

/** A workers-group server on the bunwsgi CLI: servers/workers-app.ts on an ephemeral port, no access log. */
const cliKind = (name: string, workers: number): ServerKind => ({
  name,
  group: "workers",
  workers,
  cmd: () => [
    process.execPath,
    join(here, "../src/cli.ts"),
    join(here, "servers/workers-app.ts"),
    "--bind",
    "127.0.0.1:0",
    "--workers",
    String(workers),
    "--log-access",
    "none",
  ],
});

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
  cliKind("bunwsgi, 1 process", 0),
  cliKind("bunwsgi, workers = 1", 1),
  cliKind("bunwsgi, workers = 2", 2),
  {
    name: "Bun.serve, unpinned",
    group: "workers",
    cmd: (p) => [process.execPath, join(here, "servers/workers-bunserve.ts"), String(p)],
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
  { name: "workers: keep-alive", group: "workers", wrk: [], path: "/", bytesPerRequest: 0, peak: true },
  { name: "workers: CPU-bound 0.5 ms", group: "workers", wrk: [], path: "/cpu", bytesPerRequest: 0 },
];
/** The scenarios asked for: those --only names; the workers group only when an --only word names it (it has "worker" in it). */
const chosenScenarios = ALL_SCENARIOS.filter((s) =>
  s.group === "workers"
    ? ONLY.some((o) => o.toLowerCase().includes("worker") && s.name.toLowerCase().includes(o.toLowerCase()))
    : picked(s.name, ONLY),
);
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
  /** Server CPU per request, over its process and its children (a master's workers). */
  cpuUsPerReq: number;
  gbps: number;
  errors: number;
  /** The server's CPU seconds per second of the run: how many cores it kept busy. */
  cores: number;
  /** wrk's own CPU (user + system) per request. */
  wrkCpuUsPerReq: number;
  /** Each process's CPU per request, by label ("process"; "master", "worker 0", …). */
  procs: Map<string, number>;
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

/** A process's children (a bunwsgi master's workers), from /proc/PID/task/TID/children, or `pgrep -P` where the kernel has no such file. */
function childrenOf(pid: number): number[] {
  try {
    return readdirSync(`/proc/${pid}/task`)
      .flatMap((t) => readFileSync(`/proc/${pid}/task/${t}/children`, "utf8").trim().split(" "))
      .filter((x) => x !== "")
      .map(Number);
  } catch {
    const out = Bun.spawnSync(["pgrep", "-P", String(pid)]).stdout.toString();
    return out
      .split("\n")
      .filter((x) => x !== "")
      .map(Number);
  }
}

/** A server's processes: its own and its children's (a master and its workers). */
const tree = (pid: number): number[] => [pid, ...childrenOf(pid).sort((a, b) => a - b)];

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
  xorshiftFill(new Uint32Array(all.buffer));
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

/** The workers group's CPU-bound route: the bytes each request checksums, calibrated once here (workers group only). */
const CPU = SCENARIOS.some((s) => s.group === "workers") ? calibrate(0.5) : { bytes: 0, msPerRun: 0 };
/** Its checksum, which every server's /cpu must answer. */
const CPU_SUM = SCENARIOS.some((s) => s.group === "workers") ? `${checksum(CPU.bytes)}\n` : "";

/** A server running: its process (a bunwsgi master's, for the CLI kinds), port, and each worker's slot by pid. */
interface Running {
  kind: ServerKind;
  proc: Subprocess;
  port: number;
  slots: Map<number, number>;
}

/** Read a stream until `done(text so far)`, within the deadline; returns all it read, and the reader, still locked. */
async function readUntil(stream: ReadableStream<Uint8Array>, done: (text: string) => boolean, deadline: number, name: string) {
  const reader = stream.getReader();
  const decoder = new TextDecoder();
  let text = "";
  while (!done(text)) {
    const left = deadline - Date.now();
    let timer: Timer | undefined;
    const late = new Promise<"late">((resolve) => {
      timer = setTimeout(() => resolve("late"), Math.max(left, 0));
    });
    const r = await Promise.race([reader.read(), late]);
    clearTimeout(timer);
    if (r === "late") throw new Error(`${name} did not start: ${text}`);
    if (r.done) throw new Error(`${name} exited: ${text}`);
    text += decoder.decode(r.value, { stream: true });
  }
  return { text, reader };
}

/** What a CLI kind's error log says once it serves: the port it listens on and, with workers, each worker's pid by slot. */
const LISTENING = /listening on http:\/\/127\.0\.0\.1:(\d+)/;
const WORKER_READY = /worker (\d+) \(pid (\d+)\) ready/g;

async function startServer(kind: ServerKind): Promise<Running> {
  const env = {
    ...process.env,
    ...(FILES_DIR === "" ? {} : { BENCH_FILES: FILES_DIR }),
    ...(kind.group === "workers" ? { BENCH_CPU_BYTES: String(CPU.bytes) } : {}),
  };
  const deadline = Date.now() + (kind.workers === undefined ? 10_000 : 30_000);
  // The workers group's servers are not pinned: they may use both cores.
  const cmd = kind.group === "workers" ? kind.cmd(0) : ["taskset", "-c", "0", ...kind.cmd(0)];
  if (kind.workers !== undefined) {
    const workers = kind.workers;
    const proc = Bun.spawn(cmd, { cwd: here, stdin: "ignore", stdout: "ignore", stderr: "pipe", env });
    alive.add(proc);
    const { text, reader } = await readUntil(
      proc.stderr,
      (t) => LISTENING.test(t) && [...t.matchAll(WORKER_READY)].length >= workers,
      deadline,
      kind.name,
    );
    const port = Number((text.match(LISTENING) as RegExpMatchArray)[1]);
    const slots = new Map([...text.matchAll(WORKER_READY)].map((m) => [Number(m[2]), Number(m[1])]));
    // The rest of its error log: drained, and any line that is not INFO shown (a worker that crashed or hung).
    void (async () => {
      const decoder = new TextDecoder();
      let partial = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        const lines = (partial + decoder.decode(value, { stream: true })).split("\n");
        partial = lines.pop() ?? "";
        for (const line of lines) if (!line.includes("[INFO]")) console.error(`${kind.name}: ${line}`);
      }
    })();
    return { kind, proc, port, slots };
  }
  const proc = Bun.spawn(cmd, { stdin: "ignore", stdout: "pipe", stderr: "inherit", env });
  alive.add(proc);
  const { text, reader } = await readUntil(proc.stdout, (t) => /ready \d+/.test(t), deadline, kind.name);
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
  return { kind, proc, port, slots: new Map() };
}

/** Stop a server: SIGKILL; a master's workers exit when their master does (their channel closes): waited for, up to 5 s. */
async function stopServer({ kind, proc }: Running): Promise<void> {
  const children = childrenOf(proc.pid);
  proc.kill("SIGKILL");
  await proc.exited;
  alive.delete(proc);
  const until = Date.now() + 5_000;
  while (children.some((p) => existsSync(`/proc/${p}`)) && Date.now() < until) await Bun.sleep(20);
  const left = children.filter((p) => existsSync(`/proc/${p}`));
  if (left.length > 0)
    console.error(`bench: ${kind.name}: worker(s) ${left.join(", ")} still running 5 s after their master died`);
}

/** A CLI kind's /cpu answer must be the calibrated checksum, and every server's the same, before timing. */
async function checkCpu(kind: ServerKind, port: number): Promise<void> {
  const res = await fetch(`http://127.0.0.1:${port}/cpu`, { signal: AbortSignal.timeout(10_000) });
  const body = await res.text();
  if (res.status !== 200 || body !== CPU_SUM)
    throw new Error(`${kind.name} /cpu: status ${res.status}, ${JSON.stringify(body)} (want 200, ${JSON.stringify(CPU_SUM)})`);
}

async function runWrk(
  port: number,
  s: Scenario,
  seconds: number,
): Promise<{ requests: number; errors: number; out: string; cpuSeconds: number }> {
  const cmd = [
    // The workers group's wrk is not pinned either: its servers may use both cores.
    ...(s.group === "workers" ? [] : ["taskset", "-c", "1"]),
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
  const cpu = p.resourceUsage()?.cpuTime.total;
  return { requests, errors, out, cpuSeconds: cpu === undefined ? Number.NaN : Number(cpu) / 1e6 };
}

/** The 1-minute load average, read at the start and at the end: the workers group uses both cores, so other work on the machine shows in its figures. */
const loadAverage = (): string => readFileSync("/proc/loadavg", "utf8").split(" ")[0] ?? "?";
const LOAD_AT_START = loadAverage();
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
/** Each process's RSS after the warm-up and its peak under keep-alive, by server and process label (the workers group). */
const procRss = new Map<string, { warm: number[]; peak: number[] }>();
/** A process's label: "process" alone; "master" or "worker SLOT" for a master and its workers. */
const label = (r: Running, pid: number): string =>
  pid === r.proc.pid
    ? r.kind.workers !== undefined && r.kind.workers > 0
      ? "master"
      : "process"
    : `worker ${r.slots.get(pid) ?? `? (pid ${pid})`}`;
/** Each process's memory field, recorded by label for the workers group; returns their sum. */
function treeMemory(r: Running, field: "VmRSS" | "VmHWM", into: "warm" | "peak" | null): number {
  let sum = 0;
  for (const pid of tree(r.proc.pid)) {
    const kib = memoryKiB(pid, field);
    sum += kib;
    if (into !== null && r.kind.group === "workers")
      entry(procRss, key(r.kind.name, label(r, pid)), () => ({ warm: [], peak: [] }))[into].push(kib);
  }
  return sum;
}

console.log(
  `bench: ${ROUNDS} rounds × ${SCENARIOS.length} scenarios × ${SERVERS.length} servers, ${DURATION}s each${leadNote()}, wrk -t1 ${connectionsNote()}`,
);
console.log(`       server pinned to CPU 0, wrk to CPU 1; Bun ${Bun.version}, ${(await Bun.$`node --version`.text()).trim()}`);
if (CPU.bytes > 0) {
  console.log(
    `       workers group: servers and wrk NOT pinned (both cores); /cpu checksums ${CPU.bytes} bytes, ${CPU.msPerRun.toFixed(3)} ms here (calibrated to 0.5 ms)`,
  );
}

/**
 * Reset a process's peak RSS (VmHWM) to its current RSS (proc(5): writing 5 to clear_refs), so
 * that the keep-alive peak of a round is that run's, not an earlier scenario's. False when the
 * kernel refuses (the peak column then says so).
 */
function resetPeak(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, "5");
    return true;
  } catch {
    return false;
  }
}
let peaksReset = true;

// Every server runs from the first round to the last, and every scenario is run on each of them
// first for WARMUP seconds, unmeasured: the figures are of warm servers, as in service. A
// scenario's code is compiled by the JIT in its first seconds (measured on bunwsgi: a 1 MiB file
// download kept the JIT's thread busy for 6 s, 13–15 % of the server's CPU over a 5 s run that
// started cold), which a server whose paths are native code does not pay; each round restarting
// the servers made every round pay it again.
const running: Running[] = [];
try {
  for (const kind of SERVERS) {
    const r = await startServer(kind);
    running.push(r);
    memory(kind.name).idle.push(treeMemory(r, "VmRSS", null));
  }
  for (const { kind, port } of running) {
    if (SCENARIOS.some((s) => s.file === true && runs(kind, s))) await checkFiles(kind, port);
    if (SCENARIOS.some((s) => s.path === "/cpu" && runs(kind, s))) await checkCpu(kind, port);
  }
  if (WARMUP > 0) for (const s of SCENARIOS) for (const r of running) if (runs(r.kind, s)) await runWrk(r.port, s, WARMUP);
  for (const r of running) memory(r.kind.name).warm.push(treeMemory(r, "VmRSS", "warm"));
  for (let round = 1; round <= ROUNDS; round++) {
    // Each scenario is measured on all servers back to back: on a machine whose speed drifts from
    // minute to minute, the samples a ratio compares are seconds apart, not a whole server's run
    // apart. The order rotates each round so drift does not favour one server.
    const order = running.map((_, i) => running[(i + round - 1) % running.length] as Running);
    for (const s of SCENARIOS) {
      for (const r of order) {
        const { kind, proc, port } = r;
        if (!runs(kind, s)) continue;
        if (LEAD > 0) await runWrk(port, s, LEAD);
        // The server's processes (a master's workers too), each one's CPU before and after.
        const pids = tree(proc.pid);
        if (s.peak === true) for (const pid of pids) peaksReset = resetPeak(pid) && peaksReset;
        const cpuOf = (pid: number): number => {
          try {
            return cpuSeconds(pid);
          } catch {
            return Number.NaN; // gone: its CPU is lost, and the sample says so (NaN)
          }
        };
        const before = pids.map(cpuOf);
        const { requests, errors, cpuSeconds: wrkCpu } = await runWrk(port, s, DURATION);
        const spent = pids.map((pid, i) => cpuOf(pid) - (before[i] as number));
        const now = tree(proc.pid);
        if (now.length !== pids.length || now.some((p, i) => p !== pids[i])) {
          console.error(`bench: ${kind.name}: its processes changed during ${s.name} (${pids.join(", ")} → ${now.join(", ")})`);
        }
        const cpu = spent.reduce((a, x) => a + x, 0);
        const sample: Sample = {
          rps: requests / DURATION,
          cpuUsPerReq: (cpu / requests) * 1e6,
          gbps: (requests * s.bytesPerRequest) / DURATION / 1e9,
          errors,
          cores: cpu / DURATION,
          wrkCpuUsPerReq: (wrkCpu / requests) * 1e6,
          procs: new Map(pids.map((pid, i) => [label(r, pid), ((spent[i] as number) / requests) * 1e6])),
        };
        entry(results, key(kind.name, s.name), (): Sample[] => []).push(sample);
        // The high-water mark since resetPeak, just before this run: its own peak.
        if (s.peak === true) memory(kind.name).peak.push(treeMemory(r, "VmHWM", "peak"));
        const split =
          pids.length > 1
            ? `  (${[...sample.procs].map(([l, us]) => `${l} ${us.toFixed(1)}`).join(", ")}; wrk ${sample.wrkCpuUsPerReq.toFixed(1)})`
            : s.group === "workers"
              ? `  (wrk ${sample.wrkCpuUsPerReq.toFixed(1)})`
              : "";
        console.log(
          `round ${round} ${kind.name.padEnd(NAME_WIDTH)} ${s.name.padEnd(SCENARIO_WIDTH)} ${sample.rps.toFixed(0).padStart(7)} req/s  ${sample.cpuUsPerReq.toFixed(2).padStart(7)} µs CPU/req${s.bytesPerRequest > 0 ? `  ${sample.gbps.toFixed(2)} GB/s` : ""}${errors > 0 ? `  ${errors} errors` : ""}${split}`,
        );
      }
    }
  }
} finally {
  for (const r of running) await stopServer(r);
}

/** The keep-alive peak column's title: a peak since start when the kernel would not reset it. */
const PEAK_COLUMN = peaksReset
  ? "RSS peak under keep-alive MiB"
  : "RSS peak since start, by the end of keep-alive MiB (clear_refs refused)";

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
/** The scenarios of the pinned tables: all but the workers group's, which has its own. */
const PINNED = SCENARIOS.filter((s) => s.group !== "workers");
if (PINNED.length > 0)
  lines.push(
    `Bun ${Bun.version}, ${(await Bun.$`node --version`.text()).trim()}, wrk ${(await Bun.$`wrk --version`.nothrow().text()).split(" ")[1] ?? "?"}; ` +
      `${ROUNDS} interleaved rounds × ${DURATION}s${leadNote()}; server on CPU 0, \`wrk -t1\` (${connectionsNote()}) on CPU 1; median (min–max); ratio = each round's figure ÷ the reference's in the same round (Bun.serve; Bun.serve + Hono for the Hono scenarios), median (min–max) of the rounds.`,
    "",
    "| scenario | server | req/s | server CPU µs/req | throughput | ratio req/s | ratio CPU/req |",
    "|---|---|---|---|---|---|---|",
  );
for (const s of PINNED) {
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
if (PINNED.length > 0)
  lines.push(
    "",
    `| server | RSS idle MiB (started, no request yet) | RSS after the warm-up MiB | ${PEAK_COLUMN} |`,
    "|---|---|---|---|",
  );
for (const kind of SERVERS.filter((k) => k.group !== "workers")) {
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
/** Median (min–max) of a list of figures, or "—" when there are none. */
const fig = (xs: number[], digits: number): string =>
  xs.length === 0 || xs.some((x) => Number.isNaN(x)) ? "—" : `${median(xs).toFixed(digits)} (${range(xs, digits)})`;
const WORKERS = SCENARIOS.filter((s) => s.group === "workers");
const WORKER_SERVERS = SERVERS.filter((k) => k.group === "workers");
if (WORKERS.length > 0) {
  const cores = Bun.spawnSync(["nproc"]).stdout.toString().trim();
  lines.push(
    ...(PINNED.length > 0 ? [""] : []),
    `Workers group: Bun ${Bun.version}, wrk ${(await Bun.$`wrk --version`.nothrow().text()).split(" ")[1] ?? "?"}; ` +
      `${ROUNDS} interleaved rounds × ${DURATION}s${leadNote()}; servers and \`wrk -t1 -c${CONNECTIONS}\` NOT pinned (each may use any of the ${cores} cores); ` +
      `server CPU = its process + its children (a master + its workers), from /proc; cores busy = server CPU s ÷ wall s; ` +
      `/cpu = FNV-1a over ${CPU.bytes} bytes (${CPU.msPerRun.toFixed(3)} ms in the bench process, calibrated to 0.5 ms), the same code in every server; ` +
      `load average ${LOAD_AT_START} at the start, ${loadAverage()} at the end; median (min–max).`,
    "",
    "| scenario | server | req/s | server CPU µs/req | cores busy | wrk CPU µs/req |",
    "|---|---|---|---|---|---|",
  );
  for (const s of WORKERS) {
    for (const kind of WORKER_SERVERS) {
      const xs = results.get(key(kind.name, s.name)) ?? [];
      if (xs.length === 0) continue;
      const errors = xs.reduce((a, x) => a + x.errors, 0);
      lines.push(
        `| ${s.name} | ${kind.name} | ${fig(
          xs.map((x) => x.rps),
          0,
        )} | ${fig(
          xs.map((x) => x.cpuUsPerReq),
          2,
        )} | ${fig(
          xs.map((x) => x.cores),
          2,
        )} | ${fig(
          xs.map((x) => x.wrkCpuUsPerReq),
          2,
        )}${errors > 0 ? ` (${errors} errors)` : ""} |`,
      );
    }
  }
  // Ratios of two servers, each round's figure over the other's in the same round.
  const KA = "workers: keep-alive";
  const CPU_ROUTE = "workers: CPU-bound 0.5 ms";
  const PAIRS: Array<[string, string]> = [
    ["bunwsgi, workers = 2", "bunwsgi, workers = 1"],
    ["bunwsgi, workers = 2", "bunwsgi, 1 process"],
    ["bunwsgi, workers = 1", "bunwsgi, 1 process"],
    ["bunwsgi, workers = 2", "Bun.serve, unpinned"],
    ["bunwsgi, 1 process", "Bun.serve, unpinned"],
  ];
  lines.push(
    "",
    "| ratio | keep-alive req/s | keep-alive CPU/req | CPU-bound req/s | CPU-bound CPU/req |",
    "|---|---|---|---|---|",
  );
  for (const [a, b] of PAIRS) {
    if (!WORKER_SERVERS.some((k) => k.name === a) || !WORKER_SERVERS.some((k) => k.name === b)) continue;
    const r = (scenario: string, pick: (x: Sample) => number): string =>
      pairedRatio(ours(a, scenario, pick), ours(b, scenario, pick));
    lines.push(
      `| ${a} ÷ ${b} | ${r(KA, (x) => x.rps)} | ${r(KA, (x) => x.cpuUsPerReq)} | ${r(CPU_ROUTE, (x) => x.rps)} | ${r(CPU_ROUTE, (x) => x.cpuUsPerReq)} |`,
    );
  }
  const two = ours("bunwsgi, workers = 2", CPU_ROUTE, (x) => x.rps);
  const one = ours("bunwsgi, workers = 1", CPU_ROUTE, (x) => x.rps);
  if (two.length > 0 && two.length === one.length) {
    const ratios = two.map((x, i) => x / (one[i] as number));
    const m = median(ratios);
    lines.push(
      "",
      `workers = 2 ÷ workers = 1 req/s on the CPU-bound route: **${m.toFixed(2)}** (rounds ${range(ratios, 2)}); target ≥ 1.8: ${m >= 1.8 ? "met" : "NOT met"}.`,
    );
  }
  // Each process: its RSS and its CPU per request of the server's, and its share of the server's CPU on the CPU-bound route.
  lines.push(
    "",
    `| server | process | RSS after the warm-up MiB | ${PEAK_COLUMN} | keep-alive CPU µs/req | CPU-bound CPU µs/req | share of CPU-bound CPU |`,
    "|---|---|---|---|---|---|---|",
  );
  const mib = (xs: number[]): string =>
    fig(
      xs.map((x) => x / 1024),
      1,
    );
  for (const kind of WORKER_SERVERS) {
    const labels = [
      ...new Set(WORKERS.flatMap((s) => (results.get(key(kind.name, s.name)) ?? []).flatMap((x) => [...x.procs.keys()]))),
    ];
    const cpuOf = (scenario: string, l: string): number[] => ours(kind.name, scenario, (x) => x.procs.get(l) ?? Number.NaN);
    for (const l of labels) {
      const m = procRss.get(key(kind.name, l));
      const share = ours(kind.name, CPU_ROUTE, (x) => ((x.procs.get(l) ?? Number.NaN) / x.cpuUsPerReq) * 100);
      lines.push(
        `| ${kind.name} | ${l} | ${mib(m?.warm ?? [])} | ${mib(m?.peak ?? [])} | ${fig(cpuOf(KA, l), 2)} | ${fig(cpuOf(CPU_ROUTE, l), 2)} | ${fig(share, 1)} % |`,
      );
    }
    const total = rss.get(kind.name);
    lines.push(
      `| ${kind.name} | **total** | ${mib(total?.warm ?? [])} | ${mib(total?.peak ?? [])} | ${fig(
        ours(kind.name, KA, (x) => x.cpuUsPerReq),
        2,
      )} | ${fig(
        ours(kind.name, CPU_ROUTE, (x) => x.cpuUsPerReq),
        2,
      )} | 100 % |`,
    );
  }
}
const table = lines.join("\n");
console.log(`\n${table}`);
if (MARKDOWN !== "") {
  writeFileSync(MARKDOWN, `${table}\n`);
  console.log(`\nwritten to ${MARKDOWN}`);
}
if (!existsSync("/proc/self/stat")) console.error("bench: /proc is missing, CPU figures are not valid here");
