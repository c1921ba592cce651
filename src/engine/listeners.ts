/** @module engine/listeners — where to listen: listener specs, binding with causes named on failure, unix-socket permissions, and stale socket files. */

import { chmodSync, chownSync, lstatSync, unlinkSync } from "node:fs";
import { dirname } from "node:path";
import type { SocketHandler, SocketListener, TCPSocketListenOptions, TLSOptions } from "bun";
import { ConfigError } from "../errors.ts";
import type { ProxyMode } from "../http/proxy-protocol.ts";
import type { Connection } from "./connection.ts";

/**
 * Where to listen: "host:port", "[v6]:port", "unix:/path", "fd://N" (an inherited listening
 * socket, as systemd passes), [host, port], { hostname, port }, { unix } or { fd }.
 */
export type ListenerSpec = string | [string, number] | { hostname: string; port: number } | { unix: string } | { fd: number };

/** Bun.listen's accept backlog, which it does not let callers change. */
export const BUN_BACKLOG = 512;

export interface Address {
  hostname: string;
  port: number;
  unix: string | null;
  /** An inherited listening socket's descriptor, or -1. */
  fd: number;
  /** Whether each connection starts with a PROXY protocol header, and of which version. */
  proxyProtocol: "off" | ProxyMode;
}

/** A bind's options and the values each takes ("0.0.0.0:8000 proxy_protocol=v2"). */
export const BIND_OPTIONS: Readonly<Record<string, readonly string[]>> = {
  proxy_protocol: ["off", "v1", "v2", "auto"],
};

/**
 * Why a TLS bind cannot take a PROXY header. Found by trying (Bun 1.4): a TLS listener's first
 * bytes go to its handshake, which fails on a PROXY header (WRONG_VERSION_NUMBER) before any
 * handler sees them, and Bun.listen has no hook before the handshake.
 */
export const PROXY_OVER_TLS =
  "Bun.listen starts the TLS handshake on a connection's first bytes, so a PROXY header before it is never read; let the proxy end TLS, or pass TLS through without proxy_protocol";

/**
 * The ALPN protocols a TLS listener offers (RFC 7301 §3.1: the wire format, each name after its
 * length byte; Bun passes a string on as those bytes, so "http/1.1" itself would be a list whose
 * first "name" is 104 bytes long). With it, a client offering "h2, http/1.1" is told "http/1.1",
 * and one offering only "h2" gets the fatal no_application_protocol alert (§3.2) at the
 * handshake: before, no protocol was selected, so an h2-only client sent HTTP/2's preface and
 * met an HTTP/1.1 505. A client that offers no ALPN is served as before.
 */
const ALPN_HTTP11 = new Uint8Array([8, ...new TextEncoder().encode("http/1.1")]);

/**
 * A bind string's address and its options: the trailing `name=value` words after a space, as
 * HAProxy's `bind` and nginx's `listen` take them; a unix path keeps any other spaces.
 */
export function splitBindOptions(spec: string): { address: string; options: Array<[string, string]> } {
  const words = spec.split(" ");
  const options: Array<[string, string]> = [];
  while (words.length > 1 && /^[a-z_]+=/.test(words[words.length - 1] as string)) {
    const word = words.pop() as string;
    const eq = word.indexOf("=");
    options.unshift([word.slice(0, eq), word.slice(eq + 1)]);
  }
  return { address: words.join(" ").trim(), options };
}

/** A unix socket file's permissions: mode (null: the umask decides) and group id (null: the process's). */
export interface UnixSocketPerms {
  mode: number | null;
  gid: number | null;
}

/** Parse a listener spec; a wrong one is a ConfigError naming what was expected. */
export function parseListener(spec: ListenerSpec): Address {
  const bad = (why: string): never => {
    throw new ConfigError(`invalid listener ${JSON.stringify(spec)}: ${why}`);
  };
  const port = (p: unknown): number => {
    const n = typeof p === "string" && /^\d{1,5}$/.test(p) ? Number(p) : p;
    if (typeof n !== "number" || !Number.isInteger(n) || n < 0 || n > 65535) bad("port must be an integer from 0 to 65535");
    return n as number;
  };
  let proxyProtocol: Address["proxyProtocol"] = "off";
  const tcp = (hostname: string, p: unknown): Address => ({ hostname, port: port(p), unix: null, fd: -1, proxyProtocol });
  const fd = (n: unknown): Address => {
    const v = typeof n === "string" && /^\d{1,9}$/.test(n) ? Number(n) : n;
    if (typeof v !== "number" || !Number.isInteger(v) || v < 0) bad("fd must be a descriptor number such as fd://3");
    return { hostname: "", port: 0, unix: null, fd: v as number, proxyProtocol };
  };
  if (Array.isArray(spec)) return tcp(spec[0] || "0.0.0.0", spec[1]);
  if (typeof spec === "object" && spec !== null) {
    if ("unix" in spec) {
      if (typeof spec.unix !== "string" || spec.unix === "") bad("unix path must be a non-empty string");
      return { hostname: "", port: 0, unix: spec.unix, fd: -1, proxyProtocol };
    }
    if ("fd" in spec) return fd(spec.fd);
    return tcp(spec.hostname || "0.0.0.0", spec.port);
  }
  if (typeof spec !== "string") return bad("expected a string, [host, port], { hostname, port }, { unix } or { fd }");
  const split = splitBindOptions(spec);
  for (const [name, value] of split.options) {
    const values = BIND_OPTIONS[name];
    if (values === undefined)
      bad(`unknown bind option ${JSON.stringify(name)} (bind options: ${Object.keys(BIND_OPTIONS).join(", ")})`);
    else if (!values.includes(value)) bad(`${name} must be one of ${values.map((v) => JSON.stringify(v)).join(", ")}`);
    else proxyProtocol = value as Address["proxyProtocol"];
  }
  spec = split.address;
  if (spec.startsWith("unix:")) {
    const path = spec.slice(5);
    if (path === "") bad("unix: needs a path");
    return { hostname: "", port: 0, unix: path, fd: -1, proxyProtocol };
  }
  if (spec.startsWith("fd://")) return fd(spec.slice(5));
  if (spec.startsWith("[")) {
    const close = spec.indexOf("]");
    if (close < 0 || spec[close + 1] !== ":") bad("expected [ipv6]:port");
    return tcp(spec.slice(1, close), spec.slice(close + 2));
  }
  const colon = spec.lastIndexOf(":");
  if (colon < 0) return /^\d+$/.test(spec) ? tcp("0.0.0.0", spec) : bad("expected host:port, [ipv6]:port, unix:/path or fd://N");
  return tcp(spec.slice(0, colon) || "0.0.0.0", spec.slice(colon + 1));
}

/**
 * Bind a listening socket. A failure is a ConfigError that names the cause (the errno Bun
 * reports) and what to do about it; a unix socket gets its permissions before it accepts.
 * `reusePort` (TCP only) sets SO_REUSEPORT: a master's per-worker sockets share the port.
 */
export function bind(
  a: Address,
  handlers: SocketHandler<Connection, "buffer">,
  tls: TLSOptions | undefined,
  perms: UnixSocketPerms,
  reusePort = false,
): SocketListener<Connection> {
  const common = { allowHalfOpen: true, socket: handlers, ...(tls ? { tls: { ALPNProtocols: ALPN_HTTP11, ...tls } } : {}) };
  const { mode, gid } = perms;
  let listener: SocketListener<Connection>;
  // A umask while binding, so the file never exists with more permissions than asked for.
  const umask = a.unix !== null && a.fd < 0 && mode !== null ? process.umask(~mode & 0o777) : null;
  try {
    if (a.fd >= 0) {
      // Bun.listen adopts an already-listening descriptor (systemd socket activation, a
      // master's socket); its typings do not list `fd` yet.
      const options = { ...common, fd: a.fd } as unknown as Parameters<typeof Bun.listen<Connection>>[0];
      listener = Bun.listen<Connection>(options);
    } else if (a.unix !== null) {
      listener = Bun.listen<Connection>({ ...common, unix: a.unix });
    } else {
      // Bun.listen takes reusePort; its typings list it for connect options only.
      const options: TCPSocketListenOptions<Connection> & { reusePort: boolean } = {
        ...common,
        hostname: a.hostname,
        port: a.port,
        reusePort,
      };
      listener = Bun.listen<Connection>(options);
    }
  } catch (e) {
    const where = a.fd >= 0 ? `fd://${a.fd}` : a.unix !== null ? `unix:${a.unix}` : `${a.hostname}:${a.port}`;
    const code = (e as { code?: string }).code;
    const folder = a.unix !== null ? dirname(a.unix) : "";
    const causes: Record<string, string> =
      a.fd >= 0
        ? {
            EINVAL: `descriptor ${a.fd} is not a listening socket: was it passed to this process? (systemd passes the first at 3)`,
            EBADF: `descriptor ${a.fd} is not open in this process: start bunwsgi from its socket unit, or pass the socket at ${a.fd}`,
            ENOTSOCK: `descriptor ${a.fd} is not a socket`,
          }
        : a.unix !== null
          ? {
              ENOENT: `folder ${folder} does not exist: create it (under systemd, RuntimeDirectory= makes one in /run)`,
              EACCES: `permission denied: this user cannot create files in ${folder}; make the folder writable for it or bind elsewhere`,
              EADDRINUSE: "a file is in the way at that path: remove it if no server uses it",
              EINVAL:
                Buffer.byteLength(a.unix) > 107
                  ? `the path is ${Buffer.byteLength(a.unix)} bytes and a unix socket path can have at most 107: use a shorter one`
                  : "the path is not usable for a socket",
              ENOTDIR: `a part of ${folder} is not a folder`,
              EROFS: `${folder} is on a read-only file system (under systemd's ProtectSystem=strict, add it to ReadWritePaths= or use RuntimeDirectory=)`,
            }
          : {
              EADDRINUSE: `address already in use: another process listens on port ${a.port} (see \`ss -ltnp 'sport = :${a.port}'\`); stop it or choose another port`,
              EADDRNOTAVAIL: `${a.hostname} is not an address of this host: bind one of its addresses (\`ip -brief address\`), 127.0.0.1 for this host only, or 0.0.0.0 for all`,
              EACCES: `permission denied: ports below 1024 need root or CAP_NET_BIND_SERVICE (AmbientCapabilities= in systemd); or let systemd open the socket (bind = "fd://3"), or listen on a port from 1024 behind a proxy`,
            };
    let why = code !== undefined ? causes[code] : undefined;
    if (why === undefined && code === undefined && a.unix === null && a.fd < 0 && !/^[\d.]+$|:/.test(a.hostname)) {
      why = `the host name ${a.hostname} does not resolve to an address of this host`;
    }
    const detail = e instanceof Error ? e.message : String(e);
    // Not the address's fault: the TLS material (changed on disk since the config was checked, say).
    if (tls !== undefined && /^error:[0-9a-f]{8}:|^Invalid (ciphers|CA)\b/.test(detail)) {
      throw new ConfigError(
        `cannot serve TLS on ${where}: tls.cert, tls.key, tls.passphrase, tls.ca or tls.ciphers is not usable (${detail}); bunwsgi check names which`,
      );
    }
    throw new ConfigError(`cannot listen on ${where}: ${why ?? detail}${code !== undefined ? ` (${code})` : ""}`);
  } finally {
    if (umask !== null) process.umask(umask);
  }
  if (a.unix !== null && a.fd < 0 && (mode !== null || gid !== null)) {
    try {
      if (gid !== null) chownSync(a.unix, -1, gid);
      if (mode !== null) chmodSync(a.unix, mode);
    } catch (e) {
      listener.stop(true);
      removeSocketFile(a.unix);
      const code = (e as { code?: string }).code;
      const why =
        code === "EPERM" ? `this user is not root and not a member of group ${gid}` : e instanceof Error ? e.message : String(e);
      throw new ConfigError(`cannot set the permissions of unix:${a.unix}: ${why}`);
    }
  }
  return listener;
}

/** A stopped server's unix socket file would refuse the next start; remove it (gunicorn does too). */
export function removeSocketFile(path: string): void {
  try {
    if (lstatSync(path).isSocket()) unlinkSync(path);
  } catch {
    // Already gone, or not ours to remove.
  }
}

/**
 * Before binding a unix socket: remove the file a crashed server left behind, but refuse
 * to steal the path from a live one (a connect succeeds) or to delete a non-socket file.
 */
export async function clearStaleUnixSocket(path: string): Promise<void> {
  let isSocket: boolean;
  try {
    isSocket = lstatSync(path).isSocket();
  } catch {
    return;
  }
  if (!isSocket) throw new ConfigError(`cannot listen on unix:${path}: the path exists and is not a socket`);
  const live = await Bun.connect({ unix: path, socket: { data() {}, error() {} } }).then(
    (s) => {
      s.end();
      return true;
    },
    () => false,
  );
  if (live) throw new ConfigError(`cannot listen on unix:${path}: another server is accepting connections there`);
  unlinkSync(path);
}
