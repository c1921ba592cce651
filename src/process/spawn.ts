/** @module process/spawn — starting this program again: a worker with the master's listening sockets and an IPC channel, or a new master (SIGUSR2) with the same sockets; the command that started it. */

import type { Subprocess } from "bun";
import type { HeldSocket } from "./descriptors.ts";
import { ENV_CONFIG, ENV_MASTER_PID, ENV_SOCKETS, ENV_WATCH, ENV_WORKER } from "./messages.ts";

/**
 * The executable and arguments that started this process, read once at start-up: SIGUSR2 starts
 * "the binary found at this path", also after a deploy replaced the file (the running process's
 * own image is then a deleted file, which is what a later look would find).
 */
const SELF = (() => {
  // A compiled binary's argv[1] is its embedded entry ("/$bunfs/root/…"), not an argument.
  const args = process.argv.slice(1);
  if (args[0]?.startsWith("/$bunfs/") || args[0]?.startsWith("B:/~BUN/")) args.shift();
  return [process.execPath, ...args];
})();

/** The binary this master upgrades to on SIGUSR2. */
export const selfPath = (): string => SELF[0] as string;

/** The executable and arguments that started this process. */
export const selfCommand = (): readonly string[] => SELF;

/**
 * The listening sockets as a child sees them, at descriptors 3, 4, … in bind order: a worker
 * gets its slot's one per bind, a new master (`slot` null) every one.
 */
function passed(sockets: readonly HeldSocket[], slot: number | null): { env: string; fds: number[] } {
  const map: Record<string, number[]> = {};
  const fds: number[] = [];
  for (const s of sockets) {
    const mine = slot === null ? s.descriptors : [s.fdFor(slot)];
    map[s.bind] = mine.map((_, i) => 3 + fds.length + i);
    fds.push(...mine);
  }
  return { env: JSON.stringify(map), fds };
}

export type WorkerProcess = Subprocess<Uint8Array, "pipe", "pipe">;

/**
 * Start a worker for `slot` with `config` (a Config snapshot) and `tls` (its TLS files' text,
 * Config.tlsHandOff) on its standard input: its stdout and stderr are pipes (the master relays
 * whole lines), its messages go to `onMessage`.
 */
export function spawnWorker(
  slot: number,
  config: string,
  tls: string,
  sockets: readonly HeldSocket[],
  watchFile: string,
  onMessage: (m: unknown) => void,
): WorkerProcess {
  const { env, fds } = passed(sockets, slot);
  return Bun.spawn(SELF, {
    env: {
      ...process.env,
      [ENV_WORKER]: String(slot),
      [ENV_MASTER_PID]: String(process.pid),
      [ENV_SOCKETS]: env,
      [ENV_WATCH]: watchFile,
      [ENV_CONFIG]: config,
    },
    stdio: [new TextEncoder().encode(tls), "pipe", "pipe", ...fds],
    serialization: "json",
    ipc: onMessage,
  }) as WorkerProcess;
}

/** Start the binary at this one's path as a new master inheriting the sockets; it shares this one's stdout and stderr. */
export function spawnHeir(sockets: readonly HeldSocket[]): Subprocess {
  const { env, fds } = passed(sockets, null);
  return Bun.spawn(SELF, { env: { ...process.env, [ENV_SOCKETS]: env }, stdio: ["ignore", "inherit", "inherit", ...fds] });
}
