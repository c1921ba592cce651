/** @module fetch/server — FetchServer: the engine's server answering with a Web-standard fetch app (Bun.serve's contract), and the server object such an app gets as its second argument. */

import type { ServerSocket } from "../engine/connection.ts";
import type { ListenerSpec } from "../engine/listeners.ts";
import { Server, type ServerOptions } from "../engine/server.ts";
import { ConfigError } from "../errors.ts";
import { parseIP } from "../http/address.ts";
import type { ClientAddress } from "../observe/access.ts";
import { FetchExchange } from "./exchange.ts";
import { IncomingRequest } from "./request.ts";
import { trackResponses } from "./response.ts";
import type { FetchApplication, FetchHandler, FetchServe, SocketAddress } from "./types.ts";

export type FetchServerOptions = ServerOptions;

/**
 * The handler of a fetch application: the function itself, or the object's fetch method bound
 * to it (Hono's, Elysia's and `export default { fetch }` all call it with their own `this`).
 */
export function fetchHandlerOf(application: unknown): FetchHandler {
  if (typeof application === "function") return application as FetchHandler;
  if (typeof application === "object" && application !== null) {
    const fetch = (application as { fetch?: unknown }).fetch;
    if (typeof fetch === "function") return fetch.bind(application) as FetchHandler;
  }
  throw new ConfigError(
    "a fetch application must be a function (request, server) or an object with a fetch(request, server) method",
  );
}

/**
 * A server for a fetch application (a Bun.serve-style handler, a Hono or Elysia app) on
 * Bun.listen, with everything a WSGIServer has: strict parsing, limits, deadlines, access log,
 * graceful stop. `start()` binds and returns; `serveForever()` resolves once stopped or closed.
 */
export class FetchServer extends Server {
  application: FetchApplication;
  /** The application's handler, resolved once. */
  handler: FetchHandler;
  /** The second argument of every call: what the app may ask of its server. */
  readonly serve: FetchServe;
  /** Requests being answered now. */
  pending = 0;
  /** The authority of a request without Host (HTTP/1.0): the listener's host and port. */
  authority = "localhost";

  constructor(listener: ListenerSpec, application: FetchApplication, options: FetchServerOptions = {}) {
    const handler = fetchHandlerOf(application);
    super(listener, options);
    // Responses made from now on keep their body's source (see fetch/response).
    trackResponses();
    this.application = application;
    this.handler = handler;
    this.serve = new ServeObject(this);
  }

  /** The URL scheme of this listener's requests. */
  get scheme(): "http" | "https" {
    return this.tls === undefined ? "http" : "https";
  }

  /** Apply a reload (SIGHUP): a new application and the options that can change while serving. */
  reconfigure(application: FetchApplication, options: FetchServerOptions): void {
    this.handler = fetchHandlerOf(application);
    this.application = application;
    this.reconfigureServer(options);
  }

  override start(): void {
    super.start();
    const host = this.serverHost;
    const port = this.serverPort;
    if (host !== "" && port !== 0) {
      const name = host.includes(":") ? `[${host}]` : host;
      this.authority = port === (this.tls === undefined ? 80 : 443) ? name : `${name}:${port}`;
    }
  }

  /** Create the exchange for a new connection. */
  handle(socket: ServerSocket, address: ClientAddress): void {
    socket.data.exchange = new FetchExchange(socket, address, this);
  }
}

/** Bun.serve's server object as far as bunwsgi has it; the rest throws, saying so. */
class ServeObject implements FetchServe {
  // A #private field: libraries look for a `server` key on the second argument (Hono's getBunServer).
  readonly #server: FetchServer;
  readonly development = false;
  readonly pendingWebSockets = 0;

  constructor(server: FetchServer) {
    this.#server = server;
  }

  get hostname(): string {
    return this.#server.serverHost || "localhost";
  }

  get port(): number {
    return this.#server.serverPort;
  }

  get url(): URL {
    return new URL(`${this.#server.scheme}://${this.#server.authority}/`);
  }

  get id(): string {
    return this.#server.label;
  }

  get pendingRequests(): number {
    return this.#server.pending;
  }

  requestIP(request: Request): SocketAddress | null {
    return socketAddress(IncomingRequest.originOf(request)?.clientAddress);
  }

  peerIP(request: Request): SocketAddress | null {
    const origin = IncomingRequest.originOf(request);
    return socketAddress(origin?.connection.proxy?.socketPeer ?? origin?.peerAddress);
  }

  timeout(request: Request, seconds: number): void {
    if (typeof seconds !== "number" || !(seconds >= 0)) {
      throw new TypeError(`server.timeout(request, seconds): seconds must be a number ≥ 0, got ${String(seconds)}`);
    }
    IncomingRequest.originOf(request)?.timeout(request, seconds);
  }

  tlsInfo(request: Request): Readonly<Record<string, string>> | null {
    if (this.#server.tls === undefined) return null;
    return IncomingRequest.originOf(request)?.tlsFacts() ?? null;
  }

  upgrade(): boolean {
    return notOffered("upgrade()", "bunwsgi has no WebSocket server yet; serve WebSocket routes from Bun.serve beside it");
  }

  publish(): number {
    return notOffered("publish()", "bunwsgi has no WebSocket server yet");
  }

  subscriberCount(): number {
    return notOffered("subscriberCount()", "bunwsgi has no WebSocket server yet");
  }

  reload(): never {
    return notOffered("reload()", "send the process SIGHUP: bunwsgi re-reads its config and re-imports the app");
  }

  stop(): never {
    return notOffered("stop()", "send the process SIGTERM for a graceful stop (or call stop() on the FetchServer)");
  }
}

/**
 * A client address as Bun's SocketAddress: null for a unix socket's peer (Bun.serve gives null
 * too) and for a client a proxy names without an IP (RFC 7239's "unknown" or "_hidden").
 */
function socketAddress(address: ClientAddress | undefined): SocketAddress | null {
  if (address === undefined || typeof address === "string" || parseIP(address[0]) === null) return null;
  const [host, port] = address;
  return { address: host, port, family: host.includes(":") ? "IPv6" : "IPv4" };
}

function notOffered(member: string, instead: string): never {
  throw new Error(`bunwsgi: server.${member} is not supported: ${instead}`);
}
