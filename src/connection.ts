/** @module connection — per-socket state: input assembly, request sequencing, write queue and backpressure, deadlines. */

import type { Socket } from "bun";
import { BODY_ERRORS, BodyDecoder, BodyError, type BodyLimits } from "./body.ts";
import { ClientDisconnected, ConnectionClosedError, HTTPError } from "./errors.ts";
import type { WSGIHandler } from "./handler.ts";
import { isUpgradeRequest } from "./http/request.ts";
import { copyOf, Input, type InputOwner } from "./input.ts";
import { type HeadLimits, PARSE_ERRORS, ParseError, RequestParser } from "./parser.ts";

/** Timeouts in seconds; 0 disables one. */
export interface Timeouts {
  /** A request head must be complete this long after its first byte (slowloris): 408. */
  header: number;
  /** An idle keep-alive connection is closed after this long. */
  keepAlive: number;
  /** A request body that stalls this long fails with 408. */
  body: number;
  /** A peer that accepts no response bytes for this long is disconnected. */
  write: number;
  /** Graceful-stop deadline used by signals and stop() without an argument. */
  shutdown: number;
  /**
   * During a graceful stop, idle keep-alive connections stay open this long (capped by the
   * stop's deadline): a request already on its way is answered with `Connection: close`
   * instead of meeting a closed socket.
   */
  stopIdle: number;
}

/** What a Connection needs from its server. */
export interface ConnectionHost {
  readonly headLimits: HeadLimits;
  readonly bodyLimits: BodyLimits;
  readonly timeouts: Timeouts;
  readonly stopping: boolean;
  /** Connections wait for a slot: close after the response instead of keeping the connection idle. */
  readonly crowded: boolean;
  /** Coarse clock in seconds, advanced by the server's one timer. */
  readonly now: number;
  connectionClosed(conn: Connection): void;
  /** A connection that closed while its response was in progress has finished that response. */
  orphanSettled(conn: Connection): void;
}

export type ServerSocket = Socket<Connection>;

/** Why a request was refused, as a stable lower-case name ("bare_cr", "head_timeout", …) for logs and metrics. */
const codeNames = (table: Readonly<Record<string, number>>): string[] => {
  const names: string[] = [];
  for (const [name, code] of Object.entries(table)) names[code] = name.toLowerCase();
  return names;
};
const PARSE_REASONS = codeNames(ParseError);
const BODY_REASONS = codeNames(BodyError);

/** Pause reasons: reading resumes only when none is left. */
const PAUSE_OUTPUT = 1;
const PAUSE_INPUT = 2;
const PAUSE_PIPELINE = 4;

/** Unsent response bytes above which the app's write() waits and reading pauses. */
const OUTPUT_HIGH_WATER = 256 * 1024;
/** Unread request-body bytes above which reading pauses until the app reads. */
const INPUT_HIGH_WATER = 256 * 1024;
const INPUT_LOW_WATER = 64 * 1024;
/** Pipelined bytes held while a response is in progress, above which reading pauses. */
const PIPELINE_HIGH_WATER = 64 * 1024;
/** Unread body bytes the server will read and drop after a response to keep the connection. */
export const MAX_DISCARD = 256 * 1024;
/** Seconds a closing connection may linger half-closed before it is cut. */
const LINGER = 5;
/**
 * Chunks at least this large are written from the caller's buffer; smaller ones are copied
 * into the scratch buffer, which costs less than the extra write(2) it saves (framing and
 * body go out in one syscall).
 */
const DIRECT_WRITE = 256 * 1024;

/**
 * Reads at least this large that are wholly consumed (parsed heads, body bytes copied into a
 * read's buffer) are freed at once. Bun allocates a fresh buffer per read, up to 512 KiB, and
 * the GC frees it only when it sweeps; by then the allocator has often given the pages back to
 * the kernel, and the next read's buffer faults them in afresh. Smaller reads live in the GC
 * heap, where freeing early would cost more than it saves.
 */
const RELEASE_READ = 64 * 1024;

/** Free a read buffer nothing refers to any more: detaching releases its memory now. */
function release(chunk: Buffer): void {
  const ab = chunk.buffer;
  if (chunk.byteOffset === 0 && ab.byteLength === chunk.length && ab instanceof ArrayBuffer) ab.transfer(0);
}

const RESOLVED: Promise<void> = Promise.resolve();
const EMPTY_INPUT = Input.empty();

/**
 * Parsers of closed connections, reused: each owns a field table sized by its limits. Keyed by
 * the limits object, so the parsers of limits replaced by a reload go with them.
 */
const parserPools = new WeakMap<HeadLimits, RequestParser[]>();
const MAX_POOLED_PARSERS = 1024;

function takeParser(limits: HeadLimits): RequestParser {
  return parserPools.get(limits)?.pop() ?? new RequestParser(limits);
}

function releaseParser(parser: RequestParser): void {
  let pool = parserPools.get(parser.limits);
  if (pool === undefined) {
    pool = [];
    parserPools.set(parser.limits, pool);
  }
  if (pool.length < MAX_POOLED_PARSERS) {
    parser.reset();
    pool.push(parser);
  }
}

// Head assembly pool: fixed-size buffers for request heads that span reads.
const POOL_SIZE = 16 * 1024;
const pool: Buffer[] = [];
const takePooled = (need: number): Buffer =>
  need <= POOL_SIZE ? (pool.pop() ?? Buffer.allocUnsafeSlow(POOL_SIZE)) : Buffer.allocUnsafeSlow(need);
const givePooled = (b: Buffer): void => {
  if (b.length === POOL_SIZE && pool.length < 256) pool.push(b);
};

// One output scratch buffer for the whole process: responses are assembled here and leave in
// one socket.write. It belongs to one connection at a time and is flushed before another uses it.
let scratch = Buffer.allocUnsafeSlow(64 * 1024);
/** Buffer's native encoders (Node API, present in Bun, absent from the typings): half the cost of write(s, off, enc). */
interface NativeWrite {
  latin1Write(s: string, offset: number): number;
  utf8Write(s: string, offset: number): number;
}
let scratchLen = 0;
let scratchOwner: Connection | null = null;

export class Connection implements InputOwner {
  readonly socket: ServerSocket;
  readonly host: ConnectionHost;
  readonly parser: RequestParser;
  readonly body: BodyDecoder;
  handler!: WSGIHandler;
  /** The current request's wsgi.input. */
  input: Input = EMPTY_INPUT;

  closed = false;
  /** The server decided to close: nothing more is read, the socket ends once output drains. */
  ending = false;
  /** A request is being answered. */
  responding = false;
  /** Body bytes of the current (or just answered) request are still to come. */
  bodyActive = false;
  /** Leftover body of an answered request is being read and dropped. */
  discarding = false;
  /** The request body was malformed or too large: the connection closes after the response. */
  bodyFailed = false;
  /**
   * An upgrade request's stream of bytes after its body (environ "bunwsgi.raw_input"); null
   * for any other request. It starts once the app has sent 101 and the body has ended.
   */
  rawInput: Input | null = null;
  /** A 101 was sent: every byte after the request's body goes to rawInput unframed. */
  upgraded = false;
  /** Why the last request failed or was refused (a stable name for logs and metrics), or "". */
  failReason = "";
  /** The peer half-closed its side. */
  peerEnded = false;
  expectContinue = false;
  continueSent = false;
  /** Index in the server's list of served connections; -1 while not served (waiting for the pool, or closed). */
  slot = -1;

  private inBuf: Buffer | null = null;
  private inStart = 0;
  private inEnd = 0;
  private inPooled = false;
  private batching = false;
  private discarded = 0;
  /**
   * Bytes of the read being processed that nothing refers to any more: parsed request heads
   * (the handler has made its strings) and body bytes copied into a waiting read's buffer.
   */
  private consumed = 0;
  private paused = 0;
  /** Resolves whenSettled() promises; made only when a stop waits. */
  private settle: (() => void) | null = null;

  private queue: Uint8Array[] = [];
  private qHead = 0;
  /** Response bytes accepted but not yet taken by the kernel. */
  queued = 0;
  private drainPromise: Promise<void> | null = null;
  private drainResolve: (() => void) | null = null;
  private drainReject: ((e: Error) => void) | null = null;

  // Deadlines, in host.now seconds.
  private lastRead: number;
  private headSince = -1;
  private lastWrite: number;
  private endedAt = 0;

  private readonly responseDoneBound = (): void => this.responseDone();
  private readonly responseFailedBound = (e: unknown): void => this.responseFailed(e);

  constructor(socket: ServerSocket, host: ConnectionHost) {
    this.socket = socket;
    this.host = host;
    this.parser = takeParser(host.headLimits);
    this.body = new BodyDecoder(host.bodyLimits);
    this.lastRead = this.lastWrite = host.now;
  }

  // ---- socket events -------------------------------------------------------------------

  onData(chunk: Buffer): void {
    if (this.closed || this.ending) return;
    this.lastRead = this.host.now;
    this.batching = true;
    if (this.upgraded && !this.bodyActive) {
      this.pushInput(this.rawInput as Input, chunk, false);
    } else if (this.inEnd > this.inStart) {
      this.append(chunk);
      this.process(this.inBuf as Buffer, this.inStart, this.inEnd);
    } else {
      this.consumed = 0;
      this.process(chunk, 0, chunk.length);
      if (this.consumed === chunk.length && chunk.length >= RELEASE_READ) release(chunk);
    }
    this.batching = false;
    this.flush();
  }

  onDrain(): void {
    if (this.closed) return;
    this.lastWrite = this.host.now;
    while (this.qHead < this.queue.length) {
      const c = this.queue[this.qHead] as Uint8Array;
      const n = this.socket.write(c);
      if (n < 0) {
        this.gone();
        return;
      }
      if (n < c.length) {
        this.queue[this.qHead] = c.subarray(n);
        this.queued -= n;
        return;
      }
      this.queued -= c.length;
      this.qHead++;
    }
    this.queue.length = 0;
    this.qHead = 0;
    this.queued = 0;
    const resolve = this.drainResolve;
    this.drainPromise = this.drainResolve = this.drainReject = null;
    resolve?.();
    this.unpause(PAUSE_OUTPUT);
    if (this.ending) this.socket.end();
  }

  /** The peer sent FIN. Answer what is in progress, then close. */
  onEnd(): void {
    this.peerEnded = true;
    if (this.closed) return;
    // No raw bytes can follow a FIN; an upgraded app may still write (the peer only half-closed).
    this.rawInput?.finish();
    if (this.bodyActive) {
      this.input.fail(this.disconnected("closed its side"));
      this.bodyActive = false;
      this.bodyFailed = true;
    }
    if (this.upgraded) return;
    if (!this.responding) this.endAfterFlush();
  }

  /** The error every unsatisfiable wsgi.input read rejects with once the client has gone (RFC 9112 §8). */
  private disconnected(how: string): ClientDisconnected {
    const p = this.parser;
    const got = this.body.received;
    const expected = this.body.chunked ? -1 : p.contentLength;
    this.failReason = "client_disconnected";
    const of = expected >= 0 ? ` of ${expected}` : " of a chunked body";
    return new ClientDisconnected(
      `client ${how} before the request body was complete (received ${got}${of} bytes)`,
      got,
      expected,
    );
  }

  onClose(): void {
    if (this.closed) return;
    this.closed = true;
    this.ending = true;
    // An Error captures a stack: make one only for a reader or writer still waiting.
    const reject = this.drainReject;
    if (this.bodyActive) this.input.fail(this.disconnected("reset the connection"));
    if (this.input !== EMPTY_INPUT || reject !== null || this.rawInput !== null) {
      const err = new ConnectionClosedError();
      this.input.fail(err);
      this.rawInput?.fail(err);
      reject?.(err);
    }
    this.drainPromise = this.drainResolve = this.drainReject = null;
    // A handler still running its app may yet read the parser's fields: only an idle one is reused.
    if (!this.responding) releaseParser(this.parser);
    else this.handler.connectionLost();
    this.queue.length = 0;
    this.qHead = 0;
    this.queued = 0;
    if (scratchOwner === this) {
      scratchOwner = null;
      scratchLen = 0;
    }
    this.releaseInput();
    this.host.connectionClosed(this);
  }

  // ---- input -----------------------------------------------------------------------------

  /** Append a chunk to held bytes: the one place a request head is copied. */
  private append(chunk: Buffer): void {
    const have = this.inEnd - this.inStart;
    const old = this.inBuf as Buffer;
    if (this.inPooled && old.length - this.inEnd >= chunk.length) {
      old.set(chunk, this.inEnd);
      this.inEnd += chunk.length;
      return;
    }
    const next = takePooled(have + chunk.length);
    next.set(old.subarray(this.inStart, this.inEnd), 0);
    next.set(chunk, have);
    if (this.inPooled) givePooled(old);
    this.inBuf = next;
    this.inPooled = true;
    this.inStart = 0;
    this.inEnd = have + chunk.length;
  }

  /** Hold buf[pos, end) for later: a view of Bun's chunk (fresh per read), or the pooled buffer. */
  private hold(buf: Buffer, pos: number, end: number): void {
    if (pos >= end) {
      this.releaseInput();
      return;
    }
    if (buf !== this.inBuf) {
      if (this.inPooled) givePooled(this.inBuf as Buffer);
      this.inBuf = buf;
      this.inPooled = false;
    }
    this.inStart = pos;
    this.inEnd = end;
    if (this.responding && end - pos > PIPELINE_HIGH_WATER) this.pause(PAUSE_PIPELINE);
  }

  private releaseInput(): void {
    if (this.inPooled) givePooled(this.inBuf as Buffer);
    this.inBuf = null;
    this.inPooled = false;
    this.inStart = this.inEnd = 0;
  }

  /** Parse and dispatch as many requests as buf[pos, end) holds, in order. */
  private process(buf: Buffer, pos: number, end: number): void {
    while (pos < end) {
      if (this.closed || this.ending) {
        this.releaseInput();
        return;
      }
      if (this.bodyActive || this.discarding) {
        pos = this.feedBody(buf, pos, end);
        if (pos < 0) {
          this.releaseInput();
          return;
        }
        continue;
      }
      // After a 101 and the request's body, the bytes are the new protocol's, unframed.
      if (this.upgraded) {
        this.pushInput(this.rawInput as Input, buf.subarray(pos, end), buf === this.inBuf && this.inPooled);
        this.releaseInput();
        return;
      }
      if (this.responding) {
        this.hold(buf, pos, end);
        return;
      }
      if (this.headSince < 0) this.headSince = this.host.now;
      const n = this.parser.execute(buf, pos, end);
      if (n === 0) {
        this.hold(buf, pos, end);
        return;
      }
      if (n < 0) {
        const [status, message] = PARSE_ERRORS[-n] as readonly [number, string];
        this.failReason = PARSE_REASONS[-n] as string;
        this.reject(status, message, buf, pos, end);
        this.releaseInput();
        return;
      }
      this.headSince = -1;
      const start = pos;
      pos += n;
      this.consumed += n;
      if (this.parser.method === "CONNECT") {
        // A valid CONNECT asks for a tunnel (RFC 9110 §9.3.6), which an origin server does not make.
        this.failReason = "connect_not_supported";
        this.reject(501, "CONNECT is not supported", buf, start, pos);
        this.releaseInput();
        return;
      }
      this.startRequest(buf, start);
    }
    this.releaseInput();
  }

  private feedBody(buf: Buffer, pos: number, end: number): number {
    const body = this.body;
    const n = body.execute(buf, pos, end);
    if (n < 0) {
      const [status, message] = BODY_ERRORS[-n] as readonly [number, string];
      this.failBody(new HTTPError(status, message), BODY_REASONS[-n] as string);
      return -1;
    }
    if (body.dataEnd > body.dataStart) {
      if (this.discarding) {
        this.discarded += body.dataEnd - body.dataStart;
        if (this.discarded > MAX_DISCARD) {
          this.endAfterFlush();
          return -1;
        }
      } else {
        this.pushInput(this.input, buf.subarray(body.dataStart, body.dataEnd), buf === this.inBuf && this.inPooled);
      }
    }
    if (body.done) {
      if (body.chunked) this.handler.receivedTrailers(body.trailers);
      this.bodyActive = false;
      this.discarding = false;
      this.input.finish();
    }
    return pos + n;
  }

  private pushInput(input: Input, view: Uint8Array, copy: boolean): void {
    if (input.push(view, copy)) this.consumed += view.length;
    // Unread input above the mark pauses reading, unless the app is waiting for more than that
    // (read() to the end of a large body): then its own request is what bounds the buffer.
    if (input.pending > INPUT_HIGH_WATER && !input.hungry) this.pause(PAUSE_INPUT);
  }

  private failBody(err: HTTPError, reason: string): void {
    this.failReason = reason;
    this.input.fail(err);
    this.bodyActive = false;
    this.discarding = false;
    this.bodyFailed = true;
    if (!this.responding) this.endAfterFlush();
    else this.pause(PAUSE_INPUT);
  }

  /** InputOwner: the app asked for body bytes; now is the time for 100 Continue (RFC 9110 §10.1.1). */
  inputWanted(input: Input): void {
    if (input !== this.input || !this.expectContinue || this.continueSent || this.closed) return;
    this.continueSent = true;
    if (this.body.received > 0 || this.handler.headersSent) return;
    this.writeLatin1("HTTP/1.1 100 Continue\r\n\r\n");
    this.commit();
  }

  /** InputOwner: a read waits for more than is buffered. */
  inputStarved(): void {
    if (!this.bodyFailed) this.unpause(PAUSE_INPUT);
  }

  /** InputOwner: the app read body bytes. */
  inputConsumed(buffered: number): void {
    if (buffered < INPUT_LOW_WATER && !this.bodyFailed) this.unpause(PAUSE_INPUT);
  }

  // ---- requests ----------------------------------------------------------------------------

  private startRequest(buf: Buffer, start: number): void {
    const p = this.parser;
    const h = this.handler;
    this.discarded = 0;
    this.bodyFailed = false;
    this.continueSent = false;
    this.failReason = "";
    // An upgrade request's body is framed like any other; its raw stream is a second Input.
    this.rawInput = isUpgradeRequest(p) ? new Input(this) : null;
    if (p.chunked) {
      this.body.startChunked();
      this.bodyActive = true;
      this.input = new Input(this);
    } else if (p.contentLength > 0) {
      if (p.contentLength > this.host.bodyLimits.maxBody) {
        this.failReason = "body_too_large";
        this.reject(413, "request body too large", buf, start, start + p.lineEnd);
        return;
      }
      this.body.startLength(p.contentLength);
      this.bodyActive = true;
      this.input = new Input(this, p.contentLength);
    } else {
      this.input = EMPTY_INPUT;
    }
    this.expectContinue = p.expectContinue && this.bodyActive;
    this.responding = true;
    let r: void | Promise<void>;
    try {
      h.setHead(buf, start);
      r = h.handleOneRequest();
    } catch (e) {
      this.responseFailed(e);
      return;
    }
    if (r !== undefined) r.then(this.responseDoneBound, this.responseFailedBound);
    else this.responseDone();
  }

  /** A handler hook threw past its own error handling: log it and drop the connection. */
  private responseFailed(e: unknown): void {
    this.handler.logError(`unhandled error in handler: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    this.responding = false;
    if (this.closed) this.orphanSettled();
    else this.endAfterFlush();
  }

  /** The response of a connection that closed under it has ended: tell the server, and anyone waiting. */
  private orphanSettled(): void {
    this.settle?.();
    this.settle = null;
    this.host.orphanSettled(this);
  }

  /** Settles once no response is in progress (for a stop that waits for results to be closed). */
  whenSettled(): Promise<void> {
    if (!this.responding) return RESOLVED;
    return new Promise<void>((resolve) => {
      const prev = this.settle;
      this.settle = () => {
        prev?.();
        resolve();
      };
    });
  }

  private responseDone(): void {
    this.responding = false;
    if (this.closed) {
      this.orphanSettled();
      return;
    }
    const h = this.handler;
    if (this.upgraded || h.closeConnection || this.mustClose()) {
      this.endAfterFlush();
      return;
    }
    // Not switched: no raw bytes will come, and what follows is the next request (RFC 9110 §7.8).
    this.rawInput?.finish();
    this.rawInput = null;
    if (this.bodyActive) {
      this.input.fail(new ConnectionClosedError("response finished before the body was read"));
      this.discarding = true;
      this.bodyActive = false;
    }
    this.input = EMPTY_INPUT;
    this.lastRead = this.host.now;
    if (!this.batching) this.resume();
  }

  /** The app sent 101 (RFC 9110 §15.2.2): after the request's body, bytes go to rawInput. */
  upgradeAccepted(): void {
    this.upgraded = true;
    // Bytes held while the app ran are the new protocol's; inside a read callback, process() goes on with them.
    if (!this.batching) this.resume();
  }

  /** After an asynchronous response: go on with pipelined bytes held meanwhile. */
  private resume(): void {
    this.unpause(PAUSE_PIPELINE);
    if (this.inEnd > this.inStart) {
      this.batching = true;
      this.process(this.inBuf as Buffer, this.inStart, this.inEnd);
      this.batching = false;
    }
    this.flush();
  }

  /** Reject a request head: the precise status, a closed connection, an access-log line. */
  reject(status: number, message: string, buf: Uint8Array, start: number, end: number): void {
    let e = start;
    const limit = Math.min(end, start + 1024);
    while (e < limit && buf[e] !== 13 && buf[e] !== 10) e++;
    this.handler.rejectRequest(status, message, escapeLine(buf, start, e));
    this.endAfterFlush();
  }

  // ---- output ----------------------------------------------------------------------------

  private claim(need: number): Buffer {
    if (scratchOwner !== this) {
      if (scratchOwner !== null && scratchLen > 0) scratchOwner.flush();
      scratchOwner = this;
      scratchLen = 0;
    }
    if (scratchLen + need > scratch.length) {
      const bigger = Buffer.allocUnsafeSlow(Math.max(scratch.length * 2, scratchLen + need));
      bigger.set(scratch.subarray(0, scratchLen), 0);
      scratch = bigger;
    }
    return scratch;
  }

  writeLatin1(s: string): void {
    const buf = this.claim(s.length);
    scratchLen += (buf as unknown as NativeWrite).latin1Write(s, scratchLen);
  }

  writeUtf8(s: string): void {
    if (s.length >= DIRECT_WRITE) {
      this.writeBytes(Buffer.from(s, "utf8"));
      return;
    }
    const buf = this.claim(s.length * 3);
    scratchLen += (buf as unknown as NativeWrite).utf8Write(s, scratchLen);
  }

  writeBytes(b: Uint8Array): void {
    if (b.length >= DIRECT_WRITE) {
      this.flush();
      this.send(b, b.length, false);
      return;
    }
    const buf = this.claim(b.length);
    buf.set(b, scratchLen);
    scratchLen += b.length;
  }

  /** Hand buffered output to the socket now, unless a read callback will do it on return. */
  commit(): void {
    if (!this.batching) this.flush();
  }

  flush(): void {
    if (scratchOwner !== this || scratchLen === 0) return;
    const len = scratchLen;
    scratchLen = 0;
    scratchOwner = null;
    this.send(scratch, len, true);
  }

  /** Write b[0, len); what the socket does not take is queued (copied when b is reused, as scratch is). */
  private send(b: Uint8Array, len: number, copy: boolean): void {
    if (this.closed) return;
    if (this.qHead < this.queue.length) {
      const all = b.subarray(0, len);
      this.enqueue(copy ? copyOf(all) : all);
      return;
    }
    // An offset and length, not a subarray: no view object per response.
    const n = this.socket.write(b, 0, len);
    if (n < 0) {
      this.gone();
      return;
    }
    if (n < len) {
      const rest = b.subarray(n, len);
      this.enqueue(copy ? copyOf(rest) : rest);
    }
  }

  private enqueue(b: Uint8Array): void {
    if (this.queued === 0) this.lastWrite = this.host.now;
    this.queue.push(b);
    this.queued += b.length;
    if (this.queued > OUTPUT_HIGH_WATER) this.pause(PAUSE_OUTPUT);
  }

  get backpressured(): boolean {
    return this.queued > OUTPUT_HIGH_WATER;
  }

  /** Settles when queued output has gone to the kernel; rejects if the connection closes first. */
  waitDrain(): Promise<void> {
    if (this.closed) return Promise.reject(new ConnectionClosedError());
    if (this.queued === 0) return RESOLVED;
    this.drainPromise ??= new Promise<void>((resolve, reject) => {
      this.drainResolve = resolve;
      this.drainReject = reject;
    });
    return this.drainPromise;
  }

  /** Stop reading; end the socket once queued output is written. */
  endAfterFlush(): void {
    if (this.ending || this.closed) return;
    this.ending = true;
    this.endedAt = this.host.now;
    this.bodyActive = this.discarding = false;
    this.releaseInput();
    this.flush();
    if (this.queued === 0 && !this.closed) this.socket.end();
  }

  /** Close now, dropping unsent output. */
  terminate(): void {
    if (!this.closed) this.socket.terminate();
  }

  private gone(): void {
    this.ending = true;
    this.queue.length = 0;
    this.qHead = 0;
    this.queued = 0;
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

  // ---- lifecycle -------------------------------------------------------------------------

  /**
   * The engine cannot keep this connection after the current response (RFC 9112 §9.3, §9.6):
   * the peer half-closed, the body failed, the server is stopping or wants the slot, or a body
   * is left that would have to be read and dropped, or that the client was never told to send.
   */
  mustClose(): boolean {
    if (this.peerEnded || this.bodyFailed || this.host.stopping || this.host.crowded) return true;
    if (!this.bodyActive) return false;
    return this.expectContinue ? !this.continueSent : this.parser.contentLength - this.body.received > MAX_DISCARD;
  }

  /**
   * Between requests: nothing is being answered, read or held, and the connection is not
   * closing. Only such a connection may be closed without cutting a request.
   */
  get idle(): boolean {
    return !this.responding && !this.bodyActive && !this.discarding && this.inEnd === this.inStart && !this.ending;
  }

  /** Seconds (coarse clock) since bytes last arrived: how long an idle connection has been idle. */
  get lastActive(): number {
    return this.lastRead;
  }

  /** Close the connection if it is idle (graceful stop, or a slot wanted for a new connection). */
  closeIfIdle(): void {
    if (this.idle) this.endAfterFlush();
  }

  /** Called once a second by the server's timer with its coarse clock. */
  tick(now: number): void {
    if (this.closed) return;
    const t = this.host.timeouts;
    if (this.ending) {
      if (now - this.endedAt >= LINGER) this.terminate();
      return;
    }
    if (this.queued > 0 && t.write > 0 && now - this.lastWrite >= t.write) {
      this.handler.logError(`closing connection from ${this.handler.clientLabel()}: no response bytes accepted for ${t.write}s`);
      this.terminate();
      return;
    }
    if (this.responding) {
      if (this.bodyActive && t.body > 0 && now - this.lastRead >= t.body) {
        this.failBody(new HTTPError(408, "request body timed out"), "body_timeout");
      }
      return;
    }
    if (this.discarding) {
      if (t.body > 0 && now - this.lastRead >= t.body) this.endAfterFlush();
      return;
    }
    if (this.headSince >= 0 && this.inEnd > this.inStart) {
      if (t.header > 0 && now - this.headSince >= t.header) {
        this.failReason = "head_timeout";
        this.reject(408, "request head timed out", this.inBuf as Buffer, this.inStart, this.inEnd);
      }
      return;
    }
    if (t.keepAlive > 0 && now - this.lastRead >= t.keepAlive) this.endAfterFlush();
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
