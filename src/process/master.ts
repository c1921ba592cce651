/** @module process/master — the master of `workers = N`: holds the listening sockets, keeps its workers (process/crew: start, heartbeat, backoff) serving and replaced (exits, max_requests), and turns signals into rolls (process/roll), log reopening, scaling, binary upgrades (process/upgrade) and a graceful stop. It imports no app and serves no request. */

import type { CommandLine } from "../config/args.ts";
import { listenBinds } from "../config/host.ts";
import { unixPerms } from "../config/options.ts";
import type { Config } from "../config/resolve.ts";
import { ConfigError, thrownText } from "../errors.ts";
import { closeLog, defaultLog, LEVEL_NUMBERS, type LogLevel, type LogSink, reopenLog, resolveLog } from "../observe/log.ts";
import { checkPidfile, closeUnless, openLogs, removeOwnPidfile, workerCount, writePidfile } from "./common.ts";
import { Crew, type CrewHost } from "./crew.ts";
import { type HeldSocket, holdSockets, releaseSockets, resizeSockets } from "./descriptors.ts";
import { now, type WorkerHandle } from "./handle.ts";
import { EXIT_UNSTARTABLE, isWorkerMessage, type WorkerMessage } from "./messages.ts";
import { MasterMetrics, openMetrics, type RestartReason } from "./metrics-page.ts";
import { type Generation, type RollHost, Rolls } from "./roll.ts";
import { Upgrade } from "./upgrade.ts";

/** The master process: see the module comment. */
class Master implements CrewHost, RollHost {
  readonly crew: Crew;
  /** The serving generation's worker count. */
  target: number;
  /** The generation serving: the workers of the last config that started. */
  private generation = 0;
  private readonly rolls: Rolls;
  private everReady = false;
  private stopping = false;
  private timer: ReturnType<typeof setInterval> | null = null;
  private readonly upgrade: Upgrade;
  /** CrewHost: the serving generation's error log. */
  errorLog: LogSink;
  private accessLog: LogSink;
  private readonly applied: Config;
  private exitCode = 0;
  /** With metrics_bind: the page and what it sums. */
  private readonly metrics: MasterMetrics | null;
  private resolveDone: ((code: number) => void) | null = null;

  constructor(
    private config: Config,
    commandLine: CommandLine,
    embedded: boolean,
    private readonly sockets: HeldSocket[],
    logs: [LogSink, LogSink],
    metrics: MasterMetrics | null,
    /** The old master that started this one on SIGUSR2 (its parent, sharing its sockets), or 0. */
    private readonly predecessor: number,
  ) {
    [this.accessLog, this.errorLog] = logs;
    this.applied = config;
    this.target = workerCount(config);
    this.crew = new Crew(sockets, this);
    this.rolls = new Rolls(this, commandLine, embedded, config);
    this.upgrade = new Upgrade(sockets, config.str("pidfile"), (msg, level) => this.log(msg, level));
    this.metrics = metrics;
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
    process.on("SIGHUP", () => {
      if (!this.stopping) this.rolls.begin();
    });
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
    for (let slot = 0; slot < this.target; slot++) this.crew.start(slot, this.generation);
    this.timer = setInterval(() => this.tick(), 1000);
    return done;
  }

  log(msg: string, level: LogLevel = "INFO"): void {
    this.errorLog.write(`bunwsgi: ${msg}\n`, level);
  }

  // ---- workers (CrewHost) ------------------------------------------------------------------

  configFor(generation: number): Config {
    return this.rolls.configOf(generation) ?? this.config;
  }

  /** RollHost: the serving generation's logs. */
  get logs(): readonly LogSink[] {
    return [this.accessLog, this.errorLog];
  }

  message(w: WorkerHandle, m: unknown): void {
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
    this.crew.backoff.succeeded(w.slot);
    this.log(`${w.name} ready`);
    // A replacement (recycled, crashed, killed) takes over from the older workers of its slot and
    // generation, also while a roll is starting the next generation.
    for (const old of this.crew.predecessors(w)) this.ask(old);
    this.rolls.ready(w);
  }

  /** max_requests: start the replacement now; the worker stops once it is ready. */
  private retire(w: WorkerHandle, requests: number): void {
    if (w.asked || this.stopping || this.rolls.active) return;
    // Its replacement is already starting (the worker says it again on every beat until stopped).
    if (this.crew.replaced(w) || this.crew.backoff.waiting(w.slot)) return;
    this.restarted("max_requests");
    this.log(`${w.name} served ${requests} requests (max_requests): starting its replacement`);
    this.crew.start(w.slot, w.generation);
  }

  ask(w: WorkerHandle): void {
    // A slot past the worker count (scaled down, rolled to fewer, an abandoned roll's extra
    // workers): its per-worker sockets are closed here and end with the worker.
    w.ask(this.config.num("timeouts.shutdown") as number, 0, w.slot >= this.target ? this.ending(true) : []);
  }

  /**
   * The binds whose sockets end with the workers that listen on them (`perWorker`: only the
   * per-worker ones, of a removed slot): none while another master shares them (a SIGUSR2's new
   * master, or this one's predecessor still running), nor a supervisor's fd://.
   */
  private ending(perWorker: boolean): string[] {
    if (this.upgrade.handedOver || (this.predecessor !== 0 && process.ppid === this.predecessor)) return [];
    return this.sockets.filter((s) => (perWorker ? s.perWorker : !s.bind.startsWith("fd://"))).map((s) => s.bind);
  }

  /** CrewHost: count a worker replaced for `reason` on the metrics page. */
  restarted(reason: RestartReason, n = 1): void {
    if (this.metrics !== null) this.metrics.restarts[reason] += n;
  }

  exited(w: WorkerHandle): void {
    // Its counters up to its last snapshot stay in the totals; only what it counted since is lost.
    this.metrics?.workers.exited(w.serial);
    const code = w.proc.exitCode;
    const how = w.how;
    if (this.stopping) {
      this.log(`${w.name} stopped (${how})`, "DEBUG");
      if (this.crew.size === 0) this.finish();
      return;
    }
    if (w.asked) {
      this.log(`${w.name} stopped (${how})`);
      this.fill();
      return;
    }
    if (this.rolls.rollingIn(w.generation)) {
      this.rolls.abandon(
        `${w.name} of the new configuration exited${w.state === "starting" ? " before it was ready" : ""} (${how})`,
      );
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
      const delay = this.crew.backoff.failed(w.slot, w.hung);
      this.log(`${w.name} exited before it was ready (${how}); starting it again in ${delay}s`, "ERROR");
      this.restarted(w.hung ? "start_timeout" : "start_failed");
    } else if (w.hung) {
      this.log(`${w.name} ended (${how})`);
    } else {
      const when = this.rolls.active ? "the SIGHUP's workers take its place (or, if they fail, a replacement)" : "replacing it";
      this.log(`${w.name} exited unexpectedly (${how}): ${when}`, "ERROR");
      this.restarted("exited");
    }
    this.fill();
  }

  /** Start a worker for every slot that has none (after the backoff of one that failed to start). */
  fill(): void {
    if (this.stopping || this.rolls.active) return;
    this.crew.fill(this.target, this.generation, () => this.fill());
  }

  /** Once a second: heartbeats, start-up deadlines. */
  private tick(): void {
    const limit = this.config.num("timeouts.worker") as number;
    if (limit > 0 && !this.stopping) this.crew.check(limit);
  }

  // ---- signals --------------------------------------------------------------------------

  /** RollHost: a SIGHUP's generation serves; its config, worker count and logs are the master's now. */
  adopt(next: Generation): void {
    closeUnless(this.logs, next.logs);
    [this.accessLog, this.errorLog] = next.logs;
    this.config = next.config;
    this.target = next.target;
    this.generation = next.generation;
    this.resize(this.target, "SIGHUP");
    this.crew.backoff.reset();
    this.restarted("reload", next.target);
  }

  /** SIGTTIN / SIGTTOU: one worker more or less (at least one). */
  private scale(by: number): void {
    if (this.stopping) return;
    if (this.rolls.active) {
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
      for (const w of this.crew) if (w.slot >= next) this.ask(w);
      this.resize(next, signal);
    }
    this.fill();
  }

  /**
   * Per-worker sockets for `slots` workers on every bind (see HeldSocket.resize). A socket that
   * cannot be bound leaves every bind as it was for the current workers, and `what` says why.
   */
  resize(slots: number, what: string): boolean {
    const why = resizeSockets(this.sockets, slots, this.target);
    if (why !== null) this.log(`${what}: ${why}`, "ERROR");
    return why === null;
  }

  /** SIGUSR1: reopen the master's log files, and tell every worker to reopen theirs. */
  private reopenLogs(): void {
    const failures = reopenLog(this.errorLog, reopenLog(this.accessLog));
    for (const f of failures) this.log(`SIGUSR1: cannot reopen ${f}`, "ERROR");
    for (const w of this.crew) if (!w.asked) w.proc.kill("SIGUSR1");
    this.log(
      failures.length === 0
        ? "SIGUSR1: log files reopened (master and workers)"
        : "SIGUSR1: the master's other log files reopened; the workers reopen theirs",
    );
  }

  /** Graceful stop of every worker; a second signal stops them at once. */
  private stop(signal: string): void {
    if (this.stopping) {
      this.log(`${signal} again: workers close all connections now`, "WARNING");
      for (const w of this.crew) w.hurry();
      return;
    }
    this.stopping = true;
    this.rolls.cancel();
    this.crew.backoff.cancel();
    // SIGTERM is a stop a balancer should see coming: every worker drains (readiness 503) first.
    const drain = signal === "SIGTERM" ? (this.config.num("timeouts.drain_delay") as number) : 0;
    this.log(
      `${signal}: stopping ${this.crew.size} worker${this.crew.size === 1 ? "" : "s"} gracefully${drain > 0 ? ` after a ${drain}s drain` : ""}`,
    );
    const ending = this.ending(false);
    for (const w of this.crew) w.ask(this.config.num("timeouts.shutdown") as number, drain, ending, true);
    // The master's copies go now: once the workers stop listening on theirs, a new connection is
    // refused (the kernel would queue it on the master's copy for no one, and reset it at exit).
    // A unix socket's file stays until the end: workers draining still accept on it.
    releaseSockets(this.sockets, () => true);
    if (this.crew.size === 0) this.finish();
  }

  /** Every worker is gone: close the sockets (their files stay for a new master), the pidfile, the logs. */
  private finish(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    this.metrics?.page?.stop();
    const handedOver = this.upgrade.handedOver;
    releaseSockets(this.sockets, () => handedOver);
    const pidfile = this.applied.str("pidfile");
    if (pidfile !== null) removeOwnPidfile(pidfile);
    this.crew.close();
    this.log(`master stopped${handedOver ? `; the new master (pid ${this.upgrade.heirPid}) serves` : ""}`);
    closeLog(this.accessLog);
    closeLog(this.errorLog);
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
    // No error log to say it in: stderr, stamped and worded as every other failed start.
    resolveLog("default", LEVEL_NUMBERS.ERROR).write(`bunwsgi: cannot start: ${(e as Error).message}\n`, "ERROR");
    return EXIT_UNSTARTABLE;
  }
  const errorLog = logs[1];
  for (const w of config.warnings) errorLog.write(`bunwsgi: ${w}\n`, "WARNING");
  let sockets: HeldSocket[] = [];
  let metrics: MasterMetrics | null = null;
  let master: Master | null = null;
  try {
    sockets = await holdSockets(
      // A bind naming a host with several addresses is a listener on each (config/host); the
      // old master's sockets, on SIGUSR2, are keyed by the binds it listened on.
      listenBinds(config, inherited),
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
    const metricsBind = config.str("metrics_bind");
    if (metricsBind !== null) {
      const m = new MasterMetrics();
      m.page = openMetrics(
        metricsBind,
        () => m.samples(master?.crew ?? []),
        inherited.size > 0,
        (msg, level) => errorLog.write(`bunwsgi: ${msg}\n`, level),
      );
      metrics = m;
    }
  } catch (e) {
    // An upgrade's new master leaves the old one's socket files; a fresh start removes its own.
    releaseSockets(sockets, (s) => inherited.has(s.bind));
    errorLog.write(`bunwsgi: cannot start: ${e instanceof ConfigError ? e.message : thrownText(e)}\n`);
    closeLog(logs[0]);
    closeLog(errorLog);
    return EXIT_UNSTARTABLE;
  }
  master = new Master(config, commandLine, embedded, sockets, logs, metrics, inherited.size > 0 ? process.ppid : 0);
  return master.start();
}
