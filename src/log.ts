/** @module log — log sinks: stream/file writers, LoggingLogAdapter, and the cached clock strings logs and Date use. */

import type { FileSink } from "bun";

/** Anything with a `write(s)` method, like a Python file object: the shape `log`/`errorLog` take. */
export interface LogSink {
  write(s: string): unknown;
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
    const l = logger;
    if (level >= 50) this.emit = (m) => (l.fatal ?? l.error).call(l, m);
    else if (level >= 40) this.emit = (m) => l.error(m);
    else if (level >= 30) this.emit = (m) => (l.warn ?? l.error).call(l, m);
    else if (level >= 20) this.emit = (m) => l.info(m);
    else this.emit = (m) => (l.debug ?? l.info).call(l, m);
  }

  /** Logs `msg` without its trailing newline; empty messages are dropped. */
  write(msg: string): void {
    const m = msg.endsWith("\n") ? msg.slice(0, -1) : msg;
    if (m.length > 0) this.emit(m);
  }

  writelines(lines: Iterable<string>): void {
    for (const line of lines) this.write(line);
  }

  /** No-op, as in gevent: the logger does its own buffering. */
  flush(): void {}
}

/** A sink that drops everything: what `log: null` becomes, so `server.log` is never null. */
export class NullLog implements LogSink {
  write(_s: string): void {}
  flush(): void {}
}

type Sink = FileSink;

/**
 * Buffered writer for stderr, stdout or a file: many lines per syscall, flushed after the
 * current task so a line is never held back longer than one turn of the event loop.
 */
export class StreamLog implements LogSink {
  readonly path: string | null;
  private sink: Sink;
  private scheduled = false;
  private readonly flushBound = (): void => {
    this.scheduled = false;
    this.sink.flush();
  };

  constructor(target: "stderr" | "stdout" | { path: string }) {
    this.path = typeof target === "string" ? null : target.path;
    this.sink = this.open(target);
  }

  private open(target: "stderr" | "stdout" | { path: string }): Sink {
    if (target === "stderr") return Bun.stderr.writer();
    if (target === "stdout") return Bun.stdout.writer();
    return Bun.file(target.path).writer({ highWaterMark: 64 * 1024 });
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
    old.flush();
    this.sink = this.open({ path: this.path });
    old.end();
  }
}

/** How `log`/`errorLog` options are given: "default", null, a sink, or a logger object. */
export type LogOption = "default" | null | LogSink | Logger;

let stderrLog: StreamLog | undefined;

/** The shared stderr sink (one buffer for the whole process). */
export function defaultLog(): StreamLog {
  stderrLog ??= new StreamLog("stderr");
  return stderrLog;
}

/** Resolve a log option the way gevent does; `level` applies when a logger object is wrapped. */
export function resolveLog(option: LogOption | undefined, level: number): LogSink {
  if (option === undefined || option === "default") return defaultLog();
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

/** Clock strings recomputed at most once per second: the Date header and the log timestamp. */
class Clock {
  private second = -1;
  private dateLine = new Uint8Array(0);
  private local = "";
  private utcDate = "";

  private refresh(): void {
    const now = Date.now();
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

/** Seconds since the epoch with sub-millisecond precision, like Python's time.time(). */
export const timeNow = (): number => (performance.timeOrigin + performance.now()) / 1000;
