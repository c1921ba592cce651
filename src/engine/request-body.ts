/** @module engine/request-body — a connection's request bodies: decoded into wsgi.input (and an upgrade's raw stream), 100 Continue on the first read, input flow control, and the errors a body that cannot be completed gives its reads. */

import { ClientDisconnected, ConnectionClosedError, HTTPError } from "../errors.ts";
import { BodyDecoder, type BodyLimits } from "../http/body.ts";
import { BODY_ERRORS, BODY_REASONS } from "../http/codes.ts";
import type { RequestParser } from "../http/parser.ts";
import { isUpgradeRequest } from "../http/request.ts";
import { budget } from "./budget.ts";
import { type Flow, Pause } from "./flow.ts";
import { Input, type InputOwner } from "./input.ts";
import type { Intake } from "./intake.ts";
import type { Output } from "./output.ts";

/** What a RequestBody needs of its connection. */
export interface BodyHost {
  readonly parser: RequestParser;
  readonly out: Output;
  readonly closed: boolean;
  /** The response head is out: a 100 Continue would come too late. */
  readonly headersSent: boolean;
  /** Reading stops while unread input is over its high-water mark or the process's budget is spent. */
  readonly flow: Flow;
  /** Counts the bytes of the current read that nothing refers to any more (copied into a waiting read). */
  readonly intake: Intake;
}

/** Unread request-body bytes above which reading pauses until the app reads. */
export const INPUT_HIGH_WATER = 256 * 1024;
const INPUT_LOW_WATER = 64 * 1024;
/** Unread body bytes the server will read and drop after a response to keep the connection. */
export const MAX_DISCARD = 256 * 1024;

/** What feed() returns besides a position: the body failed, or there was too much of it to drop. */
export const BODY_FAILED = -1;
export const DISCARD_TOO_LONG = -2;

const EMPTY_INPUT = Input.empty();

export class RequestBody implements InputOwner {
  private readonly host: BodyHost;
  readonly decoder: BodyDecoder;
  /** The current request's wsgi.input. */
  input: Input = EMPTY_INPUT;
  /**
   * An upgrade request's stream of bytes after its body (environ "bunwsgi.raw_input"); null
   * for any other request. It starts once the app has sent 101 and the body has ended.
   */
  rawInput: Input | null = null;
  /** The body was malformed, too large, too slow or cut: the connection closes after the response. */
  failed = false;
  /** Why it failed (a BodyError code name, "body_timeout", "client_disconnected"), or "". */
  failReason = "";
  expectContinue = false;
  continueSent = false;
  private discarded = 0;

  constructor(host: BodyHost, limits: BodyLimits) {
    this.host = host;
    this.decoder = new BodyDecoder(limits);
  }

  /** Set up the body of the request just parsed; true when it has one (RFC 9112 §6.3). */
  begin(p: RequestParser): boolean {
    this.discarded = 0;
    this.failed = false;
    this.failReason = "";
    this.continueSent = false;
    // An upgrade request's body is framed like any other; its raw stream is a second Input.
    this.rawInput = isUpgradeRequest(p) ? new Input(this) : null;
    let has = true;
    if (p.chunked) {
      this.decoder.startChunked();
      this.input = new Input(this);
    } else if (p.contentLength > 0) {
      this.decoder.startLength(p.contentLength);
      this.input = new Input(this, p.contentLength);
    } else {
      this.input = EMPTY_INPUT;
      has = false;
    }
    this.expectContinue = p.expectContinue && has;
    return has;
  }

  /**
   * Decode buf[pos, end) into wsgi.input, or drop it (`discard`: an answered request's rest).
   * Returns the new position, BODY_FAILED or DISCARD_TOO_LONG; `done` once the body has ended.
   */
  feed(buf: Buffer, pos: number, end: number, discard: boolean, transient: boolean): number {
    const d = this.decoder;
    const n = d.execute(buf, pos, end);
    if (n < 0) {
      const [status, message] = BODY_ERRORS[-n] as readonly [number, string];
      this.fail(new HTTPError(status, message), BODY_REASONS[-n] as string);
      return BODY_FAILED;
    }
    if (d.dataEnd > d.dataStart) {
      if (discard) {
        this.discarded += d.dataEnd - d.dataStart;
        if (this.discarded > MAX_DISCARD) return DISCARD_TOO_LONG;
      } else {
        this.push(this.input, buf.subarray(d.dataStart, d.dataEnd), transient);
      }
    }
    if (d.done) this.input.finish();
    return pos + n;
  }

  get done(): boolean {
    return this.decoder.done;
  }

  /** Bytes for an Input; unread input above the mark pauses reading. */
  push(input: Input, view: Uint8Array, copy: boolean): void {
    if (input.push(view, copy)) this.host.intake.consumed(view.length);
    // Unless the app is waiting for more than that (read() to the end of a large body): then
    // its own request is what bounds the buffer, and the process's budget bounds them all.
    if (input.pending > INPUT_HIGH_WATER && !input.hungry) this.host.flow.pause(Pause.INPUT);
    if (budget.exhausted) this.host.flow.waitForBudget();
  }

  /** The body cannot be completed: every read it cannot satisfy rejects with `err`. */
  fail(err: Error, reason: string): void {
    this.failReason = reason;
    this.failed = true;
    this.input.fail(err);
  }

  /** The client ended (FIN) or reset the connection before the body was complete (RFC 9112 §8). */
  disconnected(how: string): void {
    const got = this.decoder.received;
    const expected = this.decoder.chunked ? -1 : this.host.parser.contentLength;
    const err = new ClientDisconnected(
      `client ${how} before the request body was complete (${this.receivedText()})`,
      got,
      expected,
    );
    this.fail(err, "client_disconnected");
  }

  /**
   * The server cut the connection before the body was complete (`reason`: why, such as
   * "shutdown"): the client did not leave, so the reads reject with a ConnectionClosedError
   * that says so, never a ClientDisconnected that would blame it.
   */
  cut(reason: string): void {
    const err = new ConnectionClosedError(
      `the server closed the connection (${reason}) before the request body was complete (${this.receivedText()})`,
    );
    this.fail(err, reason);
  }

  /** "received 3 of 10 bytes", "received 5 bytes of a chunked body". */
  private receivedText(): string {
    const got = this.decoder.received;
    return this.decoder.chunked
      ? `received ${got} bytes of a chunked body`
      : `received ${got} of ${this.host.parser.contentLength} bytes`;
  }

  /** The response is done: a body still coming will be dropped, unread input too (reading goes on), and an unused raw stream ends. */
  responseDone(bodyPending: boolean): void {
    const raw = this.rawInput;
    if (raw !== null) {
      raw.finish();
      raw.discard();
      this.rawInput = null;
    }
    if (this.input === EMPTY_INPUT) return;
    if (bodyPending) this.input.fail(new ConnectionClosedError("response finished before the body was read"));
    this.input.discard();
    this.input = EMPTY_INPUT;
    // Its unread bytes are gone, so they hold reading no more. A body that had all arrived, above
    // the mark, left reading paused with no reader to resume it: a keep-alive client's next
    // request sat unread until timeouts.keep_alive.
    this.host.flow.resume(Pause.INPUT);
  }

  /** The connection closed: reads still waiting fail. */
  closed(): void {
    // An Error captures a stack: make one only for a reader still waiting.
    if (this.input !== EMPTY_INPUT || this.rawInput !== null) {
      const err = new ConnectionClosedError();
      this.input.fail(err);
      this.rawInput?.fail(err);
    }
  }

  /**
   * Body bytes are left that would have to be read and dropped (more than MAX_DISCARD), or that
   * the client was never told to send (100-continue): the connection cannot persist.
   */
  get blocksReuse(): boolean {
    if (this.expectContinue) return !this.continueSent;
    return this.host.parser.contentLength - this.decoder.received > MAX_DISCARD;
  }

  /** The client was never told to send its body (100-continue, and the app has not read): it may never come. */
  get unsolicited(): boolean {
    return this.expectContinue && !this.continueSent;
  }

  /** InputOwner: the app asked for body bytes; now is the time for 100 Continue (RFC 9110 §10.1.1). */
  inputWanted(input: Input): void {
    if (input !== this.input || !this.expectContinue || this.continueSent || this.host.closed) return;
    this.continueSent = true;
    if (this.decoder.received > 0 || this.host.headersSent) return;
    this.host.out.writeLatin1("HTTP/1.1 100 Continue\r\n\r\n");
    this.host.out.commit();
  }

  /** InputOwner: a read waits for more than is buffered. */
  inputStarved(): void {
    if (!this.failed) this.host.flow.resume(Pause.INPUT);
  }

  /** InputOwner: the app read body bytes. */
  inputConsumed(buffered: number): void {
    if (buffered < INPUT_LOW_WATER && !this.failed) this.host.flow.resume(Pause.INPUT);
  }
}
