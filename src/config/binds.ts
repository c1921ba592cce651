/** @module config/binds — the bind setting's items checked: strings with their options, tables ([[bind]]) turned into that string form, unix paths resolved against the config's folder. */

import { resolve } from "node:path";
import { BIND_OPTIONS, PROXY_OVER_TLS, parseListener, splitBindOptions } from "../engine/listeners.ts";
import { didYouMean } from "./args.ts";
import type { Origin } from "./resolve.ts";

/** Records an error: where (file:line or flag), the key, and why. */
export type Fail = (where: string, key: string, why: string) => void;

/**
 * A bind as its string form: a string as is, a table `{ address, proxy_option = value }`
 * (`[[bind]]`) as "address option=value"; null after recording what is wrong with it.
 */
export function bindText(key: string, b: unknown, o: Origin, fail: Fail): string | null {
  if (typeof b === "string" && b !== "") return b;
  if (!isTable(b)) {
    fail(o.label, key, `expected a non-empty string or a table { address, … }, got ${describe(b)}`);
    return null;
  }
  const address = b.address;
  const where = typeof address === "string" ? (o.item?.(address) ?? o.label) : o.label;
  if (typeof address !== "string" || address === "") {
    fail(where, `${key}.address`, `expected the bind's address as a non-empty string, got ${describe(address)}`);
    return null;
  }
  let text = address;
  let ok = true;
  for (const [k, v] of Object.entries(b)) {
    if (k === "address") continue;
    const values = BIND_OPTIONS[k];
    if (values === undefined) {
      fail(where, `${key}.${k}`, `unknown bind option${didYouMean(k, ["address", ...Object.keys(BIND_OPTIONS)])}`);
      ok = false;
    } else if (typeof v !== "string" || !values.includes(v)) {
      fail(where, `${key}.${k}`, `expected one of ${values.map((x) => JSON.stringify(x)).join(", ")}, got ${describe(v)}`);
      ok = false;
    } else text += ` ${k}=${v}`;
  }
  return ok ? text : null;
}

/** Every bad bind is reported, each at its own line when the file spreads the list over several. */
export function checkBinds(key: string, list: string[], o: Origin, fail: Fail): string[] | undefined {
  const seen = new Set<string>();
  let ok = true;
  for (const b of list) {
    const where = o.item?.(splitBindOptions(b).address) ?? o.label;
    try {
      parseListener(b);
    } catch (e) {
      fail(where, key, (e as Error).message);
      ok = false;
      continue;
    }
    if (seen.has(b)) {
      fail(where, key, `${JSON.stringify(b)} is listed twice`);
      ok = false;
    }
    seen.add(b);
  }
  if (!ok) return undefined;
  // A unix socket path is relative to the config file like every other path.
  return list.map((b) => {
    if (!b.startsWith("unix:")) return b;
    const { address, options } = splitBindOptions(b);
    return [`unix:${resolve(o.base, address.slice(5))}`, ...options.map(([k, v]) => `${k}=${v}`)].join(" ");
  });
}

/** The binds that ask for the PROXY protocol while serving TLS, each an error (see PROXY_OVER_TLS). */
export function proxyProtocolOverTls(binds: readonly string[], where: string): string[] {
  return binds
    .filter((b) => parseListener(b).proxyProtocol !== "off")
    .map((b) => `${where}: bind: ${JSON.stringify(b)}: proxy_protocol cannot be used with tls.cert: ${PROXY_OVER_TLS}`);
}

/** The value as a message names it: "the string \"x\"", "a table", "a list ([…])". */
export const isTable = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === "object" && !Array.isArray(v);

export const describe = (v: unknown): string => {
  if (Array.isArray(v)) return `a list (${JSON.stringify(v)})`;
  if (v !== null && typeof v === "object") return "a table";
  if (typeof v === "string") return `the string ${JSON.stringify(v)}`;
  return `${typeof v} ${String(v)}`;
};

/** Whether `spec` is a plain TCP address, "host:port" or "[v6]:port", with no options (metrics_bind). */
export function tcpEndpoint(spec: string): boolean {
  try {
    const a = parseListener(spec);
    return a.unix === null && a.fd < 0 && a.proxyProtocol === "off" && !/\s/.test(spec);
  } catch {
    return false;
  }
}
