/** @module config/host — what this host gives a config, asked as the start would ask it: a bind's host name resolved as Bun.listen resolves it (once per config) and the binds a name stands for (one per address), whether an address is this host's, whether this user may bind a port, create a socket file or write a file in a folder, and the listen backlog the kernel grants. `bunwsgi check` judges for the user who runs it: run it as the service's user. */

import { dlopen, FFIType, type Pointer, ptr, read } from "bun:ffi";
import { lstatSync, readFileSync } from "node:fs";
import { dirname } from "node:path";
import { BUN_BACKLOG, parseListener, splitBindOptions } from "../engine/listeners.ts";
import { formatIP, parseIP } from "../http/address.ts";
import { canCreateIn, isDirectory } from "./files.ts";
import type { Config } from "./resolve.ts";

/** What a host name resolves to: its addresses in getaddrinfo's order, each with its family; or why it does not. */
export type Resolved = { addresses: Array<{ ip: string; v6: boolean }> } | { error: string };

interface Resolver {
  getaddrinfo(host: string): Resolved;
}

/** struct addrinfo on the 64-bit Linux ABIs Bun ships: flags, family, socktype, protocol (ints), addrlen (padded to 8), addr, canonname, next. */
const AI_FAMILY = 4;
const AI_ADDR = 24;
const AI_NEXT = 40;
const AF_INET = 2;
const AF_INET6 = 10;
const AI_PASSIVE = 1;
const SOCK_STREAM = 1;
const LIBC = ["libc.so.6", "libc.musl-x86_64.so.1", "libc.musl-aarch64.so.1"];

let resolver: Resolver | null | undefined;

/** The C library's getaddrinfo, the one Bun.listen calls; null where bun:ffi or the library is unavailable. */
function loadResolver(): Resolver | null {
  for (const name of LIBC) {
    try {
      const { symbols } = dlopen(name, {
        getaddrinfo: { args: [FFIType.ptr, FFIType.ptr, FFIType.ptr, FFIType.ptr], returns: FFIType.i32 },
        freeaddrinfo: { args: [FFIType.ptr], returns: FFIType.void },
        gai_strerror: { args: [FFIType.i32], returns: FFIType.cstring },
      });
      return {
        getaddrinfo(host) {
          const node = Buffer.from(`${host}\0`, "utf8");
          // The hints Bun.listen gives (bsd_create_listen_socket): AI_PASSIVE, AF_UNSPEC, SOCK_STREAM.
          const hints = new Int32Array(12);
          hints[0] = AI_PASSIVE;
          hints[2] = SOCK_STREAM;
          const out = new BigUint64Array(1);
          const code = symbols.getaddrinfo(ptr(node), null, ptr(hints), ptr(out));
          if (code !== 0) return { error: String(symbols.gai_strerror(code)) };
          const addresses: Array<{ ip: string; v6: boolean }> = [];
          const first = Number(out[0]) as Pointer;
          for (let p: Pointer | null = first; p !== null && Number(p) !== 0; p = read.ptr(p, AI_NEXT) as Pointer | null) {
            const family = read.i32(p, AI_FAMILY);
            const sa = read.ptr(p, AI_ADDR) as Pointer;
            const bytes = new Uint8Array(16);
            if (family === AF_INET) {
              bytes[10] = 0xff;
              bytes[11] = 0xff;
              for (let i = 0; i < 4; i++) bytes[12 + i] = read.u8(sa, 4 + i);
            } else if (family === AF_INET6) {
              for (let i = 0; i < 16; i++) bytes[i] = read.u8(sa, 8 + i);
            } else continue;
            const ip = formatIP(bytes);
            if (!addresses.some((a) => a.ip === ip)) addresses.push({ ip, v6: family === AF_INET6 });
          }
          symbols.freeaddrinfo(first);
          return { addresses };
        },
      };
    } catch {
      // The next name, or none: names are then compared as text.
    }
  }
  return null;
}

/**
 * What `host` resolves to, as Bun.listen resolves it (getaddrinfo with AI_PASSIVE, AF_UNSPEC);
 * an IP address is itself; null when the C library cannot be loaded.
 */
export function resolveHost(host: string): Resolved | null {
  const literal = parseIP(host);
  if (literal !== null) return { addresses: [{ ip: host, v6: host.includes(":") }] };
  if (resolver === undefined) resolver = loadResolver();
  return resolver === null ? null : resolver.getaddrinfo(host);
}

/**
 * The address Bun.listen binds for a host that resolved to `r`: the first IPv6 address that binds,
 * else the first IPv4 one (bsd_create_listen_socket); of a name with one address, that one. Null
 * when it does not resolve (or cannot be resolved here).
 */
export function boundAddress(r: Resolved | null): string | null {
  if (r === null || "error" in r) return null;
  return (r.addresses.find((a) => a.v6) ?? r.addresses[0])?.ip ?? null;
}

/** Each config's host names and what they resolve to: resolved once per config, for `bunwsgi check`'s rules and the start's listeners alike. */
const resolutions = new WeakMap<Config, Map<string, Resolved | null>>();

/** What `host` resolves to for config `c` (resolveHost), asked once per config. */
export function resolutionOf(c: Config, host: string): Resolved | null {
  let names = resolutions.get(c);
  if (names === undefined) {
    names = new Map();
    resolutions.set(c, names);
  }
  if (!names.has(host)) names.set(host, resolveHost(host));
  return names.get(host) ?? null;
}

/** Every address `host` resolves to for config `c`, in getaddrinfo's order (an IP address is itself); null when it does not resolve, or cannot be resolved here. */
export function addressesOf(c: Config, host: string): string[] | null {
  const r = resolutionOf(c, host);
  return r === null || "error" in r ? null : r.addresses.map((a) => a.ip);
}

/** "127.0.0.1:8000", "[::1]:8000". */
export const hostPort = (ip: string, port: number): string => (ip.includes(":") ? `[${ip}]:${port}` : `${ip}:${port}`);

/**
 * The binds bind `spec` stands for: a TCP bind naming a host with several addresses is one bind
 * per address (nginx's `listen`; Bun.listen binds only one address per listener), each with the
 * same port and options and IPv6 in brackets ("localhost:8000 proxy_protocol=v2" → "[::1]:8000
 * proxy_protocol=v2", "127.0.0.1:8000 proxy_protocol=v2"). An IP address, `unix:`, `fd://`, a
 * name with one address and one that does not resolve (check refuses it) stay as written.
 */
export function expandBind(c: Config, spec: string): string[] {
  const a = parseListener(spec);
  if (a.unix !== null || a.fd >= 0 || parseIP(a.hostname) !== null) return [spec];
  const ips = addressesOf(c, a.hostname);
  if (ips === null || ips.length < 2) return [spec];
  const options = splitBindOptions(spec)
    .options.map(([k, v]) => ` ${k}=${v}`)
    .join("");
  return ips.map((ip) => `${hostPort(ip, a.port)}${options}`);
}

/**
 * What the start listens on: config `c`'s binds, each expanded (expandBind) with the resolution
 * `bunwsgi check`'s rules judged. A bind for which `held` has sockets (a master's to its worker,
 * an old master's to its heir on SIGUSR2, keyed by the bind strings it listened on) is what
 * was listened on, and stays as written: an old master's expanded binds come back as addresses,
 * and a name an older master bound unexpanded keeps its socket until a restart.
 */
export function listenBinds(c: Config, held: ReadonlyMap<string, unknown> = new Map()): string[] {
  return c.list("bind").flatMap((spec) => (held.has(spec) ? [spec] : expandBind(c, spec)));
}

/** The effective capabilities of this process (/proc/self/status CapEff); 0n where unknown. */
function capabilities(): bigint {
  try {
    const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync("/proc/self/status", "utf8"));
    return m === null ? 0n : BigInt(`0x${m[1]}`);
  } catch {
    return 0n;
  }
}

const CAP_CHOWN = 0n;
const CAP_NET_BIND_SERVICE = 10n;
const hasCapability = (cap: bigint): boolean => process.getuid?.() === 0 || ((capabilities() >> cap) & 1n) === 1n;

/** A number from /proc/sys, or `fallback` where it cannot be read. */
function sysctl(path: string, fallback: number): number {
  try {
    const n = Number(readFileSync(path, "utf8").trim());
    return Number.isInteger(n) ? n : fallback;
  } catch {
    return fallback;
  }
}

/** The first port any user may bind (net.ipv4.ip_unprivileged_port_start, 1024 by default). */
const unprivilegedStart = (): number => sysctl("/proc/sys/net/ipv4/ip_unprivileged_port_start", 1024);

/** Why this user cannot bind TCP port `port` (it is privileged and the user has neither root nor CAP_NET_BIND_SERVICE), or null. */
export function portProblem(port: number): string | null {
  const start = unprivilegedStart();
  if (port === 0 || port >= start || hasCapability(CAP_NET_BIND_SERVICE)) return null;
  return `port ${port} is below ${start} (net.ipv4.ip_unprivileged_port_start), and this user (uid ${process.getuid?.()}) has neither root nor CAP_NET_BIND_SERVICE: give it that capability (AmbientCapabilities=CAP_NET_BIND_SERVICE in systemd), let systemd open the socket (bind = "fd://3"), or listen on a port from ${start} behind a proxy`;
}

/**
 * Why `ip` cannot be listened on here, tried with port 0 so that no port is taken: it is not an
 * address of this host (EADDRNOTAVAIL), or its family is not available (IPv6 turned off), or
 * anything else that fails the same at the start; null when it binds.
 */
export function addressProblem(ip: string): string | null {
  try {
    Bun.listen({ hostname: ip, port: 0, socket: { data() {} } }).stop(true);
    return null;
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === "EADDRNOTAVAIL") {
      return `${ip} is not an address of this host: bind one of its addresses (\`ip -brief address\`), 127.0.0.1 for this host only, or 0.0.0.0 for all`;
    }
    if (code === "EAFNOSUPPORT") return `${ip} is an IPv6 address and IPv6 is turned off on this host`;
    return `cannot listen on ${ip} here (${code ?? (e as Error).message})`;
  }
}

/** A unix socket path's most bytes (sun_path is 108 with its NUL). */
const UNIX_PATH_MAX = 107;

/** What is wrong with `path` as a unix socket to create, or null: too long, no folder, no permission there, or a file that is not a socket in its place. */
export function unixProblem(path: string): string | null {
  const bytes = Buffer.byteLength(path);
  if (bytes > UNIX_PATH_MAX) {
    return `the path is ${bytes} bytes and a unix socket path can have at most ${UNIX_PATH_MAX}: use a shorter one`;
  }
  let stat: ReturnType<typeof lstatSync> | null = null;
  try {
    stat = lstatSync(path);
  } catch {
    // Not there yet: it is made at the start.
  }
  if (stat?.isDirectory()) return `${path} is a directory, not a socket`;
  if (stat !== null && !stat.isSocket()) return `${path} exists and is not a socket: the start will not remove it`;
  const folder = dirname(path);
  if (!isDirectory(folder)) {
    return `folder ${folder} does not exist: create it before the start (under systemd, RuntimeDirectory= makes one in /run)`;
  }
  if (!canCreateIn(folder)) {
    return `this user (uid ${process.getuid?.()}) cannot create files in ${folder}: make the folder writable for it or bind elsewhere`;
  }
  return null;
}

/** Why this user cannot give its socket files group `gid` (it is not root, has no CAP_CHOWN and is not a member), or null. */
export function groupProblem(gid: number): string | null {
  if (hasCapability(CAP_CHOWN) || process.getgid?.() === gid || (process.getgroups?.() ?? []).includes(gid)) return null;
  return `this user (uid ${process.getuid?.()}) is not root and not a member of group ${gid}, so it cannot give its socket files that group`;
}

/** The kernel's cap on any listen backlog (net.core.somaxconn); null where it cannot be read. */
export const somaxconn = (): number | null => {
  const n = sysctl("/proc/sys/net/core/somaxconn", -1);
  return n > 0 ? n : null;
};

/**
 * Why the listen backlog a config asks for is not the one its sockets get, or null: Bun.listen
 * always asks for 512, and the kernel grants at most net.core.somaxconn. The one judgement both
 * `bunwsgi check` and the start report (a warning: the server still serves).
 */
export function backlogProblem(asked: number | null, cap: number | null = somaxconn()): string | null {
  if (asked === null) return null;
  const granted = cap === null ? BUN_BACKLOG : Math.min(BUN_BACKLOG, cap);
  if (asked === granted) return null;
  const bun = asked === BUN_BACKLOG ? "" : `Bun.listen always asks for ${BUN_BACKLOG}, whatever is set`;
  const kernel =
    cap !== null && cap < BUN_BACKLOG
      ? `the kernel grants at most net.core.somaxconn = ${cap} (raise it: sysctl -w net.core.somaxconn=${BUN_BACKLOG})`
      : "";
  return `${asked} is not applied: ${[bun, kernel].filter((s) => s !== "").join(", and ")}; the sockets' backlog is ${granted}`;
}
