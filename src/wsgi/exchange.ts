/** @module wsgi/exchange — the engine side of a WSGI handler: one connection's per-request state (gevent's fields), the Exchange the connection calls, and the plumbing its hooks share. */

import type { ServerSocket } from "../engine/connection.ts";
import type { ConnectionPort, Exchange } from "../engine/exchange.ts";
import { ResponseWriter } from "../engine/response.ts";
import { RequestDecoder } from "../http/request.ts";
import { clientLabel } from "../observe/access.ts";
import { epochOf, timeNow } from "../observe/clock.ts";
import { NullLog } from "../observe/log.ts";
import { EnvironBuilder } from "./environ.ts";
import { ResultSender, type ResultSink } from "./result.ts";
import type { WSGIServer } from "./server.ts";
import type { Body, Chunk, Environ, ResponseHeaders } from "./types.ts";

export const errorText = (e: unknown): string => (e instanceof Error ? (e.stack ?? String(e)) : String(e));

/**
 * The state of one connection's current request and response, kept under gevent's names, and
 * the Exchange methods the connection calls. WSGIHandler adds gevent's hooks on top; the hooks
 * this class calls are declared here and defined there.
 */
export abstract class WSGIExchange implements Exchange, ResultSink {
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
  /** What the application returned; null once the request is logged (gevent drops it too). */
  result: Body | null = null;
  /** The response being written: framing, length and persistence. */
  readonly response: ResponseWriter;

  protected headBuf: Buffer | null = null;
  protected headStart = 0;
  protected readonly decoder = new RequestDecoder();
  protected readonly environs: EnvironBuilder;
  protected upgradeRequested = false;
  /** startResponse() was called for this request. */
  startCalled = false;
  protected readonly results: ResultSender;
  /** This request's access-log line is written. */
  private logged = false;
  /** The response has ended and timeFinish is not read yet (see timeFinish). */
  private finishPending = false;
  private finishTime = 0;
  /** The app ran out of time (timeouts.app): what it sends now is refused. */
  protected expired = false;

  constructor(socket: ServerSocket, address: [string, number] | string, server: WSGIServer) {
    this.socket = socket;
    this.clientAddress = address;
    this.server = server;
    this.connection = socket.data;
    this.environs = new EnvironBuilder(socket, address);
    this.response = new ResponseWriter(socket.data);
    this.results = new ResultSender(this);
  }

  abstract handleOneRequest(): void | Promise<void>;
  abstract write(data: Chunk): Promise<void>;
  abstract finalizeHeaders(): void;
  abstract logRequest(): void;

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

  /**
   * When the response ended (epoch seconds; 0 before): the clock is read once, the first time
   * this is read after the end (the access log does at once), so a request nobody times costs
   * no clock read. It is shared with the connection, whose idle deadline counts from it.
   */
  get timeFinish(): number {
    if (this.finishPending) {
      this.finishPending = false;
      this.finishTime = epochOf(this.connection.finished());
    }
    return this.finishTime;
  }

  set timeFinish(v: number) {
    this.finishPending = false;
    this.finishTime = v;
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

  /** Exchange: answer the request whose head the connection parsed at buf[start…]. */
  begin(buf: Buffer, start: number): void | Promise<void> {
    this.headBuf = buf;
    this.headStart = start;
    return this.handleOneRequest();
  }

  protected resetRequest(): void {
    this.requestline = null;
    this.environ = null;
    this.response.reset();
    this.timeFinish = 0;
    this.result = null;
    this.startCalled = false;
    this.results.reset();
    this.expired = false;
    this.logged = false;
  }

  /** Chunked trailers arrived: exposed in environ as bunwsgi.trailers. */
  trailers(trailers: Array<[string, string]>): void {
    if (this.environ !== null) this.environ["bunwsgi.trailers"] = trailers;
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

  /** Exchange: the app's time is up (uWSGI's harakiri); answer 503 if nothing was sent yet. */
  timedOut(limit: number): boolean {
    const answer = !this.response.headersSent;
    this.logError(
      `${this.requestline ?? "request"} from ${this.clientLabel()}: the application did not finish within ${limit}s (timeouts.app); ${answer ? "answered 503" : "connection cut"}`,
    );
    this.expired = true;
    if (answer) this.sendError(503);
    this.lost();
    this.finishRequest();
    return answer;
  }

  /** Log the request, once, whatever path ends it. */
  protected finishRequest(): void {
    if (this.logged) return;
    this.logged = true;
    this.finishPending = true;
    this.logRequest();
    // As gevent drops its result: an idle keep-alive connection must not keep its last
    // request's body, environ or wsgi.input alive until the next request (or for good).
    this.result = null;
    this.environ = null;
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

  /** The body is complete: send headers if nothing was sent, end chunked framing, check the length. */
  finishBody(): void {
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

  /** Write a server-generated error response and mark the connection for closing. */
  protected sendError(status: number): void {
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

  /** Write a message to the error log. */
  logError(msg: string): void {
    const log = this.server.errorLog;
    if (log instanceof NullLog) return;
    log.write(`${msg}\n`, "ERROR");
  }

  /** "host:port" of the peer, for messages. */
  clientLabel(): string {
    return clientLabel(this.clientAddress);
  }
}
