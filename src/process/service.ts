/** @module process/service — one process serving the app on every bind (alone, or as one worker of a master): start-up, SIGHUP reload, log reopening and graceful stop. */

import { rmSync } from "node:fs";
import { type AppKindSetting, type EmbeddedApp, kindOf, type LoadedApp, loadApplication } from "../app.ts";
import type { CommandLine } from "../config/args.ts";
import { listenBinds } from "../config/host.ts";
import { serverOptions } from "../config/options.ts";
import { type Config, resolveConfig } from "../config/resolve.ts";
import { SETTINGS } from "../config/settings.ts";
import { counters } from "../engine/counters.ts";
import { clearStaleUnixSocket, parseListener } from "../engine/listeners.ts";
import { Pool } from "../engine/pool.ts";
import { ConfigError, thrownText } from "../errors.ts";
import { FetchServer } from "../fetch/server.ts";
import { closeLog, LEVEL_NUMBERS, type LogSink, NullLog, reopenLog, resolveLog } from "../observe/log.ts";
import { ProcessStats, type Samples } from "../observe/metrics.ts";
import { VERSION, WSGIServer, type WSGIServerOptions } from "../wsgi/server.ts";
import { openLogs, restartWarnings, writePidfile } from "./common.ts";
import { EXIT_UNSTARTABLE, isMasterMessage, type WorkerMessage } from "./messages.ts";
import { type MetricsPage, openMetrics } from "./metrics-page.ts";
import { WatchWriter } from "./watch.ts";

/**
 * The app a config names (or the embedded one), loaded. Every failure is a ConfigError that
 * says where: the app setting's place for a module that does not load, and the place of each
 * setting only a WSGI app uses (the table's "wsgi_app" need) when the app is a fetch app.
 */
export async function appFor(config: Config, embedded: EmbeddedApp | undefined, errorLog: LogSink): Promise<LoadedApp> {
  const setting = (config.str("app_kind") ?? "auto") as AppKindSetting;
  const spec = config.str("app");
  let loaded: LoadedApp;
  if (spec !== null) {
    try {
      loaded = await loadApplication(spec, setting, errorLog);
    } catch (e) {
      throw e instanceof ConfigError ? new ConfigError(`${config.where("app")}: app: ${e.message}`) : e;
    }
  } else if (embedded !== undefined) {
    loaded = { ...kindOf(embedded.app, setting, `embedded ${embedded.name}`), label: `${embedded.name} (embedded)`, graph: null };
  } else throw new ConfigError("no application given");
  if (loaded.kind === "fetch") {
    // Settings that shape a WSGI environ have no meaning for a fetch app: say so rather than ignore them.
    const idle = SETTINGS.filter((s) => s.needs?.includes("wsgi_app") && config.sources.get(s.key) !== "default").map(
      (s) => `${config.where(s.key)}: ${s.key}: has no effect without a WSGI app: ${loaded.label} is a fetch app (${loaded.why})`,
    );
    if (idle.length > 0) {
      loaded.graph?.dispose();
      throw new ConfigError(idle.join("\n  "));
    }
  }
  return loaded;
}

/** A server of the loaded app's kind on one bind. */
type AppServer = WSGIServer | FetchServer;

function serverFor(bind: string, loaded: LoadedApp, options: WSGIServerOptions): AppServer {
  return loaded.kind === "fetch" ? new FetchServer(bind, loaded.app, options) : new WSGIServer(bind, loaded.app, options);
}

/** Apply a reload to a running server; the kind cannot change without a restart (its connections are of that kind). */
function reconfigure(server: AppServer, loaded: LoadedApp, options: WSGIServerOptions): void {
  if (server instanceof FetchServer && loaded.kind === "fetch") server.reconfigure(loaded.app, options);
  else if (server instanceof WSGIServer && loaded.kind === "wsgi") server.reconfigure(loaded.app, options);
}

/** What a worker is told by its master (null: the process serves alone). */
export interface WorkerRole {
  /** Its slot, 0 to workers − 1: a replacement takes the slot of the worker it replaces. */
  readonly index: number;
  readonly masterPid: number;
  /** The shared mapped file its request lines go to (process/watch), or null. */
  readonly watchFile: string | null;
}

/** This process's metrics (metrics_bind set): its counters and figures, and the page a lone server serves. */
class ServiceMetrics {
  private readonly stats = new ProcessStats();
  page: MetricsPage | null = null;

  constructor() {
    counters.on = true;
    this.stats.startLag();
  }

  samples(): Samples {
    const out: Samples = {};
    counters.write(out);
    this.stats.write(out);
    return out;
  }
}

/** A server's bind, and whether this process bound its socket itself (not inherited from a master, a new master's predecessor or a supervisor's fd://). */
interface ServerBind {
  readonly bind: string;
  readonly own: boolean;
}

/** The running service: one server per bind sharing one app, pool and logs. */
class Service {
  private reloading = false;
  private stopping = false;
  /** Stop signals received (SIGTERM, SIGINT): the second one stops at once. */
  private signals = 0;
  /** A second stop came: in-flight requests are cut now. */
  private hurried = false;
  /**
   * The config the servers started with: its restart-only values (binds, TLS, pidfile) are
   * the ones running, whatever a later SIGHUP read. `config` is the last config read.
   */
  private readonly applied: Config;
  private resolveDone: (code: number) => void = () => {};
  /**
   * The exit code, once stop() has done all it does: the servers stopped (or closed) end
   * before that, and an exit on their end would lose the records and lines still to come.
   */
  readonly done = new Promise<number>((resolve) => {
    this.resolveDone = resolve;
  });

  constructor(
    private config: Config,
    private loaded: LoadedApp,
    private readonly servers: AppServer[],
    private readonly binds: ReadonlyMap<AppServer, ServerBind>,
    private readonly pool: Pool,
    private readonly commandLine: CommandLine,
    private readonly embedded: EmbeddedApp | undefined,
    private readonly role: WorkerRole | null,
    private readonly metrics: ServiceMetrics | null,
  ) {
    this.applied = config;
  }

  get errorLog(): LogSink {
    return (this.servers[0] as AppServer).errorLog;
  }

  listen(): void {
    // A lone process's own sockets end with it; an inherited one (fd://, a master's) may live on.
    const own = (s: AppServer): boolean => this.role === null && this.binds.get(s)?.own === true;
    process.on("SIGTERM", () => void this.stop("SIGTERM", true, true, own));
    process.on("SIGUSR1", () => this.reopenLogs());
    // What the app throws outside any request (a timer's callback, a promise nobody awaits) is
    // no request's to answer: Bun printed it raw on stderr, past a file error log and its stamp.
    for (const [event, what] of [
      ["uncaughtException", "uncaught exception"],
      ["unhandledRejection", "unhandled rejection"],
    ] as const) {
      process.on(event, (e: unknown) => this.errorLog.write(`bunwsgi: ${what} outside any request: ${thrownText(e)}\n`, "ERROR"));
    }
    if (this.role === null) {
      process.on("SIGINT", () => void this.stop("SIGINT", true, false, own));
      process.on("SIGHUP", () => void this.reload());
      // Left to their default actions these would stop the process (SIGTTIN, SIGTTOU) or kill
      // it (SIGUSR2): what they ask of a master has no meaning here, and is said so.
      for (const [sig, what] of [
        ["SIGUSR2", "a binary upgrade in place"],
        ["SIGTTIN", "adding a worker"],
        ["SIGTTOU", "removing a worker"],
      ] as const) {
        process.on(sig, () => this.errorLog.write(`bunwsgi: ${sig} ignored: ${what} needs a master (workers ≥ 1)\n`, "WARNING"));
      }
      return;
    }
    // The master decides for its workers: a terminal's ^C or hangup reaches the whole process
    // group, and the master turns it into one SIGTERM per worker; the others would stop a worker
    // (SIGTTIN, SIGTTOU, SIGUSR2's default actions) or reload it behind the master's back.
    for (const sig of ["SIGINT", "SIGHUP", "SIGTTIN", "SIGTTOU", "SIGUSR2"] as const) process.on(sig, () => {});
    // A master that is gone (killed with SIGKILL) leaves no one to supervise: stop serving. Its
    // end of this worker's stdout and stderr is gone too: a write there fails forever (Bun retries
    // it, spinning), so nothing more is logged through them.
    process.on("disconnect", () => {
      for (const s of this.servers) {
        s.log = new NullLog();
        s.errorLog = new NullLog();
      }
      void this.stop("master gone", false);
    });
    process.on("message", (m) => {
      if (!isMasterMessage(m)) return;
      if (m.t === "stop") {
        const ending = new Set(Array.isArray(m.close) ? m.close : []);
        if (m.service !== true) for (const s of this.servers) s.replaced = true;
        void this.stop("the master's stop", false, m.drain === true, (s) => ending.has(this.binds.get(s)?.bind ?? ""));
      } else this.hurry("the master's second stop");
    });
    this.beat();
  }

  /**
   * A worker's heartbeat to its master, from a timer (a blocked event loop sends none), and its
   * request count against max_requests (+ jitter), checked on the same beat.
   */
  private beat(): void {
    const send = (m: WorkerMessage): void => {
      if (process.connected) process.send?.(m);
    };
    const config = this.config;
    const max = config.num("max_requests") as number;
    const limit = max > 0 ? max + Math.floor(Math.random() * ((config.num("max_requests_jitter") as number) + 1)) : 0;
    const timeout = config.num("timeouts.worker") as number;
    // Several beats per timeout, so one late timer is not a missed deadline; at least one a second.
    const every = timeout > 0 ? Math.min(1, timeout / 4) : 1;
    const metrics = this.metrics;
    const timer = setInterval(() => {
      // With metrics, each beat carries a snapshot of the cumulative counters (the master keeps the last).
      send(metrics === null ? { t: "beat" } : { t: "beat", metrics: metrics.samples() });
      // Said on every beat until the master stops this worker: a request it could not act on
      // (a SIGHUP starting the next generation, a replacement that died) is not lost.
      if (limit > 0 && !this.stopping) {
        let requests = 0;
        for (const s of this.servers) requests += s.requests;
        if (requests >= limit) send({ t: "retire", requests });
      }
    }, every * 1000);
    timer.unref();
    send({ t: "ready" });
  }

  /**
   * Graceful stop; a second stop signal cuts in-flight requests at once, a drain included.
   * `signalled`: a signal asked (one of two makes "at once"); a master's messages and a lost
   * master stop gracefully, and only repeat harmlessly, so a worker signalled by a service
   * manager and told by its master, in either order, still drains. `drain` (SIGTERM, the
   * master's SIGTERM): `timeouts.drain_delay` seconds of readiness 503 first. `ending`: the
   * servers whose listening socket ends with this process (no other process listens on it
   * after): they refuse new connections before they close, so that the ones the kernel queued
   * are accepted and answered, not reset (engine/server's refuseNew).
   */
  async stop(why: string, signalled = true, drain = false, ending: (s: AppServer) => boolean = () => false): Promise<void> {
    if (signalled) this.signals++;
    if (this.stopping) {
      if (signalled && this.signals >= 2) this.hurry(`${why} again`);
      return;
    }
    this.stopping = true;
    const delay = drain ? (this.config.num("timeouts.drain_delay") as number) : 0;
    if (delay > 0) {
      this.errorLog.write(`bunwsgi: ${why}: draining for ${delay}s (readiness 503, still serving)\n`, "INFO");
      await Promise.all(this.servers.map((s) => s.drain(delay)));
    }
    if (!this.hurried) await Promise.all(this.servers.filter(ending).map((s) => s.refuseNew()));
    const deadline = this.hurried ? 0 : (this.config.num("timeouts.shutdown") as number);
    if (!this.hurried)
      this.errorLog.write(`bunwsgi: ${why}: stopping gracefully (up to ${deadline}s for in-flight requests)\n`, "INFO");
    await Promise.all(this.servers.map((s) => s.stop(deadline)));
    this.metrics?.page?.stop();
    if (this.metrics !== null && this.role !== null) await this.lastSnapshot(this.metrics);
    this.errorLog.write("bunwsgi: stopped\n", "INFO");
    const pidfile = this.applied.str("pidfile");
    if (pidfile !== null && this.role === null) rmSync(pidfile, { force: true });
    const first = this.servers[0] as AppServer;
    closeLog(first.log);
    closeLog(first.errorLog);
    this.resolveDone(0);
  }

  /**
   * A second stop: in-flight requests are cut now, a drain included, and the stop ends as at its
   * deadline (each cut request in the access log, then "stopped").
   */
  private hurry(why: string): void {
    if (this.hurried) return;
    this.hurried = true;
    this.errorLog.write(`bunwsgi: ${why}: closing all connections now\n`, "WARNING");
    for (const s of this.servers) s.close();
  }

  /** A stopping worker's final counters, so the master's page loses none of its requests. */
  private async lastSnapshot(metrics: ServiceMetrics): Promise<void> {
    if (!process.connected) return;
    const m: WorkerMessage = { t: "beat", metrics: metrics.samples() };
    // Sent before exit (the message is written asynchronously), but never waited on for long.
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 500);
      process.send?.(m, undefined, undefined, () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  reopenLogs(): void {
    const first = this.servers[0] as AppServer;
    const failures = reopenLog(first.errorLog, reopenLog(first.log));
    for (const f of failures) first.errorLog.write(`bunwsgi: SIGUSR1: cannot reopen ${f}\n`, "ERROR");
    if (failures.length === 0) first.errorLog.write("bunwsgi: SIGUSR1: log files reopened\n", "INFO");
  }

  /**
   * SIGHUP: re-read the config and re-import the app into a new module graph. Listening sockets
   * stay; requests already running finish on the old app. Any failure keeps the old setup.
   */
  async reload(): Promise<void> {
    const log = this.errorLog;
    if (this.reloading || this.stopping) {
      log.write("bunwsgi: SIGHUP ignored: a reload or stop is already in progress\n", "WARNING");
      return;
    }
    this.reloading = true;
    try {
      const { config, errors } = resolveConfig({
        commandLine: this.commandLine,
        cwd: process.cwd(),
        embedded: this.embedded !== undefined,
      });
      if (errors.length > 0) throw new ConfigError(errors.join("\n  "));
      const loaded = await appFor(config, this.embedded, log);
      if (loaded.kind !== this.loaded.kind) {
        loaded.graph?.dispose();
        throw new ConfigError(
          `${loaded.label} is now a ${loaded.kind} app (${loaded.why}), and a ${this.loaded.kind} app is running: restart to change the kind`,
        );
      }
      let accessLog: LogSink;
      let errorLog: LogSink;
      try {
        [accessLog, errorLog] = openLogs(config);
      } catch (e) {
        loaded.graph?.dispose();
        throw e;
      }
      const kept = restartWarnings(this.applied, config, this.applied.tlsTexts);
      const first = this.servers[0] as AppServer;
      const oldAccess = first.log;
      const oldError = first.errorLog;
      const options = { ...serverOptions(config), log: accessLog, errorLog };
      for (const s of this.servers) reconfigure(s, loaded, options);
      this.pool.resize(config.num("spawn") ?? Number.POSITIVE_INFINITY);
      if (oldAccess !== accessLog) closeLog(oldAccess);
      if (oldError !== errorLog) closeLog(oldError);
      const old = this.loaded;
      this.loaded = loaded;
      this.config = config;
      // Requests already running keep the old app's module instances until the graceful deadline.
      if (old.graph !== null)
        setTimeout(() => old.graph?.dispose(), ((config.num("timeouts.shutdown") as number) + 1) * 1000).unref();
      errorLog.write(`bunwsgi: SIGHUP: reloaded ${config.file ?? "flags"}; serving ${loaded.label}\n`, "INFO");
      for (const w of kept) errorLog.write(`bunwsgi: SIGHUP: ${w}\n`, "WARNING");
    } catch (e) {
      log.write(
        `bunwsgi: SIGHUP: reload failed, still serving the previous configuration: ${e instanceof ConfigError ? e.message : thrownText(e)}\n`,
      );
    } finally {
      this.reloading = false;
    }
  }
}

/**
 * Serve the app on every bind until stopped: alone (`role` null), or as a worker of a master.
 * `sockets` are listening descriptors this process inherited, by bind (a worker's from its
 * master; all of them, or none, when a master's binary upgrade started a single process):
 * those binds are adopted, the others bound. Resolves to the exit code once stopped; a start
 * that fails is EXIT_UNSTARTABLE, which a master does not retry in a loop.
 */
export async function serve(
  config: Config,
  commandLine: CommandLine,
  embedded: EmbeddedApp | undefined,
  role: WorkerRole | null,
  sockets: ReadonlyMap<string, readonly number[]>,
): Promise<number> {
  let accessLog: LogSink;
  let errorLog: LogSink;
  try {
    [accessLog, errorLog] = openLogs(config);
  } catch (e) {
    // No error log to say it in: stderr, stamped and worded as every other failed start.
    resolveLog("default", LEVEL_NUMBERS.ERROR).write(`bunwsgi: cannot start: ${(e as Error).message}\n`, "ERROR");
    return EXIT_UNSTARTABLE;
  }
  const servers: AppServer[] = [];
  const binds = new Map<AppServer, ServerBind>();
  let service: Service;
  let metrics: ServiceMetrics | null = null;
  try {
    const loaded = await appFor(config, embedded, errorLog);
    const pool = new Pool(config.num("spawn") ?? Number.POSITIVE_INFINITY);
    const options = { ...serverOptions(config), spawn: pool, log: accessLog, errorLog };
    if (role !== null) {
      if (loaded.kind === "wsgi") {
        // PEP 3333: several processes serve the app; and which one this is, for per-worker set-up.
        options.environ = {
          ...options.environ,
          "wsgi.multiprocess": true,
          "bunwsgi.worker": role.index,
          "bunwsgi.master_pid": role.masterPid,
        };
      }
      if (role.watchFile !== null) options.watch = new WatchWriter(role.watchFile);
    }
    const metricsBind = config.str("metrics_bind");
    metrics = metricsBind === null ? null : new ServiceMetrics();
    if (metrics !== null && metricsBind !== null && role === null) {
      const m = metrics;
      // Before any bind listens: a taken port fails the start before "listening on" is said.
      m.page = openMetrics(
        metricsBind,
        () => m.samples(),
        sockets.size > 0,
        (msg, level) => errorLog.write(`bunwsgi: ${msg}\n`, level),
      );
    }
    // A bind naming a host with several addresses is a listener on each (config/host).
    for (const bind of listenBinds(config, sockets)) {
      const fds = sockets.get(bind);
      if (fds === undefined && role !== null) throw new ConfigError(`bind ${bind}: the master passed no listening socket for it`);
      const unix = parseListener(bind).unix;
      if (unix !== null && fds === undefined) await clearStaleUnixSocket(unix);
      // A single process after a master's upgrade serves every per-worker socket of the bind:
      // the kernel keeps sending connections to each of them.
      for (const fd of fds ?? [undefined]) {
        const server = serverFor(bind, loaded, fd === undefined ? options : { ...options, adopt: fd });
        server.start();
        servers.push(server);
        binds.set(server, { bind, own: fd === undefined && parseListener(bind).fd < 0 });
      }
    }
    const pidfile = config.str("pidfile");
    if (pidfile !== null && role === null) writePidfile(pidfile);
    const who = role === null ? `pid ${process.pid}` : `worker ${role.index}, pid ${process.pid}`;
    errorLog.write(`bunwsgi ${VERSION}: serving ${loaded.label}, a ${loaded.kind} app (${who})\n`, "INFO");
    // A worker's master has said them.
    if (role === null) for (const w of config.warnings) errorLog.write(`bunwsgi: ${w}\n`, "WARNING");
    for (const s of servers) errorLog.write(`bunwsgi: listening on ${s.label}\n`, role === null ? "INFO" : "DEBUG");
    service = new Service(config, loaded, servers, binds, pool, commandLine, embedded, role, metrics);
    service.listen();
  } catch (e) {
    metrics?.page?.stop();
    for (const s of servers) s.close();
    errorLog.write(`bunwsgi: cannot start: ${e instanceof ConfigError ? e.message : thrownText(e)}\n`);
    closeLog(errorLog);
    return EXIT_UNSTARTABLE;
  }
  return service.done;
}
