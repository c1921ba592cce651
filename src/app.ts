/** @module app — an application module: imported into a fresh module graph, its export found, and its kind (a WSGI app or a fetch app) decided and explained. */

import { splitAppSpec } from "./config/resolve.ts";
import { ConfigError, thrownText } from "./errors.ts";
import type { FetchApplication } from "./fetch/types.ts";
import { defaultLog, type LogSink } from "./observe/log.ts";
import type { Application } from "./wsgi/types.ts";

/** The two kinds of app bunwsgi serves. */
export type AppKind = "wsgi" | "fetch";
/** The app_kind setting: a kind, or "auto" to decide by the export's shape. */
export type AppKindSetting = AppKind | "auto";

/** An app and its kind: what serves it is decided once, by this. */
export type KindedApp = { kind: "wsgi"; app: Application } | { kind: "fetch"; app: FetchApplication };

/** An application compiled into the binary by `build.ts --app`. */
export interface EmbeddedApp {
  app: unknown;
  /** What it was built from, for messages ("app.ts:default"). */
  name: string;
}

/** A loaded application, its kind and why, and the module graph that holds its modules (null when embedded). */
export type LoadedApp = KindedApp & {
  label: string;
  /** Why the kind is what it is, for `bunwsgi check` and the start-up line. */
  why: string;
  graph: Bun.ModuleGraph | null;
};

const shape = (v: unknown): string => {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  return typeof v === "object" ? `an object without a fetch method` : `a ${typeof v}`;
};

/**
 * Decide what `value` (the export named by `label`) is. `auto`: an object with a fetch method
 * (`export default { fetch }`, a Hono or Elysia app) is a fetch app, a function is a WSGI app
 * (a bare fetch function needs `app_kind = "fetch"`: its shape is a WSGI app's), and a function
 * that also has a fetch method could be either, so it is an error. The result says why.
 */
export function kindOf(value: unknown, setting: AppKindSetting, label: string): KindedApp & { why: string } {
  const hasFetch =
    (typeof value === "object" || typeof value === "function") &&
    value !== null &&
    typeof (value as { fetch?: unknown }).fetch === "function";
  if (setting === "wsgi") {
    if (hasFetch && typeof value !== "function") {
      throw new ConfigError(
        `app_kind = "wsgi": ${label} is a fetch app (an object with a fetch method), not a function (environ, startResponse); set app_kind = "fetch" or "auto"`,
      );
    }
    if (typeof value !== "function") {
      throw new ConfigError(`app_kind = "wsgi": ${label} is ${shape(value)}, not a function (environ, startResponse)`);
    }
    return { kind: "wsgi", app: value as Application, why: 'app_kind = "wsgi"' };
  }
  if (setting === "fetch") {
    if (typeof value !== "function" && !hasFetch) {
      throw new ConfigError(
        `app_kind = "fetch": ${label} is ${shape(value)}, not a function (request, server) or an object with a fetch method`,
      );
    }
    return { kind: "fetch", app: value as FetchApplication, why: 'app_kind = "fetch"' };
  }
  if (typeof value === "function" && hasFetch) {
    throw new ConfigError(
      `app_kind = "auto" cannot tell what ${label} is: a function (a WSGI app's shape) with a fetch method (a fetch app's); set app_kind = "wsgi" or "fetch"`,
    );
  }
  if (hasFetch)
    return { kind: "fetch", app: value as FetchApplication, why: "auto: the export is an object with a fetch method" };
  if (typeof value === "function") {
    return {
      kind: "wsgi",
      app: value as Application,
      why: 'auto: the export is a function, served as a WSGI app (environ, startResponse); a bare fetch function needs app_kind = "fetch"',
    };
  }
  throw new ConfigError(
    `${label} is ${shape(value)}: expected a WSGI app (a function (environ, startResponse)) or a fetch app (an object with a fetch(request, server) method)`,
  );
}

/** Position-carrying errors Bun throws for a module that does not parse or resolve. */
interface PositionedMessage {
  message: string;
  position: { file: string; line: number; column: number; lineText: string } | null;
}

/** Why a module failed to load: `file:line:col: message` and the line for a syntax or import error, the stack for a throw. */
export function describeLoadError(e: unknown): string {
  const list = e instanceof AggregateError ? e.errors : [e];
  return list
    .map((x) => {
      const p = (x as Partial<PositionedMessage>).position;
      if (p != null && typeof p.file === "string") {
        return `${p.file}:${p.line}:${p.column}: ${(x as PositionedMessage).message}${p.lineText ? `\n    ${p.lineText}` : ""}`;
      }
      return thrownText(x);
    })
    .join("\n");
}

/**
 * Import `file[:export]` (an absolute path) into a fresh Bun.ModuleGraph, so a reload gets new
 * instances of the module and of everything it imports, and decide the export's kind. Fails
 * with a ConfigError naming the module and export.
 */
export async function loadApplication(
  spec: string,
  setting: AppKindSetting = "auto",
  errorLog: LogSink = defaultLog(),
): Promise<LoadedApp> {
  const { file, name } = splitAppSpec(spec);
  const graph = new Bun.ModuleGraph({
    onError(error) {
      errorLog.write(`uncaught error in application module ${file}: ${thrownText(error)}\n`);
    },
  });
  let mod: Record<string, unknown>;
  try {
    mod = (await graph.import(file)) as Record<string, unknown>;
  } catch (e) {
    graph.dispose();
    throw new ConfigError(`cannot load application module ${file}: ${describeLoadError(e)}`);
  }
  const label = `${file}${name === "default" ? "" : `:${name}`}`;
  if (!(name in mod)) {
    graph.dispose();
    const found = Object.keys(mod).join(", ") || "nothing";
    throw new ConfigError(`application module ${file} has no export "${name}" (it exports: ${found})`);
  }
  try {
    return { ...kindOf(mod[name], setting, `export "${name}" of ${file}`), label, graph };
  } catch (e) {
    graph.dispose();
    throw e;
  }
}
