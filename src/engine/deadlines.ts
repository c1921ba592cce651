/** @module engine/deadlines — when a connection's events happened (at most one clock read per read callback unless the exchange times its request), and the deadline of each of its states, checked once a tick: TLS handshake, head, keep-alive, body stall and rate (an answered body's rest too), response stall and rate (a closing connection's last response too), upgraded idle, the app's time, linger. */

import type { Limits, Timeouts } from "../config/limits.ts";
import { HTTPError } from "../errors.ts";
import { counters, Timeout } from "./counters.ts";
import type { Exchange } from "./exchange.ts";
import { type Flow, Pause } from "./flow.ts";
import type { Intake } from "./intake.ts";
import type { Output } from "./output.ts";
import { RateAccount, RateWindow, READER_STEP } from "./rate.ts";
import type { RequestBody } from "./request-body.ts";
import { State, type StateValue } from "./state.ts";

/** Seconds a closing connection may linger half-closed before it is cut. */
const LINGER = 5;

/** What the deadlines read of a connection, and what they make it do. */
export interface DeadlineTarget {
  readonly state: StateValue;
  readonly responding: boolean;
  /** A TLS connection whose handshake has not finished. */
  readonly handshaking: boolean;
  /** What is held of a request head, waiting for the rest. */
  readonly intake: Intake;
  /** The body's bytes received so far. */
  readonly body: RequestBody;
  readonly out: Output;
  /** Why reading is paused: the app has not read (input), the process's budget is spent. */
  readonly flow: Flow;
  /** Names the peer in messages, and writes them to the error log. */
  readonly exchange: Exchange;
  /** 408 to a head that never completed. */
  refuseSlowHead(): void;
  /** The body cannot be completed: its reads reject with `err`, the connection closes after the response. */
  failBody(err: HTTPError, reason: string): void;
  /** The app's time is up: true when a 503 could still be sent. */
  appTimedOut(limit: number): boolean;
  /** Bytes wait in the kernel that no read callback has delivered yet (the next request, on its way in). */
  requestWaiting(): boolean;
  endAfterFlush(): void;
  terminate(): void;
}

/** One connection's deadlines: when things happened, and the request's own limits. */
export class Deadlines {
  /**
   * When bytes last arrived, or the connection last went idle, in seconds of performance.now():
   * never before the event, so no deadline measured from it fires early. Read lazily: the first
   * time a read callback needs the time (a timed request's arrival, a head that begins, an app
   * that goes on past the callback), else as the callback returns; a response that ends untimed
   * in between makes it be read again as the callback returns. A request nobody times costs one
   * clock read per callback, however many it answers.
   */
  lastRead: number;
  /** lastRead was read at or after every event so far of the current read callback: it stands as the callback returns. */
  private current = false;
  /** When the exchange read the clock as the current response ended (see finished()); -1 until it does. */
  private finishedAt = -1;
  /** When the head being read began to arrive; -1 when none is. */
  headSince = -1;
  /** When the connection's last output was out and it began to close or linger (coarse clock, read as the end of its tick). */
  endedAt = 0;
  /** When the request at the app started; set only for a response that outlives its read callback (no tick sees another). */
  private appSince = 0;
  private appLimit = 0;
  private upgradedLimit = 0;
  private readonly bodyRate = new RateWindow();
  private readonly responseRate = new RateAccount();

  constructor(now: number) {
    this.lastRead = now;
  }

  /** A read callback starts: its bytes arrived now, after lastRead. */
  readStarted(): void {
    this.current = false;
  }

  /** As a read callback (or a run of held requests) returns: lastRead, read now unless it stands. */
  callbackEnded(): void {
    if (!this.current) this.stamp();
  }

  private stamp(): void {
    this.current = true;
    this.lastRead = performance.now() / 1000;
  }

  /** The time at or after the current read callback's events so far: read once, the first time it is asked for. */
  private now(): number {
    if (!this.current) this.stamp();
    return this.lastRead;
  }

  /** When the current request's bytes arrived (read now, once per callback), or the response before it ended. */
  arrival(): number {
    return this.now();
  }

  /** The connection's last reading, without reading the clock: at or before the current request's arrival. */
  get lastKnown(): number {
    return this.lastRead;
  }

  /** The time now, taken as a response ends and shared: the exchange logs it, the idle deadline counts from it. */
  finished(): number {
    this.finishedAt = performance.now() / 1000;
    return this.finishedAt;
  }

  /** A head began to arrive in this read callback (and is not complete): its deadline counts from its bytes. */
  headStarted(): void {
    if (this.headSince < 0) this.headSince = this.now();
  }

  /** A request reached the app: its limits start as the server's. */
  requestStarted(t: Timeouts, hasBody: boolean): void {
    this.finishedAt = -1;
    this.appLimit = t.app;
    this.upgradedLimit = t.upgraded;
    if (hasBody) this.bodyRate.reset();
  }

  /** The response goes on past its read callback: the app's time counts from now, never before its request's bytes. */
  appStarted(): void {
    this.appSince = this.now();
  }

  /**
   * The response ended: idle from then. The exchange's clock read if it took one; else, inside a
   * read callback (`batching`), one read as it returns, however many responses it ends; else now.
   */
  responseEnded(batching: boolean): void {
    if (this.finishedAt >= 0) {
      this.lastRead = this.finishedAt;
      this.current = true;
    } else if (batching) this.current = false;
    else this.stamp();
  }

  /** environ["bunwsgi.set_timeout"]: "app" (0: none) or "upgraded". */
  setLimit(kind: "app" | "upgraded", seconds: number): void {
    if (kind === "app") this.appLimit = seconds;
    else this.upgradedLimit = seconds;
  }

  /** Check every deadline of `c`'s state at `now`; a deadline fires at the first tick at or after it. */
  check(c: DeadlineTarget, now: number, t: Timeouts, limits: Limits): void {
    switch (c.state) {
      case State.CLOSED:
        return;
      case State.CLOSING:
        // The last response is still going out: the write deadlines hold, and the linger counts
        // only once it is out (endedAt is then set again). Counted from the close decision, the
        // linger cut a `Connection: close` response to any client that took over 5 s to read it.
        if (c.out.queued > 0) {
          this.outputStalled(c, now, t, limits);
          return;
        }
        if (now >= this.endedAt + LINGER) {
          counters.timedOut(Timeout.LINGER);
          c.exchange.logDebug(
            `cut connection from ${c.exchange.clientLabel()}: it did not close its side within ${LINGER}s of ours`,
          );
          c.terminate();
        }
        return;
    }
    // A body the client stalls or trickles is the client's fault even while the app waits for it:
    // its 408 goes first, not a 503 blaming the app whose deadline falls at the same tick.
    if (c.state === State.BODY && this.body(c, now, t, limits)) return;
    if (c.responding && this.appLimit > 0 && now - this.appSince >= this.appLimit) {
      // The app's time is up (uWSGI's harakiri): 503 if nothing was sent, else a cut.
      counters.timedOut(Timeout.APP);
      if (c.appTimedOut(this.appLimit)) c.endAfterFlush();
      else c.terminate();
      return;
    }
    if (c.out.queued === 0) this.responseRate.reset();
    else if (this.outputStalled(c, now, t, limits)) return;
    switch (c.state) {
      case State.DISCARD:
        this.discard(c, now, t, limits);
        return;
      case State.RAW: {
        // A coarse-clock time is read as the end of its tick: the deadline is never early.
        const idle = now - Math.max(this.lastRead, c.out.lastSend + 1);
        if (this.upgradedLimit > 0 && idle >= this.upgradedLimit) {
          counters.timedOut(Timeout.UPGRADED);
          c.exchange.logInfo(`closing upgraded connection from ${c.exchange.clientLabel()}: idle for ${this.upgradedLimit}s`);
          c.terminate();
        }
        return;
      }
      case State.HEAD:
        if (c.handshaking) {
          // No bytes reach the connection before its handshake is done (lastRead is its accept):
          // a client that stalls or trickles it is cut as a PROXY header's is, at timeouts.header,
          // and logged as that is, at debug level (a flood of them must not flood the log).
          if (t.header > 0 && now - this.lastRead >= t.header) {
            counters.timedOut(Timeout.HANDSHAKE);
            c.exchange.logDebug(
              `closing connection from ${c.exchange.clientLabel()}: TLS handshake not done within ${t.header}s`,
            );
            c.terminate();
          }
          return;
        }
        // Reading is paused for a client that has not taken its responses (the write deadlines
        // above judge it), with its next requests held: neither their head nor idle time runs.
        if (c.responding || c.flow.pausedFor(Pause.OUTPUT)) return;
        if (this.headSince >= 0 && c.intake.held.size > 0) {
          if (t.header > 0 && now - this.headSince >= t.header) {
            counters.timedOut(Timeout.HEAD);
            c.refuseSlowHead();
          }
          return;
        }
        if (t.keepAlive > 0 && now - this.lastRead >= t.keepAlive) {
          // A request sent in time may wait unread: this tick came while the loop was busy (an
          // app holding it), and lastRead is when bytes were last read, not when they came. It
          // is read on this turn of the loop; closed now, the connection was reset under it.
          if (c.requestWaiting()) return;
          counters.timedOut(Timeout.KEEP_ALIVE);
          c.exchange.logDebug(`closed idle connection from ${c.exchange.clientLabel()}: no request for ${t.keepAlive}s`);
          c.endAfterFlush();
        }
        return;
    }
  }

  /**
   * Output waits for the client: cut it when the kernel took nothing for `timeouts.write`, or
   * fell behind `limits.min_response_rate` by more than its grace's worth of bytes (at least
   * READER_STEP: a slow reader's kernel takes bytes in steps). Progress is every byte the kernel
   * accepts (Output.accepted; tried here once a tick), not drain events: a steady slow reader
   * frees socket buffer space in pieces too small to wake a drain. The rate runs on a clock
   * that stops while the queue stands empty (Output.emptySeconds): the client had taken all it
   * was offered and the app had not written more, whether or not a tick fell in that time.
   */
  private outputStalled(c: DeadlineTarget, now: number, t: Timeouts, limits: Limits): boolean {
    const out = c.out;
    out.poke();
    if (out.queued === 0) {
      // The kernel took all there was: the client keeps up with what the app offers (a queue's
      // last bytes, while the app waits for it to empty), however few bytes that was.
      this.responseRate.reset();
      return false;
    }
    let why = "";
    if (t.write > 0 && now - out.lastProgress >= t.write) {
      why = `no response bytes accepted for ${t.write}s`;
      counters.timedOut(Timeout.WRITE);
    } else if (
      this.responseRate.tooSlow(
        now - out.emptySeconds(now),
        out.accepted,
        limits.minResponseRate,
        Math.max(limits.minResponseRate * t.minResponseRateGrace, READER_STEP),
      )
    ) {
      why = `reading the response slower than ${limits.minResponseRate} bytes/s`;
      counters.timedOut(Timeout.RESPONSE_RATE);
    }
    if (why === "") return false;
    c.exchange.logInfo(`closing connection from ${c.exchange.clientLabel()}: ${why}`);
    c.terminate();
    return true;
  }

  /**
   * A body that stalls for `timeouts.body`, or comes slower than `limits.min_body_rate`, gets
   * 408. The rate runs on a clock that stops while reading is held for the app or the server
   * (Flow.heldSeconds), including holds that begin and end between two ticks.
   */
  private body(c: DeadlineTarget, now: number, t: Timeouts, limits: Limits): boolean {
    const stalled = t.body > 0 && now - this.lastRead >= t.body;
    const flow = c.flow;
    if (flow.pausedFor(Pause.BUDGET) && stalled) {
      // The server, not the client, is why the body is not read: a request that cannot progress
      // within its deadline is told so (RFC 9110 §15.6.4) rather than left waiting.
      counters.timedOut(Timeout.BODY_BUDGET);
      c.failBody(new HTTPError(503, "the server is holding too many request bodies (limits.buffered_bytes)"), "buffered_bytes");
      return true;
    }
    switch (this.bodyLate(c, now, t, limits, stalled)) {
      case Timeout.BODY:
        c.failBody(new HTTPError(408, "request body timed out"), "body_timeout");
        return true;
      case Timeout.BODY_RATE:
        c.failBody(new HTTPError(408, "request body too slow"), "body_too_slow");
        return true;
    }
    return false;
  }

  /**
   * The body's deadlines (stall, then rate), counted: Timeout.BODY or Timeout.BODY_RATE when one
   * has passed, else -1. Not reading is not the client's doing while the app or the server holds it.
   */
  private bodyLate(c: DeadlineTarget, now: number, t: Timeouts, limits: Limits, stalled: boolean): number {
    const flow = c.flow;
    if (flow.pausedFor(Pause.INPUT | Pause.BUDGET)) {
      this.bodyRate.reset();
      return -1;
    }
    if (stalled) {
      counters.timedOut(Timeout.BODY);
      return Timeout.BODY;
    }
    if (
      this.bodyRate.tooSlow(
        now - flow.heldSeconds(now),
        c.body.decoder.received,
        limits.minBodyRate,
        Math.max(1, t.minBodyRateGrace),
      )
    ) {
      counters.timedOut(Timeout.BODY_RATE);
      return Timeout.BODY_RATE;
    }
    return -1;
  }

  /**
   * The rest of an answered request's body, read and dropped to keep the connection, has the
   * body's deadlines too: stalled for `timeouts.body`, or slower than `limits.min_body_rate`
   * (its window runs on from the request's start), the connection closes. Without the rate a
   * client sending a byte just inside `timeouts.body` held the connection for as long as
   * MAX_DISCARD bytes took at that pace (days).
   */
  private discard(c: DeadlineTarget, now: number, t: Timeouts, limits: Limits): void {
    const late = this.bodyLate(c, now, t, limits, t.body > 0 && now - this.lastRead >= t.body);
    if (late < 0) return;
    const why =
      late === Timeout.BODY
        ? `the rest of the request body stalled for ${t.body}s`
        : `the rest of the request body came slower than ${limits.minBodyRate} bytes/s`;
    c.exchange.logInfo(`closing connection from ${c.exchange.clientLabel()}: ${why}`);
    c.endAfterFlush();
  }
}
