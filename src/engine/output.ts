/** @module engine/output — a connection's response bytes: assembled in one process-wide scratch buffer, written with one socket.write per batch, and the rest queued until drain (partial writes honoured). */

import { ptr } from "bun:ffi";
import type { Socket } from "bun";
import { ConnectionClosedError } from "../errors.ts";
import { counters } from "./counters.ts";
import { type Flow, Pause } from "./flow.ts";
import { copyOf } from "./input.ts";
import { libc } from "./libc.ts";
import { HeldTime } from "./rate.ts";

/** What an Output needs of its connection, and tells it. */
export interface OutputOwner {
  /** A read callback is running: output is flushed when it returns, not per write. */
  readonly batching: boolean;
  /** The coarse clock, in seconds; TLS options when the server's sockets are TLS. */
  readonly host: { readonly now: number; readonly tls?: object | undefined };
  /** Reading pauses while queued output is over its high-water mark. */
  readonly flow: Flow;
  /** The socket refused a write: the peer is gone. */
  outputFailed(): void;
  /** Every queued byte went to the kernel. */
  outputDrained(): void;
}

/** Unsent response bytes above which the app's write() waits and reading pauses. */
export const OUTPUT_HIGH_WATER = 256 * 1024;
/**
 * Chunks at least this large are written from the caller's buffer; smaller ones are copied
 * into the scratch buffer, which costs less than the extra write(2) it saves (framing and
 * body go out in one syscall). Inside a read callback the scratch buffer collects everything
 * the callback writes (pipelined responses, a synchronous result's chunks) for one write at its
 * end, so copying pays up to a large size; outside one, each chunk is flushed as it comes, and
 * a copy of a big chunk only saves the few bytes of framing before it (measured: a 1 MiB
 * stream of 64 KiB chunks from a fetch app cost 1149 → 653 µs of CPU written directly).
 */
const DIRECT_WRITE = 256 * 1024;
const DIRECT_WRITE_UNBATCHED = 16 * 1024;

/** The promise of a write the socket took at once: shared, so a caller can tell it from one that may still reject. */
export const RESOLVED: Promise<void> = Promise.resolve();

// One output scratch buffer for the whole process: responses are assembled here and leave in
// one socket.write. It belongs to one Output at a time and is flushed before another uses it.
let scratch = Buffer.allocUnsafeSlow(64 * 1024);
/** Buffer's native encoders (Node API, present in Bun, absent from the typings): half the cost of write(s, off, enc). */
interface NativeWrite {
  latin1Write(s: string, offset: number): number;
  utf8Write(s: string, offset: number): number;
}
let scratchLen = 0;
let scratchOwner: Output | null = null;

/** A chunk's size line, and the struct iovec array (address and length pairs) of one sendmsg(2): reused. */
const FRAME = Buffer.allocUnsafeSlow(32);
const CRLF = new Uint8Array([13, 10]);
const IOV = new BigUint64Array(8);
/** IOV's 64-bit words as 32-bit halves (little-endian: the low half first), written with numbers: no BigInt made per entry. */
const IOV32 = new Uint32Array(IOV.buffer);
const EMPTY = new Uint8Array(0);
const TWO_32 = 2 ** 32;

/** Put b[0, len) in IOV's i-th entry; returns the next entry. */
function iovec(i: number, b: Uint8Array, len: number): number {
  word(2 * i, ptr(b));
  word(2 * i + 1, len);
  return i + 1;
}

/** IOV's k-th 64-bit word set to `n` (an address or a length: below 2^53, so a number holds it exactly). */
function word(k: number, n: number): void {
  IOV32[2 * k] = n % TWO_32;
  IOV32[2 * k + 1] = Math.floor(n / TWO_32);
}

/** Outputs whose last send left a partial segment held (MSG_MORE), pushed on the next turn of the event loop. */
let corked: Output[] = [];
let pushScheduled = false;

function pushCorked(): void {
  pushScheduled = false;
  const list = corked;
  corked = [];
  for (const out of list) out.push();
}

export class Output {
  private readonly socket: Socket<unknown>;
  private readonly owner: OutputOwner;
  private queue: Uint8Array[] = [];
  private qHead = 0;
  /** Response bytes accepted but not yet taken by the kernel. */
  queued = 0;
  /** When the kernel last took queued bytes, or the queue began (performance.now() seconds). */
  lastProgress = 0;
  /**
   * Bytes the kernel took, in all, however they went (a write at once, the queue, sendfile): the
   * response rate is measured on it. Counting the queue's alone missed what went straight out
   * between two ticks, and a steady reader then looked slow.
   */
  accepted = 0;
  /**
   * Time the queue stood empty after draining: the client had taken all it was offered, and
   * waited for the app. The response's rate does not count it, even when a tick never sees it.
   */
  private readonly empty = new HeldTime();
  /** Coarse-clock second of the last write (an upgraded connection's idle deadline). */
  lastSend = 0;
  /** No more bytes are written: the connection closed, or the socket refused a write. */
  dead = false;
  /** A MSG_MORE send may have left a partial segment in the kernel, and no send since pushed it. */
  private held = false;
  /**
   * Sends may say MSG_MORE: false once a push failed, as on a unix socket (no TCP_NODELAY to set,
   * and MSG_MORE has no effect there): one failed setsockopt(2) per connection, not one per turn.
   */
  private corkable = true;
  /** The socket's descriptor for writes past Bun (see plainFd), found once: -2 until then, -1 for none (TLS). */
  private fd = -2;
  private drainPromise: Promise<void> | null = null;
  private drainResolve: (() => void) | null = null;
  private drainReject: ((e: Error) => void) | null = null;

  constructor(socket: Socket<unknown>, owner: OutputOwner) {
    this.socket = socket;
    this.owner = owner;
  }

  /**
   * The socket's descriptor when bytes may be written to it past Bun (sendfile(2)), else -1: a
   * TLS socket's bytes must go through its TLS layer. Bun exposes `fd` on its sockets; the
   * typings do not list it.
   */
  plainFd(): number {
    if (this.dead) return -1;
    if (this.fd === -2) {
      const fd = (this.socket as unknown as { fd?: unknown }).fd;
      const plain = this.owner.host.tls === undefined && this.socket.getTLSVersion() === null;
      this.fd = plain && typeof fd === "number" && fd >= 0 ? fd : -1;
    }
    return this.fd;
  }

  /**
   * The kernel took `n` bytes written past the queue (sendfile): they count as progress, as queued
   * bytes do. A segment held before them is out: sendfile(2) pushes as its call ends, and one cut
   * short is followed by a write through Bun, which pushes (engine/sendfile).
   */
  tookAside(n: number): void {
    this.held = false;
    this.lastProgress = performance.now() / 1000;
    this.lastSend = this.owner.host.now;
    this.accepted += n;
  }

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

  /** `more`: more of this response's body follows (see writeAround). */
  writeBytes(b: Uint8Array, more = false): void {
    if (b.length >= (this.owner.batching ? DIRECT_WRITE : DIRECT_WRITE_UNBATCHED)) {
      // What is assembled before it (its head, and inside a read callback the responses before
      // it) goes in the same sendmsg(2).
      if (this.writeAround(0, b, false, more)) return;
      this.flush();
      // What the kernel does not take at once is copied: the app may reuse its buffer once its
      // write has returned (a WSGI write() settles at once below the high-water mark).
      this.send(b, b.length, true);
      return;
    }
    const buf = this.claim(b.length);
    buf.set(b, scratchLen);
    scratchLen += b.length;
  }

  /**
   * One chunk of a chunked body: `size` (its size line, CRLF included), `data`, CRLF, in one
   * sendmsg(2) outside a read callback (see writeAround). Written apart, the few framing bytes
   * leave as TCP segments of their own (Bun's sockets are TCP_NODELAY), each delivered, woken
   * for and acknowledged on its own. More always follows a chunk (at least the last-chunk).
   * Returns false when the caller is to write the chunk as usual.
   */
  writeChunk(size: string, data: Uint8Array): boolean {
    if (this.owner.batching || data.length < DIRECT_WRITE_UNBATCHED) return false;
    return this.writeAround((FRAME as unknown as NativeWrite).latin1Write(size, 0), data, true, true);
  }

  /**
   * A large write on a plain socket with nothing queued: a head assembled before it in the
   * scratch buffer, FRAME[0, frame) (a chunk's size line), `data` and CRLF when `crlf`, in one
   * sendmsg(2) around the caller's bytes, with no copy. What the kernel does not take goes on
   * through the socket's write, queued as any write's rest, so that its drain resumes the
   * queue. Returns false (nothing written) when the caller is to write as usual.
   *
   * `more`: more of the body follows, so the send says MSG_MORE and the kernel keeps the last
   * partial segment to fill it with the next send's bytes. Without it, each part of a streamed
   * body ends in a short segment of its own (on loopback, where one segment holds 65,483 bytes,
   * a 64 KiB chunk and its framing were two), each delivered and acknowledged apart: measured,
   * MSG_MORE took 8–15 % of the CPU of a 1 MiB streamed echo. A held segment leaves with the
   * next send, or with the peer's next ACK, and at the latest on the event loop's next turn
   * (push): an app that pauses between parts does not leave its bytes waiting.
   */
  private writeAround(frame: number, data: Uint8Array, crlf: boolean, more: boolean): boolean {
    if (this.queued > 0 || this.dead) return false;
    const fd = this.plainFd();
    const lc = fd >= 0 ? libc() : null;
    if (lc === null) return false;
    const head = scratchOwner === this ? scratchLen : 0;
    let i = head > 0 ? iovec(0, scratch, head) : 0;
    if (frame > 0) i = iovec(i, FRAME, frame);
    if (data.length > 0) i = iovec(i, data, data.length);
    if (crlf) i = iovec(i, CRLF, 2);
    more &&= this.corkable;
    const n = lc.sendv(fd, IOV, i, more);
    // Nothing written (the socket is full, or failed as the usual write will find): the usual path.
    if (n <= 0) return false;
    // All taken with MSG_MORE: a partial segment may be held. Any other send pushed it.
    const wasHeld = this.held;
    this.held = more && n === head + frame + data.length + (crlf ? 2 : 0);
    if (this.held && !wasHeld) this.holdUntilPushed();
    if (head > 0) {
      scratchOwner = null;
      scratchLen = 0;
    }
    counters.bytesOut += n;
    this.accepted += n;
    this.lastSend = this.owner.host.now;
    // The parts in order, each past the bytes the kernel took: no list of them made per send.
    let skip = this.sendPast(scratch, head, true, n);
    skip = this.sendPast(FRAME, frame, true, skip);
    skip = this.sendPast(data, data.length, true, skip);
    this.sendPast(CRLF, crlf ? 2 : 0, false, skip);
    return true;
  }

  /** Send b[skip, len) (copied when `copy`: a buffer reused or the app's) unless the kernel took it; the skip left for the next part. */
  private sendPast(b: Uint8Array, len: number, copy: boolean, skip: number): number {
    if (skip >= len) return skip - len;
    this.send(b.subarray(skip, len), len - skip, copy);
    return 0;
  }

  private holdUntilPushed(): void {
    corked.push(this);
    if (pushScheduled) return;
    pushScheduled = true;
    setImmediate(pushCorked);
  }

  /** Send a segment a MSG_MORE send left held, unless a send since has (the event loop turned). */
  push(): void {
    if (!this.held) return;
    this.held = false;
    const fd = this.plainFd();
    if (fd >= 0 && libc()?.tcpPush(fd) !== 0) this.corkable = false;
  }

  /**
   * Before a body the caller sends past Output (sendfile): what is assembled (the head) goes
   * now, with MSG_MORE where it can, so that it leaves in the body's first segment instead of a
   * segment of its own, delivered and acknowledged apart (see writeAround). Else as flush().
   */
  flushAhead(): void {
    if (scratchOwner !== this || scratchLen === 0) return;
    if (!this.writeAround(0, EMPTY, false, true)) this.flush();
  }

  /** Hand buffered output to the socket now, unless a read callback will do it on return. */
  commit(): void {
    if (!this.owner.batching) this.flush();
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
    if (this.dead) return;
    this.lastSend = this.owner.host.now;
    if (this.qHead < this.queue.length) {
      const all = b.subarray(0, len);
      this.enqueue(copy ? copyOf(all) : all);
      return;
    }
    // Bun's send has no MSG_MORE: it pushes a segment held before it.
    this.held = false;
    // An offset and length, not a subarray: no view object per response.
    const n = this.socket.write(b, 0, len);
    if (n < 0) {
      this.fail();
      return;
    }
    counters.bytesOut += n;
    this.accepted += n;
    if (n < len) {
      const rest = b.subarray(n, len);
      this.enqueue(copy ? copyOf(rest) : rest);
    }
  }

  private enqueue(b: Uint8Array): void {
    if (this.queued === 0) {
      const now = performance.now() / 1000;
      this.lastProgress = now;
      this.empty.end(now);
    }
    this.queue.push(b);
    this.queued += b.length;
    if (this.queued > OUTPUT_HIGH_WATER) this.owner.flow.pause(Pause.OUTPUT);
  }

  /** The socket can take more: write what is queued, as much as it takes. */
  onDrain(): void {
    if (this.dead) return;
    if (this.writeQueued()) this.drained();
  }

  /** Try the queue once (the deadline check does, once a tick): progress the kernel makes shows. */
  poke(): void {
    if (!this.dead && this.queued > 0 && this.writeQueued()) this.drained();
  }

  /** Write queued chunks as far as the kernel takes them; true when the queue emptied. */
  private writeQueued(): boolean {
    while (this.qHead < this.queue.length) {
      const c = this.queue[this.qHead] as Uint8Array;
      const n = this.socket.write(c);
      if (n < 0) {
        this.fail();
        return false;
      }
      if (n > 0) {
        this.lastProgress = performance.now() / 1000;
        this.accepted += n;
        counters.bytesOut += n;
      }
      if (n < c.length) {
        this.queue[this.qHead] = c.subarray(n);
        this.queued -= n;
        return false;
      }
      this.queued -= c.length;
      this.qHead++;
    }
    return true;
  }

  private drained(): void {
    this.empty.begin(performance.now() / 1000);
    this.queue.length = 0;
    this.qHead = 0;
    this.queued = 0;
    const resolve = this.drainResolve;
    this.drainPromise = this.drainResolve = this.drainReject = null;
    resolve?.();
    this.owner.flow.resume(Pause.OUTPUT);
    this.owner.outputDrained();
  }

  /** Seconds up to `now` that the queue stood empty after draining (see `empty`). */
  emptySeconds(now: number): number {
    return this.empty.total(now);
  }

  get backpressured(): boolean {
    return this.queued > OUTPUT_HIGH_WATER;
  }

  /**
   * Before the next pipelined request is answered: over the high-water mark, counting what a read
   * callback has assembled in the scratch buffer, which is first handed to the kernel so that
   * only what the client has not taken counts. A read's pipelined requests were all answered
   * at once, their responses held whatever the client read: 300 GETs (9 KB) of a 1 MiB
   * response held 300 MiB for a client that never read (engine/intake holds them instead).
   */
  backedUp(): boolean {
    if (scratchOwner === this && this.queued + scratchLen > OUTPUT_HIGH_WATER) this.flush();
    return this.queued > OUTPUT_HIGH_WATER;
  }

  /** Settles when queued output has gone to the kernel; rejects if the connection closes first. */
  waitDrain(): Promise<void> {
    if (this.dead) return Promise.reject(new ConnectionClosedError());
    if (this.queued === 0) return RESOLVED;
    this.drainPromise ??= new Promise<void>((resolve, reject) => {
      this.drainResolve = resolve;
      this.drainReject = reject;
    });
    return this.drainPromise;
  }

  /** The socket refused a write: forget unsent output, the peer is gone. */
  private fail(): void {
    this.dead = true;
    this.drop();
    this.owner.outputFailed();
  }

  private drop(): void {
    this.queue.length = 0;
    this.qHead = 0;
    this.queued = 0;
  }

  /** The connection closed: drop everything, and fail a writer still waiting for drain. */
  close(): void {
    this.dead = true;
    this.held = false;
    const reject = this.drainReject;
    this.drainPromise = this.drainResolve = this.drainReject = null;
    // An Error captures a stack: make one only for a writer still waiting.
    reject?.(new ConnectionClosedError());
    this.drop();
    if (scratchOwner === this) {
      scratchOwner = null;
      scratchLen = 0;
    }
  }
}
