/** @module engine/sendfile — a file's span sent by sendfile(2) on a plain socket: bursts between event-loop turns, one byte by the read path when the socket is full (its drain is the signal to go on), every byte counted as progress. */

import { readSync } from "node:fs";
import { ConnectionClosedError } from "../errors.ts";
import type { FileBody } from "./blob.ts";
import { libc } from "./libc.ts";
import type { Output } from "./output.ts";
import type { Span } from "./ranges.ts";
import type { ResponseWriter } from "./response.ts";

/** errno values (Linux, asm-generic/errno-base.h). */
const EINTR = 4;
const EAGAIN = 11;

/**
 * Bytes asked of one sendfile(2) call: it also reads the file synchronously (from disk on a cache
 * miss), so each call is bounded; large enough that one call usually fills a loopback socket's
 * buffer (some 1.6 MiB each time it drains under wrk), where 1 MiB took two calls and an EAGAIN.
 */
const CALL = 2 * 1024 * 1024;
/** Bytes sent in one turn of the event loop before yielding (setImmediate): one download cannot starve the other connections. */
const TURN = 4 * 1024 * 1024;
/**
 * Bytes read and written through Bun when the socket is full: Bun calls `drain` only after one of
 * its own writes was partial, and one byte is the least that asks for it. (A 16 KiB block cost
 * its read, a fresh buffer and two copies each time, some 80 times per 100 MiB on loopback: 1.7×
 * Bun.serve's CPU per byte, against 1.2× with one byte.)
 */
const PROBE = 1;
/** Bytes per read once sendfile(2) has failed with an error other than EAGAIN (a file system without it). */
const FALLBACK = 64 * 1024;

/**
 * Linux only: engine/libc's sendfile signature and the errno values above are Linux's (macOS and
 * the BSDs have a sendfile with other arguments). `BUNWSGI_SENDFILE=off` (read once, at start) sends files by
 * the read path everywhere, as on TLS: for a file system whose sendfile(2) misbehaves, and for
 * the tests of that path.
 */
const enabled = process.platform === "linux" && process.env.BUNWSGI_SENDFILE !== "off";

/** Body bytes of file responses, process-wide: sent by sendfile(2), and read into buffers by the steps between (tests read them). */
export const sendfileStats = { direct: 0, read: 0 };

/** Whether a file body on `out` goes by sendfile: a plain socket, the C library loaded, not turned off. */
export function sendfileUsable(out: Output): boolean {
  return enabled && out.plainFd() >= 0 && libc() !== null;
}

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * Send `part` of `body` (offsets within the body; its file is read at `body.start` and on, the
 * descriptor's own position neither read nor moved) as the body of `writer`'s response, whose
 * head the caller has written.
 * The head and anything queued before it go first (Output writes them, the head with MSG_MORE so
 * that it shares the body's first segment; sendfile starts once its queue is empty). Then
 * sendfile(2) in calls of at most CALL bytes, TURN bytes per turn of the event loop; when it
 * fails with EAGAIN (sendfile(2): the non-blocking socket is full), the next byte is read and
 * written through Output, whose drain resumes sendfile. Any other error makes the rest go
 * through Output in FALLBACK blocks (a connection gone fails there, as on the read path).
 * Ends quietly when the file ends early (the writer's length check cuts the connection) or
 * `stopped()` says the response is abandoned; throws ConnectionClosedError when the connection
 * closes. The file is the caller's, open throughout, and closed by it.
 */
export async function sendSpan(
  out: Output,
  writer: ResponseWriter,
  body: FileBody,
  part: Span,
  stopped: () => boolean,
): Promise<void> {
  const c = libc();
  if (c === null) throw new Error("sendSpan without the C library (check sendfileUsable first)");
  const fd = body.fd;
  const offset = new BigInt64Array([BigInt(body.start + part.start)]);
  let left = part.length;
  let direct = true;
  out.flushAhead();
  while (left > 0) {
    if (out.queued > 0) await out.waitDrain();
    if (out.dead) throw new ConnectionClosedError();
    if (stopped()) return;
    const sock = out.plainFd();
    let burst = 0;
    while (left > 0 && burst < TURN && out.queued === 0) {
      if (direct) {
        const ask = Math.min(CALL, left);
        const n = c.sendfile(sock, fd, offset, ask);
        if (n > 0) {
          left -= n;
          burst += n;
          sendfileStats.direct += n;
          writer.bodySent += n;
          writer.length += n;
          out.tookAside(n);
          // Less than asked: the socket is full (or the file ended), and another call would
          // only fail with EAGAIN; the probe below finds out which.
          if (n === ask || left === 0) continue;
        } else {
          // sendfile(2): 0 at the file's end, before the span's (it shrank): the writer's check cuts the connection.
          if (n === 0) return;
          const errno = c.errno();
          if (errno === EINTR) continue;
          if (errno !== EAGAIN) direct = false;
        }
      }
      const bytes = Buffer.allocUnsafe(direct ? PROBE : Math.min(FALLBACK, left));
      const got = readSync(fd, bytes, 0, bytes.length, Number(offset[0]));
      if (got === 0) return;
      offset[0] = (offset[0] as bigint) + BigInt(got);
      left -= got;
      burst += got;
      sendfileStats.read += got;
      writer.writeBody(bytes.subarray(0, got), got);
      // Written now even inside a read callback (whose output waits for its end otherwise):
      // what follows by sendfile must not pass it.
      out.flush();
      if (out.dead) throw new ConnectionClosedError();
    }
    if (left > 0 && out.queued === 0) await nextTurn();
  }
}
