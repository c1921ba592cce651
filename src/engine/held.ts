/** @module engine/held — bytes a connection holds between reads: a request head split across reads, or pipelined requests waiting for the response in progress. */

import { giveHeadBuffer, takeHeadBuffer } from "./pools.ts";

/**
 * Held bytes are buf[start, end): a view of Bun's read buffer (fresh per read) while nothing
 * is appended, or a pooled buffer once a later read has to be joined to them.
 */
export class HeldBytes {
  buf: Buffer | null = null;
  start = 0;
  end = 0;
  /** buf is a pooled buffer this connection owns (reused after), not Bun's read buffer. */
  private pooled = false;

  get size(): number {
    return this.end - this.start;
  }

  /** Whether `buf` is the pooled buffer, whose bytes are overwritten later: a view of it must be copied. */
  transient(buf: Uint8Array): boolean {
    return this.pooled && buf === this.buf;
  }

  /** Append a read: the one place a request head is copied. */
  append(chunk: Buffer): void {
    const have = this.end - this.start;
    const old = this.buf as Buffer;
    if (this.pooled && old.length - this.end >= chunk.length) {
      old.set(chunk, this.end);
      this.end += chunk.length;
      return;
    }
    const next = takeHeadBuffer(have + chunk.length);
    next.set(old.subarray(this.start, this.end), 0);
    next.set(chunk, have);
    if (this.pooled) giveHeadBuffer(old);
    this.buf = next;
    this.pooled = true;
    this.start = 0;
    this.end = have + chunk.length;
  }

  /** Hold buf[pos, end) for later. */
  hold(buf: Buffer, pos: number, end: number): void {
    if (pos >= end) {
      this.release();
      return;
    }
    if (buf !== this.buf) {
      if (this.pooled) giveHeadBuffer(this.buf as Buffer);
      this.buf = buf;
      this.pooled = false;
    }
    this.start = pos;
    this.end = end;
  }

  release(): void {
    if (this.pooled) giveHeadBuffer(this.buf as Buffer);
    this.buf = null;
    this.pooled = false;
    this.start = this.end = 0;
  }
}
