/** @module wsgi/result — sends what a WSGI app returned: an Array sized, iterables streamed with backpressure, and the result ended exactly once on every path. */

import { bodyBlocks, type FileBody } from "../engine/blob.ts";
import type { ConnectionPort } from "../engine/exchange.ts";
import { RESOLVED } from "../engine/output.ts";
import { fileSpan, type Span } from "../engine/ranges.ts";
import { chunkLength, type ResponseWriter } from "../engine/response.ts";
import { sendfileUsable, sendSpan } from "../engine/sendfile.ts";
import { ContractError } from "../errors.ts";
import { bodiless } from "../http/framing.ts";
import { FileWrapper } from "./file.ts";
import type { Chunk } from "./types.ts";

export function checkChunk(c: unknown): asserts c is Chunk {
  if (typeof c !== "string" && !(c instanceof Uint8Array)) {
    throw new ContractError(`body chunks must be string or Uint8Array, got ${c === null ? "null" : typeof c}`);
  }
}

interface Closable {
  close?: () => unknown;
}

function closeResult(result: Closable | null): void {
  if (result !== null && typeof result.close === "function") result.close();
}

/**
 * What the sender reads of its handler: the handler itself, not closures around it (one object
 * per connection that a request touches, not nine). Its write() hook, so an override sees every
 * chunk, and the state of the request and its response.
 */
export interface ResultSink {
  write(data: Chunk): Promise<void>;
  /** startResponse() was called for this request. */
  readonly startCalled: boolean;
  /** The app ran out of time (timeouts.app): nothing more of its result is taken. */
  readonly expired: boolean;
  readonly command: string;
  /** The request's header fields (Range and If-Range for a file). */
  readonly headers: ReadonlyArray<readonly [string, string]>;
  readonly response: ResponseWriter;
  readonly connection: ConnectionPort;
  /** Write the status line and headers (gevent's hook). */
  finalizeHeaders(): void;
  /** The body is complete: headers if nothing was sent, then the end of its framing. */
  finishBody(): void;
}

/**
 * A write whose promise nobody awaits (the synchronous paths): one that rejects (the connection
 * is gone, the request's time is up) must not become an unhandled rejection, which Bun reports
 * as the process's failure. What it means is seen through endsEarly().
 */
const unawaited = (p: Promise<void>): void => {
  if (p !== RESOLVED) p.catch(() => {});
};

const notStarted = (): ContractError => new ContractError("the application returned without calling startResponse()");

/** Sends one request's result after another, for one connection. */
export class ResultSender {
  private readonly sink: ResultSink;
  /** The result being sent, until release() has ended it; `returning` settles when its return() has. */
  private iterator: Iterator<Chunk> | AsyncIterator<Chunk> | null = null;
  private closable: Closable | null = null;
  private released = false;
  private returning: Promise<void> | undefined = undefined;

  constructor(sink: ResultSink) {
    this.sink = sink;
  }

  reset(): void {
    this.iterator = this.closable = null;
    this.released = false;
    this.returning = undefined;
  }

  /** Send a result: an Array is sized; any other iterable streams. */
  send(result: unknown): void | Promise<void> {
    if (Array.isArray(result)) return this.sendSized(result as unknown[]);
    if (typeof result !== "object" || result === null || result instanceof String || ArrayBuffer.isView(result)) {
      throw new ContractError(
        "the application must return an iterable of chunks (wrap a single string or Uint8Array in an array)",
      );
    }
    if (result instanceof FileWrapper) return this.sendFile(result);
    if (typeof (result as AsyncIterable<Chunk>)[Symbol.asyncIterator] === "function") {
      return this.pump((result as AsyncIterable<Chunk>)[Symbol.asyncIterator](), result as Closable);
    }
    if (typeof (result as Iterable<Chunk>)[Symbol.iterator] === "function") {
      return this.sendIterator((result as Iterable<Chunk>)[Symbol.iterator](), result as Closable);
    }
    throw new ContractError("the application must return an Array, an Iterable or an AsyncIterable of chunks");
  }

  /**
   * An Array is sent within this call, so nothing is tracked for abandon(): a connection lost
   * meanwhile ends the loop (endsEarly), and the Array is closed once, on the way out.
   */
  private sendSized(chunks: unknown[]): void {
    const sink = this.sink;
    try {
      if (!sink.startCalled) throw notStarted();
      let total = 0;
      for (const c of chunks) {
        checkChunk(c);
        total += chunkLength(c);
      }
      sink.response.sized = total;
      for (const c of chunks) {
        unawaited(sink.write(c as Chunk));
        if (this.endsEarly()) break;
      }
      sink.finishBody();
    } finally {
      closeResult(chunks as Closable);
    }
  }

  /**
   * environ["wsgi.file_wrapper"]'s file: sized from its size, its preconditions and Range
   * answered (304, 412, 206, 416: engine/ranges), by sendfile(2) on a plain socket or else read
   * a block at a time at explicit offsets, and not read at all for HEAD or an empty answer.
   * Tracked from the start: whatever ends the response closes it.
   */
  private sendFile(file: FileWrapper): void | Promise<void> {
    const sink = this.sink;
    this.track(null, file);
    let span: Span;
    let body: FileBody;
    try {
      if (!sink.startCalled) throw notStarted();
      body = file.open();
      span = fileSpan(sink.response, sink.headers, sink.command, body.size, body.mtimeMs);
      sink.response.sized = span.length;
      if (this.bodyless() || span.length === 0) {
        sink.finishBody();
        this.release();
        return;
      }
    } catch (e) {
      this.release();
      throw e;
    }
    if (body.fd >= 0 && sendfileUsable(sink.connection.out)) return this.sendDirect(file, body, span);
    return this.pump(bodyBlocks(body, span, file.blockSize), file);
  }

  /**
   * A file's span by sendfile(2), after the head. A head that does not promise exactly the span
   * (the app's own Content-Length) goes on by the read path, which cuts what overflows.
   */
  private async sendDirect(file: FileWrapper, body: FileBody, span: Span): Promise<void> {
    const sink = this.sink;
    const response = sink.response;
    let handedOff = false;
    try {
      if (!response.headersSent) sink.finalizeHeaders();
      if (response.promised !== span.length) {
        handedOff = true;
        return await this.pump(bodyBlocks(body, span, file.blockSize), file);
      }
      await sendSpan(sink.connection.out, response, body, span, () => this.released || this.endsEarly());
      sink.finishBody();
    } finally {
      if (!handedOff) await this.release();
    }
  }

  /** Iterate a synchronous iterator without promises; switch to pump() when output backs up. */
  private sendIterator(it: Iterator<Chunk>, result: Closable): void | Promise<void> {
    this.track(it, result);
    const sink = this.sink;
    let done = false;
    let handedOff = false;
    try {
      for (;;) {
        const step = it.next();
        if (step.done === true) {
          done = true;
          break;
        }
        checkChunk(step.value);
        // Skipped as gevent skips it: an empty chunk is PEP 3333's "nothing yet" (middleware
        // yields one while it waits), so it may come before startResponse and sends nothing.
        if (step.value.length !== 0) unawaited(sink.write(step.value));
        if (this.endsEarly()) break;
        if (sink.connection.out.backpressured) {
          handedOff = true;
          return sink.connection.out.waitDrain().then(() => this.pump(it, result));
        }
      }
      if (done && !sink.startCalled) throw notStarted();
      sink.finishBody();
    } finally {
      if (!handedOff) {
        if (done) this.iterator = null;
        this.release();
      }
    }
  }

  /** The asynchronous path: awaits every chunk and every write (backpressure). */
  private async pump(it: Iterator<Chunk> | AsyncIterator<Chunk>, result: Closable): Promise<void> {
    this.track(it, result);
    const sink = this.sink;
    let done = false;
    try {
      for (;;) {
        const step = await it.next();
        if (step.done === true) {
          done = true;
          break;
        }
        checkChunk(step.value);
        if (step.value.length !== 0) await sink.write(step.value);
        if (this.endsEarly()) break;
      }
      if (done && !sink.startCalled) throw notStarted();
      sink.finishBody();
    } finally {
      if (done) this.iterator = null;
      await this.release();
    }
  }

  /**
   * The rest of the result is abandoned once its Content-Length is passed, the connection is
   * gone, the request's time is up, or the head of a HEAD response is out (RFC 9110 §9.3.2:
   * nothing more of it would be sent, and an endless stream would otherwise run on for nobody).
   */
  private endsEarly(): boolean {
    const sink = this.sink;
    const r = sink.response;
    return r.overflowed || sink.connection.closed || sink.expired || (r.headersSent && sink.command === "HEAD");
  }

  /** No body bytes will be sent (HEAD, or a status without a body): a file need not be read. */
  private bodyless(): boolean {
    const code = this.sink.response.code;
    return this.sink.command === "HEAD" || (code !== null && bodiless(code));
  }

  /** The result being sent: what release() ends. */
  private track(it: Iterator<Chunk> | AsyncIterator<Chunk> | null, result: Closable): void {
    this.iterator = it;
    this.closable = result;
  }

  /**
   * End the result exactly once, on whichever path comes first (its end, an error, the client
   * gone, a stop): return() an unfinished iterator, so a generator's `finally` runs, then call
   * its close() (PEP 3333). For an async generator that is still awaiting, return() takes effect
   * at its next `yield`; the promise settles then.
   */
  private release(): Promise<void> | undefined {
    if (this.released) return this.returning;
    this.released = true;
    const it = this.iterator;
    const result = this.closable;
    this.iterator = this.closable = null;
    const step: unknown = it !== null && typeof it.return === "function" ? it.return() : undefined;
    if (step instanceof Promise) {
      this.returning = step.then(() => closeResult(result));
      return this.returning;
    }
    closeResult(result);
    return undefined;
  }

  /**
   * The connection went away while the result was being sent: end it now instead of when it
   * next produces a chunk. Throws what return() or close() throws.
   */
  abandon(): void {
    if (this.released || (this.iterator === null && this.closable === null)) return;
    // Whoever is sending the result awaits the same promise and reports its error.
    this.release()?.catch(() => {});
  }
}
