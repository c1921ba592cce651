/** @module engine/server — a listening socket and its connections: admission under the spawn pool, the one coarse timer, graceful stop; the kind of app on top makes each connection's Exchange. */

import type { SocketHandler, SocketListener, TCPSocketListener, TLSOptions } from "bun";
import {
  bodyLimitsOf,
  checkedLimits,
  defaultProxies,
  headLimitsOf,
  type Limits,
  type Proxies,
  type Timeouts,
} from "../config/limits.ts";
import { ConfigError } from "../errors.ts";
import type { BodyLimits } from "../http/body.ts";
import type { HeadLimits } from "../http/parser.ts";
import type { ProxyMode } from "../http/proxy-protocol.ts";
import { type AccessFormatter, type ClientAddress, compileLogFormat } from "../observe/access.ts";
import { type LogOption, type LogSink, resolveLog } from "../observe/log.ts";
import { budget } from "./budget.ts";
import { Connection, type ServerSocket } from "./connection.ts";
import { counters, Timeout } from "./counters.ts";
import type { ConnectionHost, RequestWatch } from "./exchange.ts";
import { fdRoom, Room, type RoomVerdict } from "./fd-room.ts";
import { socketHandlers } from "./handlers.ts";
import { Health, type HealthPaths } from "./health.ts";
import { libc } from "./libc.ts";
import {
  type Address,
  BUN_BACKLOG,
  bind,
  type ListenerSpec,
  PROXY_OVER_TLS,
  parseListener,
  removeSocketFile,
  type UnixSocketPerms,
} from "./listeners.ts";
import { ProxyPolicy } from "./peer.ts";
import { Pool, type PoolMember } from "./pool.ts";
import { ProxyStage, type ProxyStageHost } from "./proxy-stage.ts";
import { Served } from "./served.ts";
import { recurred, Throttle } from "./throttle.ts";

/**
 * Seconds a stop waits, after cutting the connections left at its deadline, for the results
 * they were sending to be ended (a generator's `finally`, `close()`) and their requests logged.
 */
const CLEANUP_GRACE = 1;

const EMPTY = new Uint8Array(0);

/** What any kind of server takes. */
export interface ServerOptions {
  /** Listen backlog. Bun.listen uses a fixed backlog; any other value is reported at start. */
  backlog?: number | null;
  /**
   * Most connections served at once ("default": no limit); more wait, unread, until one closes.
   * A Pool shares one limit between servers (gevent accepts a Pool here too).
   */
  spawn?: number | "default" | Pool;
  /** Access log: "default" (stderr), null (off), a sink with write(s), or a logger (info level). */
  log?: LogOption;
  /** Access-log line: "gevent" (default), "combined", "json", or a `{field}` template (see LOG_FIELDS). */
  logFormat?: string;
  /** Error log, also environ["wsgi.errors"]: like `log`, error level for a logger. */
  errorLog?: LogOption;
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
  unixSocketPerms?: UnixSocketPerms;
  /**
   * A listening descriptor this process inherited for the bind (a worker's, from its master; a
   * new master's, from the old one on SIGUSR2): adopted instead of bound, and a unix socket's
   * file is left in place at stop, since the process that bound it owns it.
   */
  adopt?: number;
  /** Told the request line of every request as it starts (process/watch: what a hung worker was doing). */
  watch?: RequestWatch | null;
  /**
   * Trusted proxies: whose forwarding fields are believed (forwardedAllowIps, forwardedAllowUnix,
   * forwardedHeaders, forwardedStripUntrusted) and who may send a PROXY header
   * (proxyProtocolFrom); unset keys take the settings table's defaults.
   */
  proxies?: Partial<Proxies>;
  /** Every connection starts with a PROXY protocol header of this version ("off": none); else the listener spec's option. */
  proxyProtocol?: "off" | ProxyMode;
  /** Liveness and readiness paths the server answers itself, before the app (engine/health); unset: none. */
  health?: HealthPaths | null;
}

/** A server on Bun.listen. `start()` binds and returns; `serveForever()` resolves once it has been stopped or closed. */
export abstract class Server implements ConnectionHost, PoolMember, ProxyStageHost {
  readonly address: Address;
  readonly backlog: number | null;
  readonly pool: Pool;
  log: LogSink;
  errorLog: LogSink;
  logLevel: number;
  /** The compiled access-log format; null is gevent's line. */
  accessFormat: AccessFormatter | null;
  readonly tls: TLSOptions | undefined;
  readonly unixSocketPerms: UnixSocketPerms;
  // Set by setLimits() from the constructor on.
  headLimits!: HeadLimits;
  bodyLimits!: BodyLimits;
  limits!: Limits;
  timeouts!: Timeouts;
  stopping = false;
  /** drain() has begun: readiness probes get 503 while the listener still serves. */
  draining = false;
  /**
   * This server stops as one worker of several serving the same sockets is replaced (a roll,
   * max_requests, scaling down), not as the service stops: its readiness stays 200 while it
   * finishes (a balancer's kept-alive probe connection must not see the service go unready).
   */
  replaced = false;
  /** The probes answered before the app, or null when none are configured. */
  health: Health | null;
  now = performance.now() / 1000;
  /** Requests begun on this server's connections (max_requests counts them). */
  requests = 0;
  readonly watch: RequestWatch | null;
  /** An adopted TCP descriptor's bound address, asked of the kernel once (Bun does not keep it). */
  private adoptedName: { address: string; port: number } | null = null;
  /** Trusted proxies, compiled. */
  proxies: ProxyPolicy;
  /** The PROXY protocol stage of this bind, or null when its connections start with HTTP. */
  readonly proxyStage: ProxyStage | null;
  /** The warning for PROXY headers sent to this bind, which reads none. */
  private readonly proxyHeaders = new Throttle();

  protected listener: SocketListener<Connection> | null = null;
  private readonly served = new Served();
  private timer: ReturnType<typeof setInterval> | null = null;
  private stopped: Promise<void> | null = null;
  private resolveStopped: (() => void) | null = null;
  /** While a graceful stop waits for its connections: ends the wait (close() meanwhile). */
  private hurry: (() => void) | null = null;
  /** close() has cut every connection and waits for their apps to settle. */
  private closing = false;
  private readonly socketHandlers: SocketHandler<Connection, "buffer">;

  constructor(listener: ListenerSpec, options: ServerOptions = {}) {
    this.address = parseListener(listener);
    if (options.adopt !== undefined) this.address = { ...this.address, fd: options.adopt };
    this.watch = options.watch ?? null;
    this.backlog = options.backlog ?? null;
    const spawn = options.spawn ?? "default";
    this.pool = spawn instanceof Pool ? spawn : new Pool(spawn === "default" ? Number.POSITIVE_INFINITY : spawn);
    this.log = resolveLog(options.log, 20);
    this.errorLog = resolveLog(options.errorLog, 40);
    this.logLevel = options.logLevel ?? 20;
    this.accessFormat = compileLogFormat(options.logFormat ?? "gevent");
    this.tls = options.tls;
    this.unixSocketPerms = options.unixSocketPerms ?? { mode: null, gid: null };
    this.setLimits(options.limits, options.timeouts);
    this.proxies = new ProxyPolicy({ ...defaultProxies(), ...options.proxies });
    this.health = Health.of(options.health);
    const mode = options.proxyProtocol ?? this.address.proxyProtocol;
    if (mode !== "off" && this.tls !== undefined)
      throw new ConfigError(`proxy_protocol cannot be used with TLS: ${PROXY_OVER_TLS}`);
    const stage = mode === "off" ? null : new ProxyStage(this, mode);
    this.proxyStage = stage;
    this.socketHandlers = socketHandlers(this, stage);
  }

  /** Make the Exchange that answers a new connection's requests (gevent: handle(socket, address)). */
  abstract handle(socket: ServerSocket, address: [string, number] | string): void;

  /** Most connections served at once (Infinity: no limit). */
  get spawn(): number {
    return this.pool.size;
  }

  /**
   * Replace limits and timeouts (unset keys take the defaults). Connections opened from now on
   * use the new limits; timeouts apply to every connection at the next tick.
   */
  setLimits(limits: Partial<Limits> = {}, timeouts: Partial<Timeouts> = {}): void {
    const { limits: l, timeouts: t } = checkedLimits(limits, timeouts);
    this.headLimits = headLimitsOf(l);
    this.bodyLimits = bodyLimitsOf(l);
    this.limits = l;
    this.timeouts = t;
    // One budget for the process: the last server configured sets it (all of a process's
    // servers are configured alike, by one config).
    budget.limit = l.bufferedBytes;
  }

  /**
   * Apply the options a reload (SIGHUP) may change while serving: logs, log format and level,
   * limits and timeouts. Connections opened from now on use the new limits.
   */
  protected reconfigureServer(options: ServerOptions): void {
    if (options.log !== undefined) this.log = resolveLog(options.log, 20);
    if (options.errorLog !== undefined) this.errorLog = resolveLog(options.errorLog, 40);
    this.accessFormat = compileLogFormat(options.logFormat ?? "gevent");
    this.logLevel = options.logLevel ?? 20;
    this.setLimits(options.limits, options.timeouts);
    this.proxies = new ProxyPolicy({ ...defaultProxies(), ...options.proxies });
    this.health = Health.of(options.health);
  }

  /** Host the server listens on ("" for a unix socket; for an inherited fd, "" until known). */
  get serverHost(): string {
    if (this.address.unix !== null) return "";
    return (
      this.adoptedName?.address ?? (this.listener as TCPSocketListener<Connection> | null)?.hostname ?? this.address.hostname
    );
  }

  /** Port the server listens on (the real one after start() when 0 was asked for; 0 if unknown). */
  get serverPort(): number {
    if (this.address.unix !== null) return 0;
    return this.adoptedName?.port ?? (this.listener as TCPSocketListener<Connection> | null)?.port ?? this.address.port;
  }

  /** The listener as a URL-ish label for messages: http://host:port, unix:/path or fd://N. */
  get label(): string {
    const a = this.address;
    if (a.unix !== null) return `unix:${a.unix}`;
    if (a.fd >= 0 && this.adoptedName === null) return `fd://${a.fd}`;
    const host = this.serverHost;
    return `${this.tls ? "https" : "http"}://${host.includes(":") ? `[${host}]` : host}:${this.serverPort}`;
  }

  /** Whether the server is listening. */
  get started(): boolean {
    return this.listener !== null;
  }

  /** Bind the listening socket (see engine/listeners for what a failure says). */
  initSocket(): void {
    const listener = bind(this.address, this.socketHandlers, this.tls, this.unixSocketPerms);
    this.listener = listener;
    if (this.address.fd >= 0 && this.address.unix === null) {
      // Bun fills an object with the socket's name; its typings do not list getsockname yet.
      const name: { address?: string; port?: number } = {};
      (listener as unknown as { getsockname(out: object): void }).getsockname(name);
      this.adoptedName =
        typeof name.address === "string" && typeof name.port === "number" ? { address: name.address, port: name.port } : null;
    }
  }

  /** Start listening and serving; returns once bound. */
  start(): void {
    if (this.listener !== null) throw new ConfigError("server already started");
    this.stopping = false;
    this.draining = false;
    this.initSocket();
    this.pool.attach(this);
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
   * Before a stop, the Kubernetes preStop pattern: readiness turns 503 at once while the listener
   * keeps accepting and serving for `seconds` (responses close their connections, so keep-alive
   * clients reconnect elsewhere), giving a balancer time to see it and send new requests to
   * other instances. Resolves after `seconds`, or once the server is closed meanwhile.
   */
  async drain(seconds: number = this.timeouts.drainDelay): Promise<void> {
    if (this.listener === null || this.stopping) return;
    this.draining = true;
    if (seconds <= 0) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, seconds * 1000);
      }),
      this.stopped,
    ]);
    clearTimeout(timer);
  }

  /**
   * Before a stop that ends the listening socket itself (no other process listens on it after
   * this one): the kernel takes no new connection on it, while the event loop still accepts, for
   * `ms`, what it had already queued. Closing a listener with connections in its queue resets
   * them: clients whose handshake completed, whose request is sent. On TCP a socket filter drops
   * new SYNs (engine/libc's dropAll: the client's retry finds the port's other sockets, or none
   * and is refused); a unix socket's file is removed, so that a new connect(2) finds no socket
   * (an inherited one too: the caller knows that the socket ends with this process, as a
   * master's workers at its stop). False (and nothing waited) where neither can be done (no
   * libc, not listening).
   */
  async refuseNew(ms = 100): Promise<boolean> {
    const listener = this.listener;
    if (listener === null || this.stopping) return false;
    const unix = this.address.unix;
    if (unix !== null) removeSocketFile(unix);
    else {
      const c = libc();
      // Bun exposes the listening descriptor; its typings do not list `fd` yet.
      const fd = (listener as unknown as { fd?: number }).fd;
      if (c === null || typeof fd !== "number" || fd < 0 || c.dropAll(fd) !== 0) return false;
    }
    await Bun.sleep(ms);
    return true;
  }

  /**
   * Graceful stop: stop accepting; in-flight requests finish (answered with Connection: close)
   * for up to `timeout` seconds, then the rest are cut. Idle keep-alive connections stay open
   * for `timeouts.stopIdle` first: closing one at once races a request the client may be
   * sending on it (RFC 9112 §9.6), which would get a reset instead of an answer.
   */
  async stop(timeout: number = this.timeouts.shutdown): Promise<void> {
    if (!this.stopListening(false)) return;
    const deadline = Math.max(0, timeout);
    const served = this.served;
    const idleTimer = setTimeout(() => served.closeIdle(), Math.min(this.timeouts.stopIdle, deadline) * 1000);
    await Promise.race([
      served.drained(deadline),
      new Promise<void>((resolve) => {
        this.hurry = resolve;
      }),
    ]);
    this.hurry = null;
    clearTimeout(idleTimer);
    // Connections still open now are cut: say so once, for their access lines say only "shutdown".
    const left = served.count;
    if (left > 0) {
      this.errorLog.write(
        `timeouts.shutdown ran out after ${deadline}s: cutting ${left} connection${left === 1 ? "" : "s"} still open\n`,
        "WARNING",
      );
    }
    served.terminateAll("shutdown");
    await served.settleOrphans(CLEANUP_GRACE);
    this.finish();
  }

  /**
   * Close the listener and every connection now; serveForever() resolves once the apps of the
   * requests cut have settled (at most CLEANUP_GRACE), each cut request logged. During a
   * graceful stop its deadline is now instead: the stop cuts what is left and ends as at it.
   */
  close(): void {
    if (this.hurry !== null) {
      this.hurry();
      return;
    }
    if (this.closing || !this.stopListening(true)) return;
    this.closing = true;
    this.served.terminateAll("shutdown");
    void this.served.settleOrphans(CLEANUP_GRACE).then(() => this.finish());
  }

  /** Stop accepting (`closeAll`: Bun closes the open sockets too) and drop connections still waiting for a slot; false when not listening. */
  private stopListening(closeAll: boolean): boolean {
    const listener = this.listener;
    if (listener === null) return false;
    this.stopping = true;
    listener.stop(closeAll);
    this.pool.detach(this);
    if (this.address.unix !== null && this.address.fd < 0) removeSocketFile(this.address.unix);
    for (const c of this.pool.take(this)) c.terminate();
    this.proxyStage?.terminateAll();
    return true;
  }

  private finish(): void {
    this.closing = false;
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    this.listener = null;
    this.log.flush?.();
    this.errorLog.flush?.();
    this.resolveStopped?.();
    this.resolveStopped = null;
  }

  /** Number of open connections being served. */
  get connectionCount(): number {
    return this.served.count;
  }

  /** A new socket: served now, or waiting (unread) for a slot of the spawn pool. */
  accept(socket: ServerSocket): void {
    counters.accepted++;
    const conn = new Connection(socket, this);
    socket.data = conn;
    if (this.stopping) {
      conn.terminate();
      return;
    }
    const open = counters.accepted - counters.closed;
    const room = fdRoom.check(open, this.now);
    if (room !== Room.SERVE) {
      this.turnAway(conn, room, open);
      return;
    }
    if (this.pool.full()) {
      // Like a full gevent pool: the connection waits, unread, until a slot frees; a keep-alive
      // connection idle long enough (engine/pool EVICT_IDLE), if there is one, gives its slot up
      // for it now, else at a tick once one is (parked first: the slot may free at once).
      socket.pause();
      this.pool.wait(this, conn);
      this.pool.evictIdle(performance.now() / 1000);
      return;
    }
    this.admit(conn);
  }

  /**
   * A connection parked for a slot longer than `timeouts.header` (from its accept): answered 503
   * and closed, its access line saying `spawn_wait`. Parked connections had no deadline: behind
   * busy slots, any number of clients held a descriptor each for as long as they liked.
   */
  private refuseParked(conn: Connection, waited: number): void {
    counters.timedOut(Timeout.SPAWN_WAIT);
    this.refuseUnserved(conn, `no connection slot within ${waited}s (spawn = ${this.pool.size})`, "spawn_wait");
  }

  /**
   * A socket accepted with few descriptors left under the process's limit (engine/fd-room), `open`
   * client sockets open with it:
   * refused, or closed at once when a refusal would hold one of the last few; a warning in the
   * error log at most every few seconds says how many.
   */
  private turnAway(conn: Connection, room: RoomVerdict, open: number): void {
    const warning = fdRoom.warning(open, this.now);
    if (warning !== null) this.warning(warning);
    if (room === Room.REFUSE) {
      this.refuseUnserved(conn, `descriptor limit (${fdRoom.limit}) nearly reached`, "descriptor_limit");
      return;
    }
    if (this.logLevel <= 10) {
      this.errorLog.write(`closing connection from ${conn.socket.remoteAddress}: descriptor limit reached\n`, "DEBUG");
    }
    counters.closedUnread("descriptor_limit");
    conn.terminate();
  }

  /**
   * A connection not served (no slot, no descriptors to spare) answered 503 and closed,
   * lingering over what it sent, its access line saying `reason`. It is served (over the limit,
   * for its refusal only) so that its refusal is written, logged and lingered over as any
   * other; a TLS one, whose handshake has not begun, is cut instead, a debug line saying so.
   */
  private refuseUnserved(conn: Connection, why: string, reason: string): void {
    if (this.tls !== undefined) {
      if (this.logLevel <= 10) this.errorLog.write(`closing connection from ${conn.socket.remoteAddress}: ${why}\n`, "DEBUG");
      conn.terminate();
      return;
    }
    this.pool.active++;
    this.proxied(conn, this.peerOf(conn.socket));
    conn.socket.resume();
    conn.refuse(503, why, reason, EMPTY, 0, 0);
  }

  /** PoolMember: the pool freed a slot for a connection that was waiting. */
  admitWaiting(conn: Connection): void {
    // Its time parked was the server's: its idle and handshake deadlines count from now. From its
    // accept, one parked past timeouts.keep_alive was closed at the first tick after it got its
    // slot, unless its request's bytes came first.
    conn.deadlines.lastRead = performance.now() / 1000;
    this.admit(conn);
    conn.socket.resume();
  }

  private admit(conn: Connection): void {
    this.pool.active++;
    const socket = conn.socket;
    // A unix socket's peer has no address: the socket's path stands for it in logs.
    const address = this.peerOf(socket);
    // No setNoDelay(): Bun sets TCP_NODELAY on every accepted socket itself (seen with strace).
    if (this.proxyStage !== null) this.proxyStage.begin(conn, address);
    else this.proxied(conn, address);
  }

  /** A socket's peer: "host", port (each getter is a getpeername(2) in Bun: read once), or a unix socket's path. */
  private peerOf(socket: ServerSocket): [string, number] | string {
    const port = this.address.unix !== null ? undefined : socket.remotePort;
    return port === undefined ? (this.address.unix ?? "") : [socket.remoteAddress, port];
  }

  /** ProxyStageHost: serve the connection's requests as from `address` (its peer, or the client its PROXY header named). */
  proxied(conn: Connection, address: ClientAddress): void {
    this.served.add(conn);
    this.handle(conn.socket, address);
  }

  /** ProxyStageHost: a debug line in the error log. */
  debug(line: string): void {
    this.errorLog.write(`${line}\n`, "DEBUG");
  }

  /** A warning in the error log: the PROXY stage's (ProxyStageHost), the descriptor room's. */
  warning(line: string): void {
    this.errorLog.write(`bunwsgi: ${line}\n`, "WARNING");
  }

  /**
   * ConnectionHost: a request refused as malformed began with a PROXY protocol header, which
   * this bind does not read (its proxy_protocol is off): a proxy sends headers here, and every
   * request it forwards gets 400. Said at most every WARN_EVERY seconds.
   */
  unexpectedProxyHeader(client: string): void {
    const n = this.proxyHeaders.due(this.now);
    if (n === 0) return;
    this.warning(
      `a PROXY protocol header from ${client} on ${this.label}, a bind without proxy_protocol: answered 400. ` +
        "Set proxy_protocol on this bind (with the proxy's address in proxy_protocol_from), " +
        `or stop the proxy sending one (HAProxy send-proxy, send-proxy-v2)${recurred(n)}`,
    );
  }

  /** PoolMember: the served connection idle the longest, or null when none is idle. */
  longestIdle(): Connection | null {
    return this.served.longestIdle();
  }

  /** ConnectionHost: a socket closed. */
  connectionClosed(conn: Connection): void {
    counters.closed++;
    if (this.served.remove(conn) || this.proxyStage?.closed(conn)) this.pool.release();
    else this.pool.forget(conn);
  }

  /** ConnectionHost: whether a connection should close after its response to admit one waiting. */
  get crowded(): boolean {
    return this.pool.crowded;
  }

  /** ConnectionHost: a cut connection's response has ended. */
  orphanSettled(conn: Connection): void {
    this.served.orphanSettled(conn);
  }

  private tick(): void {
    const now = performance.now() / 1000;
    this.now = now;
    const wait = this.timeouts.header;
    if (wait > 0 && this.pool.crowded) for (const c of this.pool.expired(this, now - wait)) this.refuseParked(c, wait);
    if (this.pool.crowded) this.pool.evictForWaiting(now);
    if (this.proxyStage !== null && this.proxyStage.size > 0) this.proxyStage.tick(now);
    this.served.tick(now);
  }
}
