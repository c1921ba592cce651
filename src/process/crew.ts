/** @module process/crew — a master's workers by slot and generation: starting one (its config snapshot and watch file), what a slot holds, refilling empty slots after their backoff, and the start and heartbeat deadlines checked once a second. */

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Config } from "../config/resolve.ts";
import { type LogLevel, type LogSink, StreamLog } from "../observe/log.ts";
import { SlotBackoff } from "./backoff.ts";
import type { HeldSocket } from "./descriptors.ts";
import { now, WorkerHandle } from "./handle.ts";
import type { RestartReason } from "./metrics-page.ts";

/** What a crew asks of its master. */
export interface CrewHost {
  /** The config a generation's workers start with, as resolved when the generation started. */
  configFor(generation: number): Config;
  /** The error log a new worker writes its master's messages about it to. */
  readonly errorLog: LogSink;
  log(msg: string, level?: LogLevel): void;
  /** A worker's IPC message (process/messages). */
  message(w: WorkerHandle, m: unknown): void;
  /** A worker has exited (it is no longer in the crew) and its output is relayed. */
  exited(w: WorkerHandle): void;
  /** A worker is being replaced for `reason` (the metrics page counts it). */
  restarted(reason: RestartReason): void;
}

/** The workers of one master: see the module comment. */
export class Crew implements Iterable<WorkerHandle> {
  private readonly workers = new Set<WorkerHandle>();
  private serial = 0;
  /** The workers' watch files (process/watch), removed with the crew. */
  private readonly watchDir = mkdtempSync(join(tmpdir(), "bunwsgi-master-"));
  /** The workers' stdout, relayed in whole lines. */
  private readonly stdout = new StreamLog("stdout");
  /** Each slot's failed starts. */
  readonly backoff = new SlotBackoff();

  constructor(
    private readonly sockets: readonly HeldSocket[],
    private readonly host: CrewHost,
  ) {}

  get size(): number {
    return this.workers.size;
  }

  [Symbol.iterator](): Iterator<WorkerHandle> {
    return this.workers.values();
  }

  /** Start a worker for `slot` of `generation`, serving the sockets the master holds. */
  start(slot: number, generation: number): WorkerHandle {
    const serial = ++this.serial;
    const host = this.host;
    const config = host.configFor(generation);
    const w = new WorkerHandle(
      slot,
      serial,
      generation,
      join(this.watchDir, `w${serial}`),
      // A replacement starts with its generation's config and TLS files' text: it does not read
      // an edited file nobody signalled.
      config.snapshot({ bind: this.sockets.map((s) => s.bind) }),
      config.tlsHandOff(),
      this.sockets,
      this.stdout,
      host.errorLog,
      (worker, m) => host.message(worker, m),
    );
    this.workers.add(w);
    void w.ended.then(() => {
      this.workers.delete(w);
      host.exited(w);
    });
    host.log(`${w.name} started`, "DEBUG");
    return w;
  }

  /** A younger worker, not asked to stop, holds w's slot: w's replacement is starting or serving. */
  replaced(w: WorkerHandle): boolean {
    for (const x of this.workers) if (x.slot === w.slot && x.serial > w.serial && !x.asked) return true;
    return false;
  }

  /** The older workers of w's slot and generation: w, ready, takes over from them. */
  predecessors(w: WorkerHandle): WorkerHandle[] {
    return [...this.workers].filter((x) => x !== w && x.slot === w.slot && x.generation === w.generation && x.serial < w.serial);
  }

  /** `target` workers of `generation`, not asked to stop, all serve. */
  allServing(generation: number, target: number): boolean {
    const fresh = [...this.workers].filter((x) => x.generation === generation && !x.asked);
    return fresh.length >= target && fresh.every((x) => x.state === "serving");
  }

  /**
   * Start a worker of `generation` for every slot below `target` that has none; a slot whose
   * last start failed waits out its backoff first, then `again` is called.
   */
  fill(target: number, generation: number, again: () => void): void {
    for (let slot = 0; slot < target; slot++) {
      if (this.backoff.scheduled(slot)) continue;
      if ([...this.workers].some((w) => w.slot === slot && !w.asked)) continue;
      // Its backoff counts from its last failed start: once that has passed, it starts. (Asking
      // whether it had failed at all, which only a success clears, rescheduled a failed slot
      // forever: the service ran a worker short, the log promising a start that never came.)
      if (!this.backoff.waiting(slot)) this.start(slot, generation);
      else this.backoff.schedule(slot, again);
    }
  }

  /**
   * Once a second (timeouts.worker = `limit`): a worker not ready `limit` seconds after it
   * started is killed and its slot backs off; one whose event loop has not answered its
   * heartbeat for `limit` seconds is killed and replaced at once.
   */
  check(limit: number): void {
    const t = now();
    for (const w of this.workers) {
      if (w.asked || w.hung) continue;
      if (w.state === "starting" && t - w.startedAt > limit) {
        this.host.log(`${w.name} not ready ${limit}s after it started (timeouts.worker): killing it`, "ERROR");
        this.backoff.failed(w.slot);
        w.terminate();
      } else if (w.state === "serving" && t - w.lastBeat > limit) {
        this.host.log(w.stuckReport(t, limit), "ERROR");
        w.terminate();
        this.host.restarted("hung");
        this.start(w.slot, w.generation);
      }
    }
  }

  /** Every worker has exited: flush their relayed output, remove their watch files. */
  close(): void {
    this.stdout.flush();
    rmSync(this.watchDir, { recursive: true, force: true });
  }
}
