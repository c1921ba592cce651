/** @module handler — WSGIHandler: environ, startResponse, response framing, error handling and the access log for one connection. */

import type { Connection, ServerSocket } from "./connection.ts";
import { MAX_DISCARD } from "./connection.ts";
import { ClientDisconnected, ConnectionClosedError, ContractError, cannedResponse, HTTPError, REASONS } from "./errors.ts";
import { latin1, SHORT_RUN, sameBytes, sameLatin1 } from "./http/bytes.ts";
import { clientCloses, HTTP_1X, headerName, isUpgradeRequest, unfold, unquoteLatin1 } from "./http/request.ts";
import {
  CHUNKED,
  CONNECTION_CLOSE,
  CONNECTION_KEEP_ALIVE,
  CONNECTION_NONE,
  checkHead,
  findHead,
  NO_LENGTH,
  type ResponseHead,
} from "./http/response.ts";
import { Input } from "./input.ts";
import { clock, NullLog, timeNow } from "./log.ts";
import { FIELD_SLOTS, FieldKind, type RequestParser } from "./parser.ts";
import type { WSGIServer } from "./server.ts";
import type { Body, Chunk, Environ, ResponseHeaders, Write } from "./types.ts";

const RESOLVED: Promise<void> = Promise.resolve();
const NO_INPUT = Input.empty();

/** environ keys of header names, cached: "x-foo" → "HTTP_X_FOO"; null for names with "_". */
const envKeys = new Map<string, string | null>();
const MAX_ENV_KEYS = 2048;

function envKey(name: string): string | null {
  let key = envKeys.get(name);
  if (key === undefined) {
    // Dropped like gevent does: "X_Forwarded" would otherwise collide with "X-Forwarded".
    key = name.includes("_") ? null : `HTTP_${name.toUpperCase().replaceAll("-", "_")}`;
    if (envKeys.size < MAX_ENV_KEYS) envKeys.set(name, key);
  }
  return key;
}

/** Largest header section kept per connection to be recognised when repeated. */
const MAX_CACHED_FIELDS = 4096;

/** Bytes of a chunk on the wire (a string goes out as UTF-8). */
function chunkLength(c: Chunk): number {
  if (typeof c !== "string") return c.length;
  if (c.length <= SHORT_RUN) {
    let i = 0;
    while (i < c.length && c.charCodeAt(i) < 0x80) i++;
    if (i === c.length) return i;
  }
  return Buffer.byteLength(c, "utf8");
}

function checkChunk(c: unknown): asserts c is Chunk {
  if (typeof c !== "string" && !(c instanceof Uint8Array)) {
    throw new ContractError(`body chunks must be string or Uint8Array, got ${c === null ? "null" : typeof c}`);
  }
}

interface Closable {
  close?: () => unknown;
}

function closeResult(result: Closable | null): void {
  if (result !== null && typeof result.close === "function") result.close();
}

const errorText = (e: unknown): string => (e instanceof Error ? (e.stack ?? String(e)) : String(e));

/**
 * Handles one connection: reads each request the connection parsed, runs the application, and
 * frames its response. Subclass it and pass `handlerClass` to change any hook; a hook that
 * returns a Promise makes the connection wait for it.
 */
export class WSGIHandler {
  protocolVersion = "HTTP/1.1";
  readonly socket: ServerSocket;
  /** [host, port] for TCP; the socket path for a unix socket. */
  readonly clientAddress: [string, number] | string;
  readonly server: WSGIServer;
  readonly connection: Connection;

  // Per request (reset by handleOneRequest).
  requestline: string | null = null;
  command = "";
  path = "";
  requestVersion = "";
  /** Header fields as received. */
  headers: Array<[string, string]> = [];
  /** The current request's environ; null once its access-log line is written. */
  environ: Environ | null = null;
  status: string | null = null;
  code: number | null = null;
  responseHeaders: ResponseHeaders | null = null;
  /** Bytes sent for this response, status line and headers included; 0 when nothing was sent. */
  responseLength = 0;
  timeStart = 0;
  timeFinish = 0;
  /** Close the connection after this response. */
  closeConnection = false;
  headersSent = false;
  /** What the application returned; null once the request is logged (gevent drops it too). */
  result: Body | null = null;

  private headBuf: Buffer | null = null;
  /** The previous request's header section (bytes) and its decoded fields. */
  /** The last request line decoded, and the line whose target `linePath` is. */
  private lastLine = "";
  private pathLine = "";
  private pathStart = 0;
  private linePath = "";
  private lastFields: Uint8Array | null = null;
  private lastHeaders: Array<[string, string]> | null = null;
  private tlsEnv: Record<string, string> | null = null;
  /** REMOTE_ADDR and REMOTE_PORT of this connection. */
  private readonly remoteAddr: string;
  private readonly remotePort: string;
  /** This connection's last environ but for the request line's keys, and what it was made from. */
  private envTemplate: Environ | null = null;
  private templateBase: Readonly<Record<string, unknown>> | null = null;
  private readonly templateNames: string[] = [];
  private readonly templateValues: string[] = [];
  private headStart = 0;
  private upgradeRequested = false;
  private startCalled = false;
  /** Total length of an Array result, or -1. */
  private sizedLength = -1;
  private bodySent = 0;
  private chunked = false;
  private noBody = false;
  private isHead = false;
  /** Stop iterating the body: the declared length was reached and exceeded. */
  private overflowed = false;
  /** What startResponse() found for this response's status and headers. */
  private head: ResponseHead | null = null;
  /** The result being sent, until releaseResult() has ended it; `returning` settles when its return() has. */
  private iterator: Iterator<Chunk> | AsyncIterator<Chunk> | null = null;
  private closable: Closable | null = null;
  private released = false;
  private returning: Promise<void> | undefined = undefined;
  /** This request's access-log line is written. */
  private logged = false;

  /** Content-Length the application declared, or -1. */
  private get declaredLength(): number {
    return this.head === null ? -1 : this.head.declared;
  }

  /** Why the server refused or cut this request (a parser, body or disconnect code name), or null. */
  get reason(): string | null {
    return this.connection.failReason || null;
  }

  /** Body bytes sent for this response (framing excluded): Apache's %b. */
  get bodyLength(): number {
    return this.bodySent;
  }

  private readonly startResponseBound: (status: string, headers: ResponseHeaders, excInfo?: unknown) => Write;
  private readonly writeBound: Write;

  constructor(socket: ServerSocket, address: [string, number] | string, server: WSGIServer) {
    this.socket = socket;
    this.clientAddress = address;
    // A unix socket's peer has no address (the string is the socket's path, for logs).
    this.remoteAddr = typeof address === "string" ? "" : address[0];
    this.remotePort = typeof address === "string" ? "" : String(address[1]);
    this.server = server;
    this.connection = socket.data;
    this.startResponseBound = (status, headers, excInfo) => this.startResponse(status, headers, excInfo);
    this.writeBound = (data) => this.write(data);
  }

  /** Called once when the connection opens; requests then arrive through handleOneRequest(). */
  handle(): void {}

  /** The request line of the current request, decoded as latin-1. */
  readRequestline(): string {
    const p = this.connection.parser;
    const buf = this.headBuf as Buffer;
    const s = this.headStart + p.lineStart;
    const e = this.headStart + p.lineEnd;
    // A keep-alive client often repeats its request line (a poll, a health check, a benchmark):
    // then the bytes are compared with the last line's characters instead of decoded again.
    const last = this.lastLine;
    if (last.length === e - s && e - s <= SHORT_RUN && sameLatin1(last, buf, s)) return last;
    const line = latin1(buf, s, e);
    this.lastLine = line;
    return line;
  }

  /**
   * Take in the parsed request: method, target, version and header fields. The parser has
   * already enforced RFC 9112; override to refuse more (throw an HTTPError).
   */
  readRequest(line: string): void {
    const p = this.connection.parser;
    const buf = this.headBuf as Buffer;
    const base = this.headStart;
    this.command = p.method;
    // The target is part of the request line already decoded: a substring, not a second decode
    // (unless an overridden readRequestline() handed over some other line), and the last one
    // again when the line repeats.
    if (line.length !== p.lineEnd - p.lineStart) {
      this.path = latin1(buf, base + p.targetStart, base + p.targetEnd);
    } else {
      const ts = p.targetStart - p.lineStart;
      if (line !== this.pathLine || ts !== this.pathStart || p.targetEnd - p.targetStart !== this.linePath.length) {
        this.pathLine = line;
        this.pathStart = ts;
        this.linePath = line.slice(ts, p.targetEnd - p.lineStart);
      }
      this.path = this.linePath;
    }
    // The parser admits major version 1 only (others get 505).
    this.requestVersion = HTTP_1X[p.versionMinor] as string;
    const f = p.fields;
    const count = p.fieldCount;
    // A keep-alive client (a browser, a proxy's health check) usually repeats its header
    // section byte for byte: then reuse the strings decoded last time instead of decoding.
    const hs = count > 0 ? base + (f[0] as number) : 0;
    const he = count > 0 ? base + (f[(count - 1) * FIELD_SLOTS + 3] as number) : 0;
    const last = this.lastFields;
    if (last !== null && last.length === he - hs && sameBytes(last, buf, hs)) {
      // Fresh pairs around the same strings: the app may change what it is given.
      const cached = this.lastHeaders as Array<[string, string]>;
      const headers: Array<[string, string]> = new Array(cached.length);
      for (let i = 0; i < cached.length; i++) {
        const pair = cached[i] as [string, string];
        headers[i] = [pair[0], pair[1]];
      }
      this.headers = headers;
      this.upgradeRequested = isUpgradeRequest(p);
      return;
    }
    const headers: Array<[string, string]> = [];
    for (let n = 0; n < count; n++) {
      const k = n * FIELD_SLOTS;
      const vs = base + (f[k + 2] as number);
      const ve = base + (f[k + 3] as number);
      headers.push([
        headerName(buf, base + (f[k] as number), base + (f[k + 1] as number)),
        f[k + 5] === 1 ? unfold(buf, vs, ve) : latin1(buf, vs, ve),
      ]);
    }
    // A request that closes its connection has no successor to share these with.
    if (count > 0 && he - hs <= MAX_CACHED_FIELDS && !clientCloses(p)) {
      this.lastFields = new Uint8Array(buf.subarray(hs, he));
      this.lastHeaders = headers.map((pair) => [pair[0], pair[1]]);
    }
    this.headers = headers;
    this.upgradeRequested = isUpgradeRequest(p);
  }

  /**
   * TLS facts of this connection in mod_ssl's names, computed once per connection:
   * SSL_PROTOCOL, SSL_CIPHER, SSL_CLIENT_VERIFY ("SUCCESS", "NONE" or "FAILED:reason") and,
   * only for a client certificate that verified against the configured CA, SSL_CLIENT_S_DN /
   * SSL_CLIENT_I_DN (RFC 4514 strings), SSL_CLIENT_M_SERIAL and SSL_CLIENT_V_END.
   */
  tlsEnviron(): Readonly<Record<string, string>> {
    if (this.tlsEnv !== null) return this.tlsEnv;
    const socket = this.socket;
    const env: Record<string, string> = {
      SSL_PROTOCOL: socket.getTLSVersion() ?? "",
      SSL_CIPHER: socket.getCipher()?.name ?? "",
    };
    const cert = socket.getPeerCertificate();
    if (cert === null || cert === undefined || cert.subject === undefined) env.SSL_CLIENT_VERIFY = "NONE";
    else if (!socket.authorized) {
      env.SSL_CLIENT_VERIFY = `FAILED:${socket.getAuthorizationError()?.message ?? "unverified"}`;
    } else {
      env.SSL_CLIENT_VERIFY = "SUCCESS";
      env.SSL_CLIENT_S_DN = distinguishedName(cert.subject);
      env.SSL_CLIENT_I_DN = distinguishedName(cert.issuer);
      env.SSL_CLIENT_M_SERIAL = cert.serialNumber;
      env.SSL_CLIENT_V_END = cert.valid_to;
    }
    this.tlsEnv = env;
    return env;
  }

  /** Where the connection's parser found the current request head; valid until handleOneRequest() returns. */
  setHead(buf: Buffer, start: number): void {
    this.headBuf = buf;
    this.headStart = start;
  }

  /** Handle the request whose head the connection just parsed. */
  handleOneRequest(): void | Promise<void> {
    this.resetRequest();
    this.timeStart = timeNow();
    const line = this.readRequestline();
    this.requestline = line;
    try {
      this.readRequest(line);
    } catch (e) {
      if (!(e instanceof HTTPError)) throw e;
      this.sendError(e.status);
      this.finishRequest();
      return;
    }
    this.environ = this.getEnviron();
    this.headBuf = null;
    return this.handleOneResponse();
  }

  private resetRequest(): void {
    this.requestline = null;
    this.environ = null;
    this.status = null;
    this.code = null;
    this.responseHeaders = null;
    this.head = null;
    this.responseLength = 0;
    this.timeFinish = 0;
    this.closeConnection = false;
    this.headersSent = false;
    this.result = null;
    this.startCalled = false;
    this.sizedLength = -1;
    this.bodySent = 0;
    this.chunked = false;
    this.noBody = false;
    this.isHead = false;
    this.overflowed = false;
    this.iterator = this.closable = null;
    this.released = false;
    this.returning = undefined;
    this.logged = false;
  }

  /** Build the PEP 3333 environ of the current request. */
  getEnviron(): Environ {
    const server = this.server;
    const headers = this.headers;
    let env: Environ;
    if (server.environIsCopy && !clientCloses(this.connection.parser)) {
      // A keep-alive client usually repeats its header fields: then everything but the
      // request line's keys is what it was, and one copy of the last result does.
      if (this.envTemplate === null || this.templateBase !== server.environ || !this.sameFields(headers)) {
        this.envTemplate = this.connectionEnviron(server.getEnviron() as Environ, headers);
        this.templateBase = server.environ;
        this.rememberFields(headers);
      }
      env = { ...this.envTemplate };
    } else {
      env = this.connectionEnviron(server.getEnviron() as Environ, headers);
    }
    let target = this.path;
    env.REQUEST_METHOD = this.command;
    env.REQUEST_URI = target;
    // absolute-form: the path is what the app routes on; the authority replaces Host (RFC 9112 §3.2.2).
    let authority: string | null = null;
    let schemePort = "";
    if (target.charCodeAt(0) !== 47 && target !== "*" && this.command !== "CONNECT") {
      const at = target.indexOf("://") + 3;
      // The parser admits http and https only: "https://" is the longer.
      schemePort = at === 8 ? "443" : "80";
      let slash = target.indexOf("/", at);
      const q = target.indexOf("?", at);
      if (q >= 0 && (slash < 0 || q < slash)) slash = q;
      authority = slash < 0 ? target.slice(at) : target.slice(at, slash);
      target = slash < 0 ? "/" : target.charCodeAt(slash) === 63 ? `/${target.slice(slash)}` : target.slice(slash);
    }
    const qm = target.indexOf("?");
    let path: string;
    if (qm >= 0) {
      path = unquoteLatin1(target.slice(0, qm));
      env.QUERY_STRING = target.slice(qm + 1);
    } else {
      path = unquoteLatin1(target);
      env.QUERY_STRING = "";
    }
    const root = server.rootPath;
    // Mounted under a prefix: SCRIPT_NAME + PATH_INFO is still the whole path (PEP 3333), and a
    // path outside the prefix is passed whole, SCRIPT_NAME "", for the app to answer.
    if (root !== "" && path.startsWith(root) && (path.length === root.length || path.charCodeAt(root.length) === 47)) {
      env.SCRIPT_NAME = root;
      path = path.slice(root.length);
    }
    env.PATH_INFO = path;
    env.SERVER_PROTOCOL = this.requestVersion;
    if (authority !== null) {
      // RFC 9112 §3.2.2: the target's authority, not Host, names the host this request is for.
      env.HTTP_HOST = authority;
      hostToServerName(env, authority, schemePort);
    } else if (server.nameFromHost) {
      const host = env.HTTP_HOST;
      if (typeof host === "string" && host !== "") hostToServerName(env, host, server.tls ? "443" : "80");
    }
    env["wsgi.input"] = this.connection.input;
    env["bunwsgi.headers"] = headers;
    if (this.upgradeRequested) env["bunwsgi.raw_input"] = this.connection.rawInput;
    return env;
  }

  /**
   * The environ keys that depend on the server, the connection and the header fields, but not
   * on the request line: added to `env`, a copy of server.environ. The request line's keys
   * come first, empty, so that every copy of the result already has its final shape.
   */
  private connectionEnviron(env: Environ, headers: ReadonlyArray<readonly [string, string]>): Environ {
    const p: RequestParser = this.connection.parser;
    env.REQUEST_METHOD = "";
    env.SCRIPT_NAME = "";
    env.REQUEST_URI = "";
    env.PATH_INFO = "";
    env.QUERY_STRING = "";
    env.SERVER_PROTOCOL = "";
    env.REMOTE_ADDR = this.remoteAddr;
    env.REMOTE_PORT = this.remotePort;
    if (this.server.tls !== undefined) Object.assign(env, this.tlsEnviron());
    const f = p.fields;
    for (let n = 0; n < headers.length; n++) {
      // Indexed, not destructured: destructuring goes through the iterator protocol.
      const pair = headers[n] as readonly [string, string];
      const name = pair[0];
      const value = pair[1];
      const kind = f[n * FIELD_SLOTS + 4];
      if (kind === FieldKind.CONTENT_TYPE) {
        env.CONTENT_TYPE = env.CONTENT_TYPE === undefined ? value : `${env.CONTENT_TYPE}, ${value}`;
        continue;
      }
      if (kind === FieldKind.CONTENT_LENGTH) {
        env.CONTENT_LENGTH = String(p.contentLength);
        continue;
      }
      const key = envKey(name);
      if (key === null) continue;
      const prev = env[key];
      env[key] = prev === undefined ? value : `${prev}${kind === FieldKind.COOKIE ? "; " : ", "}${value}`;
    }
    // Placeholders that getEnviron() replaces: a template must not keep a request's body alive.
    env["wsgi.input"] = NO_INPUT;
    env["wsgi.input_terminated"] = true;
    env["bunwsgi.headers"] = [];
    return env;
  }

  /** Whether `headers` holds the same strings as when the environ template was made. */
  private sameFields(headers: ReadonlyArray<readonly [string, string]>): boolean {
    const names = this.templateNames;
    const values = this.templateValues;
    if (headers.length !== names.length) return false;
    for (let n = 0; n < headers.length; n++) {
      const pair = headers[n] as readonly [string, string];
      if (pair[0] !== names[n] || pair[1] !== values[n]) return false;
    }
    return true;
  }

  /** Keep private copies of the template's fields: the app may change the arrays it is given. */
  private rememberFields(headers: ReadonlyArray<readonly [string, string]>): void {
    const names = this.templateNames;
    const values = this.templateValues;
    names.length = values.length = headers.length;
    for (let n = 0; n < headers.length; n++) {
      const pair = headers[n] as readonly [string, string];
      names[n] = pair[0];
      values[n] = pair[1];
    }
  }

  /** Chunked trailers arrived: exposed in environ as bunwsgi.trailers. */
  receivedTrailers(trailers: Array<[string, string]>): void {
    if (this.environ !== null) this.environ["bunwsgi.trailers"] = trailers;
  }

  /** Run the application and send its response; errors become a 500 or a closed connection. */
  handleOneResponse(): void | Promise<void> {
    let r: void | Promise<void>;
    try {
      r = this.runApplication();
    } catch (e) {
      this.handleError(e);
      this.finishRequest();
      return;
    }
    if (r === undefined) {
      this.finishRequest();
      return;
    }
    return r.then(
      () => this.finishRequest(),
      (e: unknown) => {
        this.handleError(e);
        this.finishRequest();
      },
    );
  }

  /**
   * A stop gave up waiting for this request to end: its connection was cut and the app has not
   * settled since. Log it now, with what was sent, so no request goes unlogged.
   */
  abandonRequest(waited: number): void {
    if (this.logged) return;
    this.logError(
      `${this.requestline ?? "request"} from ${this.clientLabel()}: abandoned at stop; the application had not finished ${waited}s after its connection was cut`,
    );
    this.finishRequest();
  }

  /** Log the request, once, whatever path ends it. */
  private finishRequest(): void {
    if (this.logged) return;
    this.logged = true;
    this.timeFinish = timeNow();
    this.logRequest();
    // As gevent drops its result: an idle keep-alive connection must not keep its last
    // request's body, environ or wsgi.input alive until the next request (or for good).
    this.result = null;
    this.environ = null;
  }

  /** Call the application and hand its result to processResult(). */
  runApplication(): void | Promise<void> {
    const app = this.server.application;
    const result = app(this.environ as Environ, this.startResponseBound);
    if (result instanceof Promise) {
      return result.then((body: Body) => {
        this.result = body;
        return this.processResult();
      });
    }
    this.result = result;
    return this.processResult();
  }

  /** Send the result's chunks: an Array is sized; other iterables stream. */
  processResult(): void | Promise<void> {
    const result = this.result as unknown;
    if (typeof result === "string" || ArrayBuffer.isView(result) || result === null || typeof result !== "object") {
      throw new ContractError(
        "the application must return an iterable of chunks (wrap a single string or Uint8Array in an array)",
      );
    }
    if (Array.isArray(result)) return this.sendSized(result as unknown[]);
    if (typeof (result as AsyncIterable<Chunk>)[Symbol.asyncIterator] === "function") {
      return this.pump((result as AsyncIterable<Chunk>)[Symbol.asyncIterator](), result as Closable);
    }
    if (typeof (result as Iterable<Chunk>)[Symbol.iterator] === "function") {
      return this.sendIterator((result as Iterable<Chunk>)[Symbol.iterator](), result as Closable);
    }
    throw new ContractError("the application must return an Array, an Iterable or an AsyncIterable of chunks");
  }

  private sendSized(chunks: unknown[]): void {
    this.track(null, chunks as Closable);
    try {
      if (!this.startCalled) throw new ContractError("the application returned without calling startResponse()");
      let total = 0;
      for (const c of chunks) {
        checkChunk(c);
        total += chunkLength(c);
      }
      this.sizedLength = total;
      for (const c of chunks) {
        this.write(c as Chunk);
        if (this.overflowed || this.connection.closed) break;
      }
      this.finishBody();
    } finally {
      this.releaseResult();
    }
  }

  /** Iterate a synchronous iterator without promises; switch to pump() when output backs up. */
  private sendIterator(it: Iterator<Chunk>, result: Closable): void | Promise<void> {
    this.track(it, result);
    let done = false;
    let handedOff = false;
    try {
      for (;;) {
        const step = it.next();
        if (step.done === true) {
          done = true;
          break;
        }
        checkChunk(step.value);
        this.write(step.value);
        if (this.endsEarly()) break;
        if (this.connection.backpressured) {
          handedOff = true;
          return this.connection.waitDrain().then(() => this.pump(it, result));
        }
      }
      if (done && !this.startCalled) throw new ContractError("the application returned without calling startResponse()");
      this.finishBody();
    } finally {
      if (!handedOff) {
        if (done) this.iterator = null;
        this.releaseResult();
      }
    }
  }

  /** The asynchronous path: awaits every chunk and every write (backpressure). */
  private async pump(it: Iterator<Chunk> | AsyncIterator<Chunk>, result: Closable): Promise<void> {
    this.track(it, result);
    let done = false;
    try {
      for (;;) {
        const step = await it.next();
        if (step.done === true) {
          done = true;
          break;
        }
        checkChunk(step.value);
        await this.write(step.value);
        if (this.endsEarly()) break;
      }
      if (done && !this.startCalled) throw new ContractError("the application returned without calling startResponse()");
      this.finishBody();
    } finally {
      if (done) this.iterator = null;
      await this.releaseResult();
    }
  }

  /**
   * Whether the rest of an unsized result can be abandoned: its Content-Length is reached, the
   * connection is gone, or the head of a HEAD response is out (RFC 9110 §9.3.2: nothing more
   * of it would be sent, and an endless stream would otherwise run on for nobody).
   */
  private endsEarly(): boolean {
    return this.overflowed || this.connection.closed || (this.isHead && this.headersSent);
  }

  /** The result being sent: what releaseResult() ends. */
  private track(it: Iterator<Chunk> | AsyncIterator<Chunk> | null, result: Closable): void {
    this.iterator = it;
    this.closable = result;
  }

  /**
   * End the result exactly once, on whichever path comes first (its end, an error, the client
   * gone, a stop): return() an unfinished iterator, so a generator's `finally` runs, then call
   * its close() (PEP 3333). For an async generator that is still awaiting, return() takes effect
   * at its next `yield`; the promise settles then.
   */
  private releaseResult(): Promise<void> | undefined {
    if (this.released) return this.returning;
    this.released = true;
    const it = this.iterator;
    const result = this.closable;
    this.iterator = this.closable = null;
    const step: unknown = it !== null && typeof it.return === "function" ? it.return() : undefined;
    if (step instanceof Promise) {
      this.returning = step.then(() => closeResult(result));
      return this.returning;
    }
    closeResult(result);
    return undefined;
  }

  /**
   * The connection closed while this request's response was in progress (client gone, write
   * deadline, stop): end its result now instead of when it next produces a chunk.
   */
  connectionLost(): void {
    if (this.released || (this.iterator === null && this.closable === null)) return;
    try {
      // Whoever is sending the result awaits the same promise and reports its error.
      this.releaseResult()?.catch(() => {});
    } catch (e) {
      this.logError(`Error closing the result of ${this.requestline ?? "request"}\n${errorText(e)}`);
    }
  }

  /**
   * PEP 3333 start_response. Every argument is checked before anything is kept, so a rejected
   * status or header never reaches the wire.
   */
  startResponse(status: string, headers: ResponseHeaders, excInfo?: unknown): Write {
    if (excInfo !== undefined && excInfo !== null) {
      if (this.headersSent) throw excInfo;
    } else if (this.startCalled) {
      throw new ContractError("startResponse() called a second time without excInfo");
    }
    if (typeof status !== "string") throw new ContractError("status must be a string like '200 OK'");
    const head = findHead(status, headers) ?? checkHead(status, headers);
    const code = head.code;
    if ((code === 204 || code === 304) && head.declared > 0) {
      throw new ContractError(`a ${code} response must not have a non-zero Content-Length`);
    }
    if (code === 101 && !this.upgradeRequested) {
      throw new ContractError("101 Switching Protocols answers only an Upgrade request (RFC 9110 §15.2.2)");
    }
    this.status = head.fullStatus;
    this.code = code;
    this.responseHeaders = headers;
    this.head = head;
    this.startCalled = true;
    if (code === 101) {
      // 101 has no body to wait for, and the new protocol's bytes start right after it: the
      // head goes out now, so the app can read bunwsgi.raw_input before it writes anything.
      this.sendHeaders();
      this.connection.commit();
      this.connection.upgradeAccepted();
    }
    return this.writeBound;
  }

  /** Send body data (the callable startResponse returns). Settles when the socket has taken it. */
  write(data: Chunk): Promise<void> {
    if (!this.startCalled) throw new ContractError("write() called before startResponse()");
    checkChunk(data);
    const conn = this.connection;
    if (conn.closed) return Promise.reject(new ConnectionClosedError());
    const len = chunkLength(data);
    if (len === 0) return RESOLVED;
    const code = this.code as number;
    if (code < 200 || code === 204 || code === 304) {
      if (code !== 101) throw new ContractError(`a ${code} response cannot have a body`);
    }
    if (!this.headersSent) this.sendHeaders();
    if (!this.isHead) this.sendBody(data, len);
    conn.commit();
    return conn.backpressured ? conn.waitDrain() : RESOLVED;
  }

  private sendBody(data: Chunk, len: number): void {
    const conn = this.connection;
    if (this.declaredLength >= 0) {
      const room = this.declaredLength - this.bodySent;
      if (len > room) {
        this.overflowed = true;
        this.closeConnection = true;
        this.logError(
          `${this.requestline}: application sent more than its Content-Length of ${this.declaredLength}; response cut, connection closed`,
        );
        if (room <= 0) return;
        const bytes = typeof data === "string" ? Buffer.from(data, "utf8") : data;
        data = bytes.subarray(0, room);
        len = room;
      }
    }
    if (this.chunked) {
      const size = `${len.toString(16)}\r\n`;
      conn.writeLatin1(size);
      this.responseLength += size.length + 2;
    }
    if (typeof data === "string") conn.writeUtf8(data);
    else conn.writeBytes(data);
    if (this.chunked) conn.writeLatin1("\r\n");
    this.bodySent += len;
    this.responseLength += len;
  }

  private sendHeaders(): void {
    this.finalizeHeaders();
    this.headersSent = true;
  }

  /**
   * Decide framing and persistence and write the status line and headers (RFC 9112 §6.3, §9.3):
   * Content-Length when known, chunked for unsized HTTP/1.1 bodies, close-delimited otherwise.
   */
  finalizeHeaders(): void {
    const status = this.status as string;
    const headers = this.responseHeaders as ResponseHeaders;
    let head = this.head;
    // A hook (or the app, on its own list) may have changed the status or the headers since
    // startResponse(): what is sent is checked as startResponse() checks (ContractError: a 500).
    if (head === null || head.fullStatus !== status || !head.matches(headers)) {
      head = findHead(status, headers) ?? checkHead(status, headers);
      this.head = head;
    }
    const conn = this.connection;
    const p = conn.parser;
    const code = this.code as number;
    const http10 = p.versionMinor === 0;
    this.isHead = this.command === "HEAD";
    this.noBody = code < 200 || code === 204 || code === 304;
    let close =
      this.closeConnection ||
      head.hasClose ||
      clientCloses(p) ||
      this.server.stopping ||
      this.server.crowded ||
      conn.peerEnded ||
      conn.bodyFailed;
    // A body we would have to read and drop, or one the client was never told to send.
    if (conn.bodyActive && (conn.expectContinue ? !conn.continueSent : p.contentLength - conn.body.received > MAX_DISCARD)) {
      close = true;
    }
    let length = NO_LENGTH;
    if (code === 101 || this.noBody) {
      if (code >= 100 && code < 200 && code !== 101) close = true;
    } else if (head.declared >= 0) {
      // The application's own Content-Length stands.
    } else if (this.sizedLength >= 0) {
      length = this.sizedLength;
    } else if (this.isHead) {
      // No body follows a HEAD response; its length is unknown without running a GET.
    } else if (!http10) {
      this.chunked = true;
      length = CHUNKED;
    } else {
      close = true;
    }
    let connection = CONNECTION_NONE;
    if (close && code !== 101) {
      if (!head.hasClose) connection = CONNECTION_CLOSE;
    } else if (http10 && code !== 101) {
      connection = CONNECTION_KEEP_ALIVE;
    }
    this.closeConnection = close;
    const date = head.hasDate ? null : clock.dateHeader();
    const bytes = head.encoded(this.protocolVersion, length, connection, date);
    if (bytes !== null) {
      conn.writeBytes(bytes);
      this.responseLength += bytes.length;
      return;
    }
    const text = head.text(this.protocolVersion, length, connection);
    conn.writeLatin1(text);
    this.responseLength += text.length + 2;
    if (date !== null) {
      conn.writeBytes(date);
      this.responseLength += date.length;
    }
    conn.writeLatin1("\r\n");
  }

  /** The body is complete: send headers if nothing was sent, end chunked framing, check the length. */
  private finishBody(): void {
    const conn = this.connection;
    if (conn.closed) return;
    if (!this.headersSent) {
      if (this.sizedLength < 0) this.sizedLength = 0;
      this.sendHeaders();
    }
    if (this.chunked) {
      conn.writeLatin1("0\r\n\r\n");
      this.responseLength += 5;
    } else if (this.declaredLength > this.bodySent && !this.isHead && !this.noBody) {
      // Fewer bytes than declared: the client must not wait for the rest of a body that will not come.
      this.closeConnection = true;
      this.logError(
        `${this.requestline}: application sent ${this.bodySent} of its Content-Length of ${this.declaredLength}; connection closed`,
      );
    }
    if (this.code === 101) this.closeConnection = true;
    conn.commit();
  }

  /**
   * An error escaped the application. Before the headers went out: a plain 500 (or the
   * client error it carries). After: close the connection so the client sees a truncated
   * response, never a spliced one.
   */
  handleError(err: unknown): void {
    this.closeConnection = true;
    const where = `${this.requestline ?? "request"} from ${this.clientLabel()}`;
    if (err instanceof ClientDisconnected) {
      // The app could not get the whole body. A client that only half-closed can still read
      // a 400; one that is gone gets nothing, and the log says why its line has no status.
      const answer = !this.headersSent && !this.connection.closed;
      this.logError(`${where}: ${err.message}; ${answer ? "answered 400" : "no response sent"}`);
      if (answer) this.sendError(400);
      return;
    }
    if (err instanceof ConnectionClosedError || this.connection.closed) return;
    if (err instanceof HTTPError) {
      if (!this.headersSent) this.sendError(err.status);
      return;
    }
    this.logError(`Error handling ${where}\n${errorText(err)}`);
    if (!this.headersSent) this.sendError(500);
  }

  /** Write a server-generated error response and mark the connection for closing. */
  private sendError(status: number): void {
    const c = cannedResponse(status);
    const conn = this.connection;
    const date = clock.dateHeader();
    conn.writeBytes(c.head);
    conn.writeBytes(date);
    conn.writeBytes(c.tail);
    conn.commit();
    this.status = `${status} ${REASONS[status] ?? "Error"}`;
    this.code = status;
    this.responseLength = c.length + date.length;
    this.bodySent = c.bodyLength;
    this.headersSent = true;
    this.closeConnection = true;
  }

  /** A request the connection refused before it reached the application (400, 408, 413, …). */
  rejectRequest(status: number, _message: string, requestline: string): void {
    this.resetRequest();
    this.timeStart = timeNow();
    this.requestline = requestline;
    this.sendError(status);
    this.finishRequest();
  }

  /** Write the access-log line, unless access logging is off. */
  logRequest(): void {
    const log = this.server.log;
    if (log instanceof NullLog) return;
    log.write(`${this.formatRequest()}\n`);
  }

  /**
   * The access-log line in the server's log format; for "gevent" (the default) that is
   * `ADDR - - [YYYY-MM-DD HH:MM:SS] "REQUEST LINE" STATUS LENGTH SECONDS`.
   */
  formatRequest(): string {
    const format = this.server.accessFormat;
    if (format !== null) return format(this);
    const length = this.responseLength > 0 ? String(this.responseLength) : "-";
    const delta = this.timeFinish > 0 ? (this.timeFinish - this.timeStart).toFixed(6) : "-";
    const addr = typeof this.clientAddress === "string" ? this.clientAddress : this.clientAddress[0];
    const code = this.code === null ? "000" : String(this.code);
    return `${addr || "-"} - - [${clock.localTimestamp()}] "${this.requestline ?? ""}" ${code} ${length} ${delta}`;
  }

  /** Write a message to the error log. */
  logError(msg: string): void {
    const log = this.server.errorLog;
    if (log instanceof NullLog) return;
    log.write(`${msg}\n`);
  }

  /** "host:port" of the peer, for messages. */
  clientLabel(): string {
    const a = this.clientAddress;
    return typeof a === "string" ? a || "unix socket" : `${a[0]}:${a[1]}`;
  }
}

/**
 * SERVER_NAME and SERVER_PORT from an authority the parser validated (uri-host [":" port]):
 * an IP-literal keeps its brackets, and a missing or empty port is the scheme's.
 */
function hostToServerName(env: Environ, host: string, defaultPort: string): void {
  const colon = host.indexOf(":", host.lastIndexOf("]") + 1);
  env.SERVER_NAME = colon < 0 ? host : host.slice(0, colon);
  env.SERVER_PORT = colon < 0 || colon + 1 === host.length ? defaultPort : host.slice(colon + 1);
}

/** RFC 4514 string of a certificate name: most specific first, special characters escaped. */
function distinguishedName(name: object | undefined): string {
  if (name === undefined) return "";
  const parts: string[] = [];
  for (const [key, value] of Object.entries(name)) {
    for (const v of Array.isArray(value) ? value : [value]) {
      const escaped = String(v)
        .replace(/[,+"\\<>;=]/g, "\\$&")
        .replace(/^[ #]|[ ]$/g, "\\$&");
      parts.push(`${key}=${escaped}`);
    }
  }
  return parts.reverse().join(",");
}
