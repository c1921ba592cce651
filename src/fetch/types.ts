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
  /**
   * bunwsgi's: the socket's own peer of this request, which is the proxy when requestIP gives the
   * client a trusted proxy's forwarding fields or PROXY header named.
   */
  peerIP(request: Request): SocketAddress | null;
  /**
   * This request's app deadline: seconds from its start until its response is done (the
   * request's own timeouts.app; 0: none). Bun.serve's is an idle timeout; this bounds the whole
   * response, so a long stream turns it off.
   */
  timeout(request: Request, seconds: number): void;
  /**
   * bunwsgi's own: the TLS facts of the request's connection in mod_ssl's names (SSL_PROTOCOL,
   * SSL_CIPHER, SSL_CLIENT_VERIFY, SSL_CLIENT_S_DN, SSL_CLIENT_I_DN, SSL_CLIENT_M_SERIAL,
   * SSL_CLIENT_V_END), as a WSGI app gets them in environ; null over plain HTTP.
   */
  tlsInfo(request: Request): Readonly<Record<string, string>> | null;
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
