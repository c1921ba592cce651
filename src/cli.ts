/** @module cli — the bunwsgi command: resolve the config, serve the app on every bind, handle signals. */

import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { type AppKindSetting, type EmbeddedApp, kindOf, type LoadedApp, loadApplication } from "./app.ts";
import { type CommandLine, parseCommandLine } from "./config/args.ts";
import { serverOptions, tlsOptions } from "./config/options.ts";
import { formatConfig, helpText } from "./config/render.ts";
import { type Config, resolveConfig } from "./config/resolve.ts";
import { SETTINGS } from "./config/settings.ts";
import { clearStaleUnixSocket, parseListener } from "./engine/listeners.ts";
import { Pool } from "./engine/pool.ts";
import { ConfigError } from "./errors.ts";
import { FetchServer } from "./fetch/server.ts";
import * as api from "./index.ts";
import {
  closeLog,
  defaultLog,
  LEVEL_NUMBERS,
  type LogLevel,
  type LogSink,
  openErrorLog,
  openLogSinks,
  reopenLog,
} from "./observe/log.ts";
import { VERSION, WSGIServer, type WSGIServerOptions } from "./wsgi/server.ts";

let apiRegistered = false;

/**
 * Make `import … from "bunwsgi"` in an application resolve to this running server's own module
 * instances (in the compiled binary, and when served from a checkout), so its `HTTPError` is
 * the one the handler checks with `instanceof`. A plugin is process-wide and shared by every
 * module graph, so once is enough.
 */
function registerApi(): void {
  if (apiRegistered) return;
  apiRegistered = true;
  Bun.plugin({
    name: "bunwsgi",
    setup(build) {
      build.module("bunwsgi", () => ({ exports: { ...api }, loader: "object" }));
    },
  });
}

async function appFor(config: Config, embedded: EmbeddedApp | undefined, errorLog: LogSink): Promise<LoadedApp> {
  const setting = (config.str("app_kind") ?? "auto") as AppKindSetting;
  const spec = config.str("app");
  const loaded =
    spec !== null
      ? await loadApplication(spec, setting, errorLog)
      : embedded !== undefined
        ? { ...kindOf(embedded.app, setting, `embedded ${embedded.name}`), label: `${embedded.name} (embedded)`, graph: null }
        : null;
  if (loaded === null) throw new ConfigError("no application given");
  if (loaded.kind === "fetch") {
    // Settings that shape a WSGI environ have no meaning for a fetch app: say so rather than ignore them.
    for (const key of ["environ", "root_path"]) {
      if (config.sources.get(key) !== "default") {
        loaded.graph?.dispose();
        throw new ConfigError(`${key}: applies to WSGI apps only, and ${loaded.label} is a fetch app (${loaded.why})`);
      }
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

/** Refuse a pidfile naming a live process; otherwise (re)write it. */
function writePidfile(path: string): void {
  let old = Number.NaN;
  try {
    old = Number.parseInt(readFileSync(path, "utf8"), 10);
  } catch {
    // No pidfile yet.
  }
  if (Number.isInteger(old) && old > 0 && old !== process.pid) {
    let alive = true;
    try {
      process.kill(old, 0);
    } catch (e) {
      alive = (e as { code?: string }).code === "EPERM";
    }
    if (alive) throw new ConfigError(`pidfile ${path} names process ${old}, which is running: is bunwsgi already started?`);
  }
  writeFileSync(path, `${process.pid}\n`);
}

/** The access and error sinks a config names; a file that cannot be opened is a ConfigError. */
function openLogs(config: Config): [LogSink, LogSink] {
  let access: LogSink | null = null;
  try {
    access = openLogSinks(config.list("log.access"));
    const threshold = LEVEL_NUMBERS[(config.str("log.level") ?? "info").toUpperCase() as LogLevel];
    return [access, openErrorLog(config.list("log.error"), threshold)];
  } catch (e) {
    if (access !== null) closeLog(access);
    throw new ConfigError(`cannot open log files: ${(e as Error).message}`);
  }
}

/** Settings whose change SIGHUP cannot apply without a restart (sockets, TLS, pidfile). */
const RESTART_KEYS = SETTINGS.filter((s) => !s.reload).map((s) => s.key);

/** Why a restart-only setting cannot change on SIGHUP, for the warning. */
const RESTART_REASON: Readonly<Record<string, string>> = {
  tls: "Bun.listen cannot swap certificates on a listening socket",
};

/** The TLS files' contents when the servers started, so a renewal in place is noticed on SIGHUP. */
function tlsFiles(config: Config): Map<string, string> {
  const out = new Map<string, string>();
  for (const key of ["tls.cert", "tls.key", "tls.ca"]) {
    const path = config.str(key);
    if (path === null) continue;
    try {
      out.set(key, readFileSync(path, "utf8"));
    } catch {
      out.set(key, "");
    }
  }
  return out;
}

/** The running service: one server per bind sharing one app, pool and logs. */
class Service {
  private reloading = false;
  private stopping = false;
  /**
   * The config the servers started with: its restart-only values (binds, TLS, pidfile) are
   * the ones running, whatever a later SIGHUP read. `config` is the last config read.
   */
  private readonly applied: Config;
  private readonly appliedTls: Map<string, string>;

  constructor(
    private config: Config,
    private loaded: LoadedApp,
    private readonly servers: AppServer[],
    private readonly pool: Pool,
    private readonly commandLine: CommandLine,
    private readonly embedded: EmbeddedApp | undefined,
  ) {
    this.applied = config;
    this.appliedTls = tlsFiles(config);
  }

  /** Restart-only settings that differ from what runs, each with the warning for it. */
  private restartWarnings(config: Config): string[] {
    const out: string[] = [];
    for (const k of RESTART_KEYS) {
      const now = config.get(k);
      if (JSON.stringify(now) === JSON.stringify(this.applied.get(k))) continue;
      const why = RESTART_REASON[k.split(".")[0] as string];
      out.push(
        `${k} changed but needs a restart${why ? ` (${why})` : ""}; still using ${formatValue(k, this.applied.get(k))}, not ${formatValue(k, now)}`,
      );
    }
    const files = tlsFiles(config);
    for (const [k, text] of files) {
      if (config.str(k) === this.applied.str(k) && this.appliedTls.get(k) !== text) {
        out.push(
          `${k}: ${config.str(k)} changed on disk, but ${RESTART_REASON.tls}: restart to serve it (with socket activation, a restart refuses no connection)`,
        );
      }
    }
    return out;
  }

  get errorLog(): LogSink {
    return (this.servers[0] as AppServer).errorLog;
  }

  listen(): void {
    process.on("SIGTERM", () => void this.stop("SIGTERM"));
    process.on("SIGINT", () => void this.stop("SIGINT"));
    process.on("SIGUSR1", () => this.reopenLogs());
    process.on("SIGHUP", () => void this.reload());
  }

  /** Graceful stop; a second signal cuts in-flight requests at once. */
  async stop(signal: string): Promise<void> {
    if (this.stopping) {
      this.errorLog.write(`bunwsgi: ${signal} again: closing all connections now\n`, "WARNING");
      for (const s of this.servers) s.close();
      return;
    }
    this.stopping = true;
    const deadline = this.config.num("timeouts.shutdown") as number;
    this.errorLog.write(`bunwsgi: ${signal}: stopping gracefully (up to ${deadline}s for in-flight requests)\n`, "INFO");
    await Promise.all(this.servers.map((s) => s.stop(deadline)));
    this.errorLog.write("bunwsgi: stopped\n", "INFO");
    const pidfile = this.applied.str("pidfile");
    if (pidfile !== null) rmSync(pidfile, { force: true });
    const first = this.servers[0] as AppServer;
    closeLog(first.log);
    closeLog(first.errorLog);
    process.exit(0);
  }

  reopenLogs(): void {
    const first = this.servers[0] as AppServer;
    try {
      reopenLog(first.log);
      reopenLog(first.errorLog);
      first.errorLog.write("bunwsgi: SIGUSR1: log files reopened\n", "INFO");
    } catch (e) {
      first.errorLog.write(`bunwsgi: SIGUSR1: cannot reopen log files: ${(e as Error).message}\n`);
    }
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
      const kept = this.restartWarnings(config);
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
        `bunwsgi: SIGHUP: reload failed, still serving the previous configuration: ${e instanceof ConfigError ? e.message : (e as Error).stack}\n`,
      );
    } finally {
      this.reloading = false;
    }
  }
}

/** Run the command line; resolves to the exit code (serve resolves only on a start failure). */
export async function main(argv: readonly string[], embedded?: EmbeddedApp): Promise<number> {
  const err = (msg: string): number => {
    process.stderr.write(`bunwsgi: ${msg}\n`);
    return 2;
  };
  let commandLine: CommandLine;
  try {
    commandLine = parseCommandLine(argv);
  } catch (e) {
    return err((e as Error).message);
  }
  registerApi();
  if (commandLine.command === "help") {
    process.stdout.write(`${helpText(VERSION)}\n`);
    return 0;
  }
  if (commandLine.command === "version") {
    process.stdout.write(`bunwsgi ${VERSION} (Bun ${Bun.version})\n`);
    return 0;
  }
  const { config, errors } = resolveConfig({ commandLine, cwd: process.cwd(), embedded: embedded !== undefined });
  if (errors.length > 0) {
    const head = commandLine.command === "check" ? "configuration is invalid" : "cannot start: configuration is invalid";
    return err(`${head}:\n  ${errors.join("\n  ")}`);
  }
  return commandLine.command === "check" ? check(config, embedded) : serve(config, commandLine, embedded);
}

/** `bunwsgi check`: also import the app and try the TLS material, as starting would. */
async function check(config: Config, embedded: EmbeddedApp | undefined): Promise<number> {
  const problems: string[] = [];
  let kind = "";
  try {
    const loaded = await appFor(config, embedded, defaultLog());
    loaded.graph?.dispose();
    kind = `# app: ${loaded.label} is a ${loaded.kind} app (${loaded.why})\n`;
  } catch (e) {
    problems.push(`app: ${(e as Error).message}`);
  }
  try {
    const tls = tlsOptions(config);
    if (tls !== undefined) Bun.listen({ hostname: "127.0.0.1", port: 0, tls, socket: { data() {} } }).stop(true);
  } catch (e) {
    problems.push(`tls: the certificate, key or passphrase is not usable: ${(e as Error).message}`);
  }
  process.stdout.write(`# bunwsgi ${VERSION}: resolved configuration${config.file ? ` from ${config.file}` : ""}\n`);
  process.stdout.write(`${kind}${formatConfig(config).trimStart()}\n`);
  if (problems.length > 0) {
    process.stderr.write(`bunwsgi: configuration is invalid:\n  ${problems.join("\n  ")}\n`);
    return 2;
  }
  process.stderr.write("bunwsgi: configuration is valid\n");
  return 0;
}

async function serve(config: Config, commandLine: CommandLine, embedded: EmbeddedApp | undefined): Promise<number> {
  let accessLog: LogSink;
  let errorLog: LogSink;
  try {
    [accessLog, errorLog] = openLogs(config);
  } catch (e) {
    process.stderr.write(`bunwsgi: ${(e as Error).message}\n`);
    return 2;
  }
  const servers: AppServer[] = [];
  try {
    const loaded = await appFor(config, embedded, errorLog);
    const pool = new Pool(config.num("spawn") ?? Number.POSITIVE_INFINITY);
    const options = { ...serverOptions(config), spawn: pool, log: accessLog, errorLog };
    for (const bind of config.list("bind")) {
      const unix = parseListener(bind).unix;
      if (unix !== null) await clearStaleUnixSocket(unix);
      const server = serverFor(bind, loaded, options);
      server.start();
      servers.push(server);
    }
    const pidfile = config.str("pidfile");
    if (pidfile !== null) writePidfile(pidfile);
    errorLog.write(`bunwsgi ${VERSION}: serving ${loaded.label}, a ${loaded.kind} app (pid ${process.pid})\n`, "INFO");
    for (const s of servers) errorLog.write(`bunwsgi: listening on ${s.label}\n`, "INFO");
    new Service(config, loaded, servers, pool, commandLine, embedded).listen();
  } catch (e) {
    for (const s of servers) s.close();
    errorLog.write(`bunwsgi: cannot start: ${e instanceof ConfigError ? e.message : (e as Error).stack}\n`);
    closeLog(errorLog);
    return 2;
  }
  await Promise.all(servers.map((s) => s.serveForever()));
  return 0;
}

/** A setting's value as it reads in a message: `"127.0.0.1:80"`, `["a", "b"]`, `unset`. */
const formatValue = (key: string, v: unknown): string => {
  if (v === null) return "unset";
  if (key === "tls.passphrase") return '"********"';
  if (Array.isArray(v) && v.length === 1) return JSON.stringify(v[0]);
  return JSON.stringify(v);
};

if (import.meta.main) process.exit(await main(process.argv.slice(2)));
