/** @module observe/log — log sinks: stream and file writers, the leveled error log, LoggingLogAdapter, and how log options resolve. */

import { closeSync, constants, fstatSync, openSync, statSync, writeSync } from "node:fs";
import type { FileSink } from "bun";
import { clock } from "./clock.ts";

/** With workers, the process id every error-log line names (gunicorn's `[pid]`); "" alone. */
let linePid = "";

/** Name this process's pid in its error-log lines: a master's and its workers' lines share the sinks. */
export function setLinePid(pid: number): void {
  linePid = `[${pid}] `;
}

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

/**
 * environ["wsgi.errors"]: PEP 3333's error stream, which an app may use as a Python text file:
 * write(), writelines() and flush().
 */
export interface ErrorStream {
  write(s: string): unknown;
  writelines(lines: Iterable<string>): unknown;
  flush(): unknown;
}

/** `sink` as an ErrorStream: itself when it has writelines() and flush(), else wrapped to add them. */
export function errorStream(sink: LogSink): ErrorStream {
  const s = sink as Partial<ErrorStream>;
  if (typeof s.writelines === "function" && typeof s.flush === "function") return sink as ErrorStream;
  return {
    write: (text: string) => sink.write(text),
    writelines: (lines: Iterable<string>) => {
      for (const line of lines) sink.write(line);
    },
    flush: () => sink.flush?.(),
  };
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
      line = `${this.atLineStart ? "" : "\n"}[${clock.localTimestamp()}] ${linePid}[${lvl}] ${s}`;
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
 * Open a log file for appending. open(2) of a named pipe for writing waits until a process reads
 * it: a log shipper not started yet held the start (or a SIGUSR1) there, with nothing said. A
 * pipe is tried without waiting first, and one that nobody reads is an error that says so.
 */
function openLogFile(path: string): number {
  if (statSync(path, { throwIfNoEntry: false })?.isFIFO() === true) {
    try {
      closeSync(openSync(path, constants.O_WRONLY | constants.O_NONBLOCK));
    } catch (e) {
      if ((e as { code?: string }).code === "ENXIO") {
        throw new Error(`${path} is a named pipe (FIFO) that no process reads: start its reader first`);
      }
      throw e;
    }
  }
  return openSync(path, "a", 0o640);
}

/** A file sink's buffer is written once it holds this much (else after the current task). */
const FILE_BATCH = 64 * 1024;

/**
 * Buffered writer for stderr, stdout or a file: many lines per syscall, flushed after the
 * current task so a line is never held back longer than one turn of the event loop.
 * Files are opened for appending (O_APPEND), so a restart or a second writer never
 * overwrites lines already there, and are written whole lines at a time, each batch with one
 * write(2): the workers of a master append to the same file, and O_APPEND makes each write land
 * whole after the others', so their lines never interleave, however long.
 */
export class StreamLog implements LogSink {
  readonly path: string | null;
  private sink: FileSink | null = null;
  private fd = -1;
  /**
   * Why the stream can no longer be written (EPIPE: the reader of a pipe is gone, as when the
   * server's output goes to `| head` or to a log collector that died), or null. A broken stream
   * stays broken; its lines are dropped. Writing a log line must never throw into the request,
   * the stop or the signal that wrote it: a SIGTERM whose "stopping" line threw left the server
   * running, its listeners closed, deaf to further signals.
   */
  broken: string | null = null;
  /**
   * Lines a file sink could not write (ENOSPC, EIO, …) and dropped since its last write that
   * succeeded; the next batch tries again. The first failure is said on stderr (the error log
   * may be this very file), and so is the count once a write succeeds again.
   */
  dropped = 0;
  private failing = false;
  /** A file's text not yet written: whole lines, then perhaps the start of one. */
  private pending = "";
  private scheduled = false;
  private readonly flushBound = (): void => {
    this.scheduled = false;
    this.flushLines();
  };

  /**
   * Opens a file target at once: a path that cannot be opened throws here, not on the first line.
   * stderr or stdout redirected to a regular file (`2>>site.log`) is written as a file is, on its
   * own descriptor: Bun's writer, failing once (a full disk, the file's size limit), dropped every
   * line after it without a word, also once the disk had room again. What it holds is written as
   * the process exits, as Bun's writer did: a failed start's last line comes just before its exit.
   */
  constructor(target: "stderr" | "stdout" | { path: string }) {
    this.path = typeof target === "string" ? null : target.path;
    if (typeof target !== "string") this.fd = openLogFile(target.path);
    else if (fstatSync(target === "stderr" ? 2 : 1).isFile()) {
      this.fd = target === "stderr" ? 2 : 1;
      process.once("exit", () => this.flush());
    } else this.sink = target === "stderr" ? Bun.stderr.writer() : Bun.stdout.writer();
  }

  write(s: string): void {
    if (this.sink !== null) {
      if (this.broken !== null) return;
      try {
        this.sink.write(s);
      } catch (e) {
        this.fail(e);
        return;
      }
    } else if (this.fd >= 0) {
      this.pending += s;
      if (this.pending.length >= FILE_BATCH) this.flushLines();
    }
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flushBound);
    }
  }

  /** Write what is buffered up to its last newline (a file), or all of it (a stream). */
  private flushLines(): void {
    if (this.sink !== null) {
      if (this.broken !== null) return;
      try {
        const done: unknown = this.sink.flush();
        // A stream that takes its bytes later (a pipe that is full) may fail then.
        if (done instanceof Promise) done.catch((e: unknown) => this.fail(e));
      } catch (e) {
        this.fail(e);
      }
      return;
    }
    const end = this.pending.lastIndexOf("\n") + 1;
    if (end === 0 || this.fd < 0) return;
    const lines = end === this.pending.length ? this.pending : this.pending.slice(0, end);
    this.pending = this.pending.slice(end);
    this.writeFile(lines);
  }

  /** Write everything buffered, an unfinished line too. */
  flush(): void {
    this.flushLines();
    if (this.fd >= 0 && this.pending !== "") {
      const rest = this.pending;
      this.pending = "";
      this.writeFile(rest);
    }
  }

  /** One write(2) of whole lines to the file; a failure drops them (counted), not the server. */
  private writeFile(text: string): void {
    try {
      writeSync(this.fd, text);
    } catch (e) {
      // stderr itself cannot be told that it cannot be written.
      if (!this.failing && this.path !== null) {
        stderrErrors().write(
          `bunwsgi: cannot write log file ${this.path}: ${(e as Error).message}; its lines are dropped until a write succeeds\n`,
          "ERROR",
        );
      }
      this.failing = true;
      for (let i = text.indexOf("\n"); i >= 0; i = text.indexOf("\n", i + 1)) this.dropped++;
      return;
    }
    if (this.failing) {
      const what = this.path === null ? `${this.fd === 2 ? "stderr" : "stdout"} (a file)` : `log file ${this.path}`;
      stderrErrors().write(`bunwsgi: ${what} written again; ${this.dropped} lines were dropped\n`, "WARNING");
      this.failing = false;
      this.dropped = 0;
    }
  }

  /** The stream refused a write: it stays broken, and what follows is dropped. */
  private fail(e: unknown): void {
    this.broken ??= (e as { code?: string }).code ?? String(e);
  }

  /** Re-open a file sink at its path (after logrotate moved it); a stream sink just flushes. */
  reopen(): void {
    this.flush();
    if (this.path === null) return;
    const oldFd = this.fd;
    this.fd = openLogFile(this.path);
    closeSync(oldFd);
  }

  /** Flush and close a file sink (stdout/stderr stay open). */
  close(): void {
    this.flush();
    if (this.fd >= 0 && this.path !== null) {
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

/**
 * Re-open every file behind a sink (StreamLog, or TeeLog of them); for SIGUSR1. A file that
 * cannot be opened again keeps its old descriptor and does not stop the others: each is
 * added to `failures` as "path: why", which is returned.
 */
export function reopenLog(sink: LogSink, failures: string[] = []): string[] {
  if (sink instanceof TeeLog) for (const s of sink.sinks) reopenLog(s, failures);
  else if (sink instanceof LevelLog) reopenLog(sink.target, failures);
  else if (sink instanceof StreamLog) {
    try {
      sink.reopen();
    } catch (e) {
      // Node's message ends with ", open '<path>'": the path leads the line already.
      failures.push(`${sink.path}: ${(e as Error).message.replace(/, open '.*'$/, "")}`);
    }
  }
  return failures;
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

/** stderr stamped as the error log is: the default error log, and where a file sink says it cannot write. */
function stderrErrors(): LevelLog {
  stderrErrorLog ??= new LevelLog(defaultLog());
  return stderrErrorLog;
}

/**
 * Resolve a log option the way gevent does; `level` applies when a logger object is wrapped.
 * The default error log (level 40 and up) is stderr with timestamps and levels; a sink or logger
 * the caller gives is used as it is (a logger stamps its own lines).
 */
export function resolveLog(option: LogOption | undefined, level: number): LogSink {
  if (option === undefined || option === "default") {
    return level < 40 ? defaultLog() : stderrErrors();
  }
  if (option === null) return new NullLog();
  // Logger first: Bun's console also has write(), but a console is meant as a logger.
  const logger = option as Logger;
  if (typeof logger.info === "function" && typeof logger.error === "function") return new LoggingLogAdapter(logger, level);
  if (typeof (option as LogSink).write === "function") return option as LogSink;
  throw new TypeError("log option must be 'default', null, an object with write(s), or a logger with info()/error()");
}
