/** @module engine/pools — memory reused across connections: request parsers, head-assembly buffers, and read buffers freed as soon as they are consumed. */

import { type HeadLimits, RequestParser } from "../http/parser.ts";

/**
 * Parsers of closed connections, reused: each owns a field table sized by its limits. Keyed by
 * the limits object, so the parsers of limits replaced by a reload go with them.
 */
const parserPools = new WeakMap<HeadLimits, RequestParser[]>();
const MAX_POOLED_PARSERS = 1024;

export function takeParser(limits: HeadLimits): RequestParser {
  return parserPools.get(limits)?.pop() ?? new RequestParser(limits);
}

export function releaseParser(parser: RequestParser): void {
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

/** Fixed-size buffers for request heads that span reads. */
const POOL_SIZE = 16 * 1024;
const heads: Buffer[] = [];

export const takeHeadBuffer = (need: number): Buffer =>
  need <= POOL_SIZE ? (heads.pop() ?? Buffer.allocUnsafeSlow(POOL_SIZE)) : Buffer.allocUnsafeSlow(need);

export const giveHeadBuffer = (b: Buffer): void => {
  if (b.length === POOL_SIZE && heads.length < 256) heads.push(b);
};

/**
 * Reads at least this large that are wholly consumed (parsed heads, body bytes copied into a
 * read's buffer) are freed at once. Bun allocates a fresh buffer per read, up to 512 KiB, and
 * the GC frees it only when it sweeps; by then the allocator has often given the pages back to
 * the kernel, and the next read's buffer faults them in afresh. Smaller reads live in the GC
 * heap, where freeing early would cost more than it saves.
 */
export const RELEASE_READ = 64 * 1024;

/** Free a read buffer nothing refers to any more: detaching releases its memory now. */
export function releaseRead(chunk: Buffer): void {
  const ab = chunk.buffer;
  if (chunk.byteOffset === 0 && ab.byteLength === chunk.length && ab instanceof ArrayBuffer) ab.transfer(0);
}
