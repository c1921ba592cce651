/**
 * @module bench/ab — the JavaScript cost per request of two checkouts of bunwsgi compared in one
 * process: each loads its own Connection and WSGIServer, 50 stand-in connections each take reads
 * of DEPTH wrk requests (16: the pipelined scenario; 1: keep-alive), and rounds alternate between
 * the two, so the machine's drift hits both alike. Prints B/A of the CPU time per request.
 *
 * Run: bun bench/ab.ts DIR_A DIR_B   (env: DEPTH=16, PROCS=8, ROUNDS=20, REQS=80000 per round;
 * METRICS=B: B counts its requests for metrics, as with metrics_bind set; PART=parser: the
 * request-head parser alone, as bench:parser times it, on HEAD=minimal or HEAD=browser)
 *
 * What a plain alternation gets wrong, and what this does about it. The copy warmed first runs a
 * few % slower for the whole process, and a copy whose sources match code loaded before it runs a
 * few % faster (so no third copy is warmed first: it would favour whichever side it resembles):
 * every other process gives A the first role, the others B, and the result is the geometric mean
 * of the processes' medians. A round function shared by both copies would be polymorphic: each
 * copy has its own. A process's JIT decisions differ from the next one's by a few % (and
 * bench:parser's loop runs the minimal head at 70–80 ns in some processes, at 120–140 in others,
 * for good): PROCS processes. CPU time, not wall time: other processes on the CPU do not count.
 */

import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { envChoice, envWhole } from "./args.ts";
import { HEADS, helloApp, readLoop, standInSocket, timedLoop } from "./heads.ts";

interface StandIn {
  onData(chunk: Buffer): void;
}

/** What the parser rounds drive of a checkout's RequestParser. */
interface Parser {
  execute(buf: Uint8Array, start: number, end: number): number;
  reset(): void;
}

const TOOL = "bench/ab";
const DEPTH = envWhole(TOOL, "DEPTH", 16, 1);
const REQUESTS = envWhole(TOOL, "REQS", 80_000, 1);
const ROUNDS = envWhole(TOOL, "ROUNDS", 20, 1);
const PROCS = envWhole(TOOL, "PROCS", 8, 1);
const CONNECTIONS = 50;
const METRICS_B = envChoice(TOOL, "METRICS", ["A", "B"], "A") === "B";
const PARSER = envChoice(TOOL, "PART", ["parser", "request"], "request") === "parser";
const HEAD_KIND = envChoice(TOOL, "HEAD", ["minimal", "browser"], "minimal");
const HEAD = HEADS[HEAD_KIND === "browser" ? "browser, 12 fields, ~700 B" : "minimal (wrk)"] as Buffer;

/** A checkout's request-head parser with the default limits (checkouts before http/ kept it in src/, with default limits built in). */
async function loadParser(dir: string): Promise<Parser> {
  if (!existsSync(`${dir}/src/http/parser.ts`)) {
    const { RequestParser } = await import(resolve(dir, "src/parser.ts"));
    return new RequestParser() as Parser;
  }
  const { RequestParser } = await import(resolve(dir, "src/http/parser.ts"));
  const { defaultHeadLimits } = await import(resolve(dir, "src/config/limits.ts"));
  return new RequestParser(defaultHeadLimits()) as Parser;
}

/** A round of its own for each copy's parser: CPU ns per head of `n` heads. */
const parserRound = (tag: string): ((n: number, parser: Parser, head: Buffer) => number) =>
  timedLoop<[Parser, Buffer]>(
    tag,
    ["parser", "head"],
    `if (parser.execute(head, 0, head.length) !== head.length) throw new Error("parse failed");
      parser.reset();`,
    "n",
    false,
  );

/** A checkout's Connection and WSGIServer with CONNECTIONS stand-in connections (every write taken whole). */
async function load(dir: string, metrics: boolean): Promise<StandIn[]> {
  if (metrics) {
    const { counters } = await import(resolve(dir, "src/engine/counters.ts"));
    counters.on = true;
  }
  // Checkouts before the engine/ layer kept the connection in src/.
  const connection = existsSync(`${dir}/src/engine/connection.ts`) ? "src/engine/connection.ts" : "src/connection.ts";
  const { Connection } = await import(resolve(dir, connection));
  const { WSGIServer } = await import(resolve(dir, "src/index.ts"));
  const server = new WSGIServer("127.0.0.1:0", helloApp, { log: null });
  const conns: StandIn[] = [];
  for (let i = 0; i < CONNECTIONS; i++) {
    const socket = standInSocket(40000 + i);
    const conn = new Connection(socket, server);
    socket.data = conn;
    server.handle(socket, ["127.0.0.1", 40000 + i]);
    conns.push(conn);
  }
  return conns;
}

/** Rounds of two timed runs, alternating which goes first: [first's, second's] figures. */
function alternate(runFirst: (n: number) => number, runSecond: (n: number) => number, n: number): [number[], number[]] {
  for (let i = 0; i < 80; i++) {
    runFirst(n / 20);
    runSecond(n / 20);
  }
  const f: number[] = [];
  const s: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    if (r % 2 === 0) {
      f.push(runFirst(n));
      s.push(runSecond(n));
    } else {
      s.push(runSecond(n));
      f.push(runFirst(n));
    }
  }
  return [f, s];
}

/** One process: rounds of A and B, alternating which goes first; prints {a, b} as JSON. */
async function worker(dirA: string, dirB: string, swap: boolean): Promise<void> {
  if (PARSER) {
    const first = await loadParser(swap ? dirB : dirA);
    const second = await loadParser(swap ? dirA : dirB);
    const runFirst = parserRound("A");
    const runSecond = parserRound("B");
    const [f, s] = alternate(
      (n) => runFirst(n, first, HEAD),
      (n) => runSecond(n, second, HEAD),
      REQUESTS * 4,
    );
    console.log(JSON.stringify(swap ? { a: s, b: f } : { a: f, b: s }));
    return;
  }
  const batch = Buffer.concat(Array(DEPTH).fill(Buffer.from("GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n", "latin1")));
  const reads = Math.max(1, Math.round(REQUESTS / DEPTH));
  // SWAP: B takes the first role in everything (loaded, warmed and timed first).
  const first = await load(swap ? dirB : dirA, swap && METRICS_B);
  const second = await load(swap ? dirA : dirB, !swap && METRICS_B);
  // A round function of its own for each copy.
  const runFirst = readLoop<StandIn>("A", DEPTH);
  const runSecond = readLoop<StandIn>("B", DEPTH);
  const [f, s] = alternate(
    (n) => runFirst(n, first, batch),
    (n) => runSecond(n, second, batch),
    reads,
  );
  console.log(JSON.stringify(swap ? { a: s, b: f } : { a: f, b: s }));
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((p, q) => p - q);
  return s[s.length >> 1] as number;
};

async function main(): Promise<void> {
  const [dirA, dirB, ...extra] = process.argv.slice(2);
  if (dirA === undefined || dirB === undefined || extra.length > 0) {
    console.error("usage: bun bench/ab.ts DIR_A DIR_B");
    process.exit(2);
  }
  const role = process.env.AB_SWAP;
  if (role !== undefined) {
    await worker(dirA, dirB, role === "1");
    return;
  }
  const perProcess: number[] = [];
  const a: number[] = [];
  const b: number[] = [];
  for (let p = 0; p < PROCS; p++) {
    const run = Bun.spawnSync([process.execPath, import.meta.path, dirA, dirB], {
      env: { ...process.env, AB_SWAP: p % 2 === 0 ? "0" : "1" },
      stderr: "inherit",
    });
    if (run.exitCode !== 0) process.exit(1);
    const rounds = JSON.parse(run.stdout.toString().trim().split("\n").pop() as string) as { a: number[]; b: number[] };
    perProcess.push(median(rounds.a.map((x, i) => (rounds.b[i] as number) / x)));
    a.push(...rounds.a);
    b.push(...rounds.b);
  }
  const mean = Math.exp(perProcess.reduce((sum, r) => sum + Math.log(r), 0) / perProcess.length);
  console.log(
    `${PARSER ? `parser, ${HEAD_KIND} head` : `depth ${DEPTH}`}: ` +
      `A ${median(a).toFixed(0)} B ${median(b).toFixed(0)} CPU ns/${PARSER ? "head" : "request"}; ` +
      `B/A ${mean.toFixed(3)} (geometric mean of each process's median: ${perProcess.map((x) => x.toFixed(3)).join(" ")}; A first in the 1st, 3rd, …)`,
  );
}

await main();
