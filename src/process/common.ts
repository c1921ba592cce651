/** @module process/common — what a master and a lone server both do with a config: open its logs, write and remove the pidfile, read the config again on SIGHUP, and say which changed settings a SIGHUP cannot apply. */

import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import type { CommandLine } from "../config/args.ts";
import { type Config, resolveConfig } from "../config/resolve.ts";
import { SETTINGS } from "../config/settings.ts";
import { ConfigError } from "../errors.ts";
import { closeLog, LEVEL_NUMBERS, type LogLevel, type LogSink, openErrorLog, openLogSinks } from "../observe/log.ts";

/** Refuse a pidfile naming a live process; otherwise (re)write it. */
export function writePidfile(path: string): void {
  checkPidfile(path);
  writeFileSync(path, `${process.pid}\n`);
}

/** Refuse a pidfile naming a live process other than this one. */
export function checkPidfile(path: string): void {
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
}

/** The number of workers a config asks for ("auto": the CPUs this process may run on). */
export function workerCount(config: Config): number {
  const v = config.get("workers");
  return v === "auto" ? availableParallelism() : (v as number);
}

/** The pid a pidfile names, or 0. */
function pidOf(path: string): number {
  try {
    return Number.parseInt(readFileSync(path, "utf8"), 10) || 0;
  } catch {
    return 0;
  }
}

/** Remove the pidfile if it names this process, under either name (a new master that exited while this one stopped left .oldbin). */
export function removeOwnPidfile(pidfile: string): void {
  for (const path of [pidfile, `${pidfile}.oldbin`]) if (pidOf(path) === process.pid) rmSync(path, { force: true });
}

/** The access and error sinks a config names; a file that cannot be opened is a ConfigError. */
export function openLogs(config: Config): [LogSink, LogSink] {
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

/** Close the sinks of `sinks` that are not among `kept` (logs a reload opened and did not adopt, or replaced ones). */
export function closeUnless(sinks: readonly LogSink[], kept: readonly LogSink[]): void {
  for (const sink of sinks) if (!kept.includes(sink)) closeLog(sink);
}

/** Settings whose change SIGHUP cannot apply without a restart (sockets, pidfile), and whether a master's roll applies it (TLS). */
const RESTART_KEYS = SETTINGS.filter((s) => s.reload !== true).map((s) => ({ key: s.key, rolled: s.reload === "workers" }));

/** Why a restart-only setting cannot change on SIGHUP, for the warning. */
const RESTART_REASON: Readonly<Record<string, string>> = {
  tls: "Bun.listen cannot swap certificates on a listening socket",
};

/**
 * Restart-only settings of `config` that differ from what runs (`applied`, and for a lone
 * process its TLS files' text, `appliedTls`), each with the warning for it. A master's SIGHUP
 * starts new workers, each of which builds its TLS context, from the files' text as the master
 * read them for the reload, over the socket it adopts: TLS settings and files renewed in place
 * are served by the new generation, and are no restart there (a master passes no `appliedTls`).
 */
export function restartWarnings(applied: Config, config: Config, appliedTls: ReadonlyMap<string, string> | null): string[] {
  const out: string[] = [];
  // A worker count is reloadable, but not between a lone process and a master: a lone process
  // has no master to start workers, and a master cannot become the process that serves.
  const master = workerCount(applied) > 0;
  if (master !== workerCount(config) > 0) {
    out.push(
      master
        ? "workers = 0 (a single process) needs a restart; the master keeps its workers"
        : `workers = ${formatValue("workers", config.get("workers"))} needs a restart (a single process has no master to start workers); still a single process`,
    );
  }
  for (const { key: k, rolled } of RESTART_KEYS) {
    if (rolled && master) continue;
    const now = config.get(k);
    if (JSON.stringify(now) === JSON.stringify(applied.get(k))) continue;
    const why = RESTART_REASON[k.split(".")[0] as string];
    out.push(
      `${k} changed but needs a restart${why ? ` (${why})` : ""}; still using ${formatValue(k, applied.get(k))}, not ${formatValue(k, now)}`,
    );
  }
  if (master || appliedTls === null) return out;
  for (const [k, text] of config.tlsTexts) {
    if (config.str(k) === applied.str(k) && appliedTls.get(k) !== text) {
      out.push(
        `${k}: ${config.str(k)} changed on disk, but ${RESTART_REASON.tls}: restart to serve it (with socket activation, a restart refuses no connection; with workers, a SIGHUP serves it)`,
      );
    }
  }
  return out;
}

/** A setting's value as it reads in a message: `"127.0.0.1:80"`, `["a", "b"]`, `unset`. */
const formatValue = (key: string, v: unknown): string => {
  if (v === null) return "unset";
  if (key === "tls.passphrase") return '"********"';
  if (Array.isArray(v) && v.length === 1) return JSON.stringify(v[0]);
  return JSON.stringify(v);
};

/**
 * What SIGHUP re-read: the new config and its logs, or why the reload fails (what runs keeps
 * serving), as it follows "reload failed …:" in the log: the config's errors one per line, or
 * the log file that cannot be opened.
 */
export type Reload = { config: Config; logs: [LogSink, LogSink] } | { why: string };

/** Resolve the config again as the process was started (file and flags) and open its logs. */
export function reloadConfig(commandLine: CommandLine, embedded: boolean): Reload {
  const { config, errors } = resolveConfig({ commandLine, cwd: process.cwd(), embedded });
  if (errors.length > 0) return { why: `\n  ${errors.join("\n  ")}` };
  try {
    return { config, logs: openLogs(config) };
  } catch (e) {
    return { why: ` ${(e as Error).message}` };
  }
}
