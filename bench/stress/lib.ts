/** @module bench/stress/lib — shared helpers of the stress scripts: options, a watchdog and the summary line, the bunwsgi server process (taskset CPU 0, free port), /proc fd and RSS sampling, wrk on CPU 1, raw loopback clients and an HTTP response checker. */

import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { Socket, Subprocess } from "bun";
import { commandLine, type Given, type OptionTable, wholeNumber } from "../args.ts";

export const ROOT = join(import.meta.dir, "../..");
/** The pinned Bun of the checkout (never a global one). */
export const BUN = existsSync(join(ROOT, "node_modules/.bin/bun")) ? join(ROOT, "node_modules/.bin/bun") : process.execPath;
/** The app the scripts serve: the WSGI one, or with `--kind fetch` the same routes as a fetch app. */
export const appPath = (): string => join(import.meta.dir, kindOption() === "fetch" ? "fetch-app.ts" : "app.ts");
export const KiB = 1024;
export const MiB = 1024 * KiB;

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
export const now = (): number => performance.now();

// ---------------------------------------------------------------- options and the summary line

export interface Options {
  /** --fast: the short CI variant. */
  fast: boolean;
  /** --seconds N: the soak's length (other scripts ignore it). */
  seconds: number | null;
  /** --seed N: the fuzzer's seed. */
  seed: number | null;
  /** --count N: how many inputs the fuzzer feeds. */
  count: number | null;
}

/** The options every stress script takes; bench/stress/run takes them too and hands them on. */
export const STRESS_OPTIONS = {
  fast: { type: "boolean", help: "the short variant CI runs" },
  seconds: { type: "string", value: "N", help: "the soak's length in seconds (default 30; other scripts: fixed)" },
  seed: { type: "string", value: "N", help: "the fuzzer's seed (default random, printed)" },
  count: { type: "string", value: "N", help: "how many inputs the fuzzer feeds" },
  kind: { type: "string", value: "wsgi|fetch", help: "wsgi or fetch: which kind of app the server runs (default wsgi)" },
} as const satisfies OptionTable;

/** This process's command line, checked on first use (bench/stress/run's first, with its own options). */
let given: Given<OptionTable> | null = null;
export function stressArgs<E extends OptionTable>(extra?: E): Given<typeof STRESS_OPTIONS & E> {
  given ??= commandLine("stress", "bun bench/stress/<script>.ts [options]", { ...STRESS_OPTIONS, ...extra });
  return given as Given<typeof STRESS_OPTIONS & E>;
}

/** `--kind wsgi|fetch` (default wsgi): which kind of app the server runs. */
export function kindOption(): "wsgi" | "fetch" {
  const kind = stressArgs().kind ?? "wsgi";
  if (kind !== "wsgi" && kind !== "fetch") {
    console.error(`stress: --kind takes wsgi or fetch, got ${JSON.stringify(kind)}`);
    process.exit(2);
  }
  return kind;
}

export function parseOptions(): Options {
  const g = stressArgs();
  const num = (name: "seconds" | "seed" | "count"): number | null =>
    g[name] === undefined ? null : wholeNumber("stress", `--${name}`, g[name], 0, name === "seconds" ? 1 : 0);
  kindOption();
  return { fast: g.fast === true, seconds: num("seconds"), seed: num("seed"), count: num("count") };
}

/** Run a script: pin this process (the load side) to CPU 1, enforce a time budget, print ONE summary line, set the exit code. */
export async function runScript(
  name: string,
  budgetSeconds: number,
  body: (opts: Options) => Promise<{ pass: boolean; figures: string }>,
): Promise<never> {
  pinSelf(1);
  const opts = parseOptions();
  const finish = (pass: boolean, figures: string): never => {
    console.log(`stress ${name}: ${pass ? "PASS" : "FAIL"} — ${figures}`);
    stopAllServers();
    process.exit(pass ? 0 : 1);
  };
  const watchdog = setTimeout(
    () => finish(false, `script did not finish within its ${budgetSeconds}s budget (a hang in the script or the server)`),
    budgetSeconds * 1000,
  );
  for (const sig of ["SIGTERM", "SIGINT"] as const) process.on(sig, () => finish(false, `stopped by ${sig}`));
  try {
    const { pass, figures } = await body(opts);
    clearTimeout(watchdog);
    return finish(pass, figures);
  } catch (e) {
    clearTimeout(watchdog);
    return finish(false, e instanceof StartError ? e.message : `script error: ${e instanceof Error ? e.stack : String(e)}`);
  }
}

/** Pin this process and all its threads to one CPU (taskset -a -p). */
export function pinSelf(cpu: number): void {
  if (Bun.which("taskset") === null) return;
  Bun.spawnSync(["taskset", "-a", "-p", "-c", String(cpu), String(process.pid)], { stdout: "ignore", stderr: "ignore" });
}

/** "a ≤ b" as a figure: value, then ✓ or ✗ against its limit. */
export const check = (ok: boolean): string => (ok ? "ok" : "FAILED");

// ---------------------------------------------------------------- the server process

/** The server did not start (an unknown flag, a bad app): the message is what the server said. */
export class StartError extends Error {}

const running = new Set<Server>();

/** What Server needs of a stream reader. */
interface ByteReader {
  read(): Promise<{ value?: Uint8Array | undefined; done: boolean }>;
}

export class Server {
  private tail = "";
  private readonly exitedAt: Promise<number>;

  constructor(
    readonly proc: Subprocess<"ignore", "ignore", "pipe">,
    readonly port: number,
    stderrSoFar: string,
    reader: ByteReader,
  ) {
    this.tail = stderrSoFar;
    this.exitedAt = proc.exited;
    void this.pump(reader);
  }

  get pid(): number {
    return this.proc.pid;
  }

  /** Keep reading stderr (a full pipe would block the server); keep the last 256 KiB. */
  private async pump(reader: ByteReader): Promise<void> {
    const dec = new TextDecoder();
    for (;;) {
      const { value, done } = await reader.read().catch(() => ({ value: undefined, done: true }));
      if (done || value === undefined) return;
      this.tail += dec.decode(value, { stream: true });
      if (this.tail.length > 512 * KiB) this.tail = this.tail.slice(-256 * KiB);
    }
  }

  /** The server's error log so far (its last 256 KiB at least). */
  get log(): string {
    return this.tail;
  }

  get alive(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** How the server ended, when it did: "exit 1", "signal SIGSEGV". */
  get exitStatus(): string {
    return this.proc.signalCode !== null ? `signal ${this.proc.signalCode}` : `exit ${this.proc.exitCode}`;
  }

  fds(): number {
    return fdCount(this.pid);
  }

  rssKiB(): number {
    return memoryKiB(this.pid, "VmRSS");
  }

  peakRssKiB(): number {
    return memoryKiB(this.pid, "VmHWM");
  }

  /** Poll the fd count every 100 ms until it is at most `target` or `ms` pass: the last count and when it got there. */
  async settleFds(target: number, ms: number): Promise<{ fds: number; ms: number }> {
    const t0 = now();
    let n = this.fds();
    while (n > target && now() - t0 < ms) {
      await sleep(100);
      n = this.fds();
    }
    return { fds: n, ms: Math.round(now() - t0) };
  }

  /** SIGTERM, then SIGKILL after 3 s. */
  async stop(): Promise<void> {
    running.delete(this);
    if (!this.alive) return;
    this.proc.kill("SIGTERM");
    const t = setTimeout(() => this.proc.kill("SIGKILL"), 3000);
    await this.exitedAt;
    clearTimeout(t);
  }
}

/** Kill every server this process started (synchronous: used on the way out). */
export function stopAllServers(): void {
  for (const s of running) if (s.alive) s.proc.kill("SIGKILL");
  running.clear();
}
process.on("exit", stopAllServers);

/**
 * Start `bun src/cli.ts APP (appPath() unless given) --bind 127.0.0.1:0 --log-access none ...flags` on CPU 0 (with `env` added to this
 * process's environment: Bun.spawn does not pass on changes made to process.env) and wait for
 * its "listening on" line (the port the kernel picked). A server that exits first (an unknown
 * flag, say) throws a StartError carrying what it printed.
 */
export async function startServer(
  flags: readonly string[],
  app: string = appPath(),
  env: Record<string, string> = {},
): Promise<Server> {
  const cmd = [BUN, join(ROOT, "src/cli.ts"), app, "--bind", "127.0.0.1:0", "--log-access", "none", ...flags];
  const proc = Bun.spawn(Bun.which("taskset") !== null ? ["taskset", "-c", "0", ...cmd] : cmd, {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdin: "ignore",
    stdout: "ignore",
    stderr: "pipe",
  });
  const reader = proc.stderr.getReader();
  const dec = new TextDecoder();
  let text = "";
  const deadline = now() + 15_000;
  for (;;) {
    const m = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(text);
    if (m) {
      const server = new Server(proc, Number(m[1]), text, reader);
      running.add(server);
      return server;
    }
    const left = deadline - now();
    const next = await Promise.race([reader.read(), sleep(Math.max(left, 0)).then(() => null)]);
    if (next === null) {
      proc.kill("SIGKILL");
      throw new StartError(`server did not say "listening on" within 15s: ${text.trim().slice(-500)}`);
    }
    if (next.done) {
      await proc.exited;
      const said = text.trim().split("\n").slice(-3).join(" / ");
      throw new StartError(`server refused to start (exit ${proc.exitCode}): ${said}`);
    }
    text += dec.decode(next.value, { stream: true });
  }
}

let helpText: string | null = null;

/** Whether this checkout's CLI knows a flag (from `--help`). */
export function hasFlag(flag: string): boolean {
  helpText ??= Bun.spawnSync([BUN, join(ROOT, "src/cli.ts"), "--help"], { cwd: ROOT }).stdout.toString();
  return new RegExp(`${flag}(?![-\\w])`).test(helpText);
}

/** The flags of `wanted` (pairs "--flag value") this CLI knows, and the names of those it does not. */
export function knownFlags(wanted: ReadonlyArray<readonly [string, string]>): { flags: string[]; missing: string[] } {
  const flags: string[] = [];
  const missing: string[] = [];
  for (const [f, v] of wanted) {
    if (hasFlag(f)) flags.push(f, v);
    else missing.push(f);
  }
  return { flags, missing };
}

// ---------------------------------------------------------------- /proc sampling

export function fdCount(pid: number): number {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return Number.NaN;
  }
}

export function memoryKiB(pid: number, field: "VmRSS" | "VmHWM"): number {
  try {
    const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

export const mib = (kib: number): string => (kib / 1024).toFixed(1);

/**
 * The server's fd count at rest: after a warm-up request or two (Bun opens some descriptors
 * lazily), once it stops changing.
 */
export async function idleFds(server: Server): Promise<number> {
  for (let i = 0; i < 3; i++) await get(server.port, "/");
  await sleep(300);
  let n = server.fds();
  for (let i = 0; i < 10; i++) {
    await sleep(100);
    const m = server.fds();
    if (m === n) break;
    n = m;
  }
  return n;
}

// ---------------------------------------------------------------- wrk

export interface WrkResult {
  requests: number;
  rps: number;
  connect: number;
  read: number;
  write: number;
  timeout: number;
  non2xx: number;
  out: string;
}

/** wrk -t1 on CPU 1 against the server; killed if it overruns. */
export async function wrk(
  port: number,
  o: { seconds: number; connections?: number; path?: string; args?: string[] },
): Promise<WrkResult> {
  const cmd = [
    "wrk",
    "-t1",
    `-c${o.connections ?? 50}`,
    `-d${o.seconds}s`,
    "--timeout",
    "5s",
    ...(o.args ?? []),
    `http://127.0.0.1:${port}${o.path ?? "/"}`,
  ];
  const p = Bun.spawn(Bun.which("taskset") !== null ? ["taskset", "-c", "1", ...cmd] : cmd, { stdout: "pipe", stderr: "pipe" });
  const timer = setTimeout(() => p.kill("SIGKILL"), (o.seconds + 15) * 1000);
  const [out, err] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text()]);
  clearTimeout(timer);
  await p.exited;
  const requests = Number(/(\d+) requests in/.exec(out)?.[1] ?? Number.NaN);
  if (Number.isNaN(requests)) throw new Error(`wrk failed: ${out}${err}`);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const n = (i: number): number => (sock ? Number(sock[i]) : 0);
  return {
    requests,
    rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? requests / o.seconds),
    connect: n(1),
    read: n(2),
    write: n(3),
    timeout: n(4),
    non2xx: Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0),
    out,
  };
}

export const wrkErrors = (r: WrkResult): string =>
  `connect ${r.connect} read ${r.read} write ${r.write} timeout ${r.timeout}, non-2xx ${r.non2xx}`;

// ---------------------------------------------------------------- raw clients

/**
 * One raw loopback connection (Bun.connect): everything received is kept, the time it was
 * opened, first answered and closed (by either side) is recorded, writes that the socket does
 * not take at once are queued until drain. `pause()`/`resume()` stop and restart reading from
 * the kernel, so a paused client pushes back on the server through TCP.
 */
export class RawConn {
  readonly chunks: Uint8Array[] = [];
  received = 0;
  openedAt = 0;
  firstByteAt = -1;
  closedAt = -1;
  /** The connection ended by an error (a reset, say) rather than a FIN. */
  error: string | null = null;
  /** We closed it ourselves (so closedAt is not the server's doing). */
  closedByUs = false;
  /** Called with each chunk received. */
  onData: ((data: Uint8Array) => void) | null = null;
  private socket: Socket<undefined> | null = null;
  private pending: Uint8Array[] = [];
  private closedResolve: (() => void) | null = null;
  readonly closed: Promise<void>;

  private constructor() {
    this.closed = new Promise<void>((r) => {
      this.closedResolve = r;
    });
  }

  /** Connect to 127.0.0.1:port; rejects if the connection is refused. */
  static async open(port: number, opts: { keep?: boolean } = {}): Promise<RawConn> {
    const c = new RawConn();
    const keep = opts.keep ?? true;
    const ended = (err: string | null): void => {
      if (c.closedAt >= 0) return;
      c.closedAt = now();
      if (err !== null) c.error = err;
      c.closedResolve?.();
    };
    c.socket = await Bun.connect({
      hostname: "127.0.0.1",
      port,
      socket: {
        data(_s, data) {
          if (c.firstByteAt < 0) c.firstByteAt = now();
          c.received += data.length;
          if (keep) c.chunks.push(new Uint8Array(data));
          c.onData?.(data);
        },
        drain(s) {
          c.flushPending(s);
        },
        close() {
          ended(null);
        },
        end() {
          ended(null);
        },
        error(_s, e) {
          ended((e as { code?: string }).code ?? e.message);
        },
        timeout() {},
      },
    });
    c.openedAt = now();
    return c;
  }

  get open(): boolean {
    return this.closedAt < 0;
  }

  /** Everything received so far as one buffer. */
  bytes(): Uint8Array {
    if (this.chunks.length === 1) return this.chunks[0] as Uint8Array;
    const all = Buffer.concat(this.chunks);
    this.chunks.length = 0;
    this.chunks.push(all);
    return all;
  }

  text(): string {
    return Buffer.from(this.bytes()).toString("latin1");
  }

  write(data: string | Uint8Array): void {
    const b = typeof data === "string" ? Buffer.from(data, "latin1") : data;
    if (this.socket === null || !this.open) return;
    if (this.pending.length > 0) {
      this.pending.push(b);
      return;
    }
    const n = this.socket.write(b);
    if (n >= 0 && n < b.length) this.pending.push(b.subarray(n));
  }

  private flushPending(s: Socket<undefined>): void {
    while (this.pending.length > 0) {
      const b = this.pending[0] as Uint8Array;
      const n = s.write(b);
      if (n < 0) return;
      if (n < b.length) {
        this.pending[0] = b.subarray(n);
        return;
      }
      this.pending.shift();
    }
  }

  /** Bytes written but not yet taken by the socket. */
  get unsent(): number {
    return this.pending.reduce((a, b) => a + b.length, 0);
  }

  pause(): void {
    this.socket?.pause();
  }

  resume(): void {
    this.socket?.resume();
  }

  /** Close from our side (the close is not counted as the server's). */
  close(): void {
    if (this.open) this.closedByUs = true;
    this.socket?.end();
    this.socket?.terminate();
  }

  /** Resolves true when the connection closed, false if `ms` passed first. */
  async waitClosed(ms: number): Promise<boolean> {
    if (!this.open) return true;
    let t: ReturnType<typeof setTimeout> | undefined;
    const r = await Promise.race([this.closed.then(() => true), new Promise<boolean>((res) => (t = setTimeout(res, ms, false)))]);
    clearTimeout(t);
    return r;
  }

  /** Resolves when `pred` holds after some data, or the connection closes, or `ms` pass: whether pred held. */
  async waitFor(pred: () => boolean, ms: number): Promise<boolean> {
    if (pred()) return true;
    const prev = this.onData;
    let t: ReturnType<typeof setTimeout> | undefined;
    const ok = await new Promise<boolean>((resolve) => {
      this.onData = (d) => {
        prev?.(d);
        if (pred()) resolve(true);
      };
      t = setTimeout(() => resolve(pred()), ms);
      void this.closed.then(() => resolve(pred()));
    });
    clearTimeout(t);
    this.onData = prev;
    return ok;
  }
}

/** A whole exchange on a fresh connection: send `request`, wait for one complete response (or close, or `ms`). */
export async function exchange(
  port: number,
  request: string | Uint8Array,
  ms = 5000,
): Promise<{ conn: RawConn; parsed: Parsed }> {
  const conn = await RawConn.open(port);
  conn.write(request);
  let parsed = parseResponses(new Uint8Array(0), false);
  await conn.waitFor(() => {
    parsed = parseResponses(conn.bytes(), !conn.open);
    return parsed.responses.length > 0 || parsed.malformed !== null;
  }, ms);
  parsed = parseResponses(conn.bytes(), !conn.open);
  conn.close();
  return { conn, parsed };
}

/** GET path on a fresh connection; the status (0 when none came). */
export async function get(port: number, path: string, ms = 5000): Promise<number> {
  try {
    const { parsed } = await exchange(port, `GET ${path} HTTP/1.1\r\nHost: stress\r\nConnection: close\r\n\r\n`, ms);
    return parsed.responses[0]?.status ?? 0;
  } catch {
    return 0;
  }
}

// ---------------------------------------------------------------- HTTP response checking

export interface ParsedResponse {
  status: number;
  /** Connection: close was sent. */
  close: boolean;
  bodyLength: number;
  body: Uint8Array;
}

export interface Parsed {
  /** Complete responses, in order. */
  responses: ParsedResponse[];
  /** Why the bytes are not HTTP/1.x responses; null when they are (so far). */
  malformed: string | null;
  /** Bytes after the last complete response (a response still arriving, or a raw stream after 101). */
  rest: number;
  /** A 101 was received: what follows is not HTTP. */
  upgraded: boolean;
}

const CRLFCRLF = Buffer.from("\r\n\r\n");
const STATUS_LINE = /^HTTP\/1\.[01] ([1-5]\d\d)(?: [^\r\n]*)?$/;
const FIELD = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[ \t]*[^\r\n]*$/;

/**
 * Split bytes into HTTP/1.x responses and check each: status line, field lines, framing
 * (Content-Length, chunked, none for 1xx/204/304, close-delimited which is complete only when
 * `closed`). `headOnly`: the responses answer HEAD requests (no bodies).
 */
export function parseResponses(buf: Uint8Array, closed: boolean, headOnly = false): Parsed {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const responses: ParsedResponse[] = [];
  let at = 0;
  const result = (malformed: string | null, upgraded = false): Parsed => ({
    responses,
    malformed,
    rest: b.length - at,
    upgraded,
  });
  while (at < b.length) {
    const headEnd = b.indexOf(CRLFCRLF, at);
    if (headEnd < 0) {
      const partial = b.subarray(at, Math.min(b.length, at + 9)).toString("latin1");
      if (!"HTTP/1.1 ".startsWith(partial) && !"HTTP/1.0 ".startsWith(partial) && !/^HTTP\/1\.[01] /.test(partial))
        return result(`not a status line: ${JSON.stringify(partial)}`);
      if (b.length - at > 64 * KiB) return result("response head over 64 KiB");
      return result(null);
    }
    const headText = b.subarray(at, headEnd).toString("latin1");
    if (headText.includes("\u0000")) return result("NUL in the response head");
    const lines = headText.split("\r\n");
    const m = STATUS_LINE.exec(lines[0] as string);
    if (!m) return result(`bad status line: ${JSON.stringify((lines[0] as string).slice(0, 80))}`);
    const status = Number(m[1]);
    let length = -1;
    let chunked = false;
    let close = false;
    for (const line of lines.slice(1)) {
      if (!FIELD.test(line)) return result(`bad field line: ${JSON.stringify(line.slice(0, 80))}`);
      const colon = line.indexOf(":");
      const name = line.slice(0, colon).toLowerCase();
      const value = line.slice(colon + 1).trim();
      if (name === "content-length") {
        if (!/^\d+$/.test(value) || (length >= 0 && Number(value) !== length)) return result(`bad Content-Length: ${value}`);
        length = Number(value);
      } else if (name === "transfer-encoding") {
        if (value.toLowerCase() !== "chunked") return result(`unexpected Transfer-Encoding: ${value}`);
        chunked = true;
      } else if (name === "connection" && /\bclose\b/i.test(value)) close = true;
    }
    if (chunked && length >= 0) return result("both Content-Length and chunked");
    let bodyStart = headEnd + 4;
    if (status === 101) {
      at = bodyStart;
      responses.push({ status, close, bodyLength: 0, body: new Uint8Array(0) });
      return result(null, true);
    }
    if ((status >= 100 && status < 200) || status === 204 || status === 304 || headOnly) {
      if (status < 200 && (length >= 0 || chunked)) return result(`${status} with a body`);
      responses.push({ status, close, bodyLength: 0, body: new Uint8Array(0) });
      at = bodyStart;
      continue;
    }
    if (chunked) {
      const parts: Uint8Array[] = [];
      let p = bodyStart;
      for (;;) {
        const eol = b.indexOf("\r\n", p, "latin1");
        if (eol < 0) return closed ? result("connection closed inside a chunked body") : result(null);
        const sizeLine = b.subarray(p, eol).toString("latin1");
        if (!/^[0-9a-fA-F]{1,15}(;.*)?$/.test(sizeLine))
          return result(`bad chunk size line: ${JSON.stringify(sizeLine.slice(0, 40))}`);
        const size = Number.parseInt(sizeLine, 16);
        p = eol + 2;
        if (size === 0) {
          const end = b.indexOf(CRLFCRLF, p - 2);
          if (end < 0) return closed ? result("connection closed inside the trailers") : result(null);
          bodyStart = end + 4;
          break;
        }
        if (b.length < p + size + 2) return closed ? result("connection closed inside a chunk") : result(null);
        if (b[p + size] !== 13 || b[p + size + 1] !== 10) return result("chunk data not followed by CRLF");
        parts.push(b.subarray(p, p + size));
        p += size + 2;
      }
      const body = Buffer.concat(parts);
      responses.push({ status, close, bodyLength: body.length, body });
      at = bodyStart;
      continue;
    }
    if (length >= 0) {
      if (b.length < bodyStart + length) return closed ? result("connection closed inside a Content-Length body") : result(null);
      responses.push({ status, close, bodyLength: length, body: b.subarray(bodyStart, bodyStart + length) });
      at = bodyStart + length;
      continue;
    }
    // Close-delimited: complete once the server closed.
    if (!closed) return result(null);
    responses.push({ status, close: true, bodyLength: b.length - bodyStart, body: b.subarray(bodyStart) });
    at = b.length;
  }
  return result(null);
}

/** Summary statistics of a list of numbers. */
export function stats(xs: readonly number[]): { n: number; max: number; median: number; min: number } {
  if (xs.length === 0) return { n: 0, max: Number.NaN, median: Number.NaN, min: Number.NaN };
  const s = [...xs].sort((a, b) => a - b);
  return { n: s.length, max: s[s.length - 1] as number, median: s[s.length >> 1] as number, min: s[0] as number };
}

/** Run `task` over `items` with at most `limit` at once. */
export async function pool<T>(items: Iterable<T>, limit: number, task: (item: T) => Promise<void>): Promise<void> {
  const it = items[Symbol.iterator]();
  const worker = async (): Promise<void> => {
    for (let n = it.next(); !n.done; n = it.next()) await task(n.value);
  };
  await Promise.all(Array.from({ length: limit }, worker));
}

// ---------------------------------------------------------------- an exact-rate reader (libc through bun:ffi)

const libc = (() => {
  let lib: ReturnType<typeof loadLibc> | null = null;
  return (): ReturnType<typeof loadLibc> => {
    lib ??= loadLibc();
    return lib;
  };
})();

function loadLibc() {
  const { dlopen, FFIType: T } = require("bun:ffi") as typeof import("bun:ffi");
  return dlopen("libc.so.6", {
    socket: { args: [T.i32, T.i32, T.i32], returns: T.i32 },
    connect: { args: [T.i32, T.ptr, T.u32], returns: T.i32 },
    setsockopt: { args: [T.i32, T.i32, T.i32, T.ptr, T.u32], returns: T.i32 },
    send: { args: [T.i32, T.ptr, T.u64, T.i32], returns: T.i64 },
    recv: { args: [T.i32, T.ptr, T.u64, T.i32], returns: T.i64 },
    close: { args: [T.i32], returns: T.i32 },
    __errno_location: { args: [], returns: T.ptr },
  }).symbols;
}

const AF_INET = 2;
const SOCK_STREAM = 1;
const SOL_SOCKET = 1;
const SO_RCVBUF = 8;
const MSG_DONTWAIT = 0x40;
const EAGAIN = 11;

/**
 * A TCP client that reads exactly as much as asked, when asked: a plain libc socket with a small
 * receive buffer (no autotuning) read with non-blocking recv(). Bun's sockets read up to 512 KiB
 * at a time, which turns "16 KiB every 100 ms" into bursts a second or more apart.
 */
export class ExactReader {
  received = 0;
  /** Set once the server closed (FIN or reset): "eof", "ECONNRESET"… */
  ended: string | null = null;
  private readonly buf = new Uint8Array(256 * KiB);

  private constructor(private fd: number) {}

  static open(port: number, rcvbuf = 64 * KiB): ExactReader {
    const c = libc();
    const fd = c.socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) throw new Error("socket() failed");
    const opt = new Int32Array([rcvbuf]);
    c.setsockopt(fd, SOL_SOCKET, SO_RCVBUF, opt, 4);
    const addr = new Uint8Array(16);
    new DataView(addr.buffer).setUint16(0, AF_INET, true);
    new DataView(addr.buffer).setUint16(2, port, false);
    addr.set([127, 0, 0, 1], 4);
    if (c.connect(fd, addr, 16) !== 0) {
      c.close(fd);
      throw new Error("connect() failed");
    }
    return new ExactReader(fd);
  }

  send(text: string): void {
    const b = Buffer.from(text, "latin1");
    libc().send(this.fd, b, b.length, 0);
  }

  /** Read up to `max` bytes that are already there; returns how many. Notes the end of the stream. */
  read(max: number): number {
    if (this.fd < 0 || this.ended !== null) return 0;
    const c = libc();
    const n = Number(c.recv(this.fd, this.buf, Math.min(max, this.buf.length), MSG_DONTWAIT));
    if (n > 0) {
      this.received += n;
      return n;
    }
    if (n === 0) this.ended = "eof";
    else {
      const { read } = require("bun:ffi") as typeof import("bun:ffi");
      const errno = read.i32(c.__errno_location() as NonNullable<ReturnType<typeof c.__errno_location>>, 0);
      if (errno !== EAGAIN) this.ended = errno === 104 ? "ECONNRESET" : `errno ${errno}`;
    }
    return 0;
  }

  close(): void {
    if (this.fd >= 0) libc().close(this.fd);
    this.fd = -1;
  }
}
