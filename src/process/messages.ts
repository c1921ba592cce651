/** @module process/messages — what a master and its workers tell each other: the environment a worker or a new master starts with, the IPC messages, and the exit code that stops restarts. */

import type { Samples } from "../observe/metrics.ts";

/** Environment variables a master sets for its workers (apps may read the first two). */
export const ENV_WORKER = "BUNWSGI_WORKER";
export const ENV_MASTER_PID = "BUNWSGI_MASTER_PID";
/** { bind: descriptor }: the listening sockets a worker or a new master inherits, by bind. */
export const ENV_SOCKETS = "BUNWSGI_SOCKETS";
/** The master's resolved config for the worker's generation (Config.snapshot()): a worker never re-reads the file. */
export const ENV_CONFIG = "BUNWSGI_CONFIG";
/** The file a worker writes each request line to, for the master's report of a hung worker. */
export const ENV_WATCH = "BUNWSGI_WATCH_FILE";

/** Worker → master. */
export type WorkerMessage =
  /** Listening, app imported: it may take the place of an older worker. */
  | { t: "ready" }
  /** The event loop is turning (sent on a timer); with metrics_bind, the worker's cumulative metric samples. */
  | { t: "beat"; metrics?: Samples }
  /** max_requests reached: start my replacement, then stop me. */
  | { t: "retire"; requests: number };

export function isWorkerMessage(m: unknown): m is WorkerMessage {
  if (typeof m !== "object" || m === null) return false;
  const t = (m as { t?: unknown }).t;
  return t === "ready" || t === "beat" || t === "retire";
}

/**
 * Master → worker: a graceful stop. Not SIGTERM: a service manager that signals the whole group
 * (systemd's KillMode=control-group) sends each worker its own SIGTERM too, and a second SIGTERM
 * means "at once"; a message repeats harmlessly.
 */
export type MasterMessage =
  | {
      t: "stop";
      /**
       * The whole service stops (the master's SIGTERM): the worker drains first (timeouts.drain_delay,
       * readiness 503). Not when one worker is replaced (a roll, max_requests, scaling down): the
       * others serve the same sockets, so readiness stays what it was.
       */
      drain?: boolean;
      /**
       * The binds whose listening socket ends with this worker: the master has closed its copy
       * and no other process listens on it (the master stopping with no new master, a removed
       * slot's per-worker socket). The worker refuses new connections on them before it stops
       * listening, so that what the kernel queued there is answered, not reset.
       */
      close?: string[];
      /**
       * The whole service stops (the master's own stop, whatever its drain): readiness fails from
       * now on. Absent when one worker is replaced (a roll, max_requests, scaling down): the
       * others serve the same sockets, and its readiness stays 200 while it finishes.
       */
      service?: boolean;
    }
  /** The master's second stop signal: close every connection now. */
  | { t: "hurry" };

export function isMasterMessage(m: unknown): m is MasterMessage {
  if (typeof m !== "object" || m === null) return false;
  const t = (m as { t?: unknown }).t;
  return t === "stop" || t === "hurry";
}

/**
 * A worker's exit code when its config or app cannot start at all: the master does not restart
 * it in a loop (at start-up it stops with the worker's reason; on SIGHUP it keeps the old workers).
 */
export const EXIT_UNSTARTABLE = 2;
