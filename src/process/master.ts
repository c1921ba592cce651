/** @module process/master — the master of `workers = N`: holds the listening sockets, starts and supervises the workers (heartbeat, backoff, max_requests), and turns signals into rolls, log reopening, scaling and binary upgrades. It imports no app and serves no request. */

import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import type { CommandLine } from "../config/args.ts";
import { unixPerms } from "../config/options.ts";
import { type Config, resolveConfig } from "../config/resolve.ts";
import { ConfigError } from "../errors.ts";
import { closeLog, defaultLog, type LogSink, reopenLog, StreamLog } from "../observe/log.ts";
import { Aggregate, addSamples, ProcessStats, type Samples, series } from "../observe/metrics.ts";
import { checkPidfile, openLogs, restartWarnings, tlsFiles, writePidfile } from "./common.ts";
import { type HeldSocket, holdSockets } from "./descriptors.ts";
import { KILL_GRACE, now, WorkerHandle } from "./handle.ts";
import { EXIT_UNSTARTABLE, isWorkerMessage, type WorkerMessage } from "./messages.ts";
import { type MetricsPage, serveMetrics } from "./metrics-page.ts";
import { Upgrade } from "./upgrade.ts";
import { lastRequest } from "./watch.ts";

/** Backoff for a worker that dies before it is ready: 0.5 s, doubling, at most this. */
const MAX_BACKOFF = 30;

/** The pid a pidfile names, or 0. */
function pidOf(path: string): number {
  try {
    return Number.parseInt(readFileSync(path, "utf8"), 10) || 0;
  } catch {
    return 0;
  }
}

/** The number of workers a config asks for ("auto": the CPUs this process may run on). */
export function workerCount(config: Config): number {
  const v = config.get("workers");
  return v === "auto" ? availableParallelism() : (v as number);
}

/** Why a worker was replaced: bunwsgi_worker_restarts_total's reasons. */
type RestartReason = "exited" | "start_failed" | "start_timeout" | "hung" | "max_requests" | "reload";

/** The master's metrics page: its workers' last snapshots summed, the master's own figures, its workers and restarts. */
class MasterMetrics {
  readonly workers = new Aggregate();
  readonly restarts: Record<RestartReason, number> = {
    exited: 0,
    start_failed: 0,
    start_timeout: 0,
    hung: 0,
    max_requests: 0,
    reload: 0,
  };
  private readonly stats = new ProcessStats();
  page: MetricsPage | null = null;

  samples(workers: Iterable<WorkerHandle>): Samples {
    const out: Samples = {};
    this.workers.write(out);
    const own: Samples = {};
    this.stats.write(own);
    addSamples(out, own);
    const states = { starting: 0, serving: 0, stopping: 0 };
    for (const w of workers) states[w.state]++;
    for (const [state, n] of Object.entries(states)) out[series("bunwsgi_workers", { state })] = n;
    for (const [reason, n] of Object.entries(this.restarts)) out[series("bunwsgi_worker_restarts_total", { reason })] = n;
    return out;
  }
}

/** The master process: see the module comment. */
class Master {
  private readonly workers = new Set<WorkerHandle>();
  private target: number;
  /** The generation serving: the workers of the last config that started. */
  private generation = 0;
  private generations = 0;
  private serial = 0;
  /** A SIGHUP's new generation, its config and logs, until all of it is ready (or one fails). */
  private rolling: { generation: number; config: Config; target: number; logs: [LogSink, LogSink] } | null = null;
  private everReady = false;
  private stopping = false;
  private readonly failures = new Map<number, number>();
  /** When each slot's last start failed (now() seconds): a recycle waits out the same backoff. */
  private readonly failedAt = new Map<number, number>();
  private readonly pending = new Map<number, ReturnType<typeof setTimeout>>();
  private readonly watchDir: string;
  private timer: ReturnType<typeof setInterval> | null = null;
  private readonly upgrade: Upgrade;
  private errorLog: LogSink;
  private accessLog: LogSink;
  private readonly stdout = new StreamLog("stdout");
  private readonly applied: Config;
  private readonly appliedTls: Map<string, string>;
  private exitCode = 0;
  /** With metrics_bind: the page and what it sums. */
  private readonly metrics: MasterMetrics | null;
  private resolveDone: ((code: number) => void) | null = null;

  constructor(
    private config: Config,
    private readonly commandLine: CommandLine,
    private readonly embedded: boolean,
    private readonly sockets: HeldSocket[],
    logs: [LogSink, LogSink],
  ) {
    [this.accessLog, this.errorLog] = logs;
    this.applied = config;
    this.appliedTls = tlsFiles(config);
    this.target = workerCount(config);
    this.watchDir = mkdtempSync(join(tmpdir(), "bunwsgi-master-"));
    this.upgrade = new Upgrade(sockets, config.str("pidfile"), (msg, level) => this.log(msg, level));
    this.metrics = config.str("metrics_bind") === null ? null : new MasterMetrics();
  }

  start(): Promise<number> {
    const done = new Promise<number>((resolve) => {
      this.resolveDone = resolve;
    });
    this.log(
      `master (pid ${process.pid}) starting ${this.target} worker${this.target === 1 ? "" : "s"} for ${this.sockets.map((s) => s.bind).join(", ")}`,
    );
    process.on("SIGTERM", () => this.stop("SIGTERM"));
    process.on("SIGINT", () => this.stop("SIGINT"));
    process.on("SIGHUP", () => void this.roll());
    process.on("SIGUSR1", () => this.reopenLogs());
    process.on("SIGUSR2", () => {
      if (this.stopping) return;
      // Before a worker serves there is no pidfile to hand over, and nothing proven to hand over from.
      if (!this.everReady) this.log("SIGUSR2 ignored: no worker serves yet; send it again once one is ready", "WARNING");
      else this.upgrade.start(() => this.stopping);
    });
    process.on("SIGTTIN", () => this.scale(+1));
    process.on("SIGTTOU", () => this.scale(-1));
    for (const s of this.sockets) this.log(`listening on ${s.label}`);
    const metricsBind = this.applied.str("metrics_bind");
    const metrics = this.metrics;
    if (metrics !== null && metricsBind !== null) {
      metrics.page = serveMetrics(metricsBind, () => metrics.samples(this.workers));
      this.log(`metrics on ${metrics.page.url}`);
    }
    for (let slot = 0; slot < this.target; slot++) this.spawn(slot, this.generation);
    this.timer = setInterval(() => this.tick(), 1000);
    return done;
  }

  private log(msg: string, level: "DEBUG" | "INFO" | "WARNING" | "ERROR" = "INFO"): void {
    this.errorLog.write(`bunwsgi: ${msg}\n`, level);
  }

  // ---- workers --------------------------------------------------------------------------

  private spawn(slot: number, generation: number): WorkerHandle {
    const serial = ++this.serial;
    const w = new WorkerHandle(
      slot,
      serial,
      generation,
      join(this.watchDir, `w${serial}`),
      // The generation's config, as resolved when it started (a replacement does not read an
      // edited file nobody signalled), serving the sockets this master holds.
      (this.rolling !== null && generation === this.rolling.generation ? this.rolling.config : this.config).snapshot({
        bind: this.sockets.map((s) => s.bind),
      }),
      this.sockets,
      this.stdout,
      this.errorLog,
      (w, m) => this.message(w, m),
    );
    this.workers.add(w);
    void w.ended.then(() => this.exited(w));
    this.log(`${w.name} started`, "DEBUG");
    return w;
  }

  private message(w: WorkerHandle, m: unknown): void {
    if (!isWorkerMessage(m)) return;
    const msg: WorkerMessage = m;
    w.lastBeat = now();
    if (msg.t === "beat") {
      if (this.metrics !== null && typeof msg.metrics === "object" && msg.metrics !== null)
        this.metrics.workers.update(w.serial, msg.metrics);
    } else if (msg.t === "ready") this.ready(w);
    else if (msg.t === "retire") this.retire(w, msg.requests);
  }

  private ready(w: WorkerHandle): void {
    if (w.state !== "starting") return;
    w.state = "serving";
    if (!this.everReady) {
      this.everReady = true;
      const pidfile = this.applied.str("pidfile");
      if (pidfile !== null) {
        try {
          writePidfile(pidfile);
        } catch (e) {
          this.log(`cannot write the pidfile: ${(e as Error).message}`, "ERROR");
        }
      }
    }
    this.failures.delete(w.slot);
    this.log(`${w.name} ready`);
    // A replacement (recycled, crashed, killed) takes over from the older workers of its slot and
    // generation, also while a roll is starting the next generation.
    for (const old of this.workers) {
      if (old !== w && old.slot === w.slot && old.generation === w.generation && old.serial < w.serial) this.ask(old);
    }
    const roll = this.rolling;
    if (roll !== null) {
      const gen = roll.generation;
      if (w.generation !== gen) return;
      const fresh = [...this.workers].filter((x) => x.generation === gen && !x.asked);
      if (fresh.length < roll.target || fresh.some((x) => x.state !== "serving")) return;
      // The whole new generation listens with the new app: only now do the old ones drain.
      this.rolling = null;
      this.adopt(roll);
      this.restarted("reload", roll.target);
      for (const old of this.workers) if (old.generation !== gen) this.ask(old);
      this.log(`SIGHUP: ${this.target} new worker${this.target === 1 ? "" : "s"} ready; the previous ones are draining`);
    }
  }

  /** max_requests: start the replacement now; the worker stops once it is ready. */
  private retire(w: WorkerHandle, requests: number): void {
    if (w.asked || this.stopping || this.rolling !== null) return;
    // Its replacement is already starting (the worker says it again on every beat until stopped).
    for (const x of this.workers) if (x.slot === w.slot && x.serial > w.serial && !x.asked) return;
    const n = this.failures.get(w.slot) ?? 0;
    if (n > 0 && now() - (this.failedAt.get(w.slot) ?? 0) < Math.min(MAX_BACKOFF, 0.5 * 2 ** (n - 1))) return;
    this.restarted("max_requests");
    this.log(`${w.name} served ${requests} requests (max_requests): starting its replacement`);
    this.spawn(w.slot, w.generation);
  }

  private ask(w: WorkerHandle): void {
    w.ask(this.config.num("timeouts.shutdown") as number);
  }

  /** Count a worker replaced for `reason` on the metrics page. */
  private restarted(reason: RestartReason, n = 1): void {
    if (this.metrics !== null) this.metrics.restarts[reason] += n;
  }

  private exited(w: WorkerHandle): void {
    this.workers.delete(w);
    // Its counters up to its last snapshot stay in the totals; only what it counted since is lost.
    this.metrics?.workers.exited(w.serial);
    const code = w.proc.exitCode;
    const how = w.how;
    if (this.stopping) {
      this.log(`${w.name} stopped (${how})`, "DEBUG");
      if (this.workers.size === 0) this.finish();
      return;
    }
    if (w.asked) {
      this.log(`${w.name} stopped (${how})`);
      this.fill();
      return;
    }
    if (this.rolling !== null && w.generation === this.rolling.generation) {
      this.abortRoll(`${w.name} of the new configuration exited${w.state === "starting" ? " before it was ready" : ""} (${how})`);
      return;
    }
    if (w.state === "starting") {
      if (!w.hung && !this.everReady && code === EXIT_UNSTARTABLE) {
        this.log(`${w.name} cannot start the app (${how}; its reason is above): stopping`, "ERROR");
        this.exitCode = EXIT_UNSTARTABLE;
        this.stop("start-up failure");
        return;
      }
      // A worker killed for a slow start was counted when it was killed.
      const n = w.hung ? (this.failures.get(w.slot) ?? 1) : (this.failures.get(w.slot) ?? 0) + 1;
      this.failures.set(w.slot, n);
      this.failedAt.set(w.slot, now());
      const delay = Math.min(MAX_BACKOFF, 0.5 * 2 ** (n - 1));
      this.log(`${w.name} exited before it was ready (${how}); starting it again in ${delay}s`, "ERROR");
      this.restarted(w.hung ? "start_timeout" : "start_failed");
    } else if (w.hung) {
      this.log(`${w.name} ended (${how})`);
    } else {
      const when =
        this.rolling === null ? "replacing it" : "the SIGHUP's workers take its place (or, if they fail, a replacement)";
      this.log(`${w.name} exited unexpectedly (${how}): ${when}`, "ERROR");
      this.restarted("exited");
    }
    this.fill();
  }

  /** Start a worker for every slot that has none (after the backoff of one that failed to start). */
  private fill(): void {
    if (this.stopping || this.rolling !== null) return;
    for (let slot = 0; slot < this.target; slot++) {
      if (this.pending.has(slot)) continue;
      if ([...this.workers].some((w) => w.slot === slot && !w.asked)) continue;
      const n = this.failures.get(slot) ?? 0;
      if (n === 0) {
        this.spawn(slot, this.generation);
        continue;
      }
      const delay = Math.min(MAX_BACKOFF, 0.5 * 2 ** (n - 1));
      this.pending.set(
        slot,
        setTimeout(() => {
          this.pending.delete(slot);
          this.fill();
        }, delay * 1000),
      );
    }
  }

  /** Once a second: heartbeats, start-up deadlines. */
  private tick(): void {
    const limit = this.config.num("timeouts.worker") as number;
    if (limit <= 0 || this.stopping) return;
    const t = now();
    for (const w of this.workers) {
      if (w.asked || w.hung) continue;
      if (w.state === "starting" && t - w.startedAt > limit) {
        this.log(`${w.name} not ready ${limit}s after it started (timeouts.worker): killing it`, "ERROR");
        this.failures.set(w.slot, (this.failures.get(w.slot) ?? 0) + 1);
        this.failedAt.set(w.slot, now());
        w.terminate();
      } else if (w.state === "serving" && t - w.lastBeat > limit) {
        const last = lastRequest(w.watchFile);
        const doing =
          last === null
            ? "it had started no request"
            : `the last request it started was "${last.line}", ${((Date.now() - last.at) / 1000).toFixed(1)}s ago`;
        this.log(
          `${w.name} stuck: its event loop has not answered for ${(t - w.lastBeat).toFixed(1)}s (timeouts.worker = ${limit}s); ${doing}. Killing it (SIGTERM, SIGKILL in ${KILL_GRACE}s) and starting a replacement`,
          "ERROR",
        );
        w.terminate();
        this.restarted("hung");
        this.spawn(w.slot, w.generation);
      }
    }
  }

  // ---- signals --------------------------------------------------------------------------

  /** SIGHUP: re-read the config and roll the workers; a config that fails keeps them. */
  private async roll(): Promise<void> {
    if (this.stopping) return;
    if (this.rolling !== null) {
      this.log("SIGHUP ignored: the previous one is still starting its workers", "WARNING");
      return;
    }
    const { config, errors } = resolveConfig({ commandLine: this.commandLine, cwd: process.cwd(), embedded: this.embedded });
    if (errors.length > 0) {
      this.log(`SIGHUP: reload failed, the workers keep serving the previous configuration:\n  ${errors.join("\n  ")}`, "ERROR");
      return;
    }
    let logs: [LogSink, LogSink];
    try {
      logs = openLogs(config);
    } catch (e) {
      this.log(`SIGHUP: reload failed, the workers keep serving the previous configuration: ${(e as Error).message}`, "ERROR");
      return;
    }
    for (const w of restartWarnings(this.applied, this.appliedTls, config)) this.log(`SIGHUP: ${w}`, "WARNING");
    const target = workerCount(config);
    // The old workers serve their slots' sockets until the new ones are ready.
    if (
      !this.resize(Math.max(target, this.target), "SIGHUP: reload failed, the workers keep serving the previous configuration")
    ) {
      for (const sink of logs) if (sink !== this.accessLog && sink !== this.errorLog) closeLog(sink);
      return;
    }
    const generation = ++this.generations;
    this.rolling = { generation, config, target, logs };
    this.log(`SIGHUP: starting ${target} worker${target === 1 ? "" : "s"} with ${config.file ?? "the flags"}`);
    for (let slot = 0; slot < target; slot++) this.spawn(slot, generation);
  }

  /** A roll's generation is all ready: its config, worker count and logs are the master's now. */
  private adopt(roll: NonNullable<Master["rolling"]>): void {
    const [oldAccess, oldError] = [this.accessLog, this.errorLog];
    [this.accessLog, this.errorLog] = roll.logs;
    if (oldAccess !== this.accessLog) closeLog(oldAccess);
    if (oldError !== this.errorLog) closeLog(oldError);
    this.config = roll.config;
    this.target = roll.target;
    this.generation = roll.generation;
    this.resize(this.target, "SIGHUP");
    for (const t of this.pending.values()) clearTimeout(t);
    this.pending.clear();
    this.failures.clear();
  }

  private abortRoll(why: string): void {
    const roll = this.rolling as NonNullable<Master["rolling"]>;
    this.rolling = null;
    this.log(`SIGHUP: reload failed, the previous workers keep serving: ${why}`, "ERROR");
    for (const w of this.workers) if (w.generation === roll.generation) this.ask(w);
    this.resize(this.target, "SIGHUP");
    for (const sink of roll.logs) if (sink !== this.accessLog && sink !== this.errorLog) closeLog(sink);
    this.fill();
  }

  /** SIGTTIN / SIGTTOU: one worker more or less (at least one). */
  private scale(by: number): void {
    if (this.stopping) return;
    if (this.rolling !== null) {
      // The roll's worker count is decided; changing it midway would leave the roll waiting for
      // a generation that never completes.
      this.log(
        `${by > 0 ? "SIGTTIN" : "SIGTTOU"} ignored: a SIGHUP is starting its workers; send it again once they are ready`,
        "WARNING",
      );
      return;
    }
    const next = Math.max(1, this.target + by);
    if (next === this.target) {
      this.log("SIGTTOU ignored: one worker is the least", "WARNING");
      return;
    }
    const signal = by > 0 ? "SIGTTIN" : "SIGTTOU";
    if (by > 0 && !this.resize(next, `${signal} refused`)) return;
    this.target = next;
    this.log(`${signal}: ${next} worker${next === 1 ? "" : "s"}`);
    if (by < 0) {
      for (const w of this.workers) if (w.slot >= next) this.ask(w);
      this.resize(next, signal);
    }
    this.fill();
  }

  /**
   * Per-worker sockets for `slots` workers on every bind (see HeldSocket.resize). A socket that
   * cannot be bound leaves every bind as it was for the current workers, and `what` says why.
   */
  private resize(slots: number, what: string): boolean {
    try {
      for (const s of this.sockets) s.resize(slots);
      return true;
    } catch (e) {
      this.log(`${what}: ${(e as Error).message}`, "ERROR");
      for (const s of this.sockets) s.resize(this.target);
      return false;
    }
  }

  /** SIGUSR1: reopen the master's log files, and tell every worker to reopen theirs. */
  private reopenLogs(): void {
    try {
      reopenLog(this.accessLog);
      reopenLog(this.errorLog);
    } catch (e) {
      this.log(`SIGUSR1: cannot reopen log files: ${(e as Error).message}`, "ERROR");
    }
    for (const w of this.workers) if (!w.asked) w.proc.kill("SIGUSR1");
    this.log("SIGUSR1: log files reopened (master and workers)");
  }

  /** Graceful stop of every worker; a second signal stops them at once. */
  private stop(signal: string): void {
    if (this.stopping) {
      this.log(`${signal} again: workers close all connections now`, "WARNING");
      for (const w of this.workers) w.hurry();
      return;
    }
    this.stopping = true;
    const roll = this.rolling;
    this.rolling = null;
    if (roll !== null) for (const sink of roll.logs) if (sink !== this.accessLog && sink !== this.errorLog) closeLog(sink);
    for (const t of this.pending.values()) clearTimeout(t);
    this.pending.clear();
    // SIGTERM is a stop a balancer should see coming: every worker drains (readiness 503) first.
    const drain = signal === "SIGTERM" ? (this.config.num("timeouts.drain_delay") as number) : 0;
    this.log(
      `${signal}: stopping ${this.workers.size} worker${this.workers.size === 1 ? "" : "s"} gracefully${drain > 0 ? ` after a ${drain}s drain` : ""}`,
    );
    for (const w of this.workers) w.ask(this.config.num("timeouts.shutdown") as number, drain);
    if (this.workers.size === 0) this.finish();
  }

  /** Every worker is gone: close the sockets (their files stay for a new master), the pidfile, the logs. */
  private finish(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    this.metrics?.page?.stop();
    const handedOver = this.upgrade.handedOver;
    for (const s of this.sockets) {
      s.close();
      if (s.unix !== null && !handedOver) rmSync(s.unix, { force: true });
    }
    const pidfile = this.applied.str("pidfile");
    if (pidfile !== null) {
      // Ours under either name (a new master that exited while this one stopped left .oldbin).
      for (const path of [pidfile, `${pidfile}.oldbin`]) if (pidOf(path) === process.pid) rmSync(path, { force: true });
    }
    rmSync(this.watchDir, { recursive: true, force: true });
    this.log(`master stopped${handedOver ? `; the new master (pid ${this.upgrade.heirPid}) serves` : ""}`);
    closeLog(this.accessLog);
    closeLog(this.errorLog);
    this.stdout.flush();
    defaultLog().flush();
    this.resolveDone?.(this.exitCode);
  }
}

/**
 * Bind (or take over, after a SIGUSR2) every listener, write the pidfile, start the workers and
 * supervise them; resolves to the exit code when the master stops. A config or app that cannot
 * start in the first workers is an exit with EXIT_UNSTARTABLE, not a restart loop.
 */
export async function runMaster(
  config: Config,
  commandLine: CommandLine,
  embedded: boolean,
  inherited: ReadonlyMap<string, number[]>,
): Promise<number> {
  let logs: [LogSink, LogSink];
  try {
    logs = openLogs(config);
  } catch (e) {
    process.stderr.write(`bunwsgi: ${(e as Error).message}\n`);
    return EXIT_UNSTARTABLE;
  }
  const errorLog = logs[1];
  let sockets: HeldSocket[];
  try {
    sockets = await holdSockets(
      config.list("bind"),
      unixPerms(config),
      inherited,
      config.str("tls.cert") !== null ? "https" : "http",
      workerCount(config),
      config.bool("reuse_port"),
      (msg) => errorLog.write(`bunwsgi: ${msg}\n`, "WARNING"),
    );
    const pidfile = config.str("pidfile");
    // Written once a worker serves (a binary upgrade's script waits for it); refused now if taken.
    if (pidfile !== null) checkPidfile(pidfile);
  } catch (e) {
    errorLog.write(`bunwsgi: cannot start: ${e instanceof ConfigError ? e.message : (e as Error).stack}\n`);
    closeLog(errorLog);
    return EXIT_UNSTARTABLE;
  }
  return new Master(config, commandLine, embedded, sockets, logs).start();
}
