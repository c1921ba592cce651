/** @module engine/deadlines — the deadline of each connection state, checked once a tick: head, keep-alive, body stall and rate, response stall and rate, upgraded idle, the app's time, linger. */

import type { Limits, Timeouts } from "../config/limits.ts";
import { HTTPError } from "../errors.ts";
import type { Output } from "./output.ts";
import { RateWindow } from "./rate.ts";
import { State, type StateValue } from "./state.ts";

/** Seconds a closing connection may linger half-closed before it is cut. */
const LINGER = 5;

/** What the deadlines read of a connection, and what they make it do. */
export interface DeadlineTarget {
  readonly state: StateValue;
  readonly responding: boolean;
  /** When bytes last arrived (performance.now() seconds). */
  readonly lastRead: number;
  /** Bytes of a request head held, waiting for the rest. */
  readonly heldBytes: number;
  readonly out: Output;
  /** Body bytes received so far. */
  readonly bodyReceived: number;
  /** Reading is paused because the app has not read (input) or the process's budget is spent. */
  readonly pausedForInput: boolean;
  readonly pausedForBudget: boolean;
  /** 408 to a head that never completed. */
  refuseSlowHead(): void;
  /** The body cannot be completed: its reads reject with `err`, the connection closes after the response. */
  failBody(err: HTTPError, reason: string): void;
  /** The app's time is up: true when a 503 could still be sent. */
  appTimedOut(limit: number): boolean;
  endAfterFlush(): void;
  terminate(): void;
  /** The peer, for messages: "host:port" or the socket's path. */
  readonly peer: string;
  logError(msg: string): void;
}

/** One connection's deadlines: when things started, and the request's own limits. */
export class Deadlines {
  headSince = -1;
  /** When the connection started closing (coarse clock, read as the end of its tick). */
  endedAt = 0;
  /** When the request at the app started; set only for a response that outlives its read callback (no tick sees another). */
  appSince = 0;
  private appLimit = 0;
  private upgradedLimit = 0;
  private readonly bodyRate = new RateWindow();
  private readonly responseRate = new RateWindow();

  /** A request reached the app: its limits start as the server's. */
  requestStarted(t: Timeouts, hasBody: boolean): void {
    this.appLimit = t.app;
    this.upgradedLimit = t.upgraded;
    if (hasBody) this.bodyRate.reset();
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
        if (now >= this.endedAt + LINGER) c.terminate();
        return;
    }
    if (c.responding && this.appLimit > 0 && now - this.appSince >= this.appLimit) {
      // The app's time is up (uWSGI's harakiri): 503 if nothing was sent, else a cut.
      if (c.appTimedOut(this.appLimit)) c.endAfterFlush();
      else c.terminate();
      return;
    }
    if (c.out.queued === 0) this.responseRate.reset();
    else if (this.outputStalled(c, now, t, limits)) return;
    switch (c.state) {
      case State.BODY:
        this.body(c, now, t, limits);
        return;
      case State.DISCARD:
        if (t.body > 0 && now - c.lastRead >= t.body) c.endAfterFlush();
        return;
      case State.RAW: {
        // A coarse-clock time is read as the end of its tick: the deadline is never early.
        const idle = now - Math.max(c.lastRead, c.out.lastSend + 1);
        if (this.upgradedLimit > 0 && idle >= this.upgradedLimit) {
          c.logError(`closing upgraded connection from ${c.peer}: idle for ${this.upgradedLimit}s`);
          c.terminate();
        }
        return;
      }
      case State.HEAD:
        if (c.responding) return;
        if (this.headSince >= 0 && c.heldBytes > 0) {
          if (t.header > 0 && now - this.headSince >= t.header) c.refuseSlowHead();
          return;
        }
        if (t.keepAlive > 0 && now - c.lastRead >= t.keepAlive) c.endAfterFlush();
        return;
    }
  }

  /**
   * Output waits for the client: cut it when the kernel took nothing for `timeouts.write`, or
   * took less than `limits.min_response_rate` over its grace. Progress is what the kernel
   * accepts (tried here once a tick), not drain events: a steady slow reader frees socket
   * buffer space in pieces too small to wake a drain.
   */
  private outputStalled(c: DeadlineTarget, now: number, t: Timeouts, limits: Limits): boolean {
    const out = c.out;
    out.poke();
    let why = "";
    if (t.write > 0 && now - out.lastProgress >= t.write) why = `no response bytes accepted for ${t.write}s`;
    else if (this.responseRate.tooSlow(now, out.accepted, limits.minResponseRate, Math.max(1, t.minResponseRateGrace))) {
      why = `reading the response slower than ${limits.minResponseRate} bytes/s`;
    }
    if (why === "") return false;
    c.logError(`closing connection from ${c.peer}: ${why}`);
    c.terminate();
    return true;
  }

  /** A body that stalls for `timeouts.body`, or comes slower than `limits.min_body_rate`, gets 408. */
  private body(c: DeadlineTarget, now: number, t: Timeouts, limits: Limits): void {
    const stalled = t.body > 0 && now - c.lastRead >= t.body;
    if (c.pausedForBudget && stalled) {
      // The server, not the client, is why the body is not read: a request that cannot progress
      // within its deadline is told so (RFC 9110 §15.6.4) rather than left waiting.
      c.failBody(new HTTPError(503, "the server is holding too many request bodies (limits.buffered_bytes)"), "buffered_bytes");
      return;
    }
    if (c.pausedForInput || c.pausedForBudget) {
      // Not reading is the app's or the server's doing, not the client's.
      this.bodyRate.reset();
      return;
    }
    if (stalled) c.failBody(new HTTPError(408, "request body timed out"), "body_timeout");
    else if (this.bodyRate.tooSlow(now, c.bodyReceived, limits.minBodyRate, Math.max(1, t.minBodyRateGrace))) {
      c.failBody(new HTTPError(408, "request body too slow"), "body_too_slow");
    }
  }
}
