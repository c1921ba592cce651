/** @module server — WSGIServer: listening sockets, connection admission, the one timer, graceful stop. */

import { chmodSync, chownSync, lstatSync, unlinkSync } from "node:fs";
import { hostname as osHostname } from "node:os";
import { dirname } from "node:path";
import type { SocketHandler, SocketListener, TCPSocketListener, TLSOptions } from "bun";
import pkg from "../package.json" with { type: "json" };
import { type BodyLimits, DEFAULT_BODY_LIMITS } from "./body.ts";
import { Connection, type ServerSocket } from "./engine/connection.ts";
import type { ConnectionHost, Timeouts } from "./engine/exchange.ts";
import { ConfigError } from "./errors.ts";
import { WSGIHandler } from "./handler.ts";
import { type AccessFormatter, compileLogFormat, type LogOption, type LogSink, resolveLog } from "./log.ts";
import { DEFAULT_HEAD_LIMITS, type HeadLimits } from "./parser.ts";
import type { Application } from "./types.ts";

export const VERSION: string = pkg.version;

/**
 * Where to listen: "host:port", "[v6]:port", "unix:/path", "fd://N" (an inherited listening
 * socket, as systemd passes), [host, port], { hostname, port }, { unix } or { fd }.
 */
export type ListenerSpec = string | [string, number] | { hostname: string; port: number } | { unix: string } | { fd: number };

/** Size limits; a request over one gets 413/414/431 and a closed connection. */
export interface Limits extends HeadLimits {
  /** Largest request body in bytes (413). */
  maxBodySize: number;
}

export const DEFAULT_LIMITS: Readonly<Limits> = { ...DEFAULT_HEAD_LIMITS, maxBodySize: DEFAULT_BODY_LIMITS.maxBody };
export const DEFAULT_TIMEOUTS: Readonly<Timeouts> = { header: 20, keepAlive: 15, body: 60, write: 60, shutdown: 10, stopIdle: 2 };

/**
 * Seconds a stop waits, after cutting the connections left at its deadline, for the results
 * they were sending to be ended (a generator's `finally`, `close()`) and their requests logged.
 */
const CLEANUP_GRACE = 1;

export type HandlerClass = new (socket: ServerSocket, address: [string, number] | string, server: WSGIServer) => WSGIHandler;

export interface WSGIServerOptions {
  /** Listen backlog. Bun.listen uses a fixed backlog; any other value is reported at start. */
  backlog?: number | null;
  /**
   * Most connections served at once ("default": no limit); more wait, unread, until one closes.
   * A Pool shares one limit between servers (gevent accepts a Pool here too).
   */
  spawn?: number | "default" | Pool;
  /** Access log: "default" (stderr), null (off), a sink with write(s), or a logger (info level). */
  log?: LogOption;
  /** Error log, also environ["wsgi.errors"]: like `log`, error level for a logger. */
  errorLog?: LogOption;
  /** Access-log line: "gevent" (default), "combined", "json", or a `{field}` template (see LOG_FIELDS). */
  logFormat?: string;
  handlerClass?: HandlerClass;
  /** Extra keys merged into every environ. */
  environ?: Record<string, unknown>;
  /**
   * The path prefix the app is mounted under behind a proxy (gunicorn's SCRIPT_NAME, uvicorn's
   * --root-path): a request under it gets SCRIPT_NAME = rootPath and PATH_INFO without it.
   * "" (the default) or a path starting with "/" and not ending with one.
   */
  rootPath?: string;
  /** Least severe error-log messages the server writes (Python logging's numbers: 10 debug … 40 error); default 20. */
  logLevel?: number;
  /** Bun TLS options (key, cert, ca, passphrase, …): serve HTTPS. */
  tls?: TLSOptions;
  limits?: Partial<Limits>;
  /** Seconds; 0 disables one. */
  timeouts?: Partial<Timeouts>;
  /**
   * A unix socket file's permissions, set as it is bound: `mode` (such as 0o660; null: the
   * umask decides) and group id `gid` (null: the process's). For a web server in another user's
   * name to connect, it needs write permission, through the group or the mode.
   */
  unixSocketPerms?: { mode: number | null; gid: number | null };
}

/** Bun.listen's accept backlog, which it does not let callers change. */
const BUN_BACKLOG = 512;

interface Address {
  hostname: string;
  port: number;
  unix: string | null;
  /** An inherited listening socket's descriptor, or -1. */
  fd: number;
}

/** A connection limit, shared by every server given the same Pool as `spawn`. */
export class Pool {
  /** Connections served at once; Infinity for no limit. */
  size: number;
  /** Connections being served. */
  active = 0;
  private readonly waiting: Connection[] = [];
  private readonly owners = new Map<Connection, WSGIServer>();
  /** Servers sharing this limit: where an idle connection may be closed to make room. */
  private readonly servers = new Set<WSGIServer>();

  constructor(size: number = Number.POSITIVE_INFINITY) {
    this.size = Pool.check(size);
  }

  private static check(size: number): number {
    if (size !== Number.POSITIVE_INFINITY && (!Number.isInteger(size) || size < 1)) {
      throw new ConfigError(`spawn must be a positive integer or "default", got ${JSON.stringify(size)}`);
    }
    return size;
  }

  full(): boolean {
    return this.active >= this.size;
  }

  /** Connections are waiting for a slot: a connection that finishes a response should give its slot up. */
  get crowded(): boolean {
    return this.waiting.length > 0;
  }

  attach(server: WSGIServer): void {
    this.servers.add(server);
  }

  detach(server: WSGIServer): void {
    this.servers.delete(server);
  }

  /**
   * At capacity, a connection idle between keep-alive requests holds a slot that a new client
   * needs (a proxy's upstream keepalive pool holds many): close the one idle longest, over all
   * servers sharing the limit. False when every connection is busy.
   */
  evictIdle(): boolean {
    let oldest: Connection | null = null;
    for (const server of this.servers) {
      const c = server.longestIdle();
      if (c !== null && (oldest === null || c.lastActive < oldest.lastActive)) oldest = c;
    }
    oldest?.closeIfIdle();
    return oldest !== null;
  }

  /** Park a connection, unread, until a slot frees. */
  wait(server: WSGIServer, conn: Connection): void {
    this.waiting.push(conn);
    this.owners.set(conn, server);
  }

  /** Forget a parked connection (it closed while waiting); true if it was parked. */
  forget(conn: Connection): boolean {
    if (!this.owners.delete(conn)) return false;
    this.waiting.splice(this.waiting.indexOf(conn), 1);
    return true;
  }

  /** Take every parked connection of one server (it is stopping). */
  take(server: WSGIServer): Connection[] {
    const out: Connection[] = [];
    for (let i = this.waiting.length - 1; i >= 0; i--) {
      const c = this.waiting[i] as Connection;
      if (this.owners.get(c) === server) {
        out.push(c);
        this.waiting.splice(i, 1);
        this.owners.delete(c);
      }
    }
    return out;
  }

  /** Change the limit (a reload); parked connections are admitted if it grew. */
  resize(size: number): void {
    this.size = Pool.check(size);
    this.admitWaiting();
  }

  /** A served connection closed: admit parked ones while there is room. */
  release(): void {
    this.active--;
    this.admitWaiting();
  }

  private admitWaiting(): void {
    while (this.active < this.size && this.waiting.length > 0) {
      const next = this.waiting.shift() as Connection;
      const server = this.owners.get(next) as WSGIServer;
      this.owners.delete(next);
      server.admitWaiting(next);
    }
  }
}

/** A root path as WSGIServerOptions.rootPath describes it, or a ConfigError. */
export function checkRootPath(path: string): string {
  if (typeof path !== "string" || (path !== "" && (!path.startsWith("/") || path.endsWith("/") || path.includes("?")))) {
    throw new ConfigError(
      `rootPath must be "" or a path such as "/app" (no trailing "/", no query), got ${JSON.stringify(path)}`,
    );
  }
  return path;
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
  const tcp = (hostname: string, p: unknown): Address => ({ hostname, port: port(p), unix: null, fd: -1 });
  const fd = (n: unknown): Address => {
    const v = typeof n === "string" && /^\d{1,9}$/.test(n) ? Number(n) : n;
    if (typeof v !== "number" || !Number.isInteger(v) || v < 0) bad("fd must be a descriptor number such as fd://3");
    return { hostname: "", port: 0, unix: null, fd: v as number };
  };
  if (Array.isArray(spec)) return tcp(spec[0] || "0.0.0.0", spec[1]);
  if (typeof spec === "object" && spec !== null) {
    if ("unix" in spec) {
      if (typeof spec.unix !== "string" || spec.unix === "") bad("unix path must be a non-empty string");
      return { hostname: "", port: 0, unix: spec.unix, fd: -1 };
    }
    if ("fd" in spec) return fd(spec.fd);
    return tcp(spec.hostname || "0.0.0.0", spec.port);
  }
  if (typeof spec !== "string") return bad("expected a string, [host, port], { hostname, port }, { unix } or { fd }");
  if (spec.startsWith("unix:")) {
    const path = spec.slice(5);
    if (path === "") bad("unix: needs a path");
    return { hostname: "", port: 0, unix: path, fd: -1 };
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
 * A WSGI server on Bun.listen, following gevent.pywsgi.WSGIServer. `start()` binds and
 * returns; `serveForever()` resolves once the server has been stopped or closed.
 */
export class WSGIServer implements ConnectionHost {
  static baseEnv: Readonly<Record<string, unknown>> = {
    GATEWAY_INTERFACE: "CGI/1.1",
    SERVER_SOFTWARE: `bunwsgi/${VERSION} Bun/${Bun.version}`,
    SCRIPT_NAME: "",
    "wsgi.version": [1, 0],
    "wsgi.multithread": false,
    "wsgi.multiprocess": false,
    "wsgi.run_once": false,
  };

  application: Application;
  readonly address: Address;
  readonly backlog: number | null;
  readonly pool: Pool;
  log: LogSink;
  errorLog: LogSink;
  /** The compiled access-log format; null is gevent's line (WSGIHandler.formatRequest). */
  accessFormat: AccessFormatter | null;
  handlerClass: HandlerClass;
  readonly tls: TLSOptions | undefined;
  readonly unixSocketPerms: { mode: number | null; gid: number | null };
  headLimits: HeadLimits;
  bodyLimits: BodyLimits;
  timeouts: Timeouts;
  /**
   * The keys every request's environ starts from. Frozen: change it with setEnviron(), which
   * replaces it (handlers notice a new object; a change in place could go unseen).
   */
  environ: Readonly<Record<string, unknown>> = {};

  /** See WSGIServerOptions.rootPath and logLevel. */
  rootPath: string;
  logLevel: number;
  /**
   * SERVER_NAME and SERVER_PORT come from each request's Host: the listener has no host and
   * port of its own (a unix socket, or an inherited descriptor whose address is not known).
   */
  nameFromHost = false;

  stopping = false;
  now = performance.now() / 1000;
  /**
   * getEnviron() is this class's own copy of server.environ (not overridden): a handler may
   * then copy one environ it built per connection instead of rebuilding every key each request.
   */
  readonly environIsCopy: boolean;

  private listener: SocketListener<Connection> | null = null;
  /**
   * Open served connections, each at its `slot` (swap-remove on close). Not a Set: a Set's
   * churn of one entry per connection kept JSC doing full collections under
   * `Connection: close` load (about a tenth of the server's CPU in GC).
   */
  private readonly connections: Connection[] = [];
  /** Connections that closed while their response was in progress, until it ends. */
  private readonly orphans = new Set<Connection>();
  private timer: ReturnType<typeof setInterval> | null = null;
  private stopped: Promise<void> | null = null;
  private resolveStopped: (() => void) | null = null;
  private resolveDrained: (() => void) | null = null;
  private readonly socketHandlers: SocketHandler<Connection, "buffer">;

  constructor(listener: ListenerSpec, application: Application, options: WSGIServerOptions = {}) {
    if (typeof application !== "function") throw new ConfigError("application must be a function (environ, startResponse)");
    this.address = parseListener(listener);
    this.application = application;
    this.backlog = options.backlog ?? null;
    const spawn = options.spawn ?? "default";
    this.pool = spawn instanceof Pool ? spawn : new Pool(spawn === "default" ? Number.POSITIVE_INFINITY : spawn);
    this.log = resolveLog(options.log, 20);
    this.errorLog = resolveLog(options.errorLog, 40);
    this.accessFormat = compileLogFormat(options.logFormat ?? "gevent");
    this.handlerClass = options.handlerClass ?? WSGIHandler;
    this.rootPath = checkRootPath(options.rootPath ?? "");
    this.logLevel = options.logLevel ?? 20;
    this.tls = options.tls;
    this.unixSocketPerms = options.unixSocketPerms ?? { mode: null, gid: null };
    this.headLimits = DEFAULT_HEAD_LIMITS;
    this.bodyLimits = DEFAULT_BODY_LIMITS;
    this.timeouts = DEFAULT_TIMEOUTS;
    this.setLimits(options.limits, options.timeouts);
    this.setEnviron(options.environ);
    this.environIsCopy = this.getEnviron === WSGIServer.prototype.getEnviron;
    const server = this;
    this.socketHandlers = {
      binaryType: "buffer",
      open(socket) {
        server.accept(socket);
      },
      data(socket, data) {
        socket.data.onData(data);
      },
      drain(socket) {
        socket.data.onDrain();
      },
      end(socket) {
        socket.data.onEnd();
      },
      close(socket) {
        socket.data?.onClose();
      },
      error(socket, error) {
        const code = (error as { code?: string }).code;
        if (code !== "ECONNRESET" && code !== "EPIPE") {
          server.errorLog.write(`socket error from ${socket.remoteAddress}: ${error.message}\n`, "ERROR");
        }
      },
    };
  }

  /**
   * Apply a reload (SIGHUP): a new application and the options that can change while serving
   * (logs, log format and level, limits, timeouts, environ, root path). Connections opened
   * from now on use the new limits; requests already running finish on what they started with.
   */
  reconfigure(application: Application, options: WSGIServerOptions): void {
    this.application = application;
    if (options.log !== undefined) this.log = resolveLog(options.log, 20);
    if (options.errorLog !== undefined) this.errorLog = resolveLog(options.errorLog, 40);
    this.accessFormat = compileLogFormat(options.logFormat ?? "gevent");
    this.rootPath = checkRootPath(options.rootPath ?? "");
    this.logLevel = options.logLevel ?? 20;
    this.setLimits(options.limits, options.timeouts);
    this.setEnviron(options.environ ?? {});
    this.updateEnviron();
  }

  /** Most connections served at once (Infinity: no limit). */
  get spawn(): number {
    return this.pool.size;
  }

  /**
   * Replace limits and timeouts (unset keys take the defaults). Connections opened from now on
   * use the new limits; timeouts apply to every connection at the next tick.
   */
  setLimits(limits: Partial<Limits> = {}, timeouts: Partial<Timeouts> = {}): void {
    const l = { ...DEFAULT_LIMITS, ...limits };
    const t = { ...DEFAULT_TIMEOUTS, ...timeouts };
    for (const [k, v] of Object.entries(l)) {
      if (!Number.isInteger(v) || v < 1)
        throw new ConfigError(`limits.${k} must be a positive integer, got ${JSON.stringify(v)}`);
    }
    for (const [k, v] of Object.entries(t)) {
      if (typeof v !== "number" || !(v >= 0)) {
        throw new ConfigError(`timeouts.${k} must be a number of seconds ≥ 0, got ${JSON.stringify(v)}`);
      }
    }
    this.headLimits = { maxRequestLine: l.maxRequestLine, maxHeaderBytes: l.maxHeaderBytes, maxHeaders: l.maxHeaders };
    this.bodyLimits = { ...DEFAULT_BODY_LIMITS, maxBody: l.maxBodySize };
    this.timeouts = t;
  }

  get baseEnv(): Readonly<Record<string, unknown>> {
    return (this.constructor as typeof WSGIServer).baseEnv;
  }

  /** Host the server listens on ("" for a unix socket; for an inherited fd, "" until known). */
  get serverHost(): string {
    if (this.address.unix !== null) return "";
    return (this.listener as TCPSocketListener<Connection> | null)?.hostname ?? this.address.hostname;
  }

  /** Port the server listens on (the real one after start() when 0 was asked for; 0 if unknown). */
  get serverPort(): number {
    if (this.address.unix !== null) return 0;
    return (this.listener as TCPSocketListener<Connection> | null)?.port ?? this.address.port;
  }

  /** The listener as a URL-ish label for messages: http://host:port, unix:/path or fd://N. */
  get label(): string {
    const a = this.address;
    if (a.unix !== null) return `unix:${a.unix}`;
    if (a.fd >= 0) return `fd://${a.fd}`;
    const host = this.serverHost;
    return `${this.tls ? "https" : "http"}://${host.includes(":") ? `[${host}]` : host}:${this.serverPort}`;
  }

  /** Whether the server is listening. */
  get started(): boolean {
    return this.listener !== null;
  }

  /** Replace the extra environ keys; rebuilds server.environ from baseEnv like gevent. */
  setEnviron(environ?: Record<string, unknown>): void {
    const update = environ ?? this.environ;
    const env: Record<string, unknown> = { ...this.baseEnv };
    env["wsgi.url_scheme"] = this.tls ? "https" : "http";
    if (this.tls) env.HTTPS = "on";
    Object.assign(env, update);
    if (env["wsgi.errors"] == null) env["wsgi.errors"] = this.errorLog;
    this.environ = Object.freeze(env);
  }

  /** Fill SERVER_NAME and SERVER_PORT from the bound address (called by start()). */
  updateEnviron(): void {
    const env: Record<string, unknown> = { ...this.environ };
    this.nameFromHost = this.address.unix !== null || this.serverHost === "";
    if (this.nameFromHost) {
      // PEP 3333: never empty. Without a Host, the socket's path names the server, as gunicorn
      // and uWSGI do; the port is the scheme's (RFC 9110 §4.2).
      env.SERVER_NAME ??= this.address.unix ?? `fd://${this.address.fd}`;
      env.SERVER_PORT ??= this.tls ? "443" : "80";
    } else {
      const host = this.serverHost;
      // No reverse DNS on start-up (gevent calls getfqdn): a wildcard address names this machine.
      env.SERVER_NAME ??= host === "0.0.0.0" || host === "::" ? osHostname() : host;
      env.SERVER_PORT ??= String(this.serverPort);
    }
    this.environ = Object.freeze(env);
  }

  /** A fresh copy of server.environ, the start of every request's environ. */
  getEnviron(): Record<string, unknown> {
    return { ...this.environ };
  }

  /**
   * Bind the listening socket. A failure is a ConfigError that names the cause (the errno Bun
   * reports) and what to do about it; a unix socket gets `unixSocketPerms` before it accepts.
   */
  initSocket(): void {
    const common = { allowHalfOpen: true, socket: this.socketHandlers, ...(this.tls ? { tls: this.tls } : {}) };
    const a = this.address;
    const { mode, gid } = this.unixSocketPerms;
    // A umask while binding, so the file never exists with more permissions than asked for.
    const umask = a.unix !== null && mode !== null ? process.umask(~mode & 0o777) : null;
    try {
      if (a.unix !== null) {
        this.listener = Bun.listen<Connection>({ ...common, unix: a.unix });
      } else if (a.fd >= 0) {
        // Bun.listen adopts an already-listening descriptor (systemd socket activation,
        // a supervisor's socket); its typings do not list `fd` yet.
        const options = { ...common, fd: a.fd } as unknown as Parameters<typeof Bun.listen<Connection>>[0];
        this.listener = Bun.listen<Connection>(options);
      } else {
        this.listener = Bun.listen<Connection>({
          ...common,
          hostname: a.hostname,
          port: a.port,
        });
      }
    } catch (e) {
      const where = a.unix !== null ? `unix:${a.unix}` : a.fd >= 0 ? `fd://${a.fd}` : `${a.hostname}:${a.port}`;
      const code = (e as { code?: string }).code;
      const folder = a.unix !== null ? dirname(a.unix) : "";
      const causes: Record<string, string> =
        a.unix !== null
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
          : a.fd >= 0
            ? {
                EINVAL: `descriptor ${a.fd} is not a listening socket: was it passed to this process? (systemd passes the first at 3)`,
                EBADF: `descriptor ${a.fd} is not open in this process: start bunwsgi from its socket unit, or pass the socket at ${a.fd}`,
                ENOTSOCK: `descriptor ${a.fd} is not a socket`,
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
      throw new ConfigError(`cannot listen on ${where}: ${why ?? detail}${code !== undefined ? ` (${code})` : ""}`);
    } finally {
      if (umask !== null) process.umask(umask);
    }
    if (a.unix !== null && (mode !== null || gid !== null)) {
      try {
        if (gid !== null) chownSync(a.unix, -1, gid);
        if (mode !== null) chmodSync(a.unix, mode);
      } catch (e) {
        this.listener.stop(true);
        this.listener = null;
        this.removeSocketFile();
        const code = (e as { code?: string }).code;
        const why =
          code === "EPERM"
            ? `this user is not root and not a member of group ${gid}`
            : e instanceof Error
              ? e.message
              : String(e);
        throw new ConfigError(`cannot set the permissions of unix:${a.unix}: ${why}`);
      }
    }
  }

  /** Start listening and serving; returns once bound. */
  start(): void {
    if (this.listener !== null) throw new ConfigError("server already started");
    this.stopping = false;
    this.initSocket();
    this.pool.attach(this);
    this.updateEnviron();
    if (this.backlog !== null && this.backlog !== BUN_BACKLOG) {
      this.errorLog.write(
        `backlog=${this.backlog} not applied: Bun.listen uses a fixed listen backlog of ${BUN_BACKLOG}\n`,
        "WARNING",
      );
    }
    this.now = performance.now() / 1000;
    this.timer = setInterval(() => this.tick(), 1000);
    this.timer.unref();
    this.stopped = new Promise<void>((resolve) => {
      this.resolveStopped = resolve;
    });
  }

  /** Start (if needed) and resolve when the server is stopped or closed. */
  serveForever(): Promise<void> {
    if (this.listener === null) this.start();
    return this.stopped as Promise<void>;
  }

  /**
   * Graceful stop: stop accepting; in-flight requests finish (answered with Connection: close)
   * for up to `timeout` seconds, then the rest are cut. Idle keep-alive connections stay open
   * for `timeouts.stopIdle` first: closing one at once races a request the client may be
   * sending on it (RFC 9112 §9.6), which would get a reset instead of an answer.
   */
  async stop(timeout: number = this.timeouts.shutdown): Promise<void> {
    const listener = this.listener;
    if (listener === null) return;
    this.stopping = true;
    listener.stop(false);
    this.pool.detach(this);
    this.removeSocketFile();
    for (const c of this.pool.take(this)) c.terminate();
    const deadline = Math.max(0, timeout);
    const idleTimer = setTimeout(() => this.closeIdle(), Math.min(this.timeouts.stopIdle, deadline) * 1000);
    if (this.connections.length > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, deadline * 1000);
        this.resolveDrained = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    clearTimeout(idleTimer);
    this.resolveDrained = null;
    for (const c of [...this.connections]) c.terminate();
    await this.settleOrphans();
    this.finish();
  }

  private closeIdle(): void {
    // Copies: closing a connection removes it from the list.
    for (const c of [...this.connections]) c.closeIfIdle();
  }

  /**
   * Give responses whose connections were cut a moment to end their results and log their
   * requests; a request still not ended then (an app awaiting something that never settles)
   * is logged as abandoned, so no request goes unlogged.
   */
  private async settleOrphans(): Promise<void> {
    if (this.orphans.size === 0) return;
    const all = Promise.all([...this.orphans].map((c) => c.whenSettled()));
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([all, new Promise<void>((resolve) => (timer = setTimeout(resolve, CLEANUP_GRACE * 1000)))]);
    clearTimeout(timer);
    for (const c of this.orphans) c.exchange.abandon(CLEANUP_GRACE);
    this.orphans.clear();
  }

  /** Close the listener and every connection now. */
  close(): void {
    const listener = this.listener;
    if (listener === null) return;
    this.stopping = true;
    listener.stop(true);
    this.pool.detach(this);
    this.removeSocketFile();
    for (const c of this.pool.take(this)) c.terminate();
    for (const c of [...this.connections]) c.terminate();
    this.finish();
  }

  /** A stopped server's unix socket file would refuse the next start; remove it (gunicorn does too). */
  private removeSocketFile(): void {
    const path = this.address.unix;
    if (path === null) return;
    try {
      if (lstatSync(path).isSocket()) unlinkSync(path);
    } catch {
      // Already gone, or not ours to remove.
    }
  }

  private finish(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    this.listener = null;
    (this.log as { flush?: () => unknown }).flush?.();
    (this.errorLog as { flush?: () => unknown }).flush?.();
    this.resolveStopped?.();
    this.resolveStopped = null;
  }

  /** Number of open connections being served. */
  get connectionCount(): number {
    return this.connections.length;
  }

  private accept(socket: ServerSocket): void {
    const conn = new Connection(socket, this);
    socket.data = conn;
    if (this.stopping) {
      conn.terminate();
      return;
    }
    if (this.pool.full()) {
      // Like a full gevent pool: the connection waits, unread, until a slot frees; an idle
      // keep-alive connection, if there is one, gives its slot up for it (parked first: the
      // slot may free at once).
      socket.pause();
      this.pool.wait(this, conn);
      this.pool.evictIdle();
      return;
    }
    this.admit(conn);
  }

  /** The pool freed a slot for a connection that was waiting. */
  admitWaiting(conn: Connection): void {
    this.admit(conn);
    conn.socket.resume();
  }

  private admit(conn: Connection): void {
    this.pool.active++;
    conn.slot = this.connections.length;
    this.connections.push(conn);
    const socket = conn.socket;
    // Each of these getters is a getpeername(2) in Bun: read each once. A unix socket's peer
    // has no address: the socket's path stands for it in logs.
    const port = this.address.unix !== null ? undefined : socket.remotePort;
    const address: [string, number] | string = port === undefined ? (this.address.unix ?? "") : [socket.remoteAddress, port];
    this.handle(socket, address);
  }

  /** Create the handler for a new connection (gevent: handle(socket, address)). */
  handle(socket: ServerSocket, address: [string, number] | string): void {
    const handler = new this.handlerClass(socket, address, this);
    socket.data.exchange = handler;
    // No setNoDelay(): Bun sets TCP_NODELAY on every accepted socket itself (seen with strace).
    handler.handle();
  }

  /** The served connection idle the longest, or null when none is idle. */
  longestIdle(): Connection | null {
    let oldest: Connection | null = null;
    for (const c of this.connections) if (c.idle && (oldest === null || c.lastActive < oldest.lastActive)) oldest = c;
    return oldest;
  }

  /** ConnectionHost: a socket closed. */
  connectionClosed(conn: Connection): void {
    if (conn.responding) this.orphans.add(conn);
    const slot = conn.slot;
    if (slot < 0) {
      this.pool.forget(conn);
      return;
    }
    conn.slot = -1;
    const last = this.connections.pop() as Connection;
    if (last !== conn) {
      this.connections[slot] = last;
      last.slot = slot;
    }
    this.pool.release();
    if (this.stopping && this.connections.length === 0) this.resolveDrained?.();
  }

  /** ConnectionHost: whether a connection should close after its response to admit one waiting. */
  get crowded(): boolean {
    return this.pool.crowded;
  }

  /** ConnectionHost: a cut connection's response has ended. */
  orphanSettled(conn: Connection): void {
    this.orphans.delete(conn);
  }

  private tick(): void {
    const now = performance.now() / 1000;
    this.now = now;
    // Backwards: a connection that closes in its tick swaps in one already visited.
    const list = this.connections;
    for (let i = list.length - 1; i >= 0; i--) (list[i] as Connection).tick(now);
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
