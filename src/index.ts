/** @module index — the public API of bunwsgi ("bunwsgi"): servers (WSGI and fetch apps), the handler and its hooks, errors, log sinks and the application contract. Internals (parser, body decoder, engine) are not exported: they stay free to change. */

export type { Limits, Timeouts } from "./config/limits.ts";
export { Input } from "./engine/input.ts";
export type { ListenerSpec } from "./engine/listeners.ts";
export { Pool } from "./engine/pool.ts";
export type { ServerOptions } from "./engine/server.ts";
export {
  BunWSGIError,
  ClientDisconnected,
  ConfigError,
  ConnectionClosedError,
  ContractError,
  HTTPError,
} from "./errors.ts";
export { FetchServer, type FetchServerOptions } from "./fetch/server.ts";
export type {
  FetchApplication,
  FetchHandler,
  FetchObject,
  FetchServe,
  SocketAddress,
} from "./fetch/types.ts";
export { unquoteLatin1 } from "./http/request.ts";
export { type AccessFormatter, type AccessRecord, compileLogFormat, LOG_FIELDS } from "./observe/access.ts";
export {
  type ErrorStream,
  LevelLog,
  type Logger,
  LoggingLogAdapter,
  type LogLevel,
  type LogOption,
  type LogSink,
  NullLog,
  StreamLog,
  TeeLog,
} from "./observe/log.ts";
export { type FileLike, FileWrapper } from "./wsgi/file.ts";
export { WSGIHandler } from "./wsgi/handler.ts";
export { type HandlerClass, VERSION, WSGIServer, type WSGIServerOptions } from "./wsgi/server.ts";
export type { Application, Body, Chunk, Environ, ResponseHeaders, SetTimeout, StartResponse, Write } from "./wsgi/types.ts";
