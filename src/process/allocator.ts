/** @module process/allocator — the allocator setting the bunwsgi command starts with: memory it frees is kept for reuse for seconds, not handed back to the system within 100 ms. */

import { libc, libcFailure } from "../engine/libc.ts";
import { selfCommand } from "./spawn.ts";

/** mimalloc, Bun's allocator, reads its options from the environment once, as the process starts. */
export const PURGE_ENV = "MIMALLOC_PURGE_DELAY";
/** Milliseconds that freed memory stays with the process, for reuse, before it is returned to the system. */
export const PURGE_DELAY_MS = 10_000;

/**
 * Start this program again in place, with the allocator's purge delay set, unless the
 * environment sets it already (an operator's own value stands). Returns only when it did not.
 * execve(2) keeps the PID, the parent and the descriptors not marked close-on-exec, so inherited
 * listening sockets (systemd's, a SIGUSR2 heir's) and a supervisor's view of the process hold.
 *
 * Why: Bun allocates request bodies and read buffers with mimalloc, which returns freed pages
 * to the system 100 ms after they are freed (its default purge_delay). A server moving large
 * bodies frees and allocates megabytes many times a second, so the same pages go back and fault
 * in again: 24–62 page faults per 1 MiB POST echo; with 10 s, 0–5, and 7 % less CPU per echo
 * (24 % less streamed). The peak RSS is no higher; memory goes back to the system 10 s after a
 * burst instead of 100 ms.
 */
export function keepFreedMemory(): void {
  if (process.env[PURGE_ENV] !== undefined) return;
  const [file, ...args] = selfCommand() as [string, ...string[]];
  // execve(2) itself: process.execve closes every descriptor but stdio, inherited sockets too.
  const lc = libc();
  let why = libcFailure();
  if (lc !== null) {
    const env = Object.entries({ ...process.env, [PURGE_ENV]: String(PURGE_DELAY_MS) }).map(([k, v]) => `${k}=${v}`);
    lc.execve(file, [file, ...args], env);
    // Only a failed execve returns: the binary was replaced or removed since it started, say.
    why = `execve ${file}: errno ${lc.errno()}`;
  }
  process.stderr.write(
    `bunwsgi: warning: could not restart with ${PURGE_ENV}=${PURGE_DELAY_MS} (${why}); freed memory goes back to the system after 100 ms\n`,
  );
}
