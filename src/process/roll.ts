/** @module process/roll — SIGHUP with workers: the config read again, a new generation of workers started beside the serving ones, adopted once every one of them serves (only then do the old ones drain), and abandoned, the old ones serving on, if one of them fails. */

import type { CommandLine } from "../config/args.ts";
import type { Config } from "../config/resolve.ts";
import type { LogLevel, LogSink } from "../observe/log.ts";
import { closeUnless, reloadConfig, restartWarnings, workerCount } from "./common.ts";
import type { Crew } from "./crew.ts";
import type { WorkerHandle } from "./handle.ts";

/** A generation of workers: the roll that started it, its config, worker count and logs. */
export interface Generation {
  readonly generation: number;
  readonly config: Config;
  readonly target: number;
  readonly logs: [LogSink, LogSink];
}

/** What a roll asks of its master. */
export interface RollHost {
  readonly crew: Crew;
  /** The serving generation's worker count. */
  readonly target: number;
  /** The serving generation's logs. */
  readonly logs: readonly LogSink[];
  log(msg: string, level?: LogLevel): void;
  /** Sockets for `slots` workers on every bind; false (logged with `what`) when they cannot be bound. */
  resize(slots: number, what: string): boolean;
  /** Ask a worker to stop gracefully. */
  ask(w: WorkerHandle): void;
  /** The new generation serves: its config, worker count and logs are the master's now. */
  adopt(next: Generation): void;
  /** After an abandoned roll: start a worker for every slot that needs one. */
  fill(): void;
}

/** A master's SIGHUPs: see the module comment. At most one roll runs at a time. */
export class Rolls {
  private generations = 0;
  /** The generation a SIGHUP is starting, until all of it serves (or one of it fails). */
  private next: Generation | null = null;
  /**
   * A SIGHUP came while `next` was starting: the config (or app) may have changed again since
   * `next` read it, so once `next` is adopted or abandoned the master rolls again.
   */
  private again = false;

  constructor(
    private readonly host: RollHost,
    private readonly commandLine: CommandLine,
    private readonly embedded: boolean,
    /** The config the master started with: what a restart-only setting is compared with. */
    private readonly applied: Config,
  ) {}

  /** A roll is starting its workers. */
  get active(): boolean {
    return this.next !== null;
  }

  /** `generation` is the one rolling in. */
  rollingIn(generation: number): boolean {
    return this.next !== null && this.next.generation === generation;
  }

  /** The config of `generation` if it is the one rolling in, else null. */
  configOf(generation: number): Config | null {
    return this.next !== null && this.next.generation === generation ? this.next.config : null;
  }

  /** SIGHUP: read the config again and start its generation; a config that fails keeps what serves. */
  begin(): void {
    const host = this.host;
    if (this.next !== null) {
      if (!this.again)
        host.log(
          "SIGHUP while the previous one is still starting its workers: it rolls again once they are ready (or have failed)",
        );
      this.again = true;
      return;
    }
    const failed = "SIGHUP: reload failed, the workers keep serving the previous configuration";
    const reload = reloadConfig(this.commandLine, this.embedded);
    if ("why" in reload) {
      host.log(`${failed}:${reload.why}`, "ERROR");
      return;
    }
    const { config, logs } = reload;
    for (const w of restartWarnings(this.applied, config, null)) host.log(`SIGHUP: ${w}`, "WARNING");
    // workers = 0 is a restart (restartWarnings said so): the roll keeps the count that serves.
    const target = workerCount(config) > 0 ? workerCount(config) : host.target;
    // The old workers serve their slots' sockets until the new ones are ready.
    if (!host.resize(Math.max(target, host.target), failed)) {
      closeUnless(logs, host.logs);
      return;
    }
    const generation = ++this.generations;
    this.next = { generation, config, target, logs };
    host.log(`SIGHUP: starting ${target} worker${target === 1 ? "" : "s"} with ${config.file ?? "the flags"}`);
    for (let slot = 0; slot < target; slot++) host.crew.start(slot, generation);
  }

  /** A worker became ready: once every worker of the new generation serves, it is adopted. */
  ready(w: WorkerHandle): void {
    const next = this.next;
    if (next === null || w.generation !== next.generation) return;
    const host = this.host;
    if (!host.crew.allServing(next.generation, next.target)) return;
    // The whole new generation listens with the new app: only now do the old ones drain.
    this.next = null;
    host.adopt(next);
    for (const old of host.crew) if (old.generation !== next.generation) host.ask(old);
    host.log(`SIGHUP: ${next.target} new worker${next.target === 1 ? "" : "s"} ready; the previous ones are draining`);
    this.queued();
  }

  /** The SIGHUP that came while the last roll was starting, begun now that it is done. */
  private queued(): void {
    if (!this.again) return;
    this.again = false;
    this.host.log("SIGHUP: rolling again for the SIGHUP that came while the previous one was starting");
    this.begin();
  }

  /** A worker of the new generation failed (`why`): its workers stop, the previous ones keep serving. */
  abandon(why: string): void {
    const next = this.next as Generation;
    this.next = null;
    const host = this.host;
    host.log(`SIGHUP: reload failed, the previous workers keep serving: ${why}`, "ERROR");
    for (const w of host.crew) if (w.generation === next.generation) host.ask(w);
    host.resize(host.target, "SIGHUP");
    closeUnless(next.logs, host.logs);
    host.fill();
    this.queued();
  }

  /** The master stops: a roll in progress ends with it (its workers stop with the others) and its logs close. */
  cancel(): void {
    const next = this.next;
    this.next = null;
    this.again = false;
    if (next !== null) closeUnless(next.logs, this.host.logs);
  }
}
