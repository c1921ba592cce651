/** @module process/descriptors — listening sockets a master holds without accepting on them: bound once, kept as plain descriptors, handed to workers and to a new master. */

import { closeSync, linkSync, renameSync, rmSync } from "node:fs";
import type { SocketHandler } from "bun";
import type { Connection } from "../engine/connection.ts";
import { type Libc, libc, libcFailure } from "../engine/libc.ts";
import { type Address, bind, clearStaleUnixSocket, parseListener, type UnixSocketPerms } from "../engine/listeners.ts";
import { ConfigError } from "../errors.ts";

/** fcntl(2)'s F_DUPFD_CLOEXEC (Linux): a copy at the lowest free number ≥ arg, closed on exec. */
const F_DUPFD_CLOEXEC = 1030;

/** libc's fcntl: Bun has no dup(), and a master needs a descriptor no event loop polls. */
function libcFcntl(): Libc["fcntl"] {
  const c = libc();
  if (c === null)
    throw new ConfigError(`workers need the C library's fcntl() to share listening sockets, and none loaded (${libcFailure()})`);
  return c.fcntl;
}

/** A copy of `fd` that no Bun listener owns: stopping the listener leaves the socket listening. */
export function keepDescriptor(fd: number): number {
  const kept = libcFcntl()(fd, F_DUPFD_CLOEXEC, 3);
  if (kept < 0) throw new ConfigError(`cannot duplicate listening descriptor ${fd} (fcntl F_DUPFD_CLOEXEC failed)`);
  return kept;
}

/** One bind of the config and the descriptor of its listening socket in this process. */
export interface HeldSocket {
  readonly bind: string;
  readonly fd: number;
  /** A unix socket's path, removed when the last process that serves it stops (not on an upgrade). */
  readonly unix: string | null;
  /** For messages: http(s)://host:port (the port bound when 0 was asked for), unix:/path or fd://N. */
  readonly label: string;
}

/** A master never serves a connection: its listeners are stopped before its event loop runs again. */
const refuse: SocketHandler<Connection, "buffer"> = {
  data() {},
  open(socket) {
    socket.terminate();
  },
};

/**
 * Bind `spec` as engine/listeners does (the same errors, the unix socket's permissions), then keep
 * a copy of its descriptor and stop Bun's listener, all before the event loop could accept on it:
 * connections wait in the kernel's queue for a worker. Bun removes a unix socket's file when its
 * listener stops, so the file is hard-linked aside first and put back after.
 */
export async function holdSocket(spec: string, perms: UnixSocketPerms, scheme: string): Promise<HeldSocket> {
  const a: Address = parseListener(spec);
  if (a.fd >= 0) return { bind: spec, fd: a.fd, unix: null, label: spec };
  if (a.unix !== null) await clearStaleUnixSocket(a.unix);
  const listener = bind(a, refuse, undefined, perms);
  let fd: number;
  try {
    // Bun exposes the listening descriptor; its typings do not list `fd` yet.
    fd = keepDescriptor((listener as unknown as { fd: number }).fd);
  } catch (e) {
    listener.stop(true);
    throw e;
  }
  if (a.unix === null) {
    const port = (listener as unknown as { port: number }).port;
    listener.stop(true);
    const host = a.hostname.includes(":") ? `[${a.hostname}]` : a.hostname;
    return { bind: spec, fd, unix: null, label: `${scheme}://${host}:${port}` };
  }
  const aside = `${a.unix}.${process.pid}.held`;
  try {
    linkSync(a.unix, aside);
    listener.stop(true);
    renameSync(aside, a.unix);
  } catch (e) {
    listener.stop(true);
    rmSync(aside, { force: true });
    closeSync(fd);
    throw new ConfigError(`cannot keep unix:${a.unix} while its listener stops: ${(e as Error).message}`);
  }
  return { bind: spec, fd, unix: a.unix, label: `unix:${a.unix}` };
}

/**
 * Every bind's listening socket for a master: the one inherited for it (from the old master, on
 * SIGUSR2) or a new one; inherited sockets no bind names any more are closed. On a failure, the
 * sockets made so far are closed and the error thrown.
 */
export async function holdSockets(
  binds: readonly string[],
  perms: UnixSocketPerms,
  inherited: ReadonlyMap<string, number>,
  scheme: "http" | "https",
): Promise<HeldSocket[]> {
  const sockets: HeldSocket[] = [];
  const used = new Set<number>();
  try {
    for (const bind of binds) {
      const fd = inherited.get(bind);
      if (fd === undefined) {
        sockets.push(await holdSocket(bind, perms, scheme));
        continue;
      }
      used.add(fd);
      const unix = bind.startsWith("unix:") ? bind.slice(5) : null;
      sockets.push({ bind, fd, unix, label: unix !== null ? bind : `${bind} (inherited)` });
    }
  } catch (e) {
    for (const s of sockets) if (!used.has(s.fd) && !s.bind.startsWith("fd://")) closeSync(s.fd);
    throw e;
  }
  for (const fd of inherited.values()) if (!used.has(fd)) closeSync(fd);
  return sockets;
}

/** The descriptors a process inherited for its binds ({ bind: fd } in the environment), checked. */
export function inheritedSockets(json: string | undefined): Map<string, number> {
  const out = new Map<string, number>();
  if (json === undefined || json === "") return out;
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch {
    throw new ConfigError(`inherited listening sockets: not JSON: ${json}`);
  }
  if (typeof parsed !== "object" || parsed === null) throw new ConfigError(`inherited listening sockets: not an object: ${json}`);
  for (const [bind, fd] of Object.entries(parsed)) {
    if (typeof fd !== "number" || !Number.isInteger(fd) || fd < 3)
      throw new ConfigError(`inherited listening socket for ${bind}: bad descriptor ${fd}`);
    out.set(bind, fd);
  }
  return out;
}
