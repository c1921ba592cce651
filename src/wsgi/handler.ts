/** @module wsgi/handler — WSGIHandler: environ, startResponse, response framing, error handling and the access log for one connection. */

import type { ServerSocket } from "../engine/connection.ts";
import type { ConnectionPort, Exchange } from "../engine/exchange.ts";
import { chunkLength, ResponseWriter } from "../engine/response.ts";
import { ClientDisconnected, ConnectionClosedError, ContractError, HTTPError } from "../errors.ts";
import { clientCloses, HTTP_1X, isUpgradeRequest, RequestDecoder } from "../http/request.ts";
import { clock, timeNow } from "../observe/clock.ts";
import { NullLog } from "../observe/log.ts";
import { EnvironBuilder } from "./environ.ts";
import { checkChunk, ResultSender, type ResultSink } from "./result.ts";
import type { WSGIServer } from "./server.ts";
import type { Body, Chunk, Environ, ResponseHeaders, Write } from "./types.ts";

const RESOLVED: Promise<void> = Promise.resolve();

const errorText = (e: unknown): string => (e instanceof Error ? (e.stack ?? String(e)) : String(e));

/**
 * Handles one connection: reads each request the connection parsed, runs the application, and
 * frames its response. Subclass it and pass `handlerClass` to change any hook; a hook that
 * returns a Promise makes the connection wait for it.
 */
export class WSGIHandler implements Exchange {
  protocolVersion = "HTTP/1.1";
  readonly socket: ServerSocket;
  /** [host, port] for TCP; the socket path for a unix socket. */
  readonly clientAddress: [string, number] | string;
  readonly server: WSGIServer;
  /** What this handler sees of its connection. */
  readonly connection: ConnectionPort;

  // Per request (reset by handleOneRequest).
  requestline: string | null = null;
  command = "";
  path = "";
  requestVersion = "";
  /** Header fields as received. */
  headers: Array<[string, string]> = [];
  /** The current request's environ; null once its access-log line is written. */
  environ: Environ | null = null;
  timeStart = 0;
  timeFinish = 0;
  /** What the application returned; null once the request is logged (gevent drops it too). */
  result: Body | null = null;
  /** The response being written: framing, length and persistence. */
  readonly response: ResponseWriter;

  private headBuf: Buffer | null = null;
  private headStart = 0;
  private readonly decoder = new RequestDecoder();
  private readonly environs: EnvironBuilder;
  private upgradeRequested = false;
  private startCalled = false;
  private readonly results: ResultSender;
  /** This request's access-log line is written. */
  private logged = false;

  // gevent's per-response fields, kept by the response writer.
  get status(): string | null {
    return this.response.status;
  }
  set status(v: string | null) {
    this.response.status = v;
  }
  get code(): number | null {
    return this.response.code;
  }
  set code(v: number | null) {
    this.response.code = v;
  }
  get responseHeaders(): ResponseHeaders | null {
    return this.response.headers;
  }
  set responseHeaders(v: ResponseHeaders | null) {
    this.response.headers = v;
  }
  /** Bytes sent for this response, status line and headers included; 0 when nothing was sent. */
  get responseLength(): number {
    return this.response.length;
  }
  set responseLength(v: number) {
    this.response.length = v;
  }
  /** Close the connection after this response. */
  get closeConnection(): boolean {
    return this.response.closeConnection;
  }
  set closeConnection(v: boolean) {
    this.response.closeConnection = v;
  }
  get headersSent(): boolean {
    return this.response.headersSent;
  }
  /** Exchange: the connection closes after this response. */
  get closeAfter(): boolean {
    return this.response.closeConnection;
  }

  /** Why the server refused or cut this request (a parser, body or disconnect code name), or null. */
  get reason(): string | null {
    return this.connection.failReason || null;
  }

  /** Body bytes sent for this response (framing excluded): Apache's %b. */
  get bodyLength(): number {
    return this.response.bodySent;
  }

  private readonly startResponseBound: (status: string, headers: ResponseHeaders, excInfo?: unknown) => Write;
  private readonly writeBound: Write;

  constructor(socket: ServerSocket, address: [string, number] | string, server: WSGIServer) {
    this.socket = socket;
    this.clientAddress = address;
    this.server = server;
    this.connection = socket.data;
    this.environs = new EnvironBuilder(socket, address);
    this.response = new ResponseWriter(socket.data);
    this.results = new ResultSender(this.sink());
    this.startResponseBound = (status, headers, excInfo) => this.startResponse(status, headers, excInfo);
    this.writeBound = (data) => this.write(data);
  }

  /** Called once when the connection opens; requests then arrive through handleOneRequest(). */
  handle(): void {}

  /** The request line of the current request, decoded as latin-1. */
  readRequestline(): string {
    return this.decoder.requestLine(this.connection.parser, this.headBuf as Buffer, this.headStart);
  }

  /**
   * Take in the parsed request: method, target, version and header fields. The parser has
   * already enforced RFC 9112; override to refuse more (throw an HTTPError).
   */
  readRequest(line: string): void {
    const p = this.connection.parser;
    const buf = this.headBuf as Buffer;
    this.command = p.method;
    this.path = this.decoder.target(p, buf, this.headStart, line);
    // The parser admits major version 1 only (others get 505).
    this.requestVersion = HTTP_1X[p.versionMinor] as string;
    this.headers = this.decoder.fields(p, buf, this.headStart);
    this.upgradeRequested = isUpgradeRequest(p);
  }

  /** TLS facts of this connection in mod_ssl's names (SSL_PROTOCOL, SSL_CLIENT_VERIFY, …), computed once. */
  tlsEnviron(): Readonly<Record<string, string>> {
    return this.environs.tls();
  }

  /** Build the PEP 3333 environ of the current request. */
  getEnviron(): Environ {
    const server = this.server;
    const reuse = server.environIsCopy && !clientCloses(this.connection.parser);
    return this.environs.build(server, this.connection, this, this.upgradeRequested, reuse);
  }

  /** Exchange: answer the request whose head the connection parsed at buf[start…]. */
  begin(buf: Buffer, start: number): void | Promise<void> {
    this.headBuf = buf;
    this.headStart = start;
    return this.handleOneRequest();
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
    this.response.reset();
    this.timeFinish = 0;
    this.result = null;
    this.startCalled = false;
    this.results.reset();
    this.logged = false;
  }

  /** Chunked trailers arrived: exposed in environ as bunwsgi.trailers. */
  trailers(trailers: Array<[string, string]>): void {
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
  abandon(waited: number): void {
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

  /** Send the result's chunks: an Array is sized; other iterables stream (wsgi/result). */
  processResult(): void | Promise<void> {
    return this.results.send(this.result as unknown);
  }

  /**
   * The connection closed while this request's response was in progress (client gone, write
   * deadline, stop): end its result now instead of when it next produces a chunk.
   */
  lost(): void {
    try {
      this.results.abandon();
    } catch (e) {
      this.logError(`Error closing the result of ${this.requestline ?? "request"}\n${errorText(e)}`);
    }
  }

  /** What the result sender sees of this handler. */
  private sink(): ResultSink {
    const handler = this;
    const conn = this.connection;
    return {
      write: (data) => handler.write(data),
      get started() {
        return handler.startCalled;
      },
      setSized: (total) => {
        handler.response.sized = total;
      },
      // The rest of an unsized result is abandoned once its Content-Length is passed, the
      // connection is gone, or the head of a HEAD response is out (RFC 9110 §9.3.2: nothing
      // more of it would be sent, and an endless stream would otherwise run on for nobody).
      endsEarly: () => {
        const r = handler.response;
        return r.overflowed || conn.closed || (r.headersSent && handler.command === "HEAD");
      },
      get backpressured() {
        return conn.out.backpressured;
      },
      waitDrain: () => conn.out.waitDrain(),
      endBody: () => handler.finishBody(),
    };
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
    const code = this.response.accept(status, headers, this.upgradeRequested);
    this.startCalled = true;
    if (code === 101) {
      // 101 has no body to wait for, and the new protocol's bytes start right after it: the
      // head goes out now, so the app can read bunwsgi.raw_input before it writes anything.
      this.finalizeHeaders();
      this.connection.out.commit();
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
    const response = this.response;
    response.checkBody();
    if (!response.headersSent) this.finalizeHeaders();
    if (!response.writeBody(data, len)) {
      this.logError(
        `${this.requestline}: application sent more than its Content-Length of ${response.declared}; response cut, connection closed`,
      );
    }
    conn.out.commit();
    return conn.out.backpressured ? conn.out.waitDrain() : RESOLVED;
  }

  /**
   * Write the status line and headers; framing and persistence are decided by http/framing
   * (RFC 9112 §6.3, §9.3): Content-Length when known, chunked for unsized HTTP/1.1 bodies,
   * close-delimited otherwise.
   */
  finalizeHeaders(): void {
    this.response.writeHead(this.protocolVersion, this.command);
  }

  /** The body is complete: send headers if nothing was sent, end chunked framing, check the length. */
  private finishBody(): void {
    const response = this.response;
    if (this.connection.closed) return;
    if (!response.headersSent) {
      if (response.sized < 0) response.sized = 0;
      this.finalizeHeaders();
    }
    // Fewer bytes than declared: the client must not wait for the rest of a body that will not come.
    if (response.end() > 0) {
      this.logError(
        `${this.requestline}: application sent ${response.bodySent} of its Content-Length of ${response.declared}; connection closed`,
      );
    }
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
    this.response.error(status);
  }

  /** A request the connection refused before it reached the application (400, 408, 413, …). */
  refuse(status: number, message: string, requestline: string): void {
    // Why a client got its 4xx/5xx, for an operator who asks (log.level = "debug").
    if (this.server.logLevel <= 10) {
      this.server.errorLog.write(
        `refused "${requestline}" from ${this.clientLabel()}: ${status} ${message} (${this.connection.failReason})\n`,
        "DEBUG",
      );
    }
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
    log.write(`${msg}\n`, "ERROR");
  }

  /** "host:port" of the peer, for messages. */
  clientLabel(): string {
    const a = this.clientAddress;
    return typeof a === "string" ? a || "unix socket" : `${a[0]}:${a[1]}`;
  }
}
