/** @module wsgi/exchange — the engine side of a WSGI handler: one connection's per-request state (gevent's fields), the Exchange the connection calls, and the plumbing its hooks share. */

import { AppExchange } from "../engine/app-exchange.ts";
import type { ServerSocket } from "../engine/connection.ts";
import { thrownText } from "../errors.ts";
import { RequestDecoder } from "../http/request.ts";
import { EnvironBuilder } from "./environ.ts";
import { ResultSender, type ResultSink } from "./result.ts";
import type { WSGIServer } from "./server.ts";
import type { Body, Chunk, Environ, ResponseHeaders } from "./types.ts";

/**
 * The state of one connection's current request and response, kept under gevent's names, and
 * the Exchange methods the connection calls. WSGIHandler adds gevent's hooks on top; the hooks
 * this class calls are declared here and defined there.
 */
export abstract class WSGIExchange extends AppExchange implements ResultSink {
  protocolVersion = "HTTP/1.1";
  readonly server: WSGIServer;

  // Per request (reset by handleOneRequest), beside AppExchange's.
  /** The current request's environ; null once its access-log line is written. */
  environ: Environ | null = null;
  /** What the application returned; null once the request is logged (gevent drops it too). */
  result: Body | null = null;

  protected headBuf: Buffer | null = null;
  protected headStart = 0;
  protected readonly decoder = new RequestDecoder();
  protected readonly environs: EnvironBuilder;
  protected upgradeRequested = false;
  /** startResponse() was called for this request. */
  startCalled = false;
  /**
   * Which request is current: advanced as each request starts and as its access line is
   * written, so the startResponse and write handed to one request never act on another.
   */
  protected requestSerial = 0;
  protected readonly results: ResultSender;

  constructor(socket: ServerSocket, address: [string, number] | string, server: WSGIServer) {
    super(socket, address);
    this.server = server;
    this.environs = new EnvironBuilder(socket, address, server.proxies);
    this.results = new ResultSender(this);
  }

  abstract handleOneRequest(): void | Promise<void>;
  abstract write(data: Chunk): Promise<void>;
  abstract finalizeHeaders(): void;

  protected get host(): WSGIServer {
    return this.server;
  }

  // gevent's per-response fields, kept by the response writer.
  get status(): string | null {
    return this.response.status;
  }

  set status(v: string | null) {
    this.response.status = v;
  }

  override get code(): number | null {
    return this.response.code;
  }

  override set code(v: number | null) {
    this.response.code = v;
  }

  get responseHeaders(): ResponseHeaders | null {
    return this.response.headers;
  }

  set responseHeaders(v: ResponseHeaders | null) {
    this.response.headers = v;
  }

  override get responseLength(): number {
    return this.response.length;
  }

  override set responseLength(v: number) {
    this.response.length = v;
  }

  /** Close the connection after this response. */
  get closeConnection(): boolean {
    return this.response.closeConnection;
  }

  set closeConnection(v: boolean) {
    this.response.closeConnection = v;
  }

  /** Exchange: answer the request whose head the connection parsed at buf[start…]. */
  begin(buf: Buffer, start: number): void | Promise<void> {
    this.headBuf = buf;
    this.headStart = start;
    return this.handleOneRequest();
  }

  protected override resetRequest(): void {
    super.resetRequest();
    this.requestSerial++;
    this.environ = null;
    this.result = null;
    this.startCalled = false;
    this.results.reset();
  }

  /** Chunked trailers arrived: exposed in environ as bunwsgi.trailers. */
  override trailers(trailers: Array<[string, string]>): void {
    if (this.environ !== null) this.environ["bunwsgi.trailers"] = trailers;
  }

  /**
   * As gevent drops its result: an idle keep-alive connection must not keep its last
   * request's body, environ or wsgi.input alive until the next request (or for good).
   */
  protected override requestLogged(): void {
    this.requestSerial++;
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
      this.logError(`Error closing the result of ${this.requestline ?? "request"}\n${thrownText(e)}`);
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
        `${this.requestline}: application sent ${response.bodySent} of its Content-Length of ${response.promised}; connection closed`,
      );
    }
  }
}
