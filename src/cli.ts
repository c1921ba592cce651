/** @module cli — the bunwsgi command: load an application module and serve it until a signal stops it. */

import { isAbsolute, resolve } from "node:path";
import { ConfigError } from "./errors.ts";
import { VERSION, WSGIServer } from "./server.ts";
import type { Application } from "./types.ts";

const USAGE = `bunwsgi ${VERSION} — a strict HTTP/1.1 server for WSGI-style TypeScript applications

Usage: bunwsgi [serve] APP[:EXPORT] [--bind HOST:PORT] [--no-access-log]
       bunwsgi --version | --help

  APP[:EXPORT]      module file (TypeScript or JavaScript); the default export, or EXPORT
  --bind ADDR       host:port, [v6]:port or unix:/path (default 127.0.0.1:8000)
  --no-access-log   do not write the access log (errors still go to stderr)

SIGTERM or SIGINT stops gracefully: in-flight requests finish, then the process exits 0.`;

interface Args {
  app: string;
  bind: string;
  accessLog: boolean;
}

function parseArgs(argv: string[]): Args | "help" | "version" {
  let app: string | null = null;
  let bind = "127.0.0.1:8000";
  let accessLog = true;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === "--help" || a === "-h") return "help";
    if (a === "--version") return "version";
    if (a === "--no-access-log") accessLog = false;
    else if (a === "--bind" || a.startsWith("--bind=")) {
      const v = a === "--bind" ? argv[++i] : a.slice(7);
      if (v === undefined || v === "") throw new ConfigError("--bind needs a value such as 127.0.0.1:8000");
      bind = v;
    } else if (a.startsWith("-")) throw new ConfigError(`unknown option ${a} (see --help)`);
    else if (a === "serve" && app === null && i === 0) continue;
    else if (app === null) app = a;
    else throw new ConfigError(`unexpected argument ${JSON.stringify(a)}: only one APP is served`);
  }
  if (app === null) throw new ConfigError("no application given: bunwsgi APP[:EXPORT] (see --help)");
  return { app, bind, accessLog };
}

/** Import `path[:export]` relative to the working directory and return the application function. */
export async function loadApplication(spec: string, base = process.cwd()): Promise<Application> {
  const colon = spec.lastIndexOf(":");
  // A drive letter or a bare path has no export part; "mod.ts:app" has one.
  const hasExport = colon > 1 && !spec.slice(colon + 1).includes("/");
  const file = hasExport ? spec.slice(0, colon) : spec;
  const name = hasExport ? spec.slice(colon + 1) : "default";
  const path = isAbsolute(file) ? file : resolve(base, file);
  let mod: Record<string, unknown>;
  try {
    mod = (await import(path)) as Record<string, unknown>;
  } catch (e) {
    throw new ConfigError(`cannot load application module ${path}: ${e instanceof Error ? e.message : String(e)}`);
  }
  const app = mod[name];
  if (typeof app !== "function") {
    const found = Object.keys(mod).join(", ") || "nothing";
    throw new ConfigError(`application module ${path} has no function export "${name}" (it exports: ${found})`);
  }
  return app as Application;
}

async function main(argv: string[]): Promise<number> {
  let args: ReturnType<typeof parseArgs>;
  try {
    args = parseArgs(argv);
  } catch (e) {
    process.stderr.write(`bunwsgi: ${(e as Error).message}\n`);
    return 2;
  }
  if (args === "help") {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (args === "version") {
    process.stdout.write(`bunwsgi ${VERSION} (Bun ${Bun.version})\n`);
    return 0;
  }
  let server: WSGIServer;
  try {
    const app = await loadApplication(args.app);
    server = new WSGIServer(args.bind, app, args.accessLog ? {} : { log: null });
    server.start();
  } catch (e) {
    process.stderr.write(`bunwsgi: ${e instanceof ConfigError ? e.message : (e as Error).stack}\n`);
    return 2;
  }
  const where = server.address.unix !== null ? `unix:${server.address.unix}` : `http://${server.serverHost}:${server.serverPort}`;
  server.errorLog.write(`bunwsgi ${VERSION} serving ${args.app} on ${where} (pid ${process.pid})\n`);
  const stop = (): void => {
    server.errorLog.write("bunwsgi: stopping gracefully\n");
    void server.stop();
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  await server.serveForever();
  return 0;
}

if (import.meta.main) process.exit(await main(process.argv.slice(2)));
