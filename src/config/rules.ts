/** @module config/rules — what is checked once every value is in: settings set where what they need is absent (they would have no effect), settings that contradict each other, the files a config names, and what the host must give its listeners (config/host asks it) — one judgement for `bunwsgi check` and the start. */

import { type Address, PROXY_OVER_TLS, parseListener } from "../engine/listeners.ts";
import { parseIP } from "../http/address.ts";
import { overlap } from "./binds.ts";
import { groupId, readProblem, writeProblem } from "./files.ts";
import {
  addressProblem,
  backlogProblem,
  boundAddress,
  groupProblem,
  portProblem,
  type Resolved,
  resolveHost,
  unixProblem,
} from "./host.ts";
import type { Config } from "./resolve.ts";
import type { Need } from "./setting.ts";
import { SETTINGS } from "./settings.ts";

const binds = (c: Config): Address[] => c.list("bind").map((b) => parseListener(b));
/** Whether a log sink is a file, not "stderr", "stdout" or "none". */
const isLogFile = (sink: string): boolean => sink !== "stderr" && sink !== "stdout" && sink !== "none";

/** Each need: whether a config meets it, and what it lacks when not (it follows "has no effect without"). */
const NEEDS: Readonly<Record<Need, { met: (c: Config) => boolean; without: string }>> = {
  workers: { met: (c) => c.get("workers") !== 0, without: "workers (workers = 0: this process serves alone)" },
  max_requests: { met: (c) => (c.num("max_requests") ?? 0) > 0, without: "max_requests (it is 0: workers are never replaced)" },
  tcp_bind: {
    met: (c) => binds(c).some((a) => a.unix === null && a.fd < 0),
    without: "a host:port bind (unix: and fd:// binds are always shared)",
  },
  unix_bind: { met: (c) => binds(c).some((a) => a.unix !== null), without: "a unix:/path bind" },
  // An inherited socket may be a unix one (systemd's ListenStream=/path): its peers count as unix peers.
  unix_peer: {
    met: (c) => binds(c).some((a) => a.unix !== null || a.fd >= 0),
    without: "a unix:/path bind (or an fd:// one, which may be a unix socket)",
  },
  proxy_bind: {
    met: (c) => binds(c).some((a) => a.proxyProtocol !== "off"),
    without: 'a bind with proxy_protocol on, such as "0.0.0.0:8001 proxy_protocol=v2"',
  },
  // Either one will do: the other missing is an error of its own.
  tls: { met: (c) => c.str("tls.cert") !== null || c.str("tls.key") !== null, without: "tls.cert and tls.key" },
  client_auth: {
    met: (c) => c.str("tls.client_auth") !== "none",
    without: 'tls.client_auth "request" or "require" (it is "none": no client certificate is asked for)',
  },
  wsgi_app: { met: (c) => c.str("app_kind") !== "fetch", without: 'a WSGI app (app_kind is "fetch")' },
  access_log: { met: (c) => !c.list("log.access").includes("none"), without: 'an access log (log.access is "none")' },
  error_log: { met: (c) => !c.list("log.error").includes("none"), without: 'an error log (log.error is "none")' },
  min_body_rate: { met: (c) => (c.num("limits.min_body_rate") ?? 0) > 0, without: "limits.min_body_rate (it is 0: off)" },
  min_response_rate: {
    met: (c) => (c.num("limits.min_response_rate") ?? 0) > 0,
    without: "limits.min_response_rate (it is 0: off)",
  },
  forwarded_headers: {
    met: (c) => c.list("forwarded_headers").length > 0,
    without: "forwarded_headers (it is []: no forwarding field is read)",
  },
  // With "*" every TCP peer is trusted; a unix one (a unix: or fd:// bind, or a PROXY header's UNIX source) only by forwarded_allow_unix.
  untrusted_peer: {
    met: (c) =>
      c.list("forwarded_headers").length === 0 ||
      !c.list("forwarded_allow_ips").includes("*") ||
      (!c.bool("forwarded_allow_unix") && binds(c).some((a) => a.unix !== null || a.fd >= 0 || a.proxyProtocol !== "off")),
    without: 'a peer that is not trusted (forwarded_allow_ips has "*": every peer these binds can have is trusted)',
  },
  trusted_peer: {
    met: (c) => c.list("forwarded_allow_ips").length > 0 || c.bool("forwarded_allow_unix"),
    without: "a trusted peer (forwarded_allow_ips is [] and forwarded_allow_unix is false)",
  },
};

/** Every setting set in the file or by a flag whose need (the settings table's `needs`) the config does not meet. */
export function needErrors(c: Config): string[] {
  const out: string[] = [];
  for (const s of SETTINGS) {
    if (s.needs === undefined || c.sources.get(s.key) === "default") continue;
    const lacking = s.needs.find((n) => !NEEDS[n].met(c));
    if (lacking !== undefined) out.push(`${c.where(s.key)}: ${s.key}: has no effect without ${NEEDS[lacking].without}`);
  }
  return out;
}

const MiB = 1024 * 1024;
const ONCE = 'a port is listened on once per address, and "[::]" covers every address of both families, "0.0.0.0" every IPv4 one';
const bytes = (n: number): string => `${n} bytes (${Number((n / MiB).toFixed(1))} MiB)`;

/** Each config's host names and what they resolve to: resolved once per config, for every rule that asks. */
const resolved = new WeakMap<Config, Map<string, Resolved | null>>();

/** What `host` resolves to (config/host's resolveHost), asked once per config. */
function resolutionOf(c: Config, host: string): Resolved | null {
  let names = resolved.get(c);
  if (names === undefined) {
    names = new Map();
    resolved.set(c, names);
  }
  if (!names.has(host)) names.set(host, resolveHost(host));
  return names.get(host) ?? null;
}

/** The address Bun.listen binds for `host`. */
const addressOf = (c: Config, host: string): string | null => boundAddress(resolutionOf(c, host));

/** A TCP listener with its host replaced by the address it is bound at (a name that does not resolve stays as written). */
const atAddress = (c: Config, a: Address): Address =>
  a.unix !== null || a.fd >= 0 ? a : { ...a, hostname: addressOf(c, a.hostname) ?? a.hostname };

/** What the host names among `specs` are here (" (localhost is 127.0.0.1 here)"), so a clash between different texts is plain. */
function named(c: Config, ...specs: string[]): string {
  const names = new Set<string>();
  for (const spec of specs) {
    const a = parseListener(spec);
    if (a.unix === null && a.fd < 0 && parseIP(a.hostname) === null) names.add(a.hostname);
  }
  const said = [...names].map((n) => `${n} is ${addressOf(c, n) ?? "unresolved"} here`);
  return said.length === 0 ? "" : ` (${said.join(", ")})`;
}

/** Settings whose values contradict each other, or a list that names one thing twice. */
export function conflictErrors(c: Config): string[] {
  const out: string[] = [];
  const set = (key: string): boolean => c.sources.get(key) !== "default";
  const body = c.num("limits.body") as number;
  const buffered = c.num("limits.buffered_bytes") as number;
  if (body > buffered) {
    const [key, clash] = set("limits.body")
      ? ["limits.body", `${bytes(body)} is more than limits.buffered_bytes, ${bytes(buffered)}`]
      : ["limits.buffered_bytes", `${bytes(buffered)} is less than limits.body, ${bytes(body)}`];
    out.push(
      `${c.where(key)}: ${key}: ${clash}: an app that reads a whole body holds all of it at once, so a body over buffered_bytes stalls and gets 503 after timeouts.body; keep limits.buffered_bytes at least limits.body`,
    );
  }
  const idle = c.num("timeouts.stop_idle") as number;
  const shutdown = c.num("timeouts.shutdown") as number;
  if (set("timeouts.stop_idle") && idle > shutdown) {
    out.push(
      `${c.where("timeouts.stop_idle")}: timeouts.stop_idle: ${idle} s is longer than timeouts.shutdown, ${shutdown} s, which ends every connection of a graceful stop; make it at most timeouts.shutdown`,
    );
  }
  const live = c.str("health.live_path");
  const ready = c.str("health.ready_path");
  // "" is the urlpath kind's "none": both probes off is no clash.
  if (live && live === ready) {
    out.push(
      `${c.where("health.ready_path")}: health.ready_path: ${JSON.stringify(ready)} is also health.live_path (${c.where("health.live_path")}): the probes answer differently once a stop begins, so each needs a path of its own`,
    );
  }
  for (const s of SETTINGS) {
    const v = c.get(s.key);
    if (!Array.isArray(v)) continue;
    v.forEach((x, i) => {
      if (v.indexOf(x) < i) out.push(`${c.whereItem(s.key, i)}: ${s.key}: ${JSON.stringify(x)} is listed twice`);
    });
  }
  // The same bind twice is "listed twice" above; these differ in their text or options. Compared
  // by the address each is bound at: a host name as what it resolves to, once.
  const list = c.list("bind");
  const addresses = binds(c).map((a) => atAddress(c, a));
  addresses.forEach((a, i) => {
    const j = addresses.findIndex((b, k) => k < i && list[k] !== list[i] && overlap(a, b));
    if (j < 0) return;
    out.push(
      `${c.whereItem("bind", i)}: bind: ${JSON.stringify(list[i])} takes the same socket as ${JSON.stringify(list[j])} (${c.whereItem("bind", j)})${named(c, list[i] as string, list[j] as string)}: ${ONCE}`,
    );
  });
  const metrics = c.str("metrics_bind");
  if (metrics !== null) {
    const m = atAddress(c, parseListener(metrics));
    addresses.forEach((a, i) => {
      if (!overlap(m, a)) return;
      out.push(
        `${c.where("metrics_bind")}: metrics_bind: ${JSON.stringify(metrics)} takes the same socket as bind ${JSON.stringify(list[i])} (${c.whereItem("bind", i)})${named(c, metrics, list[i] as string)}: the metrics page needs an address and port of its own; ${ONCE}`,
      );
    });
  }
  out.push(...sharedFiles(c));
  return out;
}

/** A file written for two jobs (the pidfile, a log, a unix socket) would be clobbered by one of them; both logs may share one. */
function sharedFiles(c: Config): string[] {
  const out: string[] = [];
  const claimed = new Map<string, { key: string; where: string }>();
  const job = (key: string): string => (key.startsWith("log.") ? "log" : key);
  const claim = (key: string, path: string, where: string): void => {
    const other = claimed.get(path);
    if (other === undefined) claimed.set(path, { key, where });
    else if (job(other.key) !== job(key)) out.push(`${where}: ${key}: ${path} is also ${other.key}'s file (${other.where})`);
  };
  const pidfile = c.str("pidfile");
  if (pidfile !== null) claim("pidfile", pidfile, c.where("pidfile"));
  for (const key of ["log.access", "log.error"]) {
    c.list(key).forEach((p, i) => {
      if (isLogFile(p)) claim(key, p, c.whereItem(key, i));
    });
  }
  binds(c).forEach((a, i) => {
    if (a.unix !== null) claim("bind", a.unix, c.whereItem("bind", i));
  });
  return out;
}

/** The files a config names: ones to read must be readable files, ones to write need their folder; and TLS settings that need each other. */
export function fileErrors(c: Config): string[] {
  const out: string[] = [];
  for (const key of ["tls.cert", "tls.key", "tls.ca"]) {
    const path = c.str(key);
    const problem = path === null ? null : readProblem(path);
    if (problem !== null) out.push(`${c.where(key)}: ${key}: ${problem}`);
  }
  const cert = c.str("tls.cert");
  const key = c.str("tls.key");
  if ((cert === null) !== (key === null)) {
    const [given, missing] = cert === null ? ["tls.key", "tls.cert"] : ["tls.cert", "tls.key"];
    out.push(`${c.where(given)}: ${missing}: required with ${given}`);
  }
  if (cert !== null || key !== null) {
    if (c.str("tls.client_auth") !== "none" && c.str("tls.ca") === null) {
      out.push(`${c.where("tls.client_auth")}: tls.client_auth: needs tls.ca, the CA that client certificates must chain to`);
    }
    c.list("bind").forEach((b, i) => {
      if (parseListener(b).proxyProtocol === "off") return;
      out.push(
        `${c.whereItem("bind", i)}: bind: ${JSON.stringify(b)}: proxy_protocol cannot be used with tls.cert: ${PROXY_OVER_TLS}`,
      );
    });
  }
  const group = c.str("unix_socket_group");
  const gid = group === null ? null : groupId(group);
  if (group !== null && gid === null) {
    out.push(`${c.where("unix_socket_group")}: unix_socket_group: no group ${JSON.stringify(group)} on this host`);
  }
  const groupWhy = gid === null || !binds(c).some((a) => a.unix !== null) ? null : groupProblem(gid);
  if (groupWhy !== null) out.push(`${c.where("unix_socket_group")}: unix_socket_group: ${JSON.stringify(group)}: ${groupWhy}`);
  const pidfile = c.str("pidfile");
  const pidProblem = pidfile === null ? null : writeProblem(pidfile);
  if (pidProblem !== null) out.push(`${c.where("pidfile")}: pidfile: ${pidProblem}`);
  for (const key of ["log.access", "log.error"]) {
    c.list(key).forEach((p, i) => {
      const problem = isLogFile(p) ? writeProblem(p) : null;
      if (problem !== null) out.push(`${c.whereItem(key, i)}: ${key}: ${problem}`);
    });
  }
  out.push(...listenErrors(c));
  return out;
}

/**
 * What would stop a listener from being bound at the start, as far as this host and user can
 * tell before it: a host name that does not resolve, or resolves to several addresses of which
 * Bun.listen binds one; an address that is not this host's; a port this user may not bind; a
 * unix socket it cannot create. Not a port in use: that may be this very server, still running.
 */
function listenErrors(c: Config): string[] {
  const out: string[] = [];
  const tcp = (where: string, key: string, spec: string, a: Address): void => {
    const fail = (why: string): number => out.push(`${where}: ${key}: ${JSON.stringify(spec)}: ${why}`);
    const r = resolutionOf(c, a.hostname);
    if (r !== null && "error" in r) {
      fail(`the host name ${a.hostname} does not resolve (${r.error}): use an address, or a name this host resolves`);
      return;
    }
    if (r !== null && r.addresses.length > 1) {
      const ips = r.addresses.map((x) => x.ip);
      const chosen = addressOf(c, a.hostname) as string;
      const spec = (ip: string): string => JSON.stringify(ip.includes(":") ? `[${ip}]:${a.port}` : `${ip}:${a.port}`);
      const left = ips.filter((ip) => ip !== chosen);
      const instead =
        key === "bind"
          ? `list each address to serve as a bind of its own: ${ips.map(spec).join(", ")}`
          : `name the address to serve, such as ${spec(chosen)}`;
      fail(
        `${a.hostname} resolves to ${and(ips)}, and Bun.listen binds one address per listener (the first IPv6 one, else the first IPv4 one: here ${chosen}), so clients of ${and(left)} would not be served: ${instead}`,
      );
      return;
    }
    const ip = addressOf(c, a.hostname);
    const problem = (ip === null ? null : addressProblem(ip)) ?? portProblem(a.port);
    if (problem !== null) fail(problem);
  };
  const list = c.list("bind");
  binds(c).forEach((a, i) => {
    const where = c.whereItem("bind", i);
    if (a.unix !== null) {
      const problem = unixProblem(a.unix);
      if (problem !== null) out.push(`${where}: bind: ${JSON.stringify(list[i])}: ${problem}`);
    } else if (a.fd < 0) tcp(where, "bind", list[i] as string, a);
  });
  const metrics = c.str("metrics_bind");
  if (metrics !== null) tcp(c.where("metrics_bind"), "metrics_bind", metrics, parseListener(metrics));
  return out;
}

/** "a", "a and b", "a, b and c". */
const and = (xs: readonly string[]): string => (xs.length < 2 ? (xs[0] ?? "") : `${xs.slice(0, -1).join(", ")} and ${xs.at(-1)}`);

/** Warnings for what the config asks and the host will not give, though the server still serves: one judgement for `bunwsgi check` and the start alike. */
export function hostWarnings(c: Config): string[] {
  const backlog = backlogProblem(c.num("backlog"));
  return backlog === null ? [] : [`${c.where("backlog")}: backlog: ${backlog}`];
}
