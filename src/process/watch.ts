/** @module process/watch — a worker's last request line in a small shared file, so the master can say what a worker whose event loop hangs was doing. */

import { readFileSync } from "node:fs";
import type { RequestWatch } from "../engine/exchange.ts";

/** Layout: f64 start time (ms since the epoch), u32 length, then up to LINE_MAX bytes of the request line. */
const LINE_MAX = 256;
export const WATCH_FILE_SIZE = 12 + LINE_MAX;

/** The worker's side: each request's line, written into the mapped file as it starts. */
export class WatchWriter implements RequestWatch {
  private readonly map: Uint8Array;
  private readonly view: DataView;

  constructor(path: string) {
    this.map = Bun.mmap(path, { shared: true });
    this.view = new DataView(this.map.buffer, this.map.byteOffset, this.map.byteLength);
  }

  started(buf: Buffer, start: number, end: number): void {
    let e = Math.min(end, start + LINE_MAX);
    // The line without its CRLF.
    while (e > start && (buf[e - 1] === 0x0a || buf[e - 1] === 0x0d)) e--;
    // A copy, not subarray() + set(): no view object per request.
    buf.copy(this.map, 12, start, e);
    this.view.setUint32(8, e - start, true);
    this.view.setFloat64(0, Date.now(), true);
  }
}

/** The master's side: the last request line a worker started and when, or null if none. */
export function lastRequest(path: string): { line: string; at: number } | null {
  let b: Buffer;
  try {
    b = readFileSync(path);
  } catch {
    return null;
  }
  if (b.length < WATCH_FILE_SIZE) return null;
  const at = b.readDoubleLE(0);
  const n = Math.min(b.readUInt32LE(8), LINE_MAX);
  return at > 0 ? { line: b.toString("latin1", 12, 12 + n), at } : null;
}
