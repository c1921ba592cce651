/** @module engine/connection — one socket as a state machine: its events, its state (what its incoming bytes are: engine/intake reads them), request sequencing with its exchange, closing, and the ports its parts see. */

import type { Socket } from "bun";
import type { HTTPError } from "../errors.ts";
import type { RequestParser } from "../http/parser.ts";
import { startsLikeProxyHeader } from "../http/proxy-protocol.ts";
import { logLine } from "../http/request.ts";
import { counters } from "./counters.ts";
import { Deadlines, type DeadlineTarget } from "./deadlines.ts";
import type { ConnectionHost, ConnectionPort, Exchange } from "./exchange.ts";
import { Flow, Pause } from "./flow.ts";
import type { Input } from "./input.ts";
import { Intake, type IntakeHost } from "./intake.ts";
import { libc } from "./libc.ts";
import { Output, type OutputOwner } from "./output.ts";
import type { ProxiedPeer } from "./peer.ts";
import { releaseParser, takeParser } from "./pools.ts";
import { type BodyHost, RequestBody } from "./request-body.ts";
import { State, type StateValue } from "./state.ts";
import { HANDSHAKE_FAILURES, handshakeFailure } from "./tls.ts";

export type ServerSocket = Socket<Connection>;

export class Connection implements OutputOwner, BodyHost, IntakeHost, DeadlineTarget, ConnectionPort {
  readonly socket: ServerSocket;
  readonly host: ConnectionHost;
  readonly parser: RequestParser;
  readonly body: RequestBody;
  readonly out: Output;
  readonly flow: Flow;
  readonly deadlines: Deadlines;
  readonly intake: Intake;
  /** The app side: answers each request (set by the server when the connection is served). */
  exchange!: Exchange;
  state: StateValue = State.HEAD;
  /** A request is at the app (its response is not finished). */
  responding = false;
  /** The app sent 101: once the body has ended, the state is RAW. */
  upgraded = false;
  /** The peer half-closed its side. */
  peerEnded = false;
  /** A TLS connection whose handshake has not finished: it must within timeouts.header of its accept (engine/deadlines). */
  handshaking: boolean;
  /** Closing with a half-close, reading and dropping until the client closes (see endAfterFlush). */
  private lingering = false;
  /** Why the connection refused the last request (a parser code name, "head_timeout", …), or "". */
  private refusal = "";
  /**
   * Why the server cut this connection (terminate's reason, "" when it gave none), or null while
   * it has not: a body or request cut short then is not the client's doing.
   */
  private cutBy: string | null = null;
  /** Index in the server's list of served connections; -1 while not served (waiting for the pool, or closed). */
  slot = -1;
  /** A read callback is running: output is flushed once, when it returns. */
  batching = false;
  /** ConnectionPort: what this connection's PROXY header said (engine/proxy-stage), or null. */
  proxy: ProxiedPeer | null = null;

  private readonly responseDoneBound = (): void => this.responseDone();
  private readonly responseFailedBound = (e: unknown): void => this.responseFailed(e);

  constructor(socket: ServerSocket, host: ConnectionHost) {
    this.socket = socket;
    this.host = host;
    this.parser = takeParser(host.headLimits);
    this.body = new RequestBody(this, host.bodyLimits);
    this.out = new Output(socket, this);
    this.flow = new Flow(socket);
    const now = performance.now() / 1000;
    this.out.lastProgress = now;
    this.deadlines = new Deadlines(now);
    this.intake = new Intake(this);
    this.handshaking = host.tls !== undefined;
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

  // ---- socket events -------------------------------------------------------------------

  onData(chunk: Buffer): void {
    counters.bytesIn += chunk.length;
    if (this.state >= State.CLOSING) return;
    this.deadlines.readStarted();
    this.batching = true;
    this.intake.read(chunk);
    this.batching = false;
    this.out.flush();
    this.deadlines.callbackEnded();
  }

  onDrain(): void {
    this.out.onDrain();
  }

  /**
   * The TLS handshake ended: the connection's bytes may come now. A failed one, or a client
   * certificate that does not verify when the server requires one (Bun 1.4 reports that as a
   * success with the verification error, and leaves the connection open), closes it: counted by
   * reason, and a debug line (bots and scanners fail handshakes all day: not an error).
   */
  onHandshake(success: boolean, error: Error | null): void {
    // Not handshaking: the server cut the connection itself (its handshake deadline, a stop),
    // and Bun reports that as a failed handshake within terminate(); it was counted as a cut.
    if (!this.handshaking) return;
    this.handshaking = false;
    const tls = this.host.tls as { rejectUnauthorized?: boolean } | undefined;
    const refused = success && error !== null && tls?.rejectUnauthorized === true;
    if (success && !refused) return;
    const reason = refused ? HANDSHAKE_FAILURES.indexOf("client_certificate") : handshakeFailure(error);
    counters.handshakeFailed(reason);
    const why = `${refused ? "its certificate did not verify: " : ""}${error?.message ?? "no reason given"}`;
    this.exchange.logDebug(
      `closing connection from ${this.exchange.clientLabel()}: TLS handshake failed (${HANDSHAKE_FAILURES[reason]}: ${why})`,
    );
    this.terminate();
  }

  /**
   * The peer sent FIN: nothing more will come. Answer what is in progress and the pipelined
   * requests received before it, then close: a half-close ends the client's sending, not its
   * reading (RFC 9112 §9.6), and the requests it sent are owed their responses in order.
   */
  onEnd(): void {
    this.peerEnded = true;
    if (this.state >= State.CLOSING) {
      // Lingering: the client has read our FIN and closed its side too; nothing more will come.
      if (this.lingering && !this.closed) this.socket.end();
      return;
    }
    // No raw bytes can follow a FIN; an upgraded app may still write (the peer only half-closed).
    this.body.rawInput?.finish();
    if (this.responding && !this.upgraded) this.exchange.halfClosed();
    this.inputEnded();
  }

  /**
   * After the peer's FIN, with what it sent taken as far as it goes: a body still arriving is
   * cut short, and with no request at the app and none held for a client that has not taken
   * its responses yet (engine/intake), the connection closes.
   */
  private inputEnded(): void {
    if (this.state === State.BODY) {
      this.body.disconnected("closed its side");
      this.state = State.HEAD;
    }
    if (this.upgraded) return;
    if (!this.responding && !this.flow.pausedFor(Pause.OUTPUT)) this.endAfterFlush();
  }

  onClose(): void {
    if (this.state === State.CLOSED) return;
    if (this.state === State.BODY) {
      if (this.cutBy) this.body.cut(this.cutBy);
      else this.body.disconnected("reset the connection");
    }
    this.state = State.CLOSED;
    this.flow.close();
    this.body.closed();
    this.out.close();
    // An exchange still running its app may yet read the parser's fields and the body's bytes:
    // only an idle connection's are let go now, a busy one's when its response ends.
    if (!this.responding) {
      releaseParser(this.parser);
      this.body.responseDone(false);
    } else {
      // The client reset or closed under a request at the app (its response not finished): its
      // access record says so, as one cut mid-body does, unless the server cut it (a deadline,
      // a stop) or its body had failed first. Without it a response cut short was logged as a
      // plain 200 with the bytes sent before the reset, indistinguishable from a complete one.
      if (this.cutBy === null && this.failReason === "") this.refusal = "client_disconnected";
      this.exchange.lost();
    }
    this.intake.release();
    this.host.connectionClosed(this);
  }

  // ---- OutputOwner -----------------------------------------------------------------------

  outputDrained(): void {
    if (this.state === State.CLOSING) this.closeWrite();
    else if (this.state === State.HEAD && !this.responding && !this.batching && this.intake.held.size > 0) {
      // Pipelined requests held while the client did not take the responses before them
      // (engine/intake): go on with them. A head held incomplete meanwhile could not arrive (the
      // server was not reading): its deadline counts from now.
      this.deadlines.headSince = -1;
      this.deadlines.readStarted();
      this.resume();
    }
  }

  outputFailed(): void {
    if (this.state < State.CLOSING) this.state = State.CLOSING;
  }

  /** IntakeHost: the body failed (its reads reject already): the framing is lost, so the connection closes after the response. */
  bodyBroken(): void {
    this.state = State.HEAD;
    if (!this.responding) this.endAfterFlush();
    else this.flow.pause(Pause.INPUT);
  }

  // ---- requests ----------------------------------------------------------------------------

  /** IntakeHost: a complete head is at buf[start…]: hand its request to the exchange. */
  startRequest(buf: Buffer, start: number): void {
    const health = this.host.health;
    if (health?.answer(this, buf, start)) return;
    const p = this.parser;
    this.refusal = "";
    if (p.contentLength > this.host.bodyLimits.maxBody) {
      this.refuse(413, "request body too large", "body_too_large", buf, start, start + p.lineEnd);
      return;
    }
    const host = this.host;
    host.requests++;
    counters.begun++;
    if (host.watch !== null) host.watch.started(buf, start, start + p.lineEnd);
    const hasBody = this.body.begin(p);
    if (hasBody) this.state = State.BODY;
    this.deadlines.requestStarted(this.host.timeouts, hasBody);
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
    this.deadlines.appStarted();
    r.then(this.responseDoneBound, this.responseFailedBound);
  }

  /** An exchange hook threw past its own error handling: the request ends as an app error does, and the connection closes. */
  private responseFailed(e: unknown): void {
    this.exchange.crashed(e);
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
    if (pending) {
      this.state = State.DISCARD;
      this.flow.discarding();
    }
    this.deadlines.responseEnded(this.batching);
    if (!this.batching) this.resume();
  }

  /** ConnectionPort: when the request's bytes arrived, or the response before it ended (engine/deadlines). */
  arrival(): number {
    return this.deadlines.arrival();
  }

  /** ConnectionPort: the last time reading, without a clock read. */
  get lastKnown(): number {
    return this.deadlines.lastKnown;
  }

  /** ConnectionPort: the time now, taken once as a response ends and shared with the idle deadline. */
  finished(): number {
    return this.deadlines.finished();
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
    // Bytes held while the app ran are the new protocol's; inside a read callback, the intake goes on with them.
    if (!this.batching) this.resume();
  }

  /** After an asynchronous response: go on with pipelined bytes held meanwhile. */
  private resume(): void {
    this.flow.resume(Pause.PIPELINE);
    this.batching = true;
    this.intake.readHeld();
    this.batching = false;
    if (this.peerEnded && this.state < State.CLOSING) this.inputEnded();
    this.out.flush();
    this.deadlines.callbackEnded();
  }

  /** IntakeHost: refuse a request: the precise status, a closed connection, an access-log line with the reason. */
  refuse(status: number, message: string, reason: string, buf: Uint8Array, start: number, end: number): void {
    this.refusal = reason;
    // A proxy sends PROXY headers to a bind that reads none (it would have taken the header off
    // before any request): the 400 is right, and the operator is told why every request gets it.
    if (this.proxy === null && startsLikeProxyHeader(buf, start, end))
      this.host.unexpectedProxyHeader(this.exchange.clientLabel());
    this.exchange.refuse(status, message, logLine(buf, start, end));
    this.endAfterFlush();
  }

  // ---- lifecycle -------------------------------------------------------------------------

  /** Read nothing more; close once queued output is written (lingering when the client may still be sending). */
  endAfterFlush(): void {
    if (this.state >= State.CLOSING) return;
    // Bytes the client may still be sending: a body not read to its end, the rest of a refused
    // or broken request, pipelined requests. Closed on them, the socket would answer them with a
    // reset, which can destroy the response before the client reads it (RFC 9112 §9.6).
    this.lingering =
      !this.peerEnded && (this.state !== State.HEAD || this.intake.held.size > 0 || this.refusal !== "" || this.body.failed);
    this.state = State.CLOSING;
    // The coarse clock read as the end of its tick; set again as the output is out (closeWrite).
    this.deadlines.endedAt = this.host.now + 1;
    this.intake.release();
    this.out.flush();
    if (this.out.queued === 0 && !this.closed) this.closeWrite();
  }

  /**
   * The response is out: close, or linger (RFC 9112 §9.6, nginx's lingering_close): send our FIN
   * with shutdown(2) and read and drop what comes until the client closes its side, for at most
   * the linger deadline (engine/deadlines).
   */
  private closeWrite(): void {
    // The linger deadline counts from here, when the response is out, not from the close decision.
    this.deadlines.endedAt = this.host.now + 1;
    if (!this.lingering || this.peerEnded) {
      this.socket.end();
      return;
    }
    this.socket.shutdown();
    this.flow.dropAll();
  }

  /**
   * Close now, dropping unsent output; a handshake in progress is given up (not a client's
   * failure). `reason` (such as "shutdown") names why the server cut a request in flight: its
   * access record's reason, and what a body read it fails says instead of blaming the client.
   */
  terminate(reason = ""): void {
    this.handshaking = false;
    if (this.closed) return;
    this.cutBy = reason;
    if (reason !== "" && this.responding && this.refusal === "") this.refusal = reason;
    this.socket.terminate();
  }

  /**
   * The engine cannot keep this connection after the current response (RFC 9112 §9.3, §9.6):
   * the peer half-closed, the body failed, the server is draining, stopping or wants the slot, or a body
   * is left that would have to be read and dropped, or that the client was never told to send.
   * `appMayRead`: asked for a head that goes out while the app still produces its response (a
   * stream), so it may yet read the rest of its body (a streamed echo, an upload proxied on):
   * only a body the client was never told to send counts then. Whether too much is left is
   * decided as the response ends, and the connection then closes unannounced, which RFC 9112
   * §9.5 allows at any time; announcing it at the head closed every streamed echo's connection.
   */
  mustClose(appMayRead = false): boolean {
    const host = this.host;
    // A half-closed client's pipelined requests received before its FIN are answered first (onEnd).
    if ((this.peerEnded && this.intake.held.size === 0) || this.body.failed || host.stopping || host.draining || host.crowded)
      return true;
    if (this.state !== State.BODY) return false;
    return appMayRead ? this.body.unsolicited : this.body.blocksReuse;
  }

  /**
   * Between requests: nothing is being answered, read or held, and the connection is not
   * closing. Only such a connection may be closed without cutting a request.
   */
  get idle(): boolean {
    return this.state === State.HEAD && !this.responding && this.intake.held.size === 0;
  }

  /** When bytes last arrived or a response ended (performance.now() seconds): how long an idle connection has been idle. */
  get lastActive(): number {
    return this.deadlines.lastRead;
  }

  /**
   * DeadlineTarget: bytes have reached the kernel that no read callback has delivered yet, such
   * as a request sent while the event loop was busy (another request's app): its read callback
   * comes on this turn of the loop. Peeked (recv(2) MSG_PEEK), so they stay to be read. An idle
   * connection closed on them is reset under the request (close(2) with unread bytes sends RST),
   * which a proxy reusing it answers 502. False where the descriptor or the C library is not at
   * hand, for a peer's FIN, which no request follows, and while reading is paused: bytes that
   * no read callback will deliver must not hold the connection open past its deadline.
   */
  requestWaiting(): boolean {
    if (this.flow.pausedFor(Pause.OUTPUT | Pause.INPUT | Pause.PIPELINE | Pause.BUDGET)) return false;
    const fd = (this.socket as unknown as { fd?: unknown }).fd;
    const c = libc();
    return c !== null && typeof fd === "number" && fd >= 0 && c.peek(fd) > 0;
  }

  /** Close the connection if it is idle (graceful stop, or a slot wanted for a new connection), unless its next request is already waiting. */
  closeIfIdle(): void {
    if (this.idle) {
      if (!this.requestWaiting()) this.endAfterFlush();
      return;
    }
    // Lingering with its response out (a graceful stop's idle time is over): closed as before
    // lingering, which resets the client only if it still sends.
    if (this.lingering && this.out.queued === 0 && !this.closed) this.socket.end();
  }

  /** Called once a second by the server's timer: the deadline of each state (engine/deadlines). */
  tick(now: number): void {
    this.deadlines.check(this, now, this.host.timeouts, this.host.limits);
  }

  // ---- DeadlineTarget ----------------------------------------------------------------------

  refuseSlowHead(): void {
    const held = this.intake.held;
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
}
