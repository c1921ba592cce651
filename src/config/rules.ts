/** @module config/rules — what is checked once every value is in: settings set where what they need is absent (they would have no effect), settings that contradict each other, the files a config names, and what the host must give its listeners (config/host asks it) — one judgement for `bunwsgi check` and the start. */

import { type Address, PROXY_OVER_TLS, parseListener } from "../engine/listeners.ts";
import { parseIP } from "../http/address.ts";
import { overlap } from "./binds.ts";
import { groupId, readProblem, writeProblem } from "./files.ts";
import {
  addressesOf,
  addressProblem,
  backlogProblem,
  boundAddress,
  groupProblem,
  hostPort,
  portProblem,
  resolutionOf,
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

/** The address Bun.listen binds for `host`: a name's first IPv6 address, else its first IPv4 one. */
const addressOf = (c: Config, host: string): string | null => boundAddress(resolutionOf(c, host));

/** Whether `a` is a TCP listener naming a host (not an address). */
const isName = (a: Address): boolean => a.unix === null && a.fd < 0 && parseIP(a.hostname) === null;

/** Whether `a` names a host with several addresses here: a bind listens on each (config/host's expandBind). */
const several = (c: Config, a: Address): boolean => isName(a) && (addressesOf(c, a.hostname)?.length ?? 0) > 1;

/**
 * The listeners `a` is bound as, each at its address: a TCP bind naming a host at every address
 * it resolves to (one listener each, as config/host's expandBind makes them for the start), or
 * with `one` (metrics_bind, one Bun.serve) at the one address Bun binds for it; a name that
 * does not resolve, an address, a unix path or a descriptor as written.
 */
function listenersOf(c: Config, a: Address, one = false): Address[] {
  if (a.unix !== null || a.fd >= 0) return [a];
  const ips = one ? [addressOf(c, a.hostname)] : (addressesOf(c, a.hostname) ?? [null]);
  return ips.map((ip) => ({ ...a, hostname: ip ?? a.hostname }));
}

/** What the host names among `specs` are here (" (localhost is 127.0.0.1 here)"), so a clash between different texts is plain. */
function named(c: Config, ...specs: string[]): string {
  const names = new Set<string>();
  for (const spec of specs) {
    const a = parseListener(spec);
    if (isName(a)) names.add(a.hostname);
  }
  const said = [...names].map((n) => {
    const ips = addressesOf(c, n);
    if (ips === null) return `${n} is unresolved here`;
    return ips.length > 1 ? `${n} is ${and(ips)} here, a bind listening on each` : `${n} is ${ips[0]} here`;
  });
  return said.length === 0 ? "" : ` (${said.join(", ")})`;
}

/**
 * Where listeners `as` and `bs` meet, when either names a host with several addresses (" at
 * 127.0.0.1:8000"): which of its addresses clashes; "" when they do not meet, or each is one
 * listener (its text and named() say it all).
 */
function clashAt(c: Config, a: Address, as: Address[], b: Address, bs: Address[]): string {
  const [mine, theirs] = several(c, a) ? [as, bs] : several(c, b) ? [bs, as] : [[], []];
  const at = mine.filter((x) => theirs.some((y) => overlap(x, y))).map((x) => hostPort(x.hostname, x.port));
  return at.length === 0 ? "" : ` at ${and(at)}`;
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
  // by the addresses each listens on: a host name as what it resolves to, once, every address.
  const list = c.list("bind");
  const parsed = binds(c);
  const listeners = parsed.map((a) => listenersOf(c, a));
  const meet = (xs: Address[], ys: Address[]): boolean => xs.some((x) => ys.some((y) => overlap(x, y)));
  listeners.forEach((as, i) => {
    const a = parsed[i] as Address;
    const spec = list[i] as string;
    // A name whose own addresses would take one socket ("::" and "0.0.0.0").
    if (as.some((x, k) => as.some((y, l) => l < k && overlap(x, y)))) {
      out.push(
        `${c.whereItem("bind", i)}: bind: ${JSON.stringify(spec)}: its addresses take the same socket${named(c, spec)}: ${ONCE}`,
      );
    }
    const j = listeners.findIndex((bs, k) => k < i && list[k] !== spec && meet(as, bs));
    if (j < 0) return;
    const other = list[j] as string;
    out.push(
      `${c.whereItem("bind", i)}: bind: ${JSON.stringify(spec)} takes the same socket as ${JSON.stringify(other)} (${c.whereItem("bind", j)})${clashAt(c, a, as, parsed[j] as Address, listeners[j] as Address[])}${named(c, spec, other)}: ${ONCE}`,
    );
  });
  const metrics = c.str("metrics_bind");
  if (metrics !== null) {
    const m = parseListener(metrics);
    const ms = listenersOf(c, m, true);
    listeners.forEach((as, i) => {
      if (!meet(ms, as)) return;
      const spec = list[i] as string;
      out.push(
        `${c.where("metrics_bind")}: metrics_bind: ${JSON.stringify(metrics)} takes the same socket as bind ${JSON.stringify(spec)} (${c.whereItem("bind", i)})${clashAt(c, parsed[i] as Address, as, m, ms)}${named(c, metrics, spec)}: the metrics page needs an address and port of its own; ${ONCE}`,
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
 * tell before it: a host name that does not resolve; an address that is not this host's (each
 * address of a bind's name, as each is listened on); a port this user may not bind; a unix
 * socket it cannot create. Not a port in use: that may be this very server, still running.
 */
function listenErrors(c: Config): string[] {
  const out: string[] = [];
  const tcp = (where: string, key: string, spec: string, a: Address, one: boolean): void => {
    const fail = (why: string): number => out.push(`${where}: ${key}: ${JSON.stringify(spec)}: ${why}`);
    const r = resolutionOf(c, a.hostname);
    if (r !== null && "error" in r) {
      fail(`the host name ${a.hostname} does not resolve (${r.error}): use an address, or a name this host resolves`);
      return;
    }
    // Where a name stands for several listeners, which address fails is said, and why it is listened on.
    const each = one || !several(c, a) ? "" : named(c, spec);
    const problems = listenersOf(c, a, one)
      .map((x) => (parseIP(x.hostname) === null ? null : addressProblem(x.hostname)))
      .filter((p) => p !== null)
      .map((p) => `${p}${each}`);
    if (problems.length === 0) problems.push(...[portProblem(a.port)].filter((p) => p !== null));
    for (const p of problems) fail(p);
  };
  const list = c.list("bind");
  binds(c).forEach((a, i) => {
    const where = c.whereItem("bind", i);
    if (a.unix !== null) {
      const problem = unixProblem(a.unix);
      if (problem !== null) out.push(`${where}: bind: ${JSON.stringify(list[i])}: ${problem}`);
    } else if (a.fd < 0) tcp(where, "bind", list[i] as string, a, false);
  });
  // One Bun.serve: a name is served at one of its addresses (hostWarnings says which).
  const metrics = c.str("metrics_bind");
  if (metrics !== null) tcp(c.where("metrics_bind"), "metrics_bind", metrics, parseListener(metrics), true);
  return out;
}

/** "a", "a and b", "a, b and c". */
const and = (xs: readonly string[]): string => (xs.length < 2 ? (xs[0] ?? "") : `${xs.slice(0, -1).join(", ")} and ${xs.at(-1)}`);

/** Warnings for what the config asks and the host will not give, though the server still serves: one judgement for `bunwsgi check` and the start alike. */
export function hostWarnings(c: Config): string[] {
  const out: string[] = [];
  const backlog = backlogProblem(c.num("backlog"));
  if (backlog !== null) out.push(`${c.where("backlog")}: backlog: ${backlog}`);
  // The metrics page is one Bun.serve, bound at one address of a name, where a bind listens on each.
  const metrics = c.str("metrics_bind");
  const m = metrics === null ? null : parseListener(metrics);
  const ips = m === null || !several(c, m) ? null : addressesOf(c, m.hostname);
  const at = m === null ? null : addressOf(c, m.hostname);
  if (m !== null && ips !== null && at !== null) {
    out.push(
      `${c.where("metrics_bind")}: metrics_bind: ${JSON.stringify(metrics)}: ${m.hostname} is ${and(ips)} here, and the metrics page listens on one address, ${hostPort(at, m.port)} (a name's first IPv6 address, else its first IPv4 one), not on each as a bind does: name the address to serve it on`,
    );
  }
  return out;
}
