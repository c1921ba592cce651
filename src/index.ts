/** @module index — the public API of bunwsgi. */

export { BodyDecoder, BodyError } from "./body.ts";
export type { Timeouts } from "./engine/exchange.ts";
export { Input } from "./engine/input.ts";
export {
  BunWSGIError,
  ClientDisconnected,
  ConfigError,
  ConnectionClosedError,
  ContractError,
  HTTPError,
} from "./errors.ts";
export { WSGIHandler } from "./handler.ts";
export { unquoteLatin1 } from "./http/request.ts";
export {
  type AccessFormatter,
  type AccessRecord,
  compileLogFormat,
  LOG_FIELDS,
  type Logger,
  LoggingLogAdapter,
  type LogOption,
  type LogSink,
  NullLog,
  StreamLog,
  TeeLog,
} from "./log.ts";
export { DEFAULT_HEAD_LIMITS, ParseError, RequestParser } from "./parser.ts";
export {
  DEFAULT_LIMITS,
  DEFAULT_TIMEOUTS,
  type HandlerClass,
  type Limits,
  type ListenerSpec,
  Pool,
  parseListener,
  VERSION,
  WSGIServer,
  type WSGIServerOptions,
} from "./server.ts";
export type { Application, Body, Chunk, Environ, ResponseHeaders, StartResponse, Write } from "./types.ts";
