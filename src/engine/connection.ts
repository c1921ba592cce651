/** @module engine/connection — one socket as a state machine: what its incoming bytes are (head, body, discard, raw, closing), request sequencing, flow control and deadlines. */

import type { Socket } from "bun";
import type { HTTPError } from "../errors.ts";
import { PARSE_ERRORS, PARSE_REASONS } from "../http/codes.ts";
import type { RequestParser } from "../http/parser.ts";
import { type BudgetWaiter, budget } from "./budget.ts";
import { Deadlines, type DeadlineTarget } from "./deadlines.ts";
import type { ConnectionHost, ConnectionPort, Exchange } from "./exchange.ts";
import { HeldBytes } from "./held.ts";
import type { Input } from "./input.ts";
import { Output, type OutputOwner } from "./output.ts";
import { RELEASE_READ, releaseParser, releaseRead, takeParser } from "./pools.ts";
import { BODY_FAILED, type BodyHost, RequestBody } from "./request-body.ts";

export type ServerSocket = Socket<Connection>;

import { State, type StateValue } from "./state.ts";

/** Pause reasons: reading resumes only when none is left. */
const PAUSE_OUTPUT = 1;
const PAUSE_INPUT = 2;
const PAUSE_PIPELINE = 4;
const PAUSE_BUDGET = 8;

/** Pipelined bytes held while a response is in progress, above which reading pauses. */
const PIPELINE_HIGH_WATER = 64 * 1024;

export class Connection implements OutputOwner, BodyHost, BudgetWaiter, DeadlineTarget, ConnectionPort {
  readonly socket: ServerSocket;
  readonly host: ConnectionHost;
  readonly parser: RequestParser;
  readonly body: RequestBody;
  readonly out: Output;
  /** The app side: answers each request (set by the server when the connection is served). */
  exchange!: Exchange;
  state: StateValue = State.HEAD;
  /** A request is at the app (its response is not finished). */
  responding = false;
  /** The app sent 101: once the body has ended, the state is RAW. */
  upgraded = false;
  /** The peer half-closed its side. */
  peerEnded = false;
  /** Why the connection refused the last request (a parser code name, "head_timeout", …), or "". */
  private refusal = "";
  /** Index in the server's list of served connections; -1 while not served (waiting for the pool, or closed). */
  slot = -1;
  /** A read callback is running: output is flushed once, when it returns. */
  batching = false;

  /** A head split across reads, or pipelined requests waiting for the response in progress. */
  private readonly held = new HeldBytes();
  /**
   * Bytes of the read being processed that nothing refers to any more: parsed request heads
   * (the handler has made its strings) and body bytes copied into a waiting read's buffer.
   */
  private consumedBytes = 0;
  private paused = 0;

  /**
   * When bytes last arrived, or the connection last went idle, in seconds of performance.now():
   * never before the event, so no deadline measured from it fires early. One clock read per read
   * callback: when first asked for in it (arrival()), else as it returns.
   */
  lastRead: number;
  /** Bytes arrived or a response ended since lastRead was taken: it is taken again before the read callback returns. */
  private unstamped = false;
  /** When the exchange read the clock as the current response ended (see finished()); -1 until it does. */
  private finishedAt = -1;
  private readonly deadlines = new Deadlines();

  private readonly responseDoneBound = (): void => this.responseDone();
  private readonly responseFailedBound = (e: unknown): void => this.responseFailed(e);

  constructor(socket: ServerSocket, host: ConnectionHost) {
    this.socket = socket;
    this.host = host;
    this.parser = takeParser(host.headLimits);
    this.body = new RequestBody(this, host.bodyLimits);
    this.out = new Output(socket, this);
    this.lastRead = this.out.lastProgress = performance.now() / 1000;
  }

  get closed(): boolean {
    return this.state === State.CLOSED;
  }

  /** ConnectionPort: the current request's wsgi.input, and an upgrade request's raw stream. */
  get input(): Input {
    return this.body.input;
  }

  get rawInput(): Input | null {
    return this.body.rawInput;
  }

  /** ConnectionPort: why the last request was refused or cut (a stable name for logs and metrics), or "". */
  get failReason(): string {
    return this.refusal || this.body.failReason;
  }

  /** BodyHost: the response head is out. */
  get headersSent(): boolean {
    return this.exchange.headersSent;
  }

  /** BodyHost: unread input is over its mark. */
  pauseInput(): void {
    this.pause(PAUSE_INPUT);
  }

  resumeInput(): void {
    this.unpause(PAUSE_INPUT);
  }

  /** BodyHost: the process's buffered bytes are at limits.buffered_bytes: read nothing more until some are freed. */
  pauseForBudget(): void {
    this.pause(PAUSE_BUDGET);
    budget.wait(this);
  }

  /** BudgetWaiter: bytes were freed. */
  budgetFreed(): void {
    this.unpause(PAUSE_BUDGET);
  }

  /** BodyHost: bytes of the current read nothing refers to any more. */
  consumed(n: number): void {
    this.consumedBytes += n;
  }

  /** OutputOwner: the coarse clock. */
  get now(): number {
    return this.host.now;
  }

  // ---- socket events -------------------------------------------------------------------

  onData(chunk: Buffer): void {
    if (this.state >= State.CLOSING) return;
    this.unstamped = true;
    this.batching = true;
    if (this.state === State.RAW) {
      this.body.push(this.body.rawInput as Input, chunk, false);
    } else if (this.held.size > 0) {
      const held = this.held;
      held.append(chunk);
      this.process(held.buf as Buffer, held.start, held.end);
    } else {
      this.consumedBytes = 0;
      this.process(chunk, 0, chunk.length);
      if (this.consumedBytes === chunk.length && chunk.length >= RELEASE_READ) releaseRead(chunk);
    }
    this.batching = false;
    this.out.flush();
    if (this.unstamped) this.stamp();
  }

  /** Take lastRead now (see lastRead). */
  private stamp(): void {
    this.unstamped = false;
    this.lastRead = performance.now() / 1000;
  }

  /**
   * ConnectionPort: when the current request's bytes arrived, or the response before it ended
   * (performance.now() seconds). The clock is read the first time this is asked for in a read
   * callback, and shared with the deadlines.
   */
  arrival(): number {
    if (this.unstamped) this.stamp();
    return this.lastRead;
  }

  onDrain(): void {
    this.out.onDrain();
  }

  /** The peer sent FIN. Answer what is in progress, then close. */
  onEnd(): void {
    this.peerEnded = true;
    if (this.state >= State.CLOSING) return;
    // No raw bytes can follow a FIN; an upgraded app may still write (the peer only half-closed).
    this.body.rawInput?.finish();
    if (this.state === State.BODY) {
      this.body.disconnected("closed its side");
      this.state = State.HEAD;
    }
    if (this.upgraded) return;
    if (!this.responding) this.endAfterFlush();
  }

  onClose(): void {
    if (this.state === State.CLOSED) return;
    if (this.state === State.BODY) this.body.disconnected("reset the connection");
    this.state = State.CLOSED;
    this.body.closed();
    budget.forget(this);
    this.out.close();
    // An exchange still running its app may yet read the parser's fields and the body's bytes:
    // only an idle connection's are let go now, a busy one's when its response ends.
    if (!this.responding) {
      releaseParser(this.parser);
      this.body.responseDone(false);
    } else this.exchange.lost();
    this.releaseInput();
    this.host.connectionClosed(this);
  }

  // ---- OutputOwner -----------------------------------------------------------------------

  outputBacklogged(): void {
    this.pause(PAUSE_OUTPUT);
  }

  outputDrained(): void {
    this.unpause(PAUSE_OUTPUT);
    if (this.state === State.CLOSING) this.socket.end();
  }

  outputFailed(): void {
    if (this.state < State.CLOSING) this.state = State.CLOSING;
  }

  // ---- input -----------------------------------------------------------------------------

  /** Hold buf[pos, end) for later; a response in progress with much held pauses reading. */
  private hold(buf: Buffer, pos: number, end: number): void {
    this.held.hold(buf, pos, end);
    if (this.responding && end - pos > PIPELINE_HIGH_WATER) this.pause(PAUSE_PIPELINE);
  }

  private releaseInput(): void {
    this.held.release();
  }

  /** Take buf[pos, end) as far as the states allow: heads, bodies, raw bytes, in order. */
  private process(buf: Buffer, pos: number, end: number): void {
    while (pos < end) {
      switch (this.state) {
        case State.BODY:
        case State.DISCARD:
          pos = this.feedBody(buf, pos, end);
          if (pos < 0) {
            this.releaseInput();
            return;
          }
          continue;
        case State.RAW:
          // After a 101 and the request's body, the bytes are the new protocol's, unframed.
          this.body.push(this.body.rawInput as Input, buf.subarray(pos, end), this.held.transient(buf));
          this.releaseInput();
          return;
        case State.HEAD:
          if (this.responding) {
            this.hold(buf, pos, end);
            return;
          }
          pos = this.parseHead(buf, pos, end);
          if (pos < 0) return;
          continue;
        default:
          this.releaseInput();
          return;
      }
    }
    this.releaseInput();
  }

  /** Parse a request head at buf[pos…] and start its request; -1 when nothing more can be taken now. */
  private parseHead(buf: Buffer, pos: number, end: number): number {
    const n = this.parser.execute(buf, pos, end);
    if (n === 0) {
      // The head's first bytes came in this read callback: its deadline counts from them.
      if (this.deadlines.headSince < 0) this.deadlines.headSince = this.arrival();
      this.hold(buf, pos, end);
      return -1;
    }
    if (n < 0) {
      const [status, message] = PARSE_ERRORS[-n] as readonly [number, string];
      this.refuse(status, message, PARSE_REASONS[-n] as string, buf, pos, end);
      this.releaseInput();
      return -1;
    }
    this.deadlines.headSince = -1;
    this.consumedBytes += n;
    if (this.parser.method === "CONNECT") {
      // A valid CONNECT asks for a tunnel (RFC 9110 §9.3.6), which an origin server does not make.
      this.refuse(501, "CONNECT is not supported", "connect_not_supported", buf, pos, pos + n);
      this.releaseInput();
      return -1;
    }
    this.startRequest(buf, pos);
    return pos + n;
  }

  /** Body bytes: into wsgi.input (BODY), or read and dropped (DISCARD); -1 when nothing more can be taken now. */
  private feedBody(buf: Buffer, pos: number, end: number): number {
    const body = this.body;
    const next = body.feed(buf, pos, end, this.state === State.DISCARD, this.held.transient(buf));
    if (next === BODY_FAILED) {
      this.bodyBroken();
      return -1;
    }
    if (next < 0) {
      this.endAfterFlush();
      return -1;
    }
    if (body.done) {
      if (body.decoder.chunked && this.state === State.BODY) this.exchange.trailers(body.decoder.trailers);
      this.state = this.upgraded ? State.RAW : State.HEAD;
    }
    return next;
  }

  /** The body failed (its reads reject already): the framing is lost, so the connection closes after the response. */
  private bodyBroken(): void {
    this.state = State.HEAD;
    if (!this.responding) this.endAfterFlush();
    else this.pause(PAUSE_INPUT);
  }

  // ---- requests ----------------------------------------------------------------------------

  private startRequest(buf: Buffer, start: number): void {
    const p = this.parser;
    this.refusal = "";
    if (p.contentLength > this.host.bodyLimits.maxBody) {
      this.refuse(413, "request body too large", "body_too_large", buf, start, start + p.lineEnd);
      return;
    }
    const hasBody = this.body.begin(p);
    if (hasBody) this.state = State.BODY;
    this.deadlines.requestStarted(this.host.timeouts, hasBody);
    this.finishedAt = -1;
    this.responding = true;
    let r: void | Promise<void>;
    try {
      r = this.exchange.begin(buf, start);
    } catch (e) {
      this.responseFailed(e);
      return;
    }
    if (r === undefined) {
      this.responseDone();
      return;
    }
    // The response goes on past this read callback: the app's time counts from the request's
    // bytes, or from now if they were not timed.
    this.deadlines.appSince = this.arrival();
    r.then(this.responseDoneBound, this.responseFailedBound);
  }

  /** An exchange hook threw past its own error handling: log it and drop the connection. */
  private responseFailed(e: unknown): void {
    this.exchange.logError(`unhandled error in handler: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    this.responding = false;
    if (this.closed) this.orphanSettled();
    else this.endAfterFlush();
  }

  /** The response of a connection that closed under it has ended: tell the server. */
  private orphanSettled(): void {
    this.body.responseDone(false);
    this.host.orphanSettled(this);
  }

  private responseDone(): void {
    this.responding = false;
    if (this.closed) {
      this.orphanSettled();
      return;
    }
    if (this.upgraded || this.exchange.closeAfter || this.mustClose()) {
      this.endAfterFlush();
      return;
    }
    // Not switched: no raw bytes will come, and what follows is the next request (RFC 9110 §7.8).
    const pending = this.state === State.BODY;
    this.body.responseDone(pending);
    if (pending) this.state = State.DISCARD;
    // Idle from here: the time the exchange took as the response ended; else, in a read callback,
    // one clock read as it returns (however many responses it ends); else a clock read now.
    if (this.finishedAt >= 0) {
      this.lastRead = this.finishedAt;
      this.unstamped = false;
    } else if (this.batching) this.unstamped = true;
    else this.stamp();
    if (!this.batching) this.resume();
  }

  /**
   * ConnectionPort: the time now (performance.now() seconds), taken once as a response ends and
   * shared: the exchange logs it, and the idle deadline counts from it.
   */
  finished(): number {
    this.finishedAt = performance.now() / 1000;
    return this.finishedAt;
  }

  /**
   * ConnectionPort: change a deadline of the current request (environ "bunwsgi.set_timeout"):
   * "app" (seconds from the request's start until its response is done; 0: none) or
   * "upgraded" (idle seconds after a 101).
   */
  setTimeout(kind: "app" | "upgraded", seconds: number): void {
    this.deadlines.setLimit(kind, seconds);
  }

  /** The app sent 101 (RFC 9110 §15.2.2): after the request's body, bytes go to rawInput. */
  upgradeAccepted(): void {
    this.upgraded = true;
    if (this.state === State.HEAD) this.state = State.RAW;
    // Bytes held while the app ran are the new protocol's; inside a read callback, process() goes on with them.
    if (!this.batching) this.resume();
  }

  /** After an asynchronous response: go on with pipelined bytes held meanwhile. */
  private resume(): void {
    this.unpause(PAUSE_PIPELINE);
    const held = this.held;
    if (held.size > 0) {
      this.batching = true;
      this.process(held.buf as Buffer, held.start, held.end);
      this.batching = false;
    }
    this.out.flush();
    if (this.unstamped) this.stamp();
  }

  /** Refuse a request: the precise status, a closed connection, an access-log line with the reason. */
  private refuse(status: number, message: string, reason: string, buf: Uint8Array, start: number, end: number): void {
    this.refusal = reason;
    let e = start;
    const limit = Math.min(end, start + 1024);
    while (e < limit && buf[e] !== 13 && buf[e] !== 10) e++;
    this.exchange.refuse(status, message, escapeLine(buf, start, e));
    this.endAfterFlush();
  }

  // ---- lifecycle -------------------------------------------------------------------------

  /** Stop reading; end the socket once queued output is written. */
  endAfterFlush(): void {
    if (this.state >= State.CLOSING) return;
    this.state = State.CLOSING;
    // The coarse clock read as the end of its tick.
    this.deadlines.endedAt = this.host.now + 1;
    this.releaseInput();
    this.out.flush();
    if (this.out.queued === 0 && !this.closed) this.socket.end();
  }

  /** Close now, dropping unsent output. */
  terminate(): void {
    if (!this.closed) this.socket.terminate();
  }

  private pause(reason: number): void {
    if (this.paused === 0) this.socket.pause();
    this.paused |= reason;
  }

  private unpause(reason: number): void {
    if ((this.paused & reason) === 0) return;
    this.paused &= ~reason;
    if (this.paused === 0 && !this.closed) this.socket.resume();
  }

  /**
   * The engine cannot keep this connection after the current response (RFC 9112 §9.3, §9.6):
   * the peer half-closed, the body failed, the server is stopping or wants the slot, or a body
   * is left that would have to be read and dropped, or that the client was never told to send.
   */
  mustClose(): boolean {
    if (this.peerEnded || this.body.failed || this.host.stopping || this.host.crowded) return true;
    return this.state === State.BODY && this.body.blocksReuse;
  }

  /**
   * Between requests: nothing is being answered, read or held, and the connection is not
   * closing. Only such a connection may be closed without cutting a request.
   */
  get idle(): boolean {
    return this.state === State.HEAD && !this.responding && this.held.size === 0;
  }

  /** Seconds (coarse clock) since bytes last arrived: how long an idle connection has been idle. */
  get lastActive(): number {
    return this.lastRead;
  }

  /** Close the connection if it is idle (graceful stop, or a slot wanted for a new connection). */
  closeIfIdle(): void {
    if (this.idle) this.endAfterFlush();
  }

  /** Called once a second by the server's timer: the deadline of each state (engine/deadlines). */
  tick(now: number): void {
    this.deadlines.check(this, now, this.host.timeouts, this.host.limits);
  }

  // ---- DeadlineTarget ----------------------------------------------------------------------

  get heldBytes(): number {
    return this.held.size;
  }

  get bodyReceived(): number {
    return this.body.decoder.received;
  }

  get pausedForInput(): boolean {
    return (this.paused & PAUSE_INPUT) !== 0;
  }

  get pausedForBudget(): boolean {
    return (this.paused & PAUSE_BUDGET) !== 0;
  }

  get peer(): string {
    return this.exchange.clientLabel();
  }

  refuseSlowHead(): void {
    const held = this.held;
    this.refuse(408, "request head timed out", "head_timeout", held.buf as Buffer, held.start, held.end);
  }

  failBody(err: HTTPError, reason: string): void {
    this.body.fail(err, reason);
    this.bodyBroken();
  }

  appTimedOut(limit: number): boolean {
    this.refusal = "app_timeout";
    return this.exchange.timedOut(limit);
  }

  logError(msg: string): void {
    this.exchange.logError(msg);
  }
}

/** A request line for the log: latin-1, with control bytes and backslashes escaped. */
function escapeLine(buf: Uint8Array, s: number, e: number): string {
  let out = "";
  for (let i = s; i < e; i++) {
    const c = buf[i] as number;
    out += c < 0x20 || c === 0x7f || c === 0x5c || c >= 0x80 ? `\\x${c.toString(16).padStart(2, "0")}` : String.fromCharCode(c);
  }
  return out;
}
