import { describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, renameSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LoggingLogAdapter, NullLog, StreamLog } from "../src/index.ts";
import { clock } from "../src/observe/clock.ts";
import { closeLog, LevelLog, openErrorLog, resolveLog } from "../src/observe/log.ts";

test("LoggingLogAdapter maps Python levels to logger methods and strips the newline", () => {
  const calls: string[] = [];
  const logger = {
    debug: (m: string) => calls.push(`debug ${m}`),
    info: (m: string) => calls.push(`info ${m}`),
    warn: (m: string) => calls.push(`warn ${m}`),
    error: (m: string) => calls.push(`error ${m}`),
  };
  new LoggingLogAdapter(logger, 10).write("a\n");
  new LoggingLogAdapter(logger).write("b\n");
  new LoggingLogAdapter(logger, 30).write("c");
  new LoggingLogAdapter(logger, 40).writelines(["d\n", "e\n"]);
  new LoggingLogAdapter(logger, 50).write("f\n");
  new LoggingLogAdapter(logger).write("\n");
  expect(calls).toEqual(["debug a", "info b", "warn c", "error d", "error e", "error f"]);
});

test("resolveLog: the default access log is a stderr StreamLog, null a NullLog, write()-ables kept, bad values refused", () => {
  expect(resolveLog("default", 20)).toBeInstanceOf(StreamLog);
  expect(resolveLog(null, 20)).toBeInstanceOf(NullLog);
  const sink = { write: (_s: string) => {} };
  expect(resolveLog(sink, 20)).toBe(sink);
  expect(resolveLog(console, 40)).toBeInstanceOf(LoggingLogAdapter);
  expect(() => resolveLog({} as never, 20)).toThrow("log option must be");
});

test("StreamLog writes a file and reopen() starts a new file after a rename (logrotate)", async () => {
  const dir = mkdtempSync(join(tmpdir(), "bunwsgi-log-"));
  try {
    const path = join(dir, "access.log");
    const log = new StreamLog({ path });
    log.write("one\n");
    log.flush();
    renameSync(path, `${path}.1`);
    log.reopen();
    log.write("two\n");
    log.flush();
    await Bun.sleep(10);
    expect(readFileSync(`${path}.1`, "latin1")).toBe("one\n");
    expect(readFileSync(path, "latin1")).toBe("two\n");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the Date header is an IMF-fixdate and the log timestamp is local YYYY-MM-DD HH:MM:SS", () => {
  const date = new TextDecoder().decode(clock.dateHeader());
  expect(date).toMatch(/^Date: (Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT\r\n$/);
  expect(Math.abs(Date.parse(date.slice(6, -2)) - Date.now())).toBeLessThan(2000);
  expect(clock.localTimestamp()).toMatch(/^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/);
});

test("the cached Date header moves on at each second boundary", async () => {
  const httpDate = (): string => new TextDecoder().decode(clock.dateHeader()).slice(6, -2);
  const second = (): number => Date.parse(httpDate()) / 1000;
  const first = second();
  // Just past the next boundary (timers fire no earlier than asked; 50 ms of slack for a busy machine).
  await Bun.sleep(1000 - (Date.now() % 1000) + 50);
  expect(second()).toBe(Math.floor(Date.now() / 1000));
  expect(second()).toBeGreaterThan(first);
  expect(new TextDecoder().decode(clock.dateHeader())).toMatch(/^Date: .* GMT\r\n$/);
});

describe("the error log's levels and timestamps", () => {
  const stamp = String.raw`\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\]`;
  function capture(): { sink: LevelLog; lines: () => string[] } {
    const out: string[] = [];
    return { sink: new LevelLog({ write: (s: string) => out.push(s) }), lines: () => out.join("").split("\n") };
  }

  test("a write is stamped with the local time and ERROR, or the level given", () => {
    const { sink, lines } = capture();
    sink.write("boom\n");
    sink.write("listening\n", "INFO");
    expect(lines()[0]).toMatch(new RegExp(`^${stamp} \\[ERROR\\] boom$`));
    expect(lines()[1]).toMatch(new RegExp(`^${stamp} \\[INFO\\] listening$`));
    expect(lines()[0]?.slice(1, 20)).toBe(clock.localTimestamp());
  });

  test("a stack trace gets one prefix and its lines stay whole; a line written in pieces gets one too", () => {
    const { sink, lines } = capture();
    sink.write("Error handling GET /\nError: x\n    at app (/a.ts:1:2)\n");
    sink.write("part one, ");
    sink.write("part two\n");
    const l = lines();
    expect(l[0]).toMatch(new RegExp(`^${stamp} \\[ERROR\\] Error handling GET /$`));
    expect(l.slice(1, 3)).toEqual(["Error: x", "    at app (/a.ts:1:2)"]);
    expect(l[3]).toMatch(new RegExp(`^${stamp} \\[ERROR\\] part one, part two$`));
  });

  test("a server message after an app's unfinished wsgi.errors line starts a line of its own", () => {
    const { sink, lines } = capture();
    sink.write("app: half a line");
    sink.write("Error handling GET /\n", "ERROR");
    const l = lines();
    expect(l[0]).toMatch(new RegExp(`^${stamp} \\[ERROR\\] app: half a line$`));
    expect(l[1]).toMatch(new RegExp(`^${stamp} \\[ERROR\\] Error handling GET /$`));
  });

  test("lines below the threshold (log.level) are dropped", () => {
    const out: string[] = [];
    const sink = new LevelLog({ write: (s: string) => out.push(s) }, "ERROR", 30);
    sink.write("debug detail\n", "DEBUG");
    sink.write("started\n", "INFO");
    sink.write("restart needed\n", "WARNING");
    sink.write("boom\n");
    expect(out.join("")).not.toContain("debug detail");
    expect(out.join("")).not.toContain("started");
    expect(out.join("")).toContain("[WARNING] restart needed");
    expect(out.join("")).toContain("[ERROR] boom");
  });

  test("the default error log is stamped; a sink or logger given by the caller is used as it is", () => {
    expect(resolveLog("default", 40)).toBeInstanceOf(LevelLog);
    const calls: string[] = [];
    const logger = { info: (m: string) => calls.push(`info ${m}`), error: (m: string) => calls.push(`error ${m}`) };
    const adapter = resolveLog(logger, 40);
    adapter.write("started\n", "INFO");
    adapter.write("failed\n");
    expect(calls).toEqual(["info started", "error failed"]);
  });

  test("openErrorLog stamps a file; none stays a NullLog (handlers skip it)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "bunwsgi-log-"));
    try {
      const log = openErrorLog([join(dir, "error.log")]);
      log.write("stopped\n", "INFO");
      closeLog(log);
      expect(readFileSync(join(dir, "error.log"), "utf8")).toMatch(new RegExp(`^${stamp} \\[INFO\\] stopped\\n$`));
      expect(openErrorLog(["none"])).toBeInstanceOf(NullLog);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("a log stream whose reader is gone (EPIPE)", () => {
  test("the server serves, and SIGTERM stops it: stdout and stderr piped into `head -c 1` drop lines once it leaves instead of throwing into requests and the stop", async () => {
    const root = join(import.meta.dir, "..");
    const probe = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    const port = probe.port;
    probe.stop(true);
    const server = `"${process.execPath}" "${join(root, "src/cli.ts")}" "${join(root, "examples/hello.ts")}" --bind 127.0.0.1:${port} --log-access none`;
    const shell = Bun.spawn(["bash", "-c", `${server} 2>&1 | head -c 1 > /dev/null`], { stdin: "ignore" });
    let pid = 0;
    try {
      let served = 0;
      for (const until = Date.now() + 10_000; served < 3 && Date.now() < until; ) {
        try {
          const res = await fetch(`http://127.0.0.1:${port}/`, { headers: { connection: "close" } });
          await res.text();
          if (res.status === 200) served++;
        } catch {
          await Bun.sleep(50);
        }
      }
      expect(served).toBe(3);
      // The server is the shell's child whose command line runs src/cli.ts.
      const children = readFileSync(`/proc/${shell.pid}/task/${shell.pid}/children`, "utf8").trim().split(" ");
      pid = Number(children.find((c) => readFileSync(`/proc/${c}/cmdline`, "utf8").includes("src/cli.ts")));
      process.kill(pid, "SIGTERM");
      expect(await Promise.race([shell.exited, Bun.sleep(8_000).then(() => "still running")])).toBe(0);
    } finally {
      if (pid > 0) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          // Gone, as it should be.
        }
      }
      shell.kill("SIGKILL");
    }
  }, 20_000);
});
