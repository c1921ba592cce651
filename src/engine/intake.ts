/** @module engine/intake — a connection's incoming bytes by its state: request heads parsed (a head split across reads, and pipelined requests while a response is in progress, held), bodies decoded or dropped, an upgraded connection's raw bytes; each complete head handed to the connection. */

import { PARSE_ERRORS, PARSE_REASONS } from "../http/codes.ts";
import type { RequestParser } from "../http/parser.ts";
import type { Deadlines } from "./deadlines.ts";
import type { Exchange } from "./exchange.ts";
import { type Flow, Pause } from "./flow.ts";
import { HeldBytes } from "./held.ts";
import type { Input } from "./input.ts";
import type { Output } from "./output.ts";
import { RELEASE_READ, releaseRead } from "./pools.ts";
import { BODY_FAILED, type RequestBody } from "./request-body.ts";
import { State, type StateValue } from "./state.ts";

/** Pipelined bytes held while a response is in progress, above which reading pauses. */
const PIPELINE_HIGH_WATER = 64 * 1024;

/** What an Intake needs of its connection. */
export interface IntakeHost {
  /** What the incoming bytes are (engine/state); a body that ends moves it on to HEAD or RAW. */
  state: StateValue;
  /** A request is at the app: heads that arrive meanwhile wait. */
  readonly responding: boolean;
  /** The app sent 101: after the request's body, the bytes are the new protocol's. */
  readonly upgraded: boolean;
  readonly parser: RequestParser;
  readonly body: RequestBody;
  readonly flow: Flow;
  /** Its responses: a pipelined request waits while they are over the high-water mark. */
  readonly out: Output;
  readonly deadlines: Deadlines;
  readonly exchange: Exchange;
  /** A complete head is at buf[start…]: start its request. */
  startRequest(buf: Buffer, start: number): void;
  /** Refuse the head at buf[start, end) with a status; the connection closes after it. */
  refuse(status: number, message: string, reason: string, buf: Uint8Array, start: number, end: number): void;
  /** The body failed (its reads reject already): its framing is lost. */
  bodyBroken(): void;
  endAfterFlush(): void;
}

export class Intake {
  private readonly host: IntakeHost;
  /** A head split across reads, or pipelined requests waiting for the response in progress. */
  readonly held = new HeldBytes();
  /**
   * Bytes of the read being processed that nothing refers to any more: parsed request heads
   * (the handler has made its strings) and body bytes copied into a waiting read's buffer.
   */
  private consumedBytes = 0;

  constructor(host: IntakeHost) {
    this.host = host;
  }

  /** A read: as much of it as the states allow, in order; the rest is held. */
  read(chunk: Buffer): void {
    const host = this.host;
    if (host.state === State.RAW) {
      host.body.push(host.body.rawInput as Input, chunk, false);
    } else if (this.held.size > 0) {
      const held = this.held;
      held.append(chunk);
      this.process(held.buf as Buffer, held.start, held.end);
    } else {
      this.consumedBytes = 0;
      this.process(chunk, 0, chunk.length);
      if (this.consumedBytes === chunk.length && chunk.length >= RELEASE_READ) releaseRead(chunk);
    }
  }

  /** After a response that outlived its read: go on with the bytes held meanwhile. */
  readHeld(): void {
    const held = this.held;
    if (held.size > 0) this.process(held.buf as Buffer, held.start, held.end);
  }

  /** Bytes of the current read nothing refers to any more (copied into a waiting read's buffer). */
  consumed(n: number): void {
    this.consumedBytes += n;
  }

  /** Let go of what is held (the connection is closing). */
  release(): void {
    this.held.release();
  }

  /** Hold buf[pos, end) for later; a response in progress with much held pauses reading. */
  private hold(buf: Buffer, pos: number, end: number): void {
    this.held.hold(buf, pos, end);
    if (this.host.responding && end - pos > PIPELINE_HIGH_WATER) this.host.flow.pause(Pause.PIPELINE);
  }

  /** Take buf[pos, end) as far as the states allow: heads, bodies, raw bytes, in order. */
  private process(buf: Buffer, pos: number, end: number): void {
    const host = this.host;
    while (pos < end) {
      switch (host.state) {
        case State.BODY:
        case State.DISCARD:
          pos = this.feedBody(buf, pos, end);
          if (pos < 0) {
            this.release();
            return;
          }
          continue;
        case State.RAW:
          // After a 101 and the request's body, the bytes are the new protocol's, unframed.
          host.body.push(host.body.rawInput as Input, buf.subarray(pos, end), this.held.transient(buf));
          this.release();
          return;
        case State.HEAD:
          // The next request waits for the one at the app, and for a client that has not taken
          // the responses before it (Connection.outputDrained goes on with it).
          if (host.responding || host.out.backedUp()) {
            this.hold(buf, pos, end);
            return;
          }
          pos = this.parseHead(buf, pos, end);
          if (pos < 0) return;
          continue;
        default:
          this.release();
          return;
      }
    }
    this.release();
  }

  /** Parse a request head at buf[pos…] and start its request; -1 when nothing more can be taken now. */
  private parseHead(buf: Buffer, pos: number, end: number): number {
    const host = this.host;
    const n = host.parser.execute(buf, pos, end);
    if (n === 0) {
      // The head's first bytes came in this read callback: its deadline counts from them.
      host.deadlines.headStarted();
      this.hold(buf, pos, end);
      return -1;
    }
    if (n < 0) {
      const [status, message] = PARSE_ERRORS[-n] as readonly [number, string];
      host.refuse(status, message, PARSE_REASONS[-n] as string, buf, pos, end);
      this.release();
      return -1;
    }
    host.deadlines.headSince = -1;
    this.consumedBytes += n;
    if (host.parser.method === "CONNECT") {
      // A valid CONNECT asks for a tunnel (RFC 9110 §9.3.6), which an origin server does not make.
      host.refuse(501, "CONNECT is not supported", "connect_not_supported", buf, pos, pos + n);
      this.release();
      return -1;
    }
    host.startRequest(buf, pos);
    return pos + n;
  }

  /** Body bytes: into wsgi.input (BODY), or read and dropped (DISCARD); -1 when nothing more can be taken now. */
  private feedBody(buf: Buffer, pos: number, end: number): number {
    const host = this.host;
    const body = host.body;
    const next = body.feed(buf, pos, end, host.state === State.DISCARD, this.held.transient(buf));
    if (next === BODY_FAILED) {
      host.bodyBroken();
      return -1;
    }
    if (next < 0) {
      host.endAfterFlush();
      return -1;
    }
    if (body.done) {
      if (body.decoder.chunked && host.state === State.BODY) host.exchange.trailers(body.decoder.trailers);
      host.state = host.upgraded ? State.RAW : State.HEAD;
    }
    return next;
  }
}
