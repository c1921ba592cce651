/** @module process/handle — one worker process as its master sees it: its slot, generation and state, its last heartbeat, its output relayed in whole lines, and stopping it (SIGTERM, then SIGKILL past a deadline). */

import { rmSync, writeFileSync } from "node:fs";
import { defaultLog, type LogSink } from "../observe/log.ts";
import type { HeldSocket } from "./descriptors.ts";
import { relayLines } from "./lines.ts";
import type { MasterMessage } from "./messages.ts";
import { spawnWorker, type WorkerProcess } from "./spawn.ts";
import { lastRequest, WATCH_FILE_SIZE } from "./watch.ts";

/** Seconds between SIGTERM and SIGKILL for a worker that is hung (a hung event loop runs no SIGTERM handler). */
export const KILL_GRACE = 3;

export type WorkerState = "starting" | "serving" | "stopping";

export const now = (): number => performance.now() / 1000;

/** A worker process: see the module comment. */
export class WorkerHandle {
  readonly proc: WorkerProcess;
  readonly startedAt = now();
  state: WorkerState = "starting";
  lastBeat = this.startedAt;
  /** Asked to stop (rolled, retired, scaled down, the master stopping): its exit is expected. */
  asked = false;
  /** Killed for a missed heartbeat or a start that took too long. */
  hung = false;
  private killTimer: ReturnType<typeof setTimeout> | null = null;
  /** Resolves once the process has exited and its output is relayed. */
  readonly ended: Promise<void>;

  constructor(
    readonly slot: number,
    /** Order of starting: a ready worker replaces the older ones of its slot. */
    readonly serial: number,
    /** The roll (SIGHUP) that started it. */
    readonly generation: number,
    /** The shared file its request lines go to (process/watch). */
    readonly watchFile: string,
    config: string,
    tls: string,
    sockets: readonly HeldSocket[],
    stdout: LogSink,
    private readonly errorLog: LogSink,
    onMessage: (w: WorkerHandle, m: unknown) => void,
  ) {
    writeFileSync(watchFile, Buffer.alloc(WATCH_FILE_SIZE));
    const proc = spawnWorker(slot, config, tls, sockets, watchFile, (m) => onMessage(this, m));
    this.proc = proc;
    const out = relayLines(proc.stdout, (s) => stdout.write(s));
    const err = relayLines(proc.stderr, (s) => defaultLog().write(s));
    this.ended = Promise.all([proc.exited, out, err]).then(() => {
      if (this.killTimer !== null) clearTimeout(this.killTimer);
      rmSync(watchFile, { force: true });
    });
  }

  get name(): string {
    return `worker ${this.slot} (pid ${this.proc.pid})`;
  }

  /** How it ended: "exit code 0", "signal SIGKILL". */
  get how(): string {
    const code = this.proc.exitCode;
    return code !== null ? `exit code ${code}` : `signal ${this.proc.signalCode}`;
  }

  /** Why it is killed for a missed heartbeat: how long it was stuck, and the last request it started (process/watch). */
  stuckReport(t: number, limit: number): string {
    const last = lastRequest(this.watchFile);
    const doing =
      last === null
        ? "it had started no request"
        : `the last request it started was "${last.line}", ${((Date.now() - last.at) / 1000).toFixed(1)}s ago`;
    return `${this.name} stuck: its event loop has not answered for ${(t - this.lastBeat).toFixed(1)}s (timeouts.worker = ${limit}s); ${doing}. Killing it (SIGTERM, SIGKILL in ${KILL_GRACE}s) and starting a replacement`;
  }

  /**
   * Graceful stop: a stop message, or SIGTERM if the channel is gone (the worker drains for
   * `drain` seconds, then finishes its requests for `shutdown` seconds), SIGKILL if it outlives that.
   * `close`: the binds whose socket ends with this worker; `service`: the whole service stops
   * (see MasterMessage).
   */
  ask(shutdown: number, drain = 0, close: string[] = [], service = false): void {
    if (this.asked || this.hung) return;
    this.asked = true;
    this.state = "stopping";
    const m: MasterMessage = { t: "stop" };
    if (drain > 0) m.drain = true;
    if (close.length > 0) m.close = close;
    if (service) m.service = true;
    this.tell(m);
    const limit = drain + shutdown + KILL_GRACE;
    this.killAfter(limit, `still running ${limit}s after SIGTERM`);
  }

  /** A hung worker: SIGTERM now, SIGKILL after the grace. */
  terminate(): void {
    this.hung = true;
    this.proc.kill("SIGTERM");
    this.killAfter(KILL_GRACE, `did not exit ${KILL_GRACE}s after SIGTERM`);
  }

  /** The master's second signal: the worker closes its connections at once. */
  hurry(): void {
    this.tell({ t: "hurry" });
  }

  /** A message to the worker, or SIGTERM if its channel is gone. */
  private tell(m: MasterMessage): void {
    try {
      this.proc.send(m);
    } catch {
      this.proc.kill("SIGTERM");
    }
  }

  private killAfter(seconds: number, why: string): void {
    if (this.killTimer !== null) clearTimeout(this.killTimer);
    this.killTimer = setTimeout(() => {
      if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
      this.errorLog.write(`bunwsgi: ${this.name} ${why}: SIGKILL\n`, "WARNING");
      this.proc.kill("SIGKILL");
    }, seconds * 1000);
  }
}
