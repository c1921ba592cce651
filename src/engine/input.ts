/** @module engine/input — environ["wsgi.input"]: the request body as an async byte stream with read/readline/readlines. */

import { ContractError } from "../errors.ts";
import { budget } from "./budget.ts";

/** What the connection learns from its Input: the first read (100-continue) and consumption (flow control). */
export interface InputOwner {
  /** The first read of `input` (the request body, or an upgrade's raw stream). */
  inputWanted(input: Input): void;
  inputConsumed(buffered: number): void;
  /** A read is waiting for more bytes than are buffered: reading must go on whatever the high-water mark. */
  inputStarved(): void;
}

const EMPTY = new Uint8Array(0);
const LF = 10;

/**
 * Pushed bytes shorter than this are copied, after the small ones before them, into a buffer of
 * the input's own (see {@link Input.gatherIn}). Kept as views, a chunked body of 1-byte chunks
 * cost a view object per byte (about 150 bytes of memory each, and each holding its read), while
 * limits.buffered_bytes counted one: 10 MiB of it took the server to 1.8 GiB.
 */
const SMALL = 512;
/** A view is kept only while it is at least 1/VIEW_SHARE of the read it views; a smaller one is copied, so it does not hold the read. */
const VIEW_SHARE = 4;
/** The buffers small pieces are gathered in: the first this large, each next twice the last, up to GATHER_MAX. */
const GATHER_MIN = 1024;
const GATHER_MAX = 64 * 1024;

/**
 * A read's size: null is "all" as Python's None is (an app ported from Python passes it), and
 * what is no number at all is the app's error, never a read of some other length.
 */
function sizeOf(size: number | null, what: string): number {
  if (size === null) return -1;
  if (typeof size !== "number" || Number.isNaN(size)) {
    throw new ContractError(`wsgi.input.${what}() takes a number of bytes, got ${String(size)}`);
  }
  return size;
}

/** A real copy: Buffer#slice is a view (Node semantics), which would alias pooled or scratch memory. */
export const copyOf = (b: Uint8Array): Uint8Array => {
  // Not zero-filled first, as `new Uint8Array(b)` would be: every byte is written at once.
  const out = Bun.allocUnsafe(b.length);
  out.set(b);
  return out;
};

/**
 * The request body. The connection pushes decoded body bytes (views, no copy) as they arrive;
 * the application pulls them. Reads settle when enough bytes are buffered, at end of body, or
 * with the body's error (a malformed chunk, a body over the limit, the peer going away).
 * When the body's length is known, a read of all of the rest gets one buffer of its final
 * size, filled as bytes arrive: each arriving chunk is copied once, while still in cache, and
 * is garbage at once, instead of being held until the end and joined.
 */
export class Input implements AsyncIterable<Uint8Array> {
  private chunks: Uint8Array[] = [];
  private offset = 0;
  private buffered = 0;
  private ended = false;
  private error: Error | null = null;
  private waiters: Array<() => void> = [];
  private owner: InputOwner | null;
  private wanted = false;
  /** A read (read, readSome, readline, readlines) is pending: another is refused (see enter). */
  private reading = false;
  private starved = false;
  /** Body bytes not yet pushed; -1 when the length is unknown (chunked, upgraded). */
  private remaining: number;
  /** The buffer a read is filling, and how much of it is filled. */
  private dest: Uint8Array | null = null;
  private destFilled = 0;
  /** Where small pieces are copied (gatherIn), and how much of it is filled. */
  private gather: Uint8Array | null = null;
  private gathered = 0;
  /** The chunk that views `gather` from `gatherStart`: while it is the last chunk, the next small piece extends it. */
  private gatherView: Uint8Array | null = null;
  private gatherStart = 0;
  /**
   * Where the search for a line's end resumes (see indexOfLF): in chunk `lfChunk` at `lfAt`,
   * `lfSeen` bytes past the read position; the bytes before it hold no LF.
   */
  private lfChunk = 0;
  private lfAt = 0;
  private lfSeen = 0;

  /** `length`: the body's length when known (Content-Length), else -1. */
  constructor(owner: InputOwner | null, length = -1) {
    this.owner = owner;
    this.remaining = length;
  }

  /** An input that is already at its end: what a request without a body gets. */
  static empty(): Input {
    const input = new Input(null);
    input.ended = true;
    return input;
  }

  /** Bytes received and not yet read. */
  get pending(): number {
    return this.buffered;
  }

  /** True while a read waits for bytes beyond those buffered (read() to the end, a long line, …). */
  get hungry(): boolean {
    return this.starved;
  }

  /**
   * Add body bytes. `transient`: the bytes will be overwritten after this call, so keep a copy,
   * not the view. Returns true when every byte went into a waiting read's buffer: then no view
   * of `chunk` is kept, and its memory may be released at once.
   */
  push(chunk: Uint8Array, transient = false): boolean {
    if (chunk.length === 0 || this.ended) return false;
    if (this.remaining >= 0) this.remaining -= chunk.length;
    const dest = this.dest;
    if (dest !== null) {
      const k = Math.min(chunk.length, dest.length - this.destFilled);
      dest.set(k === chunk.length ? chunk : chunk.subarray(0, k), this.destFilled);
      this.destFilled += k;
      if (this.destFilled === dest.length) this.wake();
      if (k === chunk.length) return true;
      chunk = chunk.subarray(k);
    }
    if (chunk.length < SMALL) this.gatherIn(chunk);
    else this.chunks.push(transient || chunk.length * VIEW_SHARE < chunk.buffer.byteLength ? copyOf(chunk) : chunk);
    this.buffered += chunk.length;
    budget.take(chunk.length);
    this.wake();
    return false;
  }

  /**
   * Copy a small piece after the small pieces before it: what they hold is their bytes (at most
   * twice), not an object and a read buffer each. The chunk that views them grows while it is the
   * last; a reader's view of its first bytes stays valid, since bytes are only ever added after.
   */
  private gatherIn(piece: Uint8Array): void {
    let g = this.gather;
    if (g === null || g.length - this.gathered < piece.length) {
      g = this.gather = Bun.allocUnsafe(g === null ? GATHER_MIN : Math.min(2 * g.length, GATHER_MAX));
      this.gathered = 0;
      this.gatherView = null;
    }
    const from = this.gathered;
    g.set(piece, from);
    this.gathered += piece.length;
    const last = this.chunks.length - 1;
    if (last >= 0 && this.chunks[last] === this.gatherView) {
      this.chunks[last] = this.gatherView = g.subarray(this.gatherStart, this.gathered);
    } else {
      this.gatherStart = from;
      this.gatherView = g.subarray(from, this.gathered);
      this.chunks.push(this.gatherView);
    }
  }

  /** The request is over: bytes the app never read are dropped, and given back to the budget. */
  discard(): void {
    if (this.buffered === 0) return;
    budget.give(this.buffered);
    this.gather = this.gatherView = null;
    this.chunks = [];
    this.offset = 0;
    this.buffered = 0;
    this.lfChunk = this.lfAt = this.lfSeen = 0;
  }

  finish(): void {
    this.ended = true;
    this.wake();
  }

  /**
   * The body cannot be completed (malformed, too large, too slow, or the client went away).
   * A body that already ended whole keeps its bytes readable: the error is for reads that
   * still wait for bytes.
   */
  fail(error: Error): void {
    if (this.ended) return;
    this.error = error;
    this.ended = true;
    this.wake();
  }

  /**
   * Read `size` bytes, fewer only at the end of the body; all of the rest when size is omitted,
   * null or negative. A read that the body's error leaves unsatisfied rejects with that error
   * (ClientDisconnected, HTTPError): it never returns a short read that looks like the end.
   */
  async read(size: number | null = -1): Promise<Uint8Array> {
    this.enter("read");
    try {
      const n = sizeOf(size, "read");
      this.want();
      if (n === 0) return EMPTY;
      // A read of the rest of a body of known length; a shorter read keeps its zero-copy views.
      const rest = this.buffered + this.remaining;
      // One buffer of the final size, unless the process's budget has no room for it: then the
      // bytes are kept as they come (and reading pauses with the budget).
      if (this.remaining > 0 && this.dest === null && (n < 0 || n >= rest) && budget.fits(rest)) return await this.fill(rest);
      if (n < 0) {
        while (!this.ended) await this.wait();
        if (this.error !== null) throw this.error;
        return this.take(this.buffered);
      }
      while (this.buffered < n && !this.ended) await this.wait();
      if (this.buffered < n && this.error !== null) throw this.error;
      return this.take(Math.min(n, this.buffered));
    } finally {
      this.reading = false;
    }
  }

  /**
   * A read begins: refused while another is pending. Two at once (`Promise.all([read(3),
   * read()])`) would take the body's bytes in no order the app can rely on: the whole-body read
   * took everything, and the other came back empty, a short read that looks like the end.
   */
  private enter(what: string): void {
    if (this.reading) {
      throw new ContractError(
        `wsgi.input.${what}() while another read of the body is pending: reads take the body's bytes in order, so await each before the next`,
      );
    }
    this.reading = true;
  }

  /**
   * Read `n` bytes of a body of known length into one buffer that arriving bytes are copied
   * into: the rest of the body, all of it or fail.
   */
  private async fill(n: number): Promise<Uint8Array> {
    const dest = Bun.allocUnsafe(n);
    budget.take(n);
    const have = this.buffered;
    this.moveInto(dest, have);
    this.searchedPast(have);
    this.buffered = 0;
    budget.give(have);
    this.dest = dest;
    this.destFilled = have;
    try {
      while (this.destFilled < n && !this.ended) await this.wait();
    } finally {
      this.dest = null;
      // Handed to the app, or dropped: no longer held for it.
      budget.give(n);
    }
    this.starved = false;
    this.owner?.inputConsumed(this.buffered);
    // Short only when the body ended early, which is always with an error.
    if (this.destFilled < n) throw this.error as Error;
    return dest;
  }

  /**
   * Read what has arrived, at most `max` bytes, waiting only while nothing has: a view when the
   * bytes lie in one received chunk (a stream consumer takes chunks as they come, not copies);
   * empty at the end of the body. Rejects like read().
   */
  async readSome(max: number): Promise<Uint8Array> {
    this.enter("readSome");
    try {
      this.want();
      while (this.buffered === 0 && !this.ended) await this.wait();
      if (this.buffered === 0) {
        if (this.error !== null) throw this.error;
        return EMPTY;
      }
      const first = this.chunks[0] as Uint8Array;
      return this.take(Math.min(max, first.length - this.offset));
    } finally {
      this.reading = false;
    }
  }

  /** Read one line, LF included; at most `size` bytes when size is a non-negative number. Rejects like read(). */
  async readline(size: number | null = -1): Promise<Uint8Array> {
    this.enter("readline");
    try {
      return await this.line(sizeOf(size, "readline"));
    } finally {
      this.reading = false;
    }
  }

  /** One line, as readline() reads it (readlines() reads several within its own turn). */
  private async line(size: number): Promise<Uint8Array> {
    this.want();
    if (size === 0) return EMPTY;
    for (;;) {
      const lf = this.indexOfLF(size);
      if (lf >= 0) return this.take(size >= 0 ? Math.min(size, lf + 1) : lf + 1);
      if (size >= 0 && this.buffered >= size) return this.take(size);
      if (this.ended) {
        // A line cut by the body's error is not a last line without its LF.
        if (this.error !== null) throw this.error;
        return this.take(this.buffered);
      }
      await this.wait();
    }
  }

  /** Read lines until the end, or until `hint` bytes have been read when hint is positive. */
  async readlines(hint: number | null = -1): Promise<Uint8Array[]> {
    this.enter("readlines");
    try {
      const most = sizeOf(hint, "readlines");
      const lines: Uint8Array[] = [];
      let total = 0;
      for (;;) {
        const line = await this.line(-1);
        if (line.length === 0) return lines;
        lines.push(line);
        total += line.length;
        if (most > 0 && total >= most) return lines;
      }
    } finally {
      this.reading = false;
    }
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    for (;;) {
      const line = await this.readline();
      if (line.length === 0) return;
      yield line;
    }
  }

  private want(): void {
    if (!this.wanted) {
      this.wanted = true;
      this.owner?.inputWanted(this);
    }
  }

  private wait(): Promise<void> {
    if (!this.starved) {
      this.starved = true;
      this.owner?.inputStarved();
    }
    return new Promise<void>((resolve) => this.waiters.push(resolve));
  }

  private wake(): void {
    if (this.waiters.length === 0) return;
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  /**
   * Where the first LF is, in bytes from the read position; -1 when there is none, or none among
   * the first `most` bytes (when `most` is not negative). The search resumes where the last one
   * ended, and a chunk that grows (gatherIn) keeps its start: each byte is searched once. From
   * the read position each time, a line arriving in n pieces cost n²/2 (a 2 MiB line in 1 KiB
   * pieces, 2 GiB searched; a readline() over a 100 MiB body, minutes of the event loop).
   */
  private indexOfLF(most: number): number {
    const chunks = this.chunks;
    let seen = this.lfSeen;
    for (let i = this.lfChunk; i < chunks.length; i++) {
      if (most >= 0 && seen >= most) return -1;
      const c = chunks[i] as Uint8Array;
      const from = i === this.lfChunk ? this.lfAt : 0;
      const at = c.indexOf(LF, from);
      if (at >= 0) return seen + at - from;
      seen += c.length - from;
      this.lfChunk = i;
      this.lfAt = c.length;
      this.lfSeen = seen;
    }
    return -1;
  }

  /** n bytes were taken from the read position: the LF search resumes where it was, or at the read position once that is passed. */
  private searchedPast(n: number): void {
    this.lfSeen -= n;
    if (this.lfSeen > 0) return;
    this.lfSeen = 0;
    this.lfChunk = 0;
    this.lfAt = this.offset;
  }

  /** The first chunk is read: drop it; the LF search position moves with the chunks. */
  private shift(): void {
    this.chunks.shift();
    this.offset = 0;
    if (this.lfChunk > 0) this.lfChunk--;
  }

  /** Remove n buffered bytes: a view when they lie in one chunk, one copy otherwise. */
  private take(n: number): Uint8Array {
    if (n === 0) return EMPTY;
    const first = this.chunks[0] as Uint8Array;
    let out: Uint8Array;
    if (first.length - this.offset >= n) {
      out = first.subarray(this.offset, this.offset + n);
      this.offset += n;
      if (this.offset === first.length) this.shift();
    } else {
      // Not zero-filled: every byte is written by moveInto.
      out = Bun.allocUnsafe(n);
      this.moveInto(out, n);
    }
    this.searchedPast(n);
    this.buffered -= n;
    budget.give(n);
    this.starved = false;
    this.owner?.inputConsumed(this.buffered);
    return out;
  }

  /** Copy the first n buffered bytes to the start of `out` and drop them from the chunks (not from `buffered`). */
  private moveInto(out: Uint8Array, n: number): void {
    let filled = 0;
    while (filled < n) {
      const c = this.chunks[0] as Uint8Array;
      const k = Math.min(c.length - this.offset, n - filled);
      out.set(c.subarray(this.offset, this.offset + k), filled);
      filled += k;
      this.offset += k;
      if (this.offset === c.length) this.shift();
    }
  }
}
