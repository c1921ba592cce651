/** @module test/helpers — real servers on loopback and a raw-socket HTTP client for tests. */

import { afterAll } from "bun:test";
import { closeSync, openSync, writeSync } from "node:fs";
import type { Socket } from "bun";
import {
  type Application,
  type FetchApplication,
  FetchServer,
  type FetchServerOptions,
  type ListenerSpec,
  WSGIServer,
  type WSGIServerOptions,
} from "../src/index.ts";

export interface Running<S extends WSGIServer | FetchServer = WSGIServer> {
  server: S;
  port: number;
  access: string[];
  errors: string[];
}

/** Logs captured into arrays. */
function capture(): { access: string[]; errors: string[]; options: FetchServerOptions } {
  const access: string[] = [];
  const errors: string[] = [];
  const options = { log: { write: (s: string) => access.push(s) }, errorLog: { write: (s: string) => errors.push(s) } };
  return { access, errors, options };
}

/** Start a server on 127.0.0.1 with a free port, capturing both logs. */
export function serve(app: Application, options: WSGIServerOptions = {}, listener: ListenerSpec = "127.0.0.1:0"): Running {
  const logs = capture();
  const server = new WSGIServer(listener, app, { ...logs.options, ...options });
  server.start();
  return { server, port: server.serverPort, access: logs.access, errors: logs.errors };
}

/** serve() for a fetch app. */
export function serveFetch(
  app: FetchApplication,
  options: FetchServerOptions = {},
  listener: ListenerSpec = "127.0.0.1:0",
): Running<FetchServer> {
  const logs = capture();
  const server = new FetchServer(listener, app, { ...logs.options, ...options });
  server.start();
  return { server, port: server.serverPort, access: logs.access, errors: logs.errors };
}

/** A serve() for one test file: every server it starts is closed after the file's tests. */
export function serverPool(): (app: Application, options?: WSGIServerOptions) => Running {
  const running: Running[] = [];
  afterAll(() => {
    for (const r of running) r.server.close();
  });
  return (app, options = {}) => {
    const r = serve(app, options);
    running.push(r);
    return r;
  };
}

export interface Response {
  status: number;
  statusLine: string;
  headers: Array<[string, string]>;
  body: string;
  raw: string;
  header(name: string): string | undefined;
}

const latin1 = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("latin1");

/** A raw TCP client: exact bytes out, the byte stream in, responses parsed off it. */
export class RawClient {
  private buf = "";
  private closedFlag = false;
  private waiters: Array<() => void> = [];
  private socket!: Socket<undefined>;

  static async connect(port: number): Promise<RawClient> {
    const c = new RawClient();
    c.socket = await Bun.connect({
      hostname: "127.0.0.1",
      port,
      allowHalfOpen: true,
      socket: {
        data: (_s, d) => {
          c.buf += latin1(d);
          c.wake();
        },
        end: () => {
          c.closedFlag = true;
          c.wake();
        },
        close: () => {
          c.closedFlag = true;
          c.wake();
        },
        error: () => {
          c.closedFlag = true;
          c.wake();
        },
      },
    });
    c.socket.setNoDelay(true);
    return c;
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  private async until(cond: () => boolean, ms: number, what: string): Promise<void> {
    const deadline = Date.now() + ms;
    while (!cond()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${ms}ms waiting for ${what}; received ${JSON.stringify(this.buf)}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Send bytes; a string is sent as latin-1 so tests control every byte. */
  send(data: string | Uint8Array): void {
    const bytes = typeof data === "string" ? Buffer.from(data, "latin1") : data;
    let off = 0;
    while (off < bytes.length) {
      const n = this.socket.write(bytes.subarray(off));
      if (n <= 0) throw new Error("socket write failed");
      off += n;
    }
  }

  /** Send more than the kernel's socket buffer holds: wait while it is full (bounded by `ms`). */
  async sendAll(data: Uint8Array, ms = 5000): Promise<void> {
    const deadline = Date.now() + ms;
    let off = 0;
    while (off < data.length) {
      const n = this.socket.write(data.subarray(off));
      if (n < 0) throw new Error("socket write failed");
      off += n;
      if (off < data.length) {
        if (Date.now() > deadline) throw new Error(`timed out after ${ms}ms sending; ${off} of ${data.length} bytes sent`);
        await Bun.sleep(1);
      }
    }
  }

  /** Send one byte at a time with a pause between, so the server sees many reads. */
  async trickle(data: string, pauseMs = 1): Promise<void> {
    for (const ch of data) {
      this.send(ch);
      await Bun.sleep(pauseMs);
    }
  }

  /** Stop reading from the socket so the server's writes back up (partial writes, drain). */
  pauseReading(): void {
    this.socket.pause();
  }

  resumeReading(): void {
    this.socket.resume();
  }

  /** Half-close: send FIN, keep reading. */
  endWrite(): void {
    this.socket.shutdown();
  }

  close(): void {
    this.socket.end();
  }

  /** Close at once, both ways (a client that gives up). */
  abort(): void {
    this.socket.terminate();
  }

  get closed(): boolean {
    return this.closedFlag;
  }

  /** Everything received so far, consumed. */
  take(): string {
    const s = this.buf;
    this.buf = "";
    return s;
  }

  /** Wait until the server closes the connection (throws if it does not within ms). */
  async waitClosed(ms = 3000): Promise<void> {
    await this.until(() => this.closedFlag, ms, "the server to close the connection");
  }

  /** Wait for exactly `n` bytes of raw data (for the unframed stream after an upgrade). */
  async readRaw(n: number, ms = 3000): Promise<string> {
    await this.until(() => this.buf.length >= n, ms, `${n} raw bytes`);
    const s = this.buf.slice(0, n);
    this.buf = this.buf.slice(n);
    return s;
  }

  /** Parse the next response off the stream; `head` for a response to HEAD (no body). */
  async response(opts: { head?: boolean; ms?: number } = {}): Promise<Response> {
    const ms = opts.ms ?? 3000;
    await this.until(() => this.buf.includes("\r\n\r\n") || this.closedFlag, ms, "a response head");
    const end = this.buf.indexOf("\r\n\r\n");
    if (end < 0) throw new Error(`connection closed without a response; received ${JSON.stringify(this.buf)}`);
    const headText = this.buf.slice(0, end);
    const [statusLine = "", ...lines] = headText.split("\r\n");
    const headers = lines.map((l) => {
      const i = l.indexOf(":");
      return [l.slice(0, i), l.slice(i + 1).trim()] as [string, string];
    });
    const get = (name: string): string | undefined => headers.find(([n]) => n.toLowerCase() === name.toLowerCase())?.[1];
    const status = Number(statusLine.split(" ")[1]);
    let pos = end + 4;
    let body = "";
    const noBody = opts.head === true || status < 200 || status === 204 || status === 304;
    if (noBody) {
      // nothing
    } else if (get("transfer-encoding")?.toLowerCase() === "chunked") {
      for (;;) {
        await this.until(() => this.buf.indexOf("\r\n", pos) >= 0 || this.closedFlag, ms, "a chunk size line");
        const lineEnd = this.buf.indexOf("\r\n", pos);
        if (lineEnd < 0) throw new Error(`connection closed mid-body; received ${JSON.stringify(this.buf)}`);
        const size = Number.parseInt(this.buf.slice(pos, lineEnd), 16);
        if (Number.isNaN(size)) throw new Error(`bad chunk size in ${JSON.stringify(this.buf.slice(pos))}`);
        if (size === 0) {
          await this.until(
            () => this.buf.indexOf("\r\n\r\n", lineEnd) >= 0 || this.buf.slice(lineEnd, lineEnd + 4) === "\r\n\r\n",
            ms,
            "the last chunk",
          );
          pos = this.buf.indexOf("\r\n\r\n", lineEnd) + 4;
          break;
        }
        const dataStart = lineEnd + 2;
        await this.until(() => this.buf.length >= dataStart + size + 2, ms, "chunk data");
        body += this.buf.slice(dataStart, dataStart + size);
        if (this.buf.slice(dataStart + size, dataStart + size + 2) !== "\r\n") throw new Error("chunk data not followed by CRLF");
        pos = dataStart + size + 2;
      }
    } else if (get("content-length") !== undefined) {
      const n = Number(get("content-length"));
      await this.until(() => this.buf.length >= pos + n || this.closedFlag, ms, `a ${n}-byte body`);
      body = this.buf.slice(pos, pos + n);
      pos += body.length;
    } else {
      await this.until(() => this.closedFlag, ms, "a close-delimited body");
      body = this.buf.slice(pos);
      pos = this.buf.length;
    }
    const raw = this.buf.slice(0, pos);
    this.buf = this.buf.slice(pos);
    return { status, statusLine, headers, body, raw, header: get };
  }
}

/** Open a connection, send `data`, read one response, and report whether the server then closed. */
export async function exchange(
  port: number,
  data: string,
  opts: { head?: boolean; closeWaitMs?: number } = {},
): Promise<Response & { closed: boolean }> {
  const c = await RawClient.connect(port);
  c.send(data);
  const r = await c.response(opts);
  let closed = true;
  try {
    await c.waitClosed(opts.closeWaitMs ?? 500);
  } catch {
    closed = false;
  }
  c.close();
  return { ...r, closed };
}

export const hello: Application = (_env, startResponse) => {
  startResponse("200 OK", [["Content-Type", "text/plain"]]);
  return ["Hello, World!"];
};

/**
 * Make a test PKI with openssl in `dir`: ca.pem/ca.key (a CA), srv.pem/srv.key (for localhost
 * and 127.0.0.1, signed by the CA), client.pem/client.key (CN=alice, O=Example Org) and
 * stranger.pem/stranger.key (self-signed: no CA vouches for it).
 */
export async function makeCertificates(dir: string): Promise<void> {
  const run = (args: string[]): void => {
    const p = Bun.spawnSync(["openssl", ...args], { cwd: dir, stderr: "pipe" });
    if (p.exitCode !== 0) throw new Error(`openssl ${args.join(" ")} failed: ${p.stderr.toString()}`);
  };
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  run(["req", "-x509", ...ec, "-days", "1", "-subj", "/CN=bunwsgi test CA", "-keyout", "ca.key", "-out", "ca.pem"]);
  run(["req", "-x509", ...ec, "-days", "1", "-subj", "/CN=mallory", "-keyout", "stranger.key", "-out", "stranger.pem"]);
  await Bun.write(`${dir}/srv.cnf`, "subjectAltName=DNS:localhost,IP:127.0.0.1\n");
  await Bun.write(`${dir}/client.cnf`, "extendedKeyUsage=clientAuth\n");
  for (const [name, subject] of [
    ["srv", "/CN=localhost"],
    ["client", "/O=Example Org/CN=alice"],
  ] as const) {
    run(["req", ...ec, "-subj", subject, "-keyout", `${name}.key`, "-out", `${name}.csr`]);
    run([
      "x509",
      "-req",
      "-in",
      `${name}.csr`,
      "-CA",
      "ca.pem",
      "-CAkey",
      "ca.key",
      "-CAcreateserial",
      "-days",
      "1",
      "-extfile",
      `${name}.cnf`,
      "-out",
      `${name}.pem`,
    ]);
  }
}

/** Wait until `cond` holds, polling every 10 ms; throws after `ms`. */
export async function waitFor(cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("timed out");
    await Bun.sleep(10);
  }
}

/** Write `size` deterministic bytes (xorshift32 from `seed`, different in every block) a MiB at a time; their SHA-256. */
export function writeDeterministicFile(file: string, size: number, seed: number): string {
  const MiB = 1024 * 1024;
  const hash = new Bun.CryptoHasher("sha256");
  const block = new Uint8Array(MiB);
  const words = new Uint32Array(block.buffer);
  let x = seed ^ size;
  const fd = openSync(file, "w");
  try {
    for (let at = 0; at < size; at += MiB) {
      for (let i = 0; i < words.length; i++) {
        x ^= x << 13;
        x ^= x >>> 17;
        x ^= x << 5;
        words[i] = x >>> 0;
      }
      const part = block.subarray(0, Math.min(MiB, size - at));
      writeSync(fd, part);
      hash.update(part);
    }
  } finally {
    closeSync(fd);
  }
  return hash.digest("hex");
}

/** A Python client with a small receive buffer (32 KiB) that GETs `path` and reads `chunk` bytes every `every` seconds for `seconds`. */
export async function pacedReader(
  port: number,
  path: string,
  chunk: number,
  every: number,
  seconds: number,
  receiveBuffer = 32768,
): Promise<{ got: number; closed: boolean }> {
  const script = `
import socket, time, json
s = socket.socket()
${receiveBuffer > 0 ? `s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, ${receiveBuffer})` : ""}
s.connect(("127.0.0.1", ${port}))
s.sendall(b"GET ${path} HTTP/1.1\\r\\nHost: a\\r\\n\\r\\n")
got, closed, end = 0, False, time.time() + ${seconds}
while time.time() < end:
    d = s.recv(${chunk})
    if not d:
        closed = True
        break
    got += len(d)
    time.sleep(${every})
print(json.dumps({"got": got, "closed": closed}))
`;
  const p = Bun.spawn(["python3", "-c", script], { stdout: "pipe", stderr: "inherit" });
  const out = await new Response(p.stdout).text();
  await p.exited;
  return JSON.parse(out) as { got: number; closed: boolean };
}
