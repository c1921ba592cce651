/** @module fetch/types — the contract of a Web-standard fetch app: (request, server) → Response, with the part of Bun.serve's server object such apps use. */

/** A peer as `server.requestIP()` gives it (Bun's SocketAddress). */
export interface SocketAddress {
  address: string;
  port: number;
  family: "IPv4" | "IPv6";
}

/**
 * The second argument of a fetch handler: what Hono's and Elysia's Bun helpers read of
 * Bun.serve's server. Members bunwsgi does not offer (WebSocket upgrade and pub/sub, reload,
 * stop) throw an Error that says so instead of returning undefined.
 */
export interface FetchServe {
  readonly hostname: string;
  readonly port: number;
  readonly url: URL;
  readonly development: boolean;
  readonly id: string;
  /** Requests being answered now. */
  readonly pendingRequests: number;
  readonly pendingWebSockets: number;
  /** The peer of a request this server is answering; null for a unix socket or a request it did not receive. */
  requestIP(request: Request): SocketAddress | null;
  /** Seconds this request's response may take from now on (timeouts.app for this request; 0: no limit). */
  timeout(request: Request, seconds: number): void;
  /** Not offered: bunwsgi has no WebSocket server yet. Throws. */
  upgrade(request: Request, options?: unknown): boolean;
  /** Not offered (WebSocket pub/sub). Throws. */
  publish(topic: string, data: unknown, compress?: boolean): number;
  /** Not offered (WebSocket pub/sub). Throws. */
  subscriberCount(topic: string): number;
  /** Not offered: reload with SIGHUP. Throws. */
  reload(options: unknown): never;
  /** Not offered: stop with SIGTERM (or WSGIServer-style stop() on the FetchServer). Throws. */
  stop(closeActiveConnections?: boolean): never;
}

/** A fetch handler: Bun.serve's `fetch`, a bare function. */
export type FetchHandler = (request: Request, server: FetchServe) => Response | Promise<Response>;

/** Anything with a fetch method: `export default { fetch }`, a Hono or Elysia app, an itty-router. */
export interface FetchObject {
  fetch(request: Request, server: FetchServe): Response | Promise<Response>;
}

/** A fetch application: a handler function or an object with a fetch method. */
export type FetchApplication = FetchHandler | FetchObject;
