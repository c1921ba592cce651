/** @module process/common — what a master and a lone server both do with a config: open its logs, write the pidfile, and say which changed settings a SIGHUP cannot apply. */

import { readFileSync, writeFileSync } from "node:fs";
import type { Config } from "../config/resolve.ts";
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

/** Settings whose change SIGHUP cannot apply without a restart (sockets, TLS, pidfile). */
const RESTART_KEYS = SETTINGS.filter((s) => !s.reload).map((s) => s.key);

/** Why a restart-only setting cannot change on SIGHUP, for the warning. */
const RESTART_REASON: Readonly<Record<string, string>> = {
  tls: "Bun.listen cannot swap certificates on a listening socket",
};

/** The TLS files' contents when the servers started, so a renewal in place is noticed on SIGHUP. */
export function tlsFiles(config: Config): Map<string, string> {
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

/** Restart-only settings of `config` that differ from what runs (`applied`, and its TLS files' text), each with the warning for it. */
export function restartWarnings(applied: Config, appliedTls: Map<string, string>, config: Config): string[] {
  const out: string[] = [];
  for (const k of RESTART_KEYS) {
    const now = config.get(k);
    if (JSON.stringify(now) === JSON.stringify(applied.get(k))) continue;
    const why = RESTART_REASON[k.split(".")[0] as string];
    out.push(
      `${k} changed but needs a restart${why ? ` (${why})` : ""}; still using ${formatValue(k, applied.get(k))}, not ${formatValue(k, now)}`,
    );
  }
  for (const [k, text] of tlsFiles(config)) {
    if (config.str(k) === applied.str(k) && appliedTls.get(k) !== text) {
      out.push(
        `${k}: ${config.str(k)} changed on disk, but ${RESTART_REASON.tls}: restart to serve it (with socket activation or workers, a restart refuses no connection)`,
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
