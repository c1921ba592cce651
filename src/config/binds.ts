/** @module config/binds — the bind setting's items checked: strings with their options, tables ([[bind]]) turned into that string form, unix paths resolved against the config's folder; and whether two listeners would take one socket. */

import { resolve } from "node:path";
import { type Address, BIND_OPTIONS, parseListener, splitBindOptions } from "../engine/listeners.ts";
import { isIPv4, parseIP } from "../http/address.ts";
import { didYouMean } from "./args.ts";
import type { Origin } from "./resolve.ts";
import { misplacedHint } from "./settings.ts";

/** Records an error: where (file:line or flag), the key, and why. */
export type Fail = (where: string, key: string, why: string) => void;

/**
 * Bind `i` of the list as its string form: a string as is, a table `{ address, proxy_option =
 * value }` (`[[bind]]`) as "address option=value"; null after recording everything wrong
 * with it, each at its own line.
 */
export function bindText(key: string, b: unknown, i: number, o: Origin, fail: Fail): string | null {
  if (typeof b === "string" && b !== "") return b;
  const at = (sub: string): string => o.at(`[${i}]${sub}`);
  if (!isTable(b)) {
    fail(at(""), key, `expected a non-empty string or a table { address, … }, got ${describe(b)}`);
    return null;
  }
  const address = b.address;
  let ok = typeof address === "string" && address !== "";
  if (!ok) {
    const [where, got] = "address" in b ? [at(".address"), describe(address)] : [at(""), "none"];
    fail(
      where,
      `${key}.address`,
      `expected the bind's address as a non-empty string ("host:port", "unix:/path" or "fd://N"), got ${got}`,
    );
  }
  let options = "";
  for (const [k, v] of Object.entries(b)) {
    if (k === "address") continue;
    const values = BIND_OPTIONS[k];
    if (values === undefined) {
      const misplaced = misplacedHint(k);
      const hint = misplaced !== "" ? `; ${misplaced}` : didYouMean(k, ["address", ...Object.keys(BIND_OPTIONS)]);
      fail(at(`.${k}`), `${key}.${k}`, `unknown bind option${hint}`);
      ok = false;
    } else if (typeof v !== "string" || !values.includes(v)) {
      fail(at(`.${k}`), `${key}.${k}`, `expected one of ${values.map((x) => JSON.stringify(x)).join(", ")}, got ${describe(v)}`);
      ok = false;
    } else options += ` ${k}=${v}`;
  }
  return ok ? `${address}${options}` : null;
}

/** Every bad bind is reported, each at its own line when the file spreads the list over several. */
export function checkBinds(key: string, list: string[], o: Origin, fail: Fail): string[] | undefined {
  let ok = true;
  list.forEach((b, i) => {
    try {
      parseListener(b);
    } catch (e) {
      fail(o.at(`[${i}]`), key, (e as Error).message);
      ok = false;
    }
  });
  if (!ok) return undefined;
  // A unix socket path is relative to the config file like every other path.
  return list.map((b) => {
    if (!b.startsWith("unix:")) return b;
    const { address, options } = splitBindOptions(b);
    return [`unix:${resolve(o.base, address.slice(5))}`, ...options.map(([k, v]) => `${k}=${v}`)].join(" ");
  });
}

/**
 * Whether two listeners would take the same socket: one unix path or descriptor, or one TCP
 * port (not 0, which the kernel picks) on addresses that meet: the same, or a wildcard that
 * covers the other ("::" covers both families, as Bun binds it dual-stack; "0.0.0.0" IPv4).
 */
export function overlap(a: Address, b: Address): boolean {
  if (a.fd >= 0 || b.fd >= 0) return a.fd === b.fd;
  if (a.unix !== null || b.unix !== null) return a.unix === b.unix;
  if (a.port !== b.port || a.port === 0) return false;
  const x = parseIP(a.hostname);
  const y = parseIP(b.hostname);
  if (x === null || y === null) return a.hostname.toLowerCase() === b.hostname.toLowerCase();
  const zero = (ip: Uint8Array, from: number): boolean => ip.subarray(from).every((byte) => byte === 0);
  const covers = (w: Uint8Array, ip: Uint8Array): boolean => zero(w, 0) || (isIPv4(w) && zero(w, 12) && isIPv4(ip));
  return x.every((byte, k) => byte === y[k]) || covers(x, y) || covers(y, x);
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
