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

/** A master never serves a connection: its listeners are stopped before its event loop runs again. */
const refuse: SocketHandler<Connection, "buffer"> = {
  data() {},
  open(socket) {
    socket.terminate();
  },
};

/** Where a per-worker TCP bind's sockets are bound: its address, with the port the first one got. */
interface PortGroup {
  readonly address: Address;
  readonly perms: UnixSocketPerms;
}

/**
 * One bind of the config and its listening sockets in this process: one per worker slot for a
 * TCP bind with `reuse_port` (SO_REUSEPORT: the kernel spreads connections over the workers by
 * their addresses, where one shared queue lets whichever worker wakes first accept a whole
 * burst), else one that every worker accepts from (unix, fd://, `reuse_port = false`).
 */
export class HeldSocket {
  constructor(
    readonly bind: string,
    private readonly fds: number[],
    /** A unix socket's path, removed when the last process that serves it stops (not on an upgrade). */
    readonly unix: string | null,
    /** For messages: http(s)://host:port (the port bound when 0 was asked for), unix:/path or fd://N. */
    readonly label: string,
    private readonly group: PortGroup | null,
  ) {}

  /** The descriptor worker `slot` listens on. */
  fdFor(slot: number): number {
    return (this.group === null ? this.fds[0] : this.fds[slot]) as number;
  }

  /** One socket per worker slot (a TCP bind with reuse_port), not one every worker shares. */
  get perWorker(): boolean {
    return this.group !== null;
  }

  /** Every descriptor, for a new master (SIGUSR2). */
  get descriptors(): readonly number[] {
    return this.fds;
  }

  /**
   * Per-worker sockets for `slots` workers: more bound on the same port, or this process's
   * copies of the extra ones closed. A removed slot's worker holds its own copy until it stops
   * listening; the worker, told so (MasterMessage's close), refuses new SYNs on it and accepts
   * what the kernel queued before it closes, so that nothing queued is reset.
   */
  resize(slots: number): void {
    const g = this.group;
    if (g === null) return;
    while (this.fds.length > slots && this.fds.length > 1) closeSync(this.fds.pop() as number);
    while (this.fds.length < slots) this.fds.push(bindKept(g.address, g.perms, true).fd);
  }

  /** Close this process's copies, once (an inherited fd:// socket is the supervisor's, and stays). */
  close(): void {
    if (this.bind.startsWith("fd://")) return;
    for (const fd of this.fds) closeSync(fd);
    this.fds.length = 0;
  }
}

/**
 * Per-worker sockets for `slots` workers on every bind (HeldSocket.resize). A socket that cannot
 * be bound puts every bind back to `current` slots; returns why, or null.
 */
export function resizeSockets(sockets: readonly HeldSocket[], slots: number, current: number): string | null {
  try {
    for (const s of sockets) s.resize(slots);
    return null;
  } catch (e) {
    for (const s of sockets) s.resize(current);
    return (e as Error).message;
  }
}

/**
 * Close this process's sockets; a unix socket's file is removed too unless `keepFile` says
 * another process serves it (a new master after an upgrade, the old one when this new one fails).
 */
export function releaseSockets(sockets: readonly HeldSocket[], keepFile: (s: HeldSocket) => boolean): void {
  for (const s of sockets) {
    s.close();
    if (s.unix !== null && !keepFile(s)) rmSync(s.unix, { force: true });
  }
}

/**
 * Bind `a` as engine/listeners does (the same errors, the unix socket's permissions), keep a
 * copy of its descriptor and stop Bun's listener, all before the event loop could accept on
 * it: connections wait in the kernel's queue for a worker. Returns the copy and the port bound.
 */
function bindKept(a: Address, perms: UnixSocketPerms, reusePort: boolean): { fd: number; port: number } {
  const listener = bind(a, refuse, undefined, perms, reusePort);
  let fd: number;
  try {
    // Bun exposes the listening descriptor; its typings do not list `fd` yet.
    fd = keepDescriptor((listener as unknown as { fd: number }).fd);
  } catch (e) {
    listener.stop(true);
    throw e;
  }
  const port = (listener as unknown as { port?: number }).port ?? 0;
  if (a.unix === null) listener.stop(true);
  else keepUnixFile(a.unix, listener, fd);
  return { fd, port };
}

/** Bun removes a unix socket's file when its listener stops: the file is hard-linked aside first and put back after. */
function keepUnixFile(path: string, listener: { stop(closeActive?: boolean): void }, fd: number): void {
  const aside = `${path}.${process.pid}.held`;
  try {
    linkSync(path, aside);
    listener.stop(true);
    renameSync(aside, path);
  } catch (e) {
    listener.stop(true);
    rmSync(aside, { force: true });
    closeSync(fd);
    throw new ConfigError(`cannot keep unix:${path} while its listener stops: ${(e as Error).message}`);
  }
}

/** For messages: http(s)://host:port. */
const tcpLabel = (scheme: string, hostname: string, port: number): string =>
  `${scheme}://${hostname.includes(":") ? `[${hostname}]` : hostname}:${port}`;

/**
 * A new bind's sockets: `slots` per-worker ones when `perWorker` and it is TCP, else one. The
 * port is first bound without SO_REUSEPORT and released: a port another process listens on
 * (even with SO_REUSEPORT, such as a second master started by mistake) fails as EADDRINUSE
 * instead of silently sharing its connections.
 */
async function holdSocket(
  spec: string,
  perms: UnixSocketPerms,
  scheme: string,
  slots: number,
  perWorker: boolean,
): Promise<HeldSocket> {
  const a: Address = parseListener(spec);
  if (a.fd >= 0) return new HeldSocket(spec, [a.fd], null, spec, null);
  if (a.unix !== null) {
    await clearStaleUnixSocket(a.unix);
    return new HeldSocket(spec, [bindKept(a, perms, false).fd], a.unix, `unix:${a.unix}`, null);
  }
  if (!perWorker) {
    const { fd, port } = bindKept(a, perms, false);
    return new HeldSocket(spec, [fd], null, tcpLabel(scheme, a.hostname, port), null);
  }
  const probe = bind(a, refuse, undefined, perms, false);
  const port = (probe as unknown as { port: number }).port;
  probe.stop(true);
  const held = new HeldSocket(spec, [], null, tcpLabel(scheme, a.hostname, port), { address: { ...a, port }, perms });
  try {
    held.resize(slots);
  } catch (e) {
    held.close();
    throw e;
  }
  return held;
}

/** The address a listening descriptor is bound to, asked of the kernel through a copy Bun adopts for a moment. */
function boundAddress(fd: number, perms: UnixSocketPerms): { hostname: string; port: number } | null {
  const copy = keepDescriptor(fd);
  let listener: ReturnType<typeof bind>;
  try {
    listener = bind({ hostname: "", port: 0, unix: null, fd: copy, proxyProtocol: "off" }, refuse, undefined, perms);
  } catch (e) {
    closeSync(copy);
    throw e;
  }
  // Bun fills an object with the socket's name; its typings do not list getsockname yet.
  const name: { address?: string; port?: number } = {};
  (listener as unknown as { getsockname(out: object): void }).getsockname(name);
  listener.stop(true);
  return typeof name.address === "string" && typeof name.port === "number" ? { hostname: name.address, port: name.port } : null;
}

/**
 * A bind's sockets inherited from an old master (SIGUSR2): per-worker ones grow or shrink to
 * `slots`; where the old master shared one socket and no second one can join its port (it was
 * bound without SO_REUSEPORT), the workers share it and `warn` says so.
 */
function inheritedSocket(
  spec: string,
  fds: number[],
  perms: UnixSocketPerms,
  slots: number,
  perWorker: boolean,
  warn: (msg: string) => void,
): HeldSocket {
  const unix = spec.startsWith("unix:") ? spec.slice(5) : null;
  const tcp = unix === null && !spec.startsWith("fd://");
  const name = tcp && perWorker ? boundAddress(fds[0] as number, perms) : null;
  if (name === null) {
    for (const fd of fds.splice(1)) closeSync(fd);
    return new HeldSocket(spec, fds, unix, unix !== null ? spec : `${spec} (inherited)`, null);
  }
  const address: Address = { ...parseListener(spec), port: name.port };
  const held = new HeldSocket(spec, fds, null, `${spec} (inherited)`, { address, perms });
  try {
    held.resize(slots);
    return held;
  } catch (e) {
    warn(
      `${spec}: the inherited socket takes no per-worker sockets beside it (${(e as Error).message}); the workers share it until a restart`,
    );
    for (const fd of fds.splice(1)) closeSync(fd);
    return new HeldSocket(spec, fds, null, `${spec} (inherited)`, null);
  }
}

/**
 * Every bind's listening sockets for a master of `slots` workers: those inherited for it (from
 * the old master, on SIGUSR2) or new ones; inherited sockets no bind names any more are closed.
 * On a failure, the sockets made so far are closed and the error thrown.
 */
export async function holdSockets(
  binds: readonly string[],
  perms: UnixSocketPerms,
  inherited: ReadonlyMap<string, number[]>,
  scheme: "http" | "https",
  slots: number,
  perWorker: boolean,
  warn: (msg: string) => void,
): Promise<HeldSocket[]> {
  const sockets: HeldSocket[] = [];
  const used = new Set<string>();
  try {
    for (const bind of binds) {
      const fds = inherited.get(bind);
      if (fds === undefined) {
        sockets.push(await holdSocket(bind, perms, scheme, slots, perWorker));
        continue;
      }
      used.add(bind);
      sockets.push(inheritedSocket(bind, [...fds], perms, slots, perWorker, warn));
    }
  } catch (e) {
    releaseSockets(
      sockets.filter((s) => !used.has(s.bind)),
      () => false,
    );
    throw e;
  }
  for (const [bind, fds] of inherited) if (!used.has(bind)) for (const fd of fds) closeSync(fd);
  return sockets;
}

/** The descriptors a process inherited for its binds ({ bind: [fd, …] } in the environment: a worker's one per bind, a new master's every one), checked. */
export function inheritedSockets(json: string | undefined): Map<string, number[]> {
  const out = new Map<string, number[]>();
  if (json === undefined || json === "") return out;
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch {
    throw new ConfigError(`inherited listening sockets: not JSON: ${json}`);
  }
  if (typeof parsed !== "object" || parsed === null) throw new ConfigError(`inherited listening sockets: not an object: ${json}`);
  for (const [bind, fds] of Object.entries(parsed)) {
    const ok = (fd: unknown): fd is number => typeof fd === "number" && Number.isInteger(fd) && fd >= 3;
    if (!Array.isArray(fds) || fds.length === 0 || !fds.every(ok))
      throw new ConfigError(`inherited listening sockets for ${bind}: bad descriptors ${JSON.stringify(fds)}`);
    out.set(bind, fds);
  }
  return out;
}
