/** @module cli — the bunwsgi command: parse it, resolve the config, then check it, or serve: alone, as a master of workers, or as one worker (process/). */

import { readFileSync } from "node:fs";
import type { EmbeddedApp } from "./app.ts";
import { type CommandLine, parseCommandLine } from "./config/args.ts";
import { formatConfig, helpText } from "./config/render.ts";
import { Config, resolveConfig } from "./config/resolve.ts";
import { ConfigError } from "./errors.ts";
import * as api from "./index.ts";
import { defaultLog, setLinePid } from "./observe/log.ts";
import { keepFreedMemory } from "./process/allocator.ts";
import { checkPidfile, workerCount } from "./process/common.ts";
import { inheritedSockets } from "./process/descriptors.ts";
import { runMaster } from "./process/master.ts";
import { ENV_CONFIG, ENV_MASTER_PID, ENV_SOCKETS, ENV_WATCH, ENV_WORKER } from "./process/messages.ts";
import { appFor, serve } from "./process/service.ts";
import { VERSION } from "./wsgi/server.ts";

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
  // Before anything is read or opened: the process may start again in place (execve).
  if (commandLine.command !== "check") keepFreedMemory();
  let sockets: Map<string, number[]>;
  try {
    sockets = inheritedSockets(process.env[ENV_SOCKETS]);
  } catch (e) {
    return err((e as Error).message);
  }
  // Not for the app's own child processes.
  delete process.env[ENV_SOCKETS];
  const worker = process.env[ENV_WORKER];
  const snapshot = process.env[ENV_CONFIG];
  if (commandLine.command !== "check" && worker !== undefined && snapshot !== undefined && process.send !== undefined) {
    // A worker serves its master's config for its generation, never the file as it is now.
    delete process.env[ENV_CONFIG];
    const watchFile = process.env[ENV_WATCH] ?? null;
    delete process.env[ENV_WATCH];
    const role = { index: Number(worker), masterPid: Number(process.env[ENV_MASTER_PID]), watchFile };
    setLinePid(process.pid);
    const config = Config.fromSnapshot(snapshot);
    // Its TLS files' text as its master read and checked them, on its standard input.
    config.adoptTls(readFileSync(0, "utf8"));
    return serve(config, commandLine, embedded, role, sockets);
  }
  const { config, errors } = resolveConfig({ commandLine, cwd: process.cwd(), embedded: embedded !== undefined });
  if (errors.length > 0) {
    const head = commandLine.command === "check" ? "configuration is invalid" : "cannot start: configuration is invalid";
    return err(`${head}:\n  ${errors.join("\n  ")}`);
  }
  if (commandLine.command === "check") return check(config, embedded);
  if (workerCount(config) > 0) {
    setLinePid(process.pid);
    return runMaster(config, commandLine, embedded !== undefined, sockets);
  }
  return serve(config, commandLine, embedded, null, sockets);
}

/** `bunwsgi check`: also import the app, as starting would; warnings (an expired certificate) are said but pass. */
async function check(config: Config, embedded: EmbeddedApp | undefined): Promise<number> {
  const problems: string[] = [];
  let kind = "";
  try {
    const loaded = await appFor(config, embedded, defaultLog());
    loaded.graph?.dispose();
    kind = `# app: ${loaded.label} is a ${loaded.kind} app (${loaded.why})\n`;
  } catch (e) {
    // The app's own errors say where (the app setting, or a WSGI-only one); anything else is the app's.
    problems.push(e instanceof ConfigError ? e.message : `app: ${(e as Error).message}`);
  }
  const n = workerCount(config);
  const workers =
    n === 0
      ? "# workers: none; this process serves alone\n"
      : `# workers: a master and ${n} worker${n === 1 ? "" : "s"}${config.get("workers") === "auto" ? " (auto: the CPUs this process may use)" : ""}\n`;
  process.stdout.write(`# bunwsgi ${VERSION}: resolved configuration${config.file ? ` from ${config.file}` : ""}\n`);
  process.stdout.write(`${kind}${workers}${formatConfig(config).trimStart()}\n`);
  for (const w of [...config.warnings, ...runningWarnings(config)]) process.stderr.write(`bunwsgi: warning: ${w}\n`);
  if (problems.length > 0) {
    process.stderr.write(`bunwsgi: configuration is invalid:\n  ${problems.join("\n  ")}\n`);
    return 2;
  }
  process.stderr.write("bunwsgi: configuration is valid\n");
  return 0;
}

/**
 * What refuses a start now but may be this very config's server, running (check is run before a
 * reload): a pidfile naming a live process, judged by the start's own checkPidfile.
 */
function runningWarnings(config: Config): string[] {
  const pidfile = config.str("pidfile");
  if (pidfile === null) return [];
  try {
    checkPidfile(pidfile);
    return [];
  } catch (e) {
    return [
      `${config.where("pidfile")}: pidfile: ${(e as Error).message} A start now is refused; if that is this config's server, SIGHUP applies what a reload can (SIGUSR2: a new binary on the same sockets).`,
    ];
  }
}

if (import.meta.main) process.exit(await main(process.argv.slice(2)));
