/** @module log — log sinks: stream/file writers, LoggingLogAdapter, and the cached clock strings logs and Date use. */

import { closeSync, openSync } from "node:fs";
import type { FileSink } from "bun";
import { ConfigError } from "./errors.ts";

/** Error-log levels, as they appear in a line: `[2026-12-03 12:00:00] [INFO] …`. */
export type LogLevel = "DEBUG" | "INFO" | "WARNING" | "ERROR";

/** Python logging's numbers for each level (LoggingLogAdapter's `level`). */
export const LEVEL_NUMBERS: Readonly<Record<LogLevel, number>> = { DEBUG: 10, INFO: 20, WARNING: 30, ERROR: 40 };

/**
 * Anything with a `write(s)` method, like a Python file object: the shape `log`/`errorLog` take.
 * `level` says how much a message matters; a sink that has no use for it ignores it (so a plain
 * `{ write(s) {} }` is a sink), and a write without one is at the sink's own level.
 */
export interface LogSink {
  write(s: string, level?: LogLevel): unknown;
  flush?(): unknown;
}

/** A logger object such as `console` or pino. */
export interface Logger {
  debug?(msg: string): unknown;
  info(msg: string): unknown;
  warn?(msg: string): unknown;
  error(msg: string): unknown;
  fatal?(msg: string): unknown;
}

/**
 * Adapts a logger object (console, pino, …) to a write()-able sink, like gevent's
 * LoggingLogAdapter. Levels are Python's logging numbers: 10 debug, 20 info, 30 warning,
 * 40 error, 50 critical; each goes to the closest method the logger has.
 */
export class LoggingLogAdapter implements LogSink {
  readonly logger: Logger;
  readonly level: number;
  private readonly emit: (msg: string) => unknown;

  constructor(logger: Logger, level = 20) {
    this.logger = logger;
    this.level = level;
    this.emit = emitterFor(logger, level);
  }

  /** Logs `msg` without its trailing newline; empty messages are dropped. A `level` picks the method for this message. */
  write(msg: string, level?: LogLevel): void {
    const m = msg.endsWith("\n") ? msg.slice(0, -1) : msg;
    if (m.length === 0) return;
    if (level === undefined) this.emit(m);
    else emitterFor(this.logger, LEVEL_NUMBERS[level])(m);
  }

  writelines(lines: Iterable<string>): void {
    for (const line of lines) this.write(line);
  }

  /** No-op, as in gevent: the logger does its own buffering. */
  flush(): void {}
}

/** The logger method for a Python level number: the closest one the logger has. */
function emitterFor(l: Logger, level: number): (msg: string) => unknown {
  if (level >= 50) return (m) => (l.fatal ?? l.error).call(l, m);
  if (level >= 40) return (m) => l.error(m);
  if (level >= 30) return (m) => (l.warn ?? l.error).call(l, m);
  if (level >= 20) return (m) => l.info(m);
  return (m) => (l.debug ?? l.info).call(l, m);
}

/**
 * The error log's line format over another sink: each message starts with a local timestamp
 * (the access log's clock and format) and its level, `[2026-12-03 12:00:00] [ERROR] …`. Only
 * the first line of a message is prefixed, so a stack trace stays one record whose lines are
 * whole; a write that continues an unfinished line (an app writing to `wsgi.errors` in
 * pieces) is not prefixed either.
 */
export class LevelLog implements LogSink {
  readonly target: LogSink;
  /** The level of a write that names none: what an app's writes to `wsgi.errors` are. */
  readonly level: LogLevel;
  /** Least severe level written (Python logging's numbers): `log.level`. */
  threshold: number;
  private atLineStart = true;

  constructor(target: LogSink, level: LogLevel = "ERROR", threshold = LEVEL_NUMBERS.INFO) {
    this.target = target;
    this.level = level;
    this.threshold = threshold;
  }

  /**
   * Write `s`. A write that names its level is a whole server message: it starts a line of its
   * own even after an app's unfinished `wsgi.errors` line, which would otherwise swallow it.
   */
  write(s: string, level?: LogLevel): void {
    if (s.length === 0) return;
    const lvl = level ?? this.level;
    if (LEVEL_NUMBERS[lvl] < this.threshold) return;
    let line = s;
    if (this.atLineStart || level !== undefined) {
      line = `${this.atLineStart ? "" : "\n"}[${clock.localTimestamp()}] [${lvl}] ${s}`;
    }
    this.target.write(line, lvl);
    this.atLineStart = s.endsWith("\n");
  }

  flush(): void {
    this.target.flush?.();
  }
}

/** A sink that drops everything: what `log: null` becomes, so `server.log` is never null. */
export class NullLog implements LogSink {
  write(_s: string): void {}
  flush(): void {}
}

/**
 * Buffered writer for stderr, stdout or a file: many lines per syscall, flushed after the
 * current task so a line is never held back longer than one turn of the event loop.
 * Files are opened for appending (O_APPEND), so a restart or a second writer never
 * overwrites lines already there.
 */
export class StreamLog implements LogSink {
  readonly path: string | null;
  private sink: FileSink;
  private fd = -1;
  private scheduled = false;
  private readonly flushBound = (): void => {
    this.scheduled = false;
    this.sink.flush();
  };

  /** Opens a file target at once: a path that cannot be opened throws here, not on the first line. */
  constructor(target: "stderr" | "stdout" | { path: string }) {
    this.path = typeof target === "string" ? null : target.path;
    this.sink = this.open(target);
  }

  private open(target: "stderr" | "stdout" | { path: string }): FileSink {
    if (target === "stderr") return Bun.stderr.writer();
    if (target === "stdout") return Bun.stdout.writer();
    // Bun.file(path).writer() writes from offset 0 without truncating; O_APPEND is what a log wants.
    this.fd = openSync(target.path, "a", 0o640);
    return Bun.file(this.fd).writer({ highWaterMark: 64 * 1024 });
  }

  write(s: string): void {
    this.sink.write(s);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flushBound);
    }
  }

  flush(): void {
    this.sink.flush();
  }

  /** Re-open a file sink at its path (after logrotate moved it); a stream sink just flushes. */
  reopen(): void {
    if (this.path === null) {
      this.sink.flush();
      return;
    }
    const old = this.sink;
    const oldFd = this.fd;
    old.flush();
    this.sink = this.open({ path: this.path });
    old.end();
    closeSync(oldFd);
  }

  /** Flush and close a file sink (stdout/stderr stay open). */
  close(): void {
    this.sink.flush();
    if (this.fd >= 0) {
      this.sink.end();
      closeSync(this.fd);
      this.fd = -1;
    }
  }
}

/** Several sinks written as one: a `[log]` setting given as a list. */
export class TeeLog implements LogSink {
  readonly sinks: readonly LogSink[];

  constructor(sinks: readonly LogSink[]) {
    this.sinks = sinks;
  }

  write(s: string, level?: LogLevel): void {
    for (const sink of this.sinks) sink.write(s, level);
  }

  flush(): void {
    for (const sink of this.sinks) sink.flush?.();
  }
}

/** Re-open every file behind a sink (StreamLog, or TeeLog of them); for SIGUSR1. */
export function reopenLog(sink: LogSink): void {
  if (sink instanceof TeeLog) for (const s of sink.sinks) reopenLog(s);
  else if (sink instanceof LevelLog) reopenLog(sink.target);
  else if (sink instanceof StreamLog) sink.reopen();
}

/** Close every file behind a sink, after flushing it. */
export function closeLog(sink: LogSink): void {
  if (sink instanceof TeeLog) for (const s of sink.sinks) closeLog(s);
  else if (sink instanceof LevelLog) closeLog(sink.target);
  else if (sink instanceof StreamLog) sink.close();
  else sink.flush?.();
}

/**
 * Build a sink from sink names: "stderr", "stdout", "none" or a file path (already resolved).
 * stderr and stdout are the process-wide shared sinks; an empty list or ["none"] drops everything.
 */
export function openLogSinks(targets: readonly string[]): LogSink {
  const sinks: LogSink[] = [];
  for (const t of targets) {
    if (t === "none") continue;
    if (t === "stderr") sinks.push(defaultLog());
    else if (t === "stdout") {
      stdoutLog ??= new StreamLog("stdout");
      sinks.push(stdoutLog);
    } else sinks.push(new StreamLog({ path: t }));
  }
  if (sinks.length === 0) return new NullLog();
  return sinks.length === 1 ? (sinks[0] as LogSink) : new TeeLog(sinks);
}

/** The error log for sink names (see openLogSinks): timestamped and levelled, unless it drops everything. */
export function openErrorLog(targets: readonly string[], threshold: number = LEVEL_NUMBERS.INFO): LogSink {
  const sink = openLogSinks(targets);
  return sink instanceof NullLog ? sink : new LevelLog(sink, "ERROR", threshold);
}

/** How `log`/`errorLog` options are given: "default", null, a sink, or a logger object. */
export type LogOption = "default" | null | LogSink | Logger;

let stderrLog: StreamLog | undefined;
let stdoutLog: StreamLog | undefined;

/** The shared stderr sink (one buffer for the whole process). */
export function defaultLog(): StreamLog {
  stderrLog ??= new StreamLog("stderr");
  return stderrLog;
}

let stderrErrorLog: LevelLog | undefined;

/**
 * Resolve a log option the way gevent does; `level` applies when a logger object is wrapped.
 * The default error log (level 40 and up) is stderr with timestamps and levels; a sink or logger
 * the caller gives is used as it is (a logger stamps its own lines).
 */
export function resolveLog(option: LogOption | undefined, level: number): LogSink {
  if (option === undefined || option === "default") {
    if (level < 40) return defaultLog();
    stderrErrorLog ??= new LevelLog(defaultLog());
    return stderrErrorLog;
  }
  if (option === null) return new NullLog();
  // Logger first: Bun's console also has write(), but a console is meant as a logger.
  const logger = option as Logger;
  if (typeof logger.info === "function" && typeof logger.error === "function") return new LoggingLogAdapter(logger, level);
  if (typeof (option as LogSink).write === "function") return option as LogSink;
  throw new TypeError("log option must be 'default', null, an object with write(s), or a logger with info()/error()");
}

const pad2 = (n: number): string => (n < 10 ? `0${n}` : `${n}`);
const DAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/**
 * Clock strings recomputed at most once per second: the Date header and the log timestamp.
 * They stay valid until a timer at the next second boundary marks them stale (as node:http
 * does): a response reads no wall clock for its Date.
 */
class Clock {
  private second = -1;
  private stale = true;
  private dateLine = new Uint8Array(0);
  private local = "";
  private utcDate = "";
  private clfTime = "";
  private readonly expireBound = (): void => {
    this.stale = true;
  };

  private refresh(): void {
    if (!this.stale) return;
    this.stale = false;
    const now = Date.now();
    // unref(): the clock never keeps a process alive. A timer that fires a little early finds
    // the same second and waits the rest of it.
    setTimeout(this.expireBound, 1000 - (now % 1000)).unref();
    const second = Math.floor(now / 1000);
    if (second === this.second) return;
    this.second = second;
    const d = new Date(second * 1000);
    // IMF-fixdate (RFC 9110 §5.6.7).
    this.utcDate = `${DAYS[d.getUTCDay()]}, ${pad2(d.getUTCDate())} ${MONTHS[d.getUTCMonth()]} ${d.getUTCFullYear()} ${pad2(d.getUTCHours())}:${pad2(d.getUTCMinutes())}:${pad2(d.getUTCSeconds())} GMT`;
    const line = `Date: ${this.utcDate}\r\n`;
    const bytes = new Uint8Array(line.length);
    for (let i = 0; i < line.length; i++) bytes[i] = line.charCodeAt(i);
    this.dateLine = bytes;
    // gevent logs datetime.now() without microseconds: local time, "YYYY-MM-DD HH:MM:SS".
    this.local = `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} ${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
    // Apache's %t: "10/Oct/2000:13:55:36 -0700", local time with its UTC offset.
    const off = -d.getTimezoneOffset();
    const abs = Math.abs(off);
    const zone = `${off < 0 ? "-" : "+"}${pad2(Math.floor(abs / 60))}${pad2(abs % 60)}`;
    this.clfTime = `${pad2(d.getDate())}/${MONTHS[d.getMonth()]}/${d.getFullYear()}:${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())} ${zone}`;
  }

  /** Apache common-log time, "10/Oct/2000:13:55:36 -0700". */
  clf(): string {
    this.refresh();
    return this.clfTime;
  }

  /** "Date: <IMF-fixdate>\r\n" as bytes. */
  dateHeader(): Uint8Array {
    this.refresh();
    return this.dateLine;
  }

  /** The IMF-fixdate of the current second. */
  httpDate(): string {
    this.refresh();
    return this.utcDate;
  }

  /** Local "YYYY-MM-DD HH:MM:SS", gevent's access-log timestamp. */
  localTimestamp(): string {
    this.refresh();
    return this.local;
  }
}

export const clock = new Clock();

/** The process's time origin, constant: read once instead of through a getter on every call. */
const TIME_ORIGIN = performance.timeOrigin;

/** Seconds since the epoch with sub-millisecond precision, like Python's time.time(). */
export const timeNow = (): number => (TIME_ORIGIN + performance.now()) / 1000;

/** What an access-log format reads from a finished request; WSGIHandler provides it. */
export interface AccessRecord {
  readonly clientAddress: [string, number] | string;
  readonly requestline: string | null;
  readonly command: string;
  readonly path: string;
  readonly requestVersion: string;
  readonly code: number | null;
  /** Bytes sent, status line and headers included. */
  readonly responseLength: number;
  /** Body bytes sent. */
  readonly bodyLength: number;
  readonly timeStart: number;
  readonly timeFinish: number;
  readonly headers: ReadonlyArray<readonly [string, string]>;
  /**
   * Why the server refused or cut the request ("bare_cr", "bad_host", "head_timeout",
   * "client_disconnected", …: the parser's and body decoder's code names), or null.
   */
  readonly reason: string | null;
}

/** Turns a finished request into one access-log line (without the newline). */
export type AccessFormatter = (r: AccessRecord) => string;

const HEX = "0123456789abcdef";
const utf8 = new TextEncoder();

/**
 * Escape for a quoted log field the way Apache and nginx do: `"` and `\` backslashed, control
 * bytes and bytes above 0x7e as \xHH, so a client cannot forge or break log lines.
 */
export function escapeLogField(s: string): string {
  let i = 0;
  for (; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x22 || c === 0x5c) break;
  }
  if (i === s.length) return s;
  let out = s.slice(0, i);
  for (; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x22 || c === 0x5c) out += `\\${s[i]}`;
    else if (c < 0x20 || c > 0x7e) {
      // Latin-1 text (header bytes) is one byte per char; anything wider is written as UTF-8 bytes.
      for (const b of c > 0xff ? utf8.encode(String.fromCharCode(c)) : [c]) {
        out += `\\x${HEX[b >> 4]}${HEX[b & 15]}`;
      }
    } else out += s[i];
  }
  return out;
}

function requestHeader(r: AccessRecord, lower: string): string | null {
  const h = r.headers;
  for (let i = 0; i < h.length; i++) {
    const pair = h[i] as readonly [string, string];
    if (pair[0].length === lower.length && pair[0].toLowerCase() === lower) return pair[1];
  }
  return null;
}

const remoteAddr = (r: AccessRecord): string =>
  typeof r.clientAddress === "string" ? r.clientAddress || "-" : r.clientAddress[0];
const dash = (s: string | null): string => (s === null || s === "" ? "-" : s);
const duration = (r: AccessRecord): number => (r.timeFinish > 0 ? r.timeFinish - r.timeStart : 0);
const targetPath = (r: AccessRecord): string => {
  const q = r.path.indexOf("?");
  return q < 0 ? r.path : r.path.slice(0, q);
};

/** Named fields a template format may use, as `{name}`; `{header:NAME}` reads any request header. */
export const LOG_FIELDS: Readonly<Record<string, { doc: string; get: (r: AccessRecord) => string }>> = {
  remote_addr: { doc: "client address (empty for a unix socket)", get: remoteAddr },
  remote_port: { doc: "client port", get: (r) => (typeof r.clientAddress === "string" ? "-" : String(r.clientAddress[1])) },
  time: { doc: "local time, gevent style (2026-11-24 10:00:00)", get: () => clock.localTimestamp() },
  time_clf: { doc: "local time, Apache style (24/Nov/2026:10:00:00 +0000)", get: () => clock.clf() },
  time_iso: { doc: "UTC time, ISO 8601 with milliseconds", get: () => new Date().toISOString() },
  request: { doc: "the request line", get: (r) => escapeLogField(r.requestline ?? "") },
  method: { doc: "request method", get: (r) => dash(r.command) },
  target: { doc: "request target as sent (path and query)", get: (r) => escapeLogField(dash(r.path)) },
  path: { doc: "request target without the query", get: (r) => escapeLogField(dash(targetPath(r))) },
  query: {
    doc: "query string, without the ?",
    get: (r) => {
      const q = r.path.indexOf("?");
      return q < 0 ? "" : escapeLogField(r.path.slice(q + 1));
    },
  },
  protocol: { doc: "HTTP version of the request", get: (r) => dash(r.requestVersion) },
  status: { doc: "response status code", get: (r) => (r.code === null ? "000" : String(r.code)) },
  length: { doc: "bytes sent, headers included (gevent)", get: (r) => String(r.responseLength) },
  body_length: { doc: "body bytes sent (Apache %B)", get: (r) => String(r.bodyLength) },
  duration: { doc: "seconds taken, 6 decimals", get: (r) => duration(r).toFixed(6) },
  duration_ms: { doc: "milliseconds taken, 3 decimals", get: (r) => (duration(r) * 1000).toFixed(3) },
  referer: { doc: "Referer header or -", get: (r) => escapeLogField(dash(requestHeader(r, "referer"))) },
  user_agent: { doc: "User-Agent header or -", get: (r) => escapeLogField(dash(requestHeader(r, "user-agent"))) },
  pid: { doc: "server process id", get: () => String(process.pid) },
  reason: { doc: "why the server refused or cut the request (bare_cr, head_timeout, …) or -", get: (r) => dash(r.reason) },
};

/** Apache/nginx "combined": `%h - - [%t] "%r" %>s %b "%{Referer}i" "%{User-Agent}i"`. */
const combined: AccessFormatter = (r) =>
  `${remoteAddr(r)} - - [${clock.clf()}] "${escapeLogField(r.requestline ?? "")}" ${r.code ?? "000"} ${
    r.bodyLength > 0 ? r.bodyLength : "-"
  } "${escapeLogField(dash(requestHeader(r, "referer")))}" "${escapeLogField(dash(requestHeader(r, "user-agent")))}"`;

/** One JSON object per line; JSON.stringify escapes quotes, controls and lone surrogates. */
const json: AccessFormatter = (r) =>
  JSON.stringify({
    time: new Date().toISOString(),
    remote_addr: typeof r.clientAddress === "string" ? r.clientAddress : r.clientAddress[0],
    remote_port: typeof r.clientAddress === "string" ? null : r.clientAddress[1],
    request: r.requestline,
    method: r.command || null,
    target: r.path || null,
    protocol: r.requestVersion || null,
    status: r.code,
    length: r.responseLength,
    body_length: r.bodyLength,
    duration: Math.round(duration(r) * 1e6) / 1e6,
    referer: requestHeader(r, "referer"),
    user_agent: requestHeader(r, "user-agent"),
    reason: r.reason,
  });

/**
 * Compile an access-log format: "gevent" (null: the handler's own formatRequest line),
 * "combined", "json", or a template with `{field}` names from LOG_FIELDS and `{header:NAME}`.
 * A template is split once here so a request only joins strings. An unknown field throws.
 */
export function compileLogFormat(format: string): AccessFormatter | null {
  if (format === "gevent") return null;
  if (format === "combined") return combined;
  if (format === "json") return json;
  if (!format.includes("{")) {
    throw new ConfigError(
      `log format ${JSON.stringify(format)}: expected "gevent", "combined", "json" or a template with {fields}`,
    );
  }
  const literals: string[] = [];
  const getters: Array<(r: AccessRecord) => string> = [];
  let at = 0;
  for (;;) {
    const open = format.indexOf("{", at);
    if (open < 0) break;
    const close = format.indexOf("}", open);
    if (close < 0) throw new ConfigError(`log format: "{" at offset ${open} is never closed`);
    const name = format.slice(open + 1, close);
    literals.push(format.slice(at, open));
    if (name.startsWith("header:") && name.length > 7) {
      const header = name.slice(7).toLowerCase();
      getters.push((r) => escapeLogField(dash(requestHeader(r, header))));
    } else {
      const field = LOG_FIELDS[name];
      if (field === undefined) {
        throw new ConfigError(
          `log format: unknown field {${name}}; fields are ${Object.keys(LOG_FIELDS).join(", ")}, header:NAME`,
        );
      }
      getters.push(field.get);
    }
    at = close + 1;
  }
  const last = format.slice(at);
  return (r) => {
    let out = "";
    for (let i = 0; i < getters.length; i++) out += (literals[i] as string) + (getters[i] as (r: AccessRecord) => string)(r);
    return out + last;
  };
}
