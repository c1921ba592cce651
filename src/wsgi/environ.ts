/** @module wsgi/environ — the PEP 3333 environ of a request: CGI keys, headers as HTTP_*, TLS facts, a trusted proxy's client, and a per-connection template reused while a client repeats its fields. */

import type { ServerSocket } from "../engine/connection.ts";
import type { ConnectionPort } from "../engine/exchange.ts";
import { Input } from "../engine/input.ts";
import { type ProxyPolicy, proxyTlsFacts } from "../engine/peer.ts";
import { tlsFacts } from "../engine/tls.ts";
import { ContractError } from "../errors.ts";
import { targetAuthority } from "../http/authority.ts";
import { isDigits } from "../http/bytes.ts";
import { FIELD_SLOTS, FieldKind } from "../http/fields.ts";
import { forwardedAuthority, forwardingIndex } from "../http/forwarded.ts";
import { unquoteLatin1 } from "../http/request.ts";
import { type ClientAddress, clientLabel } from "../observe/access.ts";
import type { WSGIServer } from "./server.ts";
import type { Environ, SetTimeout } from "./types.ts";

const NO_INPUT = Input.empty();

/** environ keys of header names, cached: "x-foo" → "HTTP_X_FOO"; null for names with "_". */
const envKeys = new Map<string, string | null>();
const MAX_ENV_KEYS = 2048;

function envKey(name: string): string | null {
  let key = envKeys.get(name);
  if (key === undefined) {
    // Dropped like gevent does: "X_Forwarded" would otherwise collide with "X-Forwarded".
    key = name.includes("_") ? null : `HTTP_${name.toUpperCase().replaceAll("-", "_")}`;
    if (envKeys.size < MAX_ENV_KEYS) envKeys.set(name, key);
  }
  return key;
}

/** What the environ is built from: the handler's decoded request line and fields; and where the client a trusted proxy names is told. */
export interface RequestFacts {
  readonly command: string;
  readonly path: string;
  readonly requestVersion: string;
  readonly headers: Array<[string, string]>;
  clientAddress: ClientAddress;
}

/** Builds the environs of one connection's requests. */
export class EnvironBuilder {
  private readonly socket: ServerSocket;
  /** REMOTE_ADDR and REMOTE_PORT of this connection. */
  private readonly remoteAddr: string;
  private readonly remotePort: string;
  private tlsEnv: Record<string, string> | null = null;
  /** This connection's last environ but for the request line's keys, and what it was made from. */
  private template: Environ | null = null;
  private templateBase: Readonly<Record<string, unknown>> | null = null;
  private readonly templateNames: string[] = [];
  private readonly templateValues: string[] = [];
  /** environ["bunwsgi.set_timeout"]: one per connection, it changes the current request's deadlines. */
  private readonly setTimeout: SetTimeout;
  private readonly policy: ProxyPolicy;
  /** The peer is a trusted proxy: its requests' forwarding fields are read (decided once per connection). */
  private readonly trusted: boolean;
  /** The peer is not trusted, and its requests' forwarding fields are left out. */
  private readonly strip: boolean;
  /** environ["bunwsgi.peer"]: the socket's own peer, whoever the requests are from. */
  private readonly peer: ClientAddress;
  /** The keys a PROXY header gives every request (bunwsgi.proxy, its TLS facts), or null. */
  private readonly proxyEnv: Record<string, unknown> | null;
  /** The client the template's forwarding fields name, or null. */
  private client: ClientAddress | null = null;
  /** The template's host is the forwarded one: a request's own authority does not replace it. */
  private hostForwarded = false;

  constructor(socket: ServerSocket, address: [string, number] | string, policy: ProxyPolicy) {
    this.socket = socket;
    const conn = socket.data;
    this.policy = policy;
    const proxy = conn.proxy;
    this.trusted = policy.trusts(address, proxy);
    this.strip = !this.trusted && policy.strip;
    this.peer = proxy === null ? address : proxy.socketPeer;
    this.proxyEnv = proxy === null ? null : { "bunwsgi.proxy": proxy.header, ...proxyEnviron(proxy.header) };
    this.setTimeout = (kind, seconds) => {
      if ((kind !== "app" && kind !== "upgraded") || typeof seconds !== "number" || !(seconds >= 0)) {
        throw new ContractError(
          `bunwsgi.set_timeout("app" | "upgraded", seconds ≥ 0), got (${JSON.stringify(kind)}, ${JSON.stringify(seconds)})`,
        );
      }
      conn.setTimeout(kind, seconds);
    };
    // A unix socket's peer has no address (the string is the socket's path, for logs).
    this.remoteAddr = typeof address === "string" ? "" : address[0];
    this.remotePort = typeof address === "string" ? "" : String(address[1]);
  }

  /**
   * The environ of the request described by `req`. `reuse`: the server's own getEnviron() is in
   * use and the connection persists, so a template of its fields may be kept and copied.
   */
  build(server: WSGIServer, conn: ConnectionPort, req: RequestFacts, upgrade: boolean, reuse: boolean): Environ {
    const headers = req.headers;
    let env: Environ;
    if (reuse) {
      // A keep-alive client usually repeats its header fields: then everything but the
      // request line's keys is what it was, and one copy of the last result does.
      if (this.template === null || this.templateBase !== server.environ || !this.sameFields(headers)) {
        this.template = this.connectionEnviron(server, conn, server.getEnviron() as Environ, headers);
        this.templateBase = server.environ;
        this.rememberFields(headers);
      }
      env = { ...this.template };
    } else {
      env = this.connectionEnviron(server, conn, server.getEnviron() as Environ, headers);
    }
    let target = req.path;
    const command = req.command;
    env.REQUEST_METHOD = command;
    env.REQUEST_URI = target;
    // absolute-form: the path is what the app routes on; the authority replaces Host (RFC 9112 §3.2.2).
    let authority: string | null = null;
    let schemePort = "";
    if (target.charCodeAt(0) !== 47 && target !== "*" && command !== "CONNECT") {
      // The parser admits http and https only: "https://" is the longer.
      const at = target.indexOf("://") + 3;
      schemePort = at === 8 ? "443" : "80";
      authority = targetAuthority(target);
      const rest = at + authority.length;
      target = rest === target.length ? "/" : target.charCodeAt(rest) === 63 ? `/${target.slice(rest)}` : target.slice(rest);
    }
    const qm = target.indexOf("?");
    let path: string;
    if (qm >= 0) {
      path = unquoteLatin1(target.slice(0, qm));
      env.QUERY_STRING = target.slice(qm + 1);
    } else {
      path = unquoteLatin1(target);
      env.QUERY_STRING = "";
    }
    const root = server.rootPath;
    // Mounted under a prefix: SCRIPT_NAME + PATH_INFO is still the whole path (PEP 3333), and a
    // path outside the prefix is passed whole, SCRIPT_NAME "", for the app to answer.
    if (root !== "" && path.startsWith(root) && (path.length === root.length || path.charCodeAt(root.length) === 47)) {
      env.SCRIPT_NAME = root;
      path = path.slice(root.length);
    }
    env.PATH_INFO = path;
    env.SERVER_PROTOCOL = req.requestVersion;
    // The host a trusted proxy was asked for (hostForwarded) stands over the proxy's own request's.
    if (authority !== null && !this.hostForwarded) {
      // RFC 9112 §3.2.2: the target's authority, not Host, names the host this request is for.
      env.HTTP_HOST = authority;
      hostToServerName(env, authority, schemePort);
    } else if (server.nameFromHost && !this.hostForwarded) {
      const host = env.HTTP_HOST;
      if (typeof host === "string" && host !== "") hostToServerName(env, host, env["wsgi.url_scheme"] === "https" ? "443" : "80");
    }
    if (this.client !== null) req.clientAddress = this.client;
    env["wsgi.input"] = conn.input;
    env["bunwsgi.headers"] = headers;
    if (upgrade && conn.rawInput !== null) env["bunwsgi.raw_input"] = conn.rawInput;
    return env;
  }

  /**
   * TLS facts of this connection in mod_ssl's names, computed once per connection:
   * SSL_PROTOCOL, SSL_CIPHER, SSL_CLIENT_VERIFY ("SUCCESS", "NONE" or "FAILED:reason") and,
   * only for a client certificate that verified against the configured CA, SSL_CLIENT_S_DN /
   * SSL_CLIENT_I_DN (RFC 4514 strings), SSL_CLIENT_M_SERIAL and SSL_CLIENT_V_END.
   */
  tls(): Readonly<Record<string, string>> {
    this.tlsEnv ??= tlsFacts(this.socket);
    return this.tlsEnv;
  }

  /**
   * The environ keys that depend on the server, the connection and the header fields, but not
   * on the request line: added to `env`, a copy of server.environ. The request line's keys
   * come first, empty, so that every copy of the result already has its final shape.
   */
  private connectionEnviron(
    server: WSGIServer,
    conn: ConnectionPort,
    env: Environ,
    headers: ReadonlyArray<readonly [string, string]>,
  ): Environ {
    const p = conn.parser;
    env.REQUEST_METHOD = "";
    env.SCRIPT_NAME = "";
    env.REQUEST_URI = "";
    env.PATH_INFO = "";
    env.QUERY_STRING = "";
    env.SERVER_PROTOCOL = "";
    env.REMOTE_ADDR = this.remoteAddr;
    env.REMOTE_PORT = this.remotePort;
    env["bunwsgi.peer"] = this.peer;
    if (server.tls !== undefined) Object.assign(env, this.tls());
    if (this.proxyEnv !== null) Object.assign(env, this.proxyEnv);
    const f = p.fields;
    const strip = this.strip;
    for (let n = 0; n < headers.length; n++) {
      // Indexed, not destructured: destructuring goes through the iterator protocol.
      const pair = headers[n] as readonly [string, string];
      const name = pair[0];
      if (strip && forwardingIndex(name) >= 0) continue;
      const value = pair[1];
      const kind = f[n * FIELD_SLOTS + 4];
      if (kind === FieldKind.CONTENT_TYPE) {
        env.CONTENT_TYPE = env.CONTENT_TYPE === undefined ? value : `${env.CONTENT_TYPE}, ${value}`;
        continue;
      }
      if (kind === FieldKind.CONTENT_LENGTH) {
        env.CONTENT_LENGTH = String(p.contentLength);
        continue;
      }
      const key = envKey(name);
      if (key === null) continue;
      const prev = env[key];
      env[key] = prev === undefined ? value : `${prev}${kind === FieldKind.COOKIE ? "; " : ", "}${value}`;
    }
    env["bunwsgi.set_timeout"] = this.setTimeout;
    // Placeholders that build() replaces: a template must not keep a request's body alive.
    env["wsgi.input"] = NO_INPUT;
    env["wsgi.input_terminated"] = true;
    env["bunwsgi.headers"] = [];
    this.client = null;
    this.hostForwarded = false;
    if (this.trusted) this.forward(server, env, headers);
    return env;
  }

  /**
   * A trusted proxy's forwarding fields (engine/peer, http/forwarded): the client's address and
   * port, the scheme it used and the host it asked for, as PEP 3333 reconstructs a URL from them
   * (wsgi.url_scheme, then HTTP_HOST, else SERVER_NAME and SERVER_PORT). Malformed values are
   * left out, with a debug line.
   */
  private forward(server: WSGIServer, env: Environ, headers: ReadonlyArray<readonly [string, string]>): void {
    const f = this.policy.forwarded(headers);
    if (f === null) return;
    if (f.problem !== "" && server.logLevel <= 10) {
      server.errorLog.write(`ignored forwarding fields from ${clientLabel(this.peer)}: ${f.problem}\n`, "DEBUG");
    }
    if (f.addr !== null) {
      env.REMOTE_ADDR = f.addr;
      env.REMOTE_PORT = f.port;
      this.client = [f.addr, isDigits(f.port) ? Number(f.port) : 0];
    }
    let scheme = env["wsgi.url_scheme"] as string;
    if (f.scheme !== null) {
      scheme = f.scheme;
      env["wsgi.url_scheme"] = scheme;
      if (scheme === "https") env.HTTPS = "on";
      else if (env.HTTPS !== undefined) env.HTTPS = "off";
    }
    const host = typeof env.HTTP_HOST === "string" ? env.HTTP_HOST : "";
    if (f.host !== null || (f.hostPort !== null && host !== "")) {
      const authority = forwardedAuthority(f, host, scheme);
      env.HTTP_HOST = authority;
      hostToServerName(env, authority, scheme === "https" ? "443" : "80");
      this.hostForwarded = true;
    }
  }

  /** Whether `headers` holds the same strings as when the environ template was made. */
  private sameFields(headers: ReadonlyArray<readonly [string, string]>): boolean {
    const names = this.templateNames;
    const values = this.templateValues;
    if (headers.length !== names.length) return false;
    for (let n = 0; n < headers.length; n++) {
      const pair = headers[n] as readonly [string, string];
      if (pair[0] !== names[n] || pair[1] !== values[n]) return false;
    }
    return true;
  }

  /** Keep private copies of the template's fields: the app may change the arrays it is given. */
  private rememberFields(headers: ReadonlyArray<readonly [string, string]>): void {
    const names = this.templateNames;
    const values = this.templateValues;
    names.length = values.length = headers.length;
    for (let n = 0; n < headers.length; n++) {
      const pair = headers[n] as readonly [string, string];
      names[n] = pair[0];
      values[n] = pair[1];
    }
  }
}

/** A PROXY header's TLS facts as environ keys, with the scheme its client used (https when PP2_CLIENT_SSL says so). */
function proxyEnviron(header: Parameters<typeof proxyTlsFacts>[0]): Record<string, string> {
  const tls = proxyTlsFacts(header);
  return tls === null ? {} : { "wsgi.url_scheme": "https", HTTPS: "on", ...tls };
}

/**
 * SERVER_NAME and SERVER_PORT from an authority the parser validated (uri-host [":" port]):
 * an IP-literal keeps its brackets, and a missing or empty port is the scheme's.
 */
function hostToServerName(env: Environ, host: string, defaultPort: string): void {
  const colon = host.indexOf(":", host.lastIndexOf("]") + 1);
  env.SERVER_NAME = colon < 0 ? host : host.slice(0, colon);
  env.SERVER_PORT = colon < 0 || colon + 1 === host.length ? defaultPort : host.slice(colon + 1);
}
