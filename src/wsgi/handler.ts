/** @module wsgi/handler — WSGIHandler: gevent.pywsgi's hooks for one connection (read the request, build the environ, run the app, startResponse and write, errors, the access-log line). */

import type { ServerSocket } from "../engine/connection.ts";
import { RESOLVED } from "../engine/output.ts";
import { chunkLength } from "../engine/response.ts";
import { ConnectionClosedError, ContractError, HTTPError } from "../errors.ts";
import { clientCloses, HTTP_1X, isUpgradeRequest } from "../http/request.ts";
import { geventLine } from "../observe/access.ts";
import { NullLog } from "../observe/log.ts";
import { WSGIExchange } from "./exchange.ts";
import { checkChunk } from "./result.ts";
import type { WSGIServer } from "./server.ts";
import type { Body, Chunk, Environ, ResponseHeaders, Write } from "./types.ts";

/** `p`, with its rejection marked handled (whoever awaits `p` still gets it). */
const handled = (p: Promise<void>): Promise<void> => {
  p.catch(() => {});
  return p;
};

/** A request's startResponse or write called after its response ended. */
const staleCall = (what: string): ContractError =>
  new ContractError(`${what} of a request whose response has ended: each request's startResponse and write act on it alone`);

/**
 * Handles one connection: reads each request the connection parsed, runs the application, and
 * frames its response. Subclass it and pass `handlerClass` to change any hook (gevent.pywsgi's,
 * in camelCase); a hook that returns a Promise makes the connection wait for it.
 */
export class WSGIHandler extends WSGIExchange {
  /**
   * What startResponse returns: the current request's own write once runApplication made it;
   * until then (a subclass that calls the app its own way) the connection's.
   */
  private currentWrite: Write;
  private readonly connectionWrite: Write;

  /** A subclass overrides gevent's log hooks, which may read timeStart whatever the server's log. */
  private readonly hooked: boolean;

  constructor(socket: ServerSocket, address: [string, number] | string, server: WSGIServer) {
    super(socket, address, server);
    this.hooked =
      this.logRequest !== WSGIHandler.prototype.logRequest || this.formatRequest !== WSGIHandler.prototype.formatRequest;
    this.connectionWrite = (data) => this.write(data);
    this.currentWrite = this.connectionWrite;
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

  /** Handle the request whose head the connection just parsed. */
  handleOneRequest(): void | Promise<void> {
    this.resetRequest();
    this.currentWrite = this.connectionWrite;
    this.startTiming(this.hooked);
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

  /** Call the application and hand its result to processResult(). */
  runApplication(): void | Promise<void> {
    const app = this.server.application;
    // This request's own callables: kept by the app past its response (a timer, a global),
    // they refuse to act on the next request of the connection, whose response they would
    // splice (PEP 3333 ties start_response and write to their request).
    const serial = this.requestSerial;
    const write: Write = (data) =>
      serial === this.requestSerial ? this.write(data) : handled(Promise.reject(staleCall("write()")));
    this.currentWrite = write;
    const start = (status: string, headers: ResponseHeaders, excInfo?: unknown): Write => {
      if (serial !== this.requestSerial) throw staleCall("startResponse()");
      this.startResponse(status, headers, excInfo);
      return write;
    };
    const result = app(this.environ as Environ, start);
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
    return this.currentWrite;
  }

  /** Send body data (the callable startResponse returns). Settles when the socket has taken it. */
  write(data: Chunk): Promise<void> {
    if (!this.startCalled) throw new ContractError("write() called before startResponse()");
    checkChunk(data);
    const conn = this.connection;
    // Rejections are marked handled: an app that does not await its writes (PEP 3333's write
    // is synchronous) learns of a gone client from its next write or its result, and the
    // access line records what was sent, instead of one stray stack per write on stderr.
    if (conn.closed || this.expired)
      return handled(
        Promise.reject(new ConnectionClosedError(this.expired ? "the request's time is up (timeouts.app)" : undefined)),
      );
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
    return conn.out.backpressured ? handled(conn.out.waitDrain()) : RESOLVED;
  }

  /**
   * Write the status line and headers; framing and persistence are decided by http/framing
   * (RFC 9112 §6.3, §9.3): Content-Length when known, chunked for unsized HTTP/1.1 bodies,
   * close-delimited otherwise.
   */
  finalizeHeaders(): void {
    this.response.writeHead(this.protocolVersion, this.command);
  }

  /**
   * An error escaped the application. Before the headers went out: a plain 500 (or the
   * client error it carries). After: close the connection so the client sees a truncated
   * response, never a spliced one.
   */
  handleError(err: unknown): void {
    this.answerError(err);
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
    return format !== null ? format(this) : geventLine(this);
  }
}
