/** @module engine/app-exchange — what every kind of app shares on a connection: the request's access record, refusals before the app, the app deadline, abandon at stop, and the logs. */

import { ClientDisconnected, ConnectionClosedError, HTTPError, thrownText } from "../errors.ts";
import type { AccessFormatter, AccessRecord, ClientAddress } from "../observe/access.ts";
import { clientLabel } from "../observe/access.ts";
import { epochOf, timeNow } from "../observe/clock.ts";
import { type LogSink, NullLog } from "../observe/log.ts";
import type { ServerSocket } from "./connection.ts";
import { counters } from "./counters.ts";
import type { ConnectionPort, Exchange } from "./exchange.ts";
import { ResponseWriter } from "./response.ts";

/** What a server offers the exchanges of its connections: its logs and their settings. */
export interface AppHost {
  readonly log: LogSink;
  readonly errorLog: LogSink;
  /** Least severe error-log messages written (Python logging's numbers: 10 debug … 40 error). */
  readonly logLevel: number;
  /** The compiled access-log format; null is gevent's line. */
  readonly accessFormat: AccessFormatter | null;
}

/**
 * One connection's current request as any kind of app sees it through the engine: the fields an
 * access-log line reads, and the Exchange paths that do not depend on the app (a request the
 * connection refused, the app's time running out, a stop abandoning it). A WSGI handler and a
 * fetch adapter extend it with how they run their app.
 */
export abstract class AppExchange implements Exchange, AccessRecord {
  readonly socket: ServerSocket;
  /**
   * The client of the current request (gevent's client_address; the access log's): [host, port]
   * for TCP, the socket path for a unix socket. The connection's peer, or the client a trusted
   * proxy's forwarding fields name for this request.
   */
  clientAddress: ClientAddress;
  /** The connection's peer: the socket's, or the client its PROXY header named. */
  readonly peerAddress: ClientAddress;
  /** What this exchange sees of its connection. */
  readonly connection: ConnectionPort;
  /** The response being written: framing, length and persistence. */
  readonly response: ResponseWriter;

  // Per request (reset by resetRequest).
  requestline: string | null = null;
  command = "";
  path = "";
  requestVersion = "";
  /** Header fields as received. */
  headers: Array<[string, string]> = [];
  timeStart = 0;
  /** This request's access-log line is written. */
  private logged = false;
  /** The response has ended and timeFinish is not read yet (see timeFinish). */
  private finishPending = false;
  private finishTime = 0;
  /** The app ran out of time (timeouts.app): what it sends now is refused. */
  expired = false;
  /** The connection refused this request before it reached the app (its method is not one to count by). */
  private refused = false;

  constructor(socket: ServerSocket, address: ClientAddress) {
    this.socket = socket;
    this.clientAddress = address;
    this.peerAddress = address;
    this.connection = socket.data;
    this.response = new ResponseWriter(socket.data);
  }

  /** The server's logs and their settings. */
  protected abstract get host(): AppHost;
  /** Write the request's access-log line (a hook: gevent's log_request). */
  abstract logRequest(): void;
  /** The connection closed while this request's response was in progress: end what the app is producing. */
  abstract lost(): void;

  /**
   * The client sent FIN while this request's response was in progress. A WSGI app is not told,
   * as gevent cannot tell it: its body's reads fail if the body was cut, and its response goes
   * out to a client that only half-closed.
   */
  halfClosed(): void {}
  /** Begin a request whose head the parser found at buf[start…]. */
  abstract begin(buf: Buffer, start: number): void | Promise<void>;

  get code(): number | null {
    return this.response.code;
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

  /** Body bytes sent for this response (framing excluded): Apache's %b. */
  get bodyLength(): number {
    return this.response.bodySent;
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

  /**
   * timeStart of a request that begins: when its bytes arrived, if anything reads it (the access
   * log, metrics, or what `hooked` says: a kind's own log hooks overridden); else the connection's
   * last reading, at or before that, so a request nobody times costs no clock read.
   */
  protected startTiming(hooked: boolean): void {
    const c = this.connection;
    this.timeStart = epochOf(hooked || counters.on || !(this.host.log instanceof NullLog) ? c.arrival() : c.lastKnown);
  }

  protected resetRequest(): void {
    this.requestline = null;
    this.clientAddress = this.peerAddress;
    this.response.reset();
    this.timeFinish = 0;
    this.expired = false;
    this.logged = false;
    this.refused = false;
  }

  /** Exchange: a chunked request body ended with these trailer fields (kinds that expose them override). */
  trailers(_fields: Array<[string, string]>): void {}

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
    if (counters.on) {
      // timeFinish reads the clock here, once: the access line below shares the reading.
      const method = this.refused ? null : this.command;
      counters.requestEnded(method, this.response.code, this.timeFinish - this.timeStart, this.connection.failReason);
    }
    this.logRequest();
    this.requestLogged();
  }

  /** After the access-log line: let go of what the request held (an idle connection must not keep it alive). */
  protected requestLogged(): void {}

  /**
   * An error escaped the application. Before the head went out: a plain 500 (or the client
   * error it carries). After: the connection closes, so the client sees a truncated response,
   * never a spliced one.
   */
  protected answerError(err: unknown): void {
    this.response.closeConnection = true;
    const where = `${this.requestline ?? "request"} from ${this.clientLabel()}`;
    const sent = this.response.headersSent;
    if (err instanceof ClientDisconnected) {
      // The app could not get the whole body. A client that only half-closed can still read
      // a 400; one that is gone gets nothing, and the log says why its line has no status. A
      // response already under way (an echo streaming the body back) is cut off where it stands:
      // its status and bytes are in the access line, and this says they are not a whole response.
      const answer = !sent && !this.connection.closed;
      const outcome = answer
        ? "answered 400"
        : sent
          ? `the ${this.response.code} response was cut short after ${this.response.bodySent} body bytes; connection closed`
          : "no response sent";
      this.logInfo(`${where}: ${err.message}; ${outcome}`);
      if (answer) this.sendError(400);
      return;
    }
    if (err instanceof ConnectionClosedError || this.connection.closed) return;
    if (err instanceof HTTPError) {
      if (!sent) this.sendError(err.status);
      return;
    }
    this.logError(`Error handling ${where}\n${thrownText(err)}`);
    if (!sent) this.sendError(500);
  }

  /** Exchange: see the interface. */
  crashed(err: unknown): void {
    this.answerError(err);
    this.finishRequest();
  }

  /** Write a server-generated error response and mark the connection for closing. */
  protected sendError(status: number): void {
    this.response.error(status);
  }

  /** A request the connection refused before it reached the application (400, 408, 413, …). */
  refuse(status: number, message: string, requestline: string): void {
    const host = this.host;
    // Why a client got its 4xx/5xx, for an operator who asks (log.level = "debug").
    if (host.logLevel <= 10) {
      host.errorLog.write(
        `refused "${requestline}" from ${this.clientLabel()}: ${status} ${message} (${this.connection.failReason})\n`,
        "DEBUG",
      );
    }
    this.resetRequest();
    this.refused = true;
    this.timeStart = timeNow();
    this.requestline = requestline;
    this.sendError(status);
    this.finishRequest();
  }

  /** Write a message to the error log. */
  logError(msg: string): void {
    const log = this.host.errorLog;
    if (log instanceof NullLog) return;
    log.write(`${msg}\n`, "ERROR");
  }

  /** Exchange: see the interface. */
  logInfo(msg: string): void {
    const log = this.host.errorLog;
    if (log instanceof NullLog) return;
    log.write(`${msg}\n`, "INFO");
  }

  /** Write a message to the error log at debug level, if it is on. */
  logDebug(msg: string): void {
    if (this.host.logLevel <= 10) this.host.errorLog.write(`${msg}\n`, "DEBUG");
  }

  /** "host:port" of the peer, for messages. */
  clientLabel(): string {
    return clientLabel(this.clientAddress);
  }
}
