/**
 * @module bench/ab — before/after of the JavaScript per request, low-noise: two checkouts' Connection and WSGIServer loaded in ONE process, 50 stand-in-socket connections each, fed the same requests (`--depth N` pipelined per read, fresh buffer each) in alternating rounds; prints both medians and the median of the per-round ratios B/A. Usage: bun bench/ab.ts DIR_A DIR_B [--depth 16] [--rounds 15]
 * Same-time rounds in one process cancel the machine's drift that makes separate runs useless
 * for a few-percent difference; JIT state still favours whichever runs first, so swap A and B and
 * read both orders.
 */

import { existsSync } from "node:fs";
import { join, resolve } from "node:path";

const args = process.argv.slice(2);
const opt = (name: string, fallback: number): number => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const dirs = args.filter((a, i) => !a.startsWith("--") && !args[i - 1]?.startsWith("--"));
if (dirs.length !== 2) {
  console.error("usage: bun bench/ab.ts DIR_A DIR_B [--depth N] [--rounds N]");
  process.exit(2);
}
const DEPTH = opt("--depth", 16);
const ROUNDS = opt("--rounds", 15);
const CONNECTIONS = 50;
const BATCHES = 10_000;

/** What this uses of a connection, in any checkout's layout. */
interface Fed {
  onData(chunk: Buffer): void;
}

async function connections(dir: string): Promise<Fed[]> {
  const root = resolve(dir);
  const connPath = existsSync(join(root, "src/engine/connection.ts")) ? "src/engine/connection.ts" : "src/connection.ts";
  const { Connection } = (await import(join(root, connPath))) as { Connection: new (s: unknown, h: unknown) => Fed };
  const api = (await import(join(root, "src/index.ts"))) as {
    WSGIServer: new (l: string, app: unknown, o: object) => { handle(s: unknown, a: [string, number]): void };
  };
  const app = (_env: unknown, sr: (s: string, h: Array<[string, string]>) => void): string[] => {
    sr("200 OK", [["Content-Type", "text/plain"]]);
    return ["Hello, World!"];
  };
  const server = new api.WSGIServer("127.0.0.1:0", app, { log: null });
  const out: Fed[] = [];
  for (let i = 0; i < CONNECTIONS; i++) {
    const socket = {
      data: null as unknown,
      remoteAddress: "127.0.0.1",
      remotePort: 40000 + i,
      write: (_b: Uint8Array, _o: number, length: number): number => length,
      pause(): void {},
      resume(): void {},
      end(): void {},
      terminate(): void {},
    };
    const conn = new Connection(socket, server);
    socket.data = conn;
    server.handle(socket, ["127.0.0.1", 40000 + i]);
    out.push(conn);
  }
  return out;
}

const one = Buffer.from("GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n", "latin1");
const batch = Buffer.concat(Array.from({ length: DEPTH }, () => one));

function round(conns: Fed[]): number {
  const t0 = performance.now();
  for (let i = 0; i < BATCHES; i++) {
    const b = Buffer.allocUnsafe(batch.length);
    batch.copy(b);
    (conns[i % CONNECTIONS] as Fed).onData(b);
  }
  return ((performance.now() - t0) * 1e6) / (BATCHES * DEPTH);
}

const a = await connections(dirs[0] as string);
const b = await connections(dirs[1] as string);
for (let r = 0; r < 3; r++) {
  round(a);
  round(b);
}
const ra: number[] = [];
const rb: number[] = [];
const ratio: number[] = [];
for (let r = 0; r < ROUNDS; r++) {
  const x = round(a);
  const y = round(b);
  ra.push(x);
  rb.push(y);
  ratio.push(y / x);
}
const median = (v: number[]): number => [...v].sort((p, q) => p - q)[v.length >> 1] as number;
console.log(
  `depth ${DEPTH}: A ${median(ra).toFixed(0)} ns/request, B ${median(rb).toFixed(0)} ns/request, B/A ${median(ratio).toFixed(3)} (median of ${ROUNDS} rounds)`,
);
