/** @module wsgi/server — WSGIServer: the engine's server serving a WSGI application, with gevent's environ methods and handler class. */

import { hostname as osHostname } from "node:os";
import pkg from "../../package.json" with { type: "json" };
import type { ServerSocket } from "../engine/connection.ts";
import type { ListenerSpec } from "../engine/listeners.ts";
import { Server, type ServerOptions } from "../engine/server.ts";
import { ConfigError } from "../errors.ts";
import { checkRootPath } from "../http/request.ts";
import { errorStream } from "../observe/log.ts";
import { fileWrapper } from "./file.ts";
import { WSGIHandler } from "./handler.ts";
import type { Application } from "./types.ts";

export const VERSION: string = pkg.version;

export type HandlerClass = new (socket: ServerSocket, address: [string, number] | string, server: WSGIServer) => WSGIHandler;

export interface WSGIServerOptions extends ServerOptions {
  handlerClass?: HandlerClass;
  /** Extra keys merged into every environ. */
  environ?: Record<string, unknown>;
  /**
   * The path prefix the app is mounted under behind a proxy (gunicorn's SCRIPT_NAME, uvicorn's
   * --root-path): a request under it gets SCRIPT_NAME = rootPath and PATH_INFO without it.
   * "" (the default) or a path starting with "/" and not ending with one.
   */
  rootPath?: string;
}

/**
 * A WSGI server on Bun.listen, following gevent.pywsgi.WSGIServer. `start()` binds and
 * returns; `serveForever()` resolves once the server has been stopped or closed.
 */
export class WSGIServer extends Server {
  static baseEnv: Readonly<Record<string, unknown>> = {
    GATEWAY_INTERFACE: "CGI/1.1",
    SERVER_SOFTWARE: `bunwsgi/${VERSION} Bun/${Bun.version}`,
    SCRIPT_NAME: "",
    "wsgi.version": [1, 0],
    "wsgi.multithread": false,
    "wsgi.multiprocess": false,
    "wsgi.run_once": false,
    "wsgi.file_wrapper": fileWrapper,
  };

  application: Application;
  handlerClass: HandlerClass;
  /**
   * The keys every request's environ starts from. Frozen: change it with setEnviron(), which
   * replaces it (handlers notice a new object; a change in place could go unseen).
   */
  environ: Readonly<Record<string, unknown>> = {};
  /** See WSGIServerOptions.rootPath. */
  rootPath: string;
  /**
   * SERVER_NAME and SERVER_PORT come from each request's Host: the listener has no host and
   * port of its own (a unix socket, or an inherited descriptor whose address is not known).
   */
  nameFromHost = false;
  /**
   * getEnviron() is this class's own copy of server.environ (not overridden): a handler may
   * then copy one environ it built per connection instead of rebuilding every key each request.
   */
  readonly environIsCopy: boolean;

  constructor(listener: ListenerSpec, application: Application, options: WSGIServerOptions = {}) {
    if (typeof application !== "function") throw new ConfigError("application must be a function (environ, startResponse)");
    super(listener, options);
    this.application = application;
    this.handlerClass = options.handlerClass ?? WSGIHandler;
    this.rootPath = checkRootPath(options.rootPath ?? "");
    this.setEnviron(options.environ);
    this.environIsCopy = this.getEnviron === WSGIServer.prototype.getEnviron;
  }

  /**
   * Apply a reload (SIGHUP): a new application and the options that can change while serving
   * (logs, log format and level, limits, timeouts, environ, root path). Connections opened
   * from now on use the new limits; requests already running finish on what they started with.
   */
  reconfigure(application: Application, options: WSGIServerOptions): void {
    this.application = application;
    this.reconfigureServer(options);
    this.rootPath = checkRootPath(options.rootPath ?? "");
    this.setEnviron(options.environ ?? {});
  }

  get baseEnv(): Readonly<Record<string, unknown>> {
    return (this.constructor as typeof WSGIServer).baseEnv;
  }

  /**
   * Replace the extra environ keys; rebuilds server.environ from baseEnv like gevent. On a
   * running server it fills SERVER_NAME and SERVER_PORT again (updateEnviron), which gevent's
   * leaves out until the next bind: PEP 3333 requires them in every environ.
   */
  setEnviron(environ?: Record<string, unknown>): void {
    const update = environ ?? this.environ;
    const env: Record<string, unknown> = { ...this.baseEnv };
    env["wsgi.url_scheme"] = this.tls ? "https" : "http";
    if (this.tls) env.HTTPS = "on";
    Object.assign(env, update);
    // PEP 3333: the app may write(), writelines() and flush() it, whatever sink the error log is.
    if (env["wsgi.errors"] == null) env["wsgi.errors"] = errorStream(this.errorLog);
    this.environ = Object.freeze(env);
    if (this.started) this.updateEnviron();
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

  override start(): void {
    super.start();
    this.updateEnviron();
  }

  /** Create the handler for a new connection (gevent: handle(socket, address)). */
  handle(socket: ServerSocket, address: [string, number] | string): void {
    const handler = new this.handlerClass(socket, address, this);
    socket.data.exchange = handler;
    handler.handle();
  }
}
