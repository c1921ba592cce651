import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildBinary, launchWithFd3, Proc } from "./binary.ts";
import { makeCertificates, RawClient } from "./helpers.ts";

/*
 * The compiled binary, run as a process from a temp folder that holds an app module (which
 * imports a relative module) and a bunwsgi.toml, as a user deploys it.
 */

const dir = mkdtempSync(join(tmpdir(), "bunwsgi-cli-"));
const binary = join(dir, "bin", "bunwsgi");
const embeddedBinary = join(dir, "bin", "bunwsgi-embedded");

const APP = `import { greeting } from "./greeting.ts";
export default function app(env: Record<string, unknown>, startResponse: (s: string, h: [string, string][]) => unknown) {
  if (env.PATH_INFO === "/slow") {
    startResponse("200 OK", [["Content-Type", "text/plain"]]);
    return (async function* () {
      await Bun.sleep(800);
      yield "slow ";
      yield "done";
    })();
  }
  startResponse("200 OK", [["Content-Type", "text/plain"]]);
  return [\`\${greeting} \${env.SSL_CLIENT_VERIFY ?? "-"} \${env.SSL_CLIENT_S_DN ?? "-"} \${env.APP_ENV ?? "-"}\`];
}
export const named = (_env: unknown, startResponse: (s: string, h: [string, string][]) => unknown) => {
  startResponse("200 OK", []);
  return ["named export"];
};
`;

beforeAll(async () => {
  mkdirSync(join(dir, "bin"));
  writeFileSync(join(dir, "greeting.ts"), 'export const greeting = "hello v1";\n');
  writeFileSync(join(dir, "app.ts"), APP);
  await Promise.all([
    buildBinary(["--outfile", binary]),
    buildBinary(["--outfile", embeddedBinary, "--app", join(dir, "app.ts")]),
    makeCertificates(dir),
  ]);
}, 120_000);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

const running: Proc[] = [];
afterAll(async () => {
  for (const p of running) p.kill("SIGKILL");
});

/** A fresh folder with the app, its relative import and a config; returns the folder. */
function site(name: string, toml: string): string {
  const d = join(dir, name);
  mkdirSync(d);
  copyFileSync(join(dir, "app.ts"), join(d, "app.ts"));
  copyFileSync(join(dir, "greeting.ts"), join(d, "greeting.ts"));
  writeFileSync(join(d, "bunwsgi.toml"), toml);
  return d;
}

function start(cwd: string, args: string[] = [], bin = binary, env: Record<string, string> = {}): Proc {
  const p = new Proc(args, cwd, bin, env);
  running.push(p);
  return p;
}

async function curl(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const p = Bun.spawn(["curl", "-sS", "--max-time", "10", ...args], { stdout: "pipe", stderr: "pipe" });
  const [code, out, err] = await Promise.all([p.exited, new Response(p.stdout).text(), new Response(p.stderr).text()]);
  return { code, out, err };
}

async function waitForFile(path: string, text: string, ms = 5000): Promise<string> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const body = existsSync(path) ? readFileSync(path, "utf8") : "";
    if (body.includes(text)) return body;
    await Bun.sleep(20);
  }
  throw new Error(`${path} never contained ${text}`);
}

describe("serving from a config file", () => {
  test("serves over TCP and a unix socket, loading the app (and its relative import) from the config's folder", async () => {
    const d = site(
      "tcp-unix",
      'app = "app.ts"\nbind = ["127.0.0.1:0", "unix:./app.sock"]\npidfile = "run.pid"\n[environ]\nAPP_ENV = "prod"\n',
    );
    // Started from another folder: paths resolve against the config file, not the working folder.
    const p = start(dir, ["--config", join(d, "bunwsgi.toml")]);
    const port = await p.port();
    await p.waitFor(`listening on unix:${join(d, "app.sock")}`);
    expect((await curl(`http://127.0.0.1:${port}/`)).out).toBe("hello v1 - - prod");
    expect((await curl("--unix-socket", join(d, "app.sock"), "http://localhost/")).out).toBe("hello v1 - - prod");
    expect(readFileSync(join(d, "run.pid"), "utf8").trim()).toBe(String(p.p.pid));
    p.kill("SIGTERM");
    expect(await p.exit()).toBe(0);
    expect(existsSync(join(d, "run.pid"))).toBe(false);
    expect(existsSync(join(d, "app.sock"))).toBe(false);
  });

  test("the app's own node_modules resolve beside it, in TypeScript or JavaScript", async () => {
    const d = site("pkgs", 'app = "app.mjs:handler"\nbind = "127.0.0.1:0"\n');
    mkdirSync(join(d, "node_modules", "shout"), { recursive: true });
    writeFileSync(join(d, "node_modules", "shout", "package.json"), '{ "name": "shout", "main": "index.js" }\n');
    writeFileSync(join(d, "node_modules", "shout", "index.js"), "module.exports = (s) => s.toUpperCase() + '!';\n");
    writeFileSync(
      join(d, "app.mjs"),
      'import shout from "shout";\nexport function handler(env, sr) { sr("200 OK", []); return [shout("from a package")]; }\n',
    );
    const p = start(d);
    const port = await p.port();
    expect((await curl(`http://127.0.0.1:${port}/`)).out).toBe("FROM A PACKAGE!");
    p.kill();
    expect(await p.exit()).toBe(0);
  });

  test("a stale unix socket file left by a killed server is replaced; a live one is refused", async () => {
    const d = site("stale", 'app = "app.ts"\nbind = "unix:./s.sock"\n');
    const first = start(d);
    await first.waitFor("listening on unix:");
    const second = start(d);
    expect(await second.exit()).toBe(2);
    expect(second.stderr).toContain("another server is accepting connections there");
    first.kill("SIGKILL");
    await first.exit();
    expect(existsSync(join(d, "s.sock"))).toBe(true);
    const third = start(d);
    await third.waitFor("listening on unix:");
    expect((await curl("--unix-socket", join(d, "s.sock"), "http://localhost/")).out).toBe("hello v1 - - -");
    third.kill();
    expect(await third.exit()).toBe(0);
  });

  test("serves an inherited listening socket given as fd://3 (systemd-style)", async () => {
    const d = site("fd", 'app = "app.ts"\nbind = "fd://3"\n');
    const { node, port } = await launchWithFd3(binary, d);
    try {
      let res = await curl("--retry", "20", "--retry-connrefused", "--retry-delay", "0", `http://127.0.0.1:${port}/`);
      for (let i = 0; i < 50 && res.out === ""; i++) {
        await Bun.sleep(50);
        res = await curl(`http://127.0.0.1:${port}/`);
      }
      expect(res.out).toBe("hello v1 - - -");
    } finally {
      node.kill("SIGTERM");
    }
    expect(await node.exited).toBe(0);
  });

  test("flags override the file: --bind, --log-access and a positional APP with an export", async () => {
    const d = site("flags", 'app = "app.ts"\nbind = "127.0.0.1:1"\n[log]\naccess = "none"\n');
    const p = start(d, ["app.ts:named", "--bind", "127.0.0.1:0", "--log-access", "flag.log"]);
    const port = await p.port();
    expect((await curl(`http://127.0.0.1:${port}/f`)).out).toBe("named export");
    expect(await waitForFile(join(d, "flag.log"), '"GET /f HTTP/1.1" 200')).toContain("127.0.0.1 - - [");
    p.kill();
    expect(await p.exit()).toBe(0);
  });
});

describe("TLS", () => {
  test("serves HTTPS with a CA and server certificate made at test time, verified by fetch and curl", async () => {
    const d = site("tls", `app = "app.ts"\nbind = "127.0.0.1:0"\n[tls]\ncert = "../srv.pem"\nkey = "../srv.key"\n`);
    const p = start(d);
    const port = await p.port("https");
    const ca = readFileSync(join(dir, "ca.pem"), "utf8");
    const res = await fetch(`https://127.0.0.1:${port}/`, { tls: { ca } });
    expect(await res.text()).toBe("hello v1 NONE - -");
    expect(
      (await curl("--cacert", join(dir, "ca.pem"), `https://localhost:${port}/`, "--resolve", `localhost:${port}:127.0.0.1`)).out,
    ).toBe("hello v1 NONE - -");
    expect((await curl(`https://127.0.0.1:${port}/`)).code).not.toBe(0);
    p.kill();
    expect(await p.exit()).toBe(0);
  });

  test('client_auth = "require": a client certificate from the CA is accepted and its subject reaches environ; none is refused', async () => {
    const d = site(
      "mtls",
      `app = "app.ts"\nbind = "127.0.0.1:0"\n[tls]\ncert = "../srv.pem"\nkey = "../srv.key"\nca = "../ca.pem"\nclient_auth = "require"\n`,
    );
    const p = start(d);
    const port = await p.port("https");
    const url = `https://127.0.0.1:${port}/`;
    const ca = join(dir, "ca.pem");
    const withCert = await curl("--cacert", ca, "--cert", join(dir, "client.pem"), "--key", join(dir, "client.key"), url);
    expect(withCert.out).toBe("hello v1 SUCCESS CN=alice,O=Example Org -");
    const without = await curl("--cacert", ca, url);
    expect(without.code).not.toBe(0);
    expect(without.out).toBe("");
    // A certificate the CA did not sign is refused too.
    const selfSigned = await curl("--cacert", ca, "--cert", join(dir, "stranger.pem"), "--key", join(dir, "stranger.key"), url);
    expect(selfSigned.out).not.toContain("hello");
    p.kill();
    expect(await p.exit()).toBe(0);
  });
});

describe("logs", () => {
  test("the access log file gets a line in each format", async () => {
    const formats: Record<string, (line: string) => void> = {
      gevent: (l) =>
        expect(l).toMatch(/^127\.0\.0\.1 - - \[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\] "GET \/a\?q=1 HTTP\/1\.1" 200 \d+ \d+\.\d{6}$/),
      combined: (l) =>
        expect(l).toMatch(
          /^127\.0\.0\.1 - - \[\d\d\/\w{3}\/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] "GET \/a\?q=1 HTTP\/1\.1" 200 14 "-" "agent \\"x\\""$/,
        ),
      json: (l) => {
        const o = JSON.parse(l);
        expect([o.method, o.target, o.status, o.body_length, o.user_agent, o.remote_addr]).toEqual([
          "GET",
          "/a?q=1",
          200,
          14,
          'agent "x"',
          "127.0.0.1",
        ]);
      },
      "{method} {path} q={query} {status} {header:user-agent}": (l) => expect(l).toBe('GET /a q=q=1 200 agent \\"x\\"'),
    };
    await Promise.all(
      Object.entries(formats).map(async ([format, check], i) => {
        const d = site(
          `format${i}`,
          `app = "app.ts"\nbind = "127.0.0.1:0"\n[log]\naccess = "access.log"\nformat = ${JSON.stringify(format)}\n`,
        );
        const p = start(d);
        const port = await p.port();
        await curl("-A", 'agent "x"', `http://127.0.0.1:${port}/a?q=1`);
        const body = await waitForFile(join(d, "access.log"), "\n");
        check(body.trimEnd());
        p.kill();
        expect(await p.exit()).toBe(0);
      }),
    );
  });

  test("the json access log reads a UTF-8 User-Agent and Referer as text, not each byte as a Latin-1 character; bytes that are not UTF-8 as \\xHH", async () => {
    const d = site("json-utf8", 'app = "app.ts"\nbind = "127.0.0.1:0"\n[log]\naccess = "access.log"\nformat = "json"\n');
    const p = start(d);
    const port = await p.port();
    const c = await RawClient.connect(port);
    c.send(
      Buffer.concat([
        Buffer.from(
          "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nUser-Agent: Navigateur é ✓\r\nReferer: https://example.com/caf",
        ),
        Buffer.from([0xff, 0xc3]),
        Buffer.from("\r\n\r\n"),
      ]),
    );
    await c.waitClosed();
    const o = JSON.parse((await waitForFile(join(d, "access.log"), "\n")).trimEnd());
    expect([o.user_agent, o.referer]).toEqual(["Navigateur é ✓", "https://example.com/caf\\xff\\xc3"]);
    p.kill();
    expect(await p.exit()).toBe(0);
  });

  test("after the access log is renamed, SIGUSR1 makes a new file and old lines stay in the renamed one", async () => {
    const d = site("rotate", 'app = "app.ts"\nbind = "127.0.0.1:0"\n[log]\naccess = "access.log"\n');
    const p = start(d);
    const port = await p.port();
    await curl(`http://127.0.0.1:${port}/before`);
    await waitForFile(join(d, "access.log"), "/before");
    renameSync(join(d, "access.log"), join(d, "access.log.1"));
    p.kill("SIGUSR1");
    await p.waitFor("log files reopened");
    await curl(`http://127.0.0.1:${port}/after`);
    const fresh = await waitForFile(join(d, "access.log"), "/after");
    expect(fresh).not.toContain("/before");
    expect(readFileSync(join(d, "access.log.1"), "utf8")).not.toContain("/after");
    p.kill();
    expect(await p.exit()).toBe(0);
  });

  test("an access log that cannot be written (a full disk) is said once on stderr, not dropped in silence; once written again, how many lines were lost", async () => {
    const d = site("full-disk", 'app = "app.ts"\nbind = "127.0.0.1:0"\n[log]\naccess = "access.log"\n');
    symlinkSync("/dev/full", join(d, "access.log"));
    const p = start(d);
    const port = await p.port();
    for (const path of ["/one", "/two", "/three"]) {
      await curl(`http://127.0.0.1:${port}${path}`);
      await Bun.sleep(50);
    }
    await p.waitFor(`[ERROR] bunwsgi: cannot write log file ${join(d, "access.log")}: ENOSPC`);
    expect(p.stderr.split("cannot write log file").length - 1).toBe(1);
    rmSync(join(d, "access.log"));
    p.kill("SIGUSR1");
    await p.waitFor("log files reopened");
    await curl(`http://127.0.0.1:${port}/after`);
    await waitForFile(join(d, "access.log"), "/after");
    await p.waitFor(`[WARNING] bunwsgi: log file ${join(d, "access.log")} written again; 3 lines were dropped`);
    p.kill();
    expect(await p.exit()).toBe(0);
  });

  test("an access log that is a named pipe nobody reads fails the start at once, saying so, instead of hanging in open(2) before a word is logged", async () => {
    const d = site("fifo-log", 'app = "app.ts"\nbind = "127.0.0.1:0"\n[log]\naccess = "access.fifo"\n');
    expect(Bun.spawnSync(["mkfifo", join(d, "access.fifo")]).exitCode).toBe(0);
    const p = start(d);
    expect(await Promise.race([p.exit(), Bun.sleep(4000).then(() => "hung")])).toBe(2);
    expect(p.stderr).toContain(
      `[ERROR] bunwsgi: cannot start: cannot open log files: ${join(d, "access.fifo")} is a named pipe (FIFO) that no process reads: start its reader first`,
    );
  });

  test("stderr that could not be written for a while (a file at its size limit: EFBIG, as ENOSPC) is written again once it can be, not silenced until a restart", async () => {
    const d = site("stderr-full", 'app = "app.ts"\nbind = "127.0.0.1:0"\n');
    const err = join(d, "stderr.log");
    // ulimit -f: writes past 4 KiB fail (EFBIG; Bun ignores SIGXFSZ) until the file is truncated.
    const p = Bun.spawn(["bash", "-c", `ulimit -f 4; exec "${binary}" 2>>"${err}"`], { cwd: d, stdin: "ignore" });
    try {
      const port = Number(((await waitForFile(err, "listening on")).match(/127\.0\.0\.1:(\d+)/) as RegExpMatchArray)[1]);
      for (let i = 0; i < 200 && statSync(err).size < 4096; i++) await curl(`http://127.0.0.1:${port}/filling`);
      expect(statSync(err).size).toBe(4096);
      for (let i = 0; i < 5; i++) await curl(`http://127.0.0.1:${port}/lost`);
      writeFileSync(err, "");
      await curl(`http://127.0.0.1:${port}/after`);
      await waitForFile(err, "/after");
      p.kill("SIGTERM");
      expect(await p.exited).toBe(0);
      const after = readFileSync(err, "utf8");
      expect(after).toMatch(/\[WARNING\] bunwsgi: stderr \(a file\) written again; ([5-9]|\d\d+) lines were dropped\n/);
      expect(after).toContain("[INFO] bunwsgi: stopped");
    } finally {
      p.kill("SIGKILL");
    }
  }, 20_000);

  test("stderr redirected to a file still gets a failed start's last line before the exit", async () => {
    const d = site("stderr-file-exit", 'app = "app.ts"\nbind = "127.0.0.1:0"\n[log]\naccess = "access.fifo"\n');
    expect(Bun.spawnSync(["mkfifo", join(d, "access.fifo")]).exitCode).toBe(0);
    const err = join(d, "stderr.log");
    const p = Bun.spawn(["bash", "-c", `exec "${binary}" 2>>"${err}"`], { cwd: d, stdin: "ignore" });
    expect(await Promise.race([p.exited, Bun.sleep(4000).then(() => "hung")])).toBe(2);
    expect(readFileSync(err, "utf8")).toContain("[ERROR] bunwsgi: cannot start: cannot open log files:");
  });

  test("SIGUSR1 reopens every log file it can: one whose folder is gone is named, and the error log after it still moves to its new file", async () => {
    const d = site(
      "rotate-partly",
      'app = "app.ts"\nbind = "127.0.0.1:0"\n[log]\naccess = ["gone/access.log", "access.log"]\nerror = "error.log"\n',
    );
    mkdirSync(join(d, "gone"));
    const p = start(d);
    await waitForFile(join(d, "error.log"), "listening on");
    renameSync(join(d, "error.log"), join(d, "error.log.1"));
    renameSync(join(d, "access.log"), join(d, "access.log.1"));
    rmSync(join(d, "gone"), { recursive: true });
    p.kill("SIGUSR1");
    const fresh = await waitForFile(join(d, "error.log"), "SIGUSR1");
    expect(fresh).toContain(`[ERROR] bunwsgi: SIGUSR1: cannot reopen ${join(d, "gone/access.log")}: ENOENT`);
    expect(fresh).not.toContain("log files reopened");
    expect(existsSync(join(d, "access.log"))).toBe(true);
    expect(readFileSync(join(d, "error.log.1"), "utf8")).not.toContain("SIGUSR1");
    p.kill();
    expect(await p.exit()).toBe(0);
  });
});

describe("signals", () => {
  test("SIGTERM during a slow request lets it complete with Connection: close, then exits 0", async () => {
    const d = site("term", 'app = "app.ts"\nbind = "127.0.0.1:0"\n');
    const p = start(d);
    const port = await p.port();
    const idle = await RawClient.connect(port);
    const slow = await RawClient.connect(port);
    slow.send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
    await Bun.sleep(200);
    p.kill("SIGTERM");
    const res = await slow.response();
    expect(res.status).toBe(200);
    expect(res.header("connection")).toBe("close");
    expect(res.body).toBe("slow done");
    await idle.waitClosed(2000);
    expect(await p.exit()).toBe(0);
    expect(p.stderr).toContain("SIGTERM: stopping gracefully");
  });

  test("a second SIGTERM cuts the request in flight at once, and its access record and the stopped line are still written", async () => {
    const d = site("term-twice", 'app = "app.ts"\nbind = "127.0.0.1:0"\n[log]\naccess = "access.log"\n');
    const p = start(d);
    const port = await p.port();
    const slow = await RawClient.connect(port);
    slow.send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
    await Bun.sleep(200);
    p.kill("SIGTERM");
    await p.waitFor("SIGTERM: stopping gracefully");
    p.kill("SIGTERM");
    expect(await p.exit()).toBe(0);
    expect(p.stderr).toContain("SIGTERM again: closing all connections now");
    expect(p.stderr).toContain("bunwsgi: stopped");
    // Cut before its first byte: logged, as at the shutdown deadline, with no status sent.
    expect(readFileSync(join(d, "access.log"), "utf8")).toContain('"GET /slow HTTP/1.1"');
    await slow.waitClosed(2000);
  });

  test("SIGTTIN, SIGTTOU and SIGUSR2 to a single process are refused with a warning, and it serves on (their default action would stop it)", async () => {
    const d = site("job-signals", 'app = "app.ts"\nbind = "127.0.0.1:0"\n[log]\naccess = "none"\n');
    const p = start(d);
    const port = await p.port();
    for (const sig of ["SIGTTIN", "SIGTTOU", "SIGUSR2"] as const) {
      p.kill(sig);
      await p.waitFor(`${sig} ignored:`);
    }
    expect(p.stderr).toContain("SIGTTIN ignored: adding a worker needs a master (workers ≥ 1)");
    expect((await curl(`http://127.0.0.1:${port}/`)).out).toBe("hello v1 - - -");
    p.kill();
    expect(await p.exit()).toBe(0);
  });

  test("SIGHUP to workers = 2 in a single process says it takes a restart, and it serves on alone", async () => {
    const d = site("hup-workers", 'app = "app.ts"\nbind = "127.0.0.1:0"\n[log]\naccess = "none"\n');
    const p = start(d);
    const port = await p.port();
    writeFileSync(join(d, "bunwsgi.toml"), 'app = "app.ts"\nbind = "127.0.0.1:0"\nworkers = 2\n[log]\naccess = "none"\n');
    p.kill("SIGHUP");
    await p.waitFor("SIGHUP: reloaded");
    expect(p.stderr).toContain(
      "workers = 2 needs a restart (a single process has no master to start workers); still a single process",
    );
    expect(p.stderr).not.toContain("worker 0");
    expect((await curl(`http://127.0.0.1:${port}/`)).out).toBe("hello v1 - - -");
    p.kill();
    expect(await p.exit()).toBe(0);
  });

  test("SIGHUP with a changed app serves the new app without refusing a connection", async () => {
    const d = site("hup", 'app = "app.ts"\nbind = "127.0.0.1:0"\n[log]\naccess = "none"\n');
    const p = start(d);
    const port = await p.port();
    const seen = new Set<string>();
    let failures = 0;
    let go = true;
    const hammer = (async () => {
      for (let i = 0; go && i < 5000; i++) {
        try {
          seen.add(await (await fetch(`http://127.0.0.1:${port}/`, { headers: { connection: "close" } })).text());
        } catch {
          failures++;
        }
      }
    })();
    await Bun.sleep(100);
    writeFileSync(join(d, "greeting.ts"), 'export const greeting = "hello v2";\n');
    p.kill("SIGHUP");
    await p.waitFor("SIGHUP: reloaded");
    await Bun.sleep(100);
    go = false;
    await hammer;
    expect(failures).toBe(0);
    expect([...seen].sort()).toEqual(["hello v1 - - -", "hello v2 - - -"]);
    expect((await curl(`http://127.0.0.1:${port}/`)).out).toBe("hello v2 - - -");

    // A reload whose app fails to load keeps serving the old one and says why.
    writeFileSync(join(d, "greeting.ts"), "export const greeting = ;\n");
    p.kill("SIGHUP");
    await p.waitFor("reload failed, still serving the previous configuration");
    expect((await curl(`http://127.0.0.1:${port}/`)).out).toBe("hello v2 - - -");
    p.kill();
    expect(await p.exit()).toBe(0);
  });
});

describe("timeouts", () => {
  test("a slowloris connection gets 408 after the header timeout while other clients are served", async () => {
    const d = site("slowloris", 'app = "app.ts"\nbind = "127.0.0.1:0"\n[timeouts]\nheader = 1\n');
    const p = start(d);
    const port = await p.port();
    const loris = await RawClient.connect(port);
    const started = Date.now();
    loris.send("GET / HTTP/1.1\r\nHost: x\r\n");
    for (let i = 0; i < 3; i++) {
      await Bun.sleep(200);
      loris.send(`X-Drip-${i}: 1\r\n`);
      expect((await curl(`http://127.0.0.1:${port}/`)).out).toBe("hello v1 - - -");
    }
    const res = await loris.response({ ms: 5000 });
    expect(res.status).toBe(408);
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
    await loris.waitClosed(2000);
    // The server half-closed and lingers, reading on, until the client closes its side too.
    loris.close();
    p.kill();
    expect(await p.exit()).toBe(0);
  });
});

describe("bunwsgi check", () => {
  const cases: Array<[string, string, string[]]> = [
    [
      "unknown key",
      'app = "app.ts"\n[timeouts]\nkeepalive = 5\n',
      ['bunwsgi.toml:3: timeouts.keepalive: unknown key; did you mean "keep_alive"?'],
    ],
    [
      "wrong type",
      'app = "app.ts"\nspawn = "ten"\n',
      ['bunwsgi.toml:2: spawn: expected an integer from 1 to 10,000,000, got the string "ten"'],
    ],
    ["missing app", 'app = "missing.ts"\n', ["bunwsgi.toml:1: app: module", "missing.ts not found"]],
    [
      "missing cert",
      'app = "app.ts"\n[tls]\ncert = "nope.pem"\nkey = "../srv.key"\n',
      ["bunwsgi.toml:3: tls.cert: file", "nope.pem not found"],
    ],
  ];
  for (const [name, toml, messages] of cases) {
    test(`exits 2 and names the file, line and key: ${name}`, async () => {
      const d = site(`check-${name.replace(/ /g, "-")}`, toml);
      const p = start(d, ["check"]);
      expect(await p.exit()).toBe(2);
      for (const m of messages) expect(p.stderr).toContain(m);
    });
  }

  test("a valid config exits 0 and prints the resolved config with each value's source", async () => {
    const d = site("check-ok", 'app = "app.ts"\n[limits]\nbody = 1024\n');
    const p = Bun.spawn([binary, "check", "--timeouts-header", "5"], { cwd: d, stdout: "pipe", stderr: "pipe" });
    const out = await new Response(p.stdout).text();
    expect(await p.exited).toBe(0);
    expect(out).toContain(`app = "${join(d, "app.ts")}"  # file`);
    expect(out).toContain("body = 1024  # file");
    expect(out).toContain("header = 5  # flag");
    expect(out).toContain('bind = ["127.0.0.1:8000"]  # default');
    expect(Bun.TOML.parse(out.replace(/^#.*$/gm, ""))).toBeTruthy();
  });

  test("an app that throws while loading or has no such export fails check with its name", async () => {
    const d = site("check-throws", 'app = "boom.ts"\n');
    writeFileSync(join(d, "boom.ts"), 'throw new Error("kaboom at import");\n');
    const p = start(d, ["check"]);
    expect(await p.exit()).toBe(2);
    // The stack, not only the message: where it was thrown.
    expect(p.stderr).toContain(`cannot load application module ${join(d, "boom.ts")}: Error: kaboom at import\n    at `);
    expect(p.stderr).toContain(`${join(d, "boom.ts")}:1:`);
    const q = start(d, ["check", "app.ts:absent"]);
    expect(await q.exit()).toBe(2);
    expect(q.stderr).toContain('has no export "absent" (it exports: default, named)');
  });
});

describe("the binary's command line", () => {
  test("--version and --help print and exit 0; an unknown flag exits 2 with a suggestion", async () => {
    const v = Bun.spawn([binary, "--version"], { stdout: "pipe" });
    expect(await new Response(v.stdout).text()).toMatch(/^bunwsgi \d+\.\d+\.\d+ \(Bun /);
    expect(await v.exited).toBe(0);
    const h = Bun.spawn([binary, "--help"], { stdout: "pipe" });
    const help = await new Response(h.stdout).text();
    expect(help).toContain("Usage: bunwsgi");
    expect(help).toContain("--timeouts-keep-alive SECONDS");
    expect(await h.exited).toBe(0);
    const bad = Bun.spawn([binary, "--tls-cetr", "x"], { stderr: "pipe" });
    expect(await bad.exited).toBe(2);
    expect(await new Response(bad.stderr).text()).toContain("unknown option --tls-cetr; did you mean --tls-cert?");
  });

  test("the server starts again in place (same PID) with mimalloc's purge delay at 10 s; an operator's own value stands", async () => {
    const d = site("allocator", 'app = "app.ts"\nbind = "127.0.0.1:0"\n');
    const environOf = (pid: number): string[] => readFileSync(`/proc/${pid}/environ`, "latin1").split("\0");
    for (const [given, expected] of [
      [null, "MIMALLOC_PURGE_DELAY=10000"],
      ["250", "MIMALLOC_PURGE_DELAY=250"],
    ] as const) {
      const p = start(d, [], binary, given === null ? {} : { MIMALLOC_PURGE_DELAY: given });
      const port = await p.port();
      expect((await curl(`http://127.0.0.1:${port}/`)).out).toBe("hello v1 - - -");
      // The process that serves is the one spawned (execve keeps the PID), and it has the setting.
      expect(environOf(p.p.pid)).toContain(expected);
      expect(environOf(p.p.pid).filter((v) => v.startsWith("MIMALLOC_PURGE_DELAY="))).toHaveLength(1);
      p.kill();
      expect(await p.exit()).toBe(0);
    }
  });

  test("an embedded-app binary serves alone in an empty folder", async () => {
    const lonely = join(dir, "lonely");
    mkdirSync(lonely);
    copyFileSync(embeddedBinary, join(lonely, "service"));
    rmSync(embeddedBinary);
    const p = start(lonely, ["--bind", "127.0.0.1:0"], join(lonely, "service"));
    const port = await p.port();
    await p.waitFor("(embedded)");
    expect((await curl(`http://127.0.0.1:${port}/`)).out).toBe("hello v1 - - -");
    p.kill();
    expect(await p.exit()).toBe(0);
  });
});

describe("production deploy (issue #20)", () => {
  const stamp = String.raw`\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\]`;

  test("SIGHUP warns about a restart-only change each time it differs from what runs, and not once it matches again", async () => {
    const d = site("hup-restart", 'app = "app.ts"\nbind = "127.0.0.1:0"\n[log]\naccess = "none"\n');
    const p = start(d);
    await p.port();
    const warning = 'bind changed but needs a restart; still using "127.0.0.1:0", not "127.0.0.1:1"';
    const count = (): number => p.stderr.split("SIGHUP: reloaded").length - 1;
    const reload = async (toml: string): Promise<void> => {
      const before = count();
      writeFileSync(join(d, "bunwsgi.toml"), toml);
      p.kill("SIGHUP");
      const deadline = Date.now() + 5000;
      while (count() === before && Date.now() < deadline) await Bun.sleep(20);
      await Bun.sleep(50);
    };
    const changed = 'app = "app.ts"\nbind = "127.0.0.1:1"\n[log]\naccess = "none"\n';
    await reload(changed);
    expect(p.stderr.split(warning).length - 1).toBe(1);
    await reload(changed);
    expect(p.stderr.split(warning).length - 1).toBe(2);
    await reload('app = "app.ts"\nbind = "127.0.0.1:0"\n[log]\naccess = "none"\n');
    expect(count()).toBe(3);
    expect(p.stderr.split("needs a restart").length - 1).toBe(2);
    expect(p.stderr).toMatch(
      new RegExp(`${stamp} \\[WARNING\\] bunwsgi: SIGHUP: ${warning.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}`),
    );
    p.kill();
    expect(await p.exit()).toBe(0);
  });

  test("SIGHUP after a certificate is renewed in place says it takes a restart", async () => {
    const d = site("hup-cert", `app = "app.ts"\nbind = "127.0.0.1:0"\n[tls]\ncert = "cert.pem"\nkey = "../srv.key"\n`);
    copyFileSync(join(dir, "srv.pem"), join(d, "cert.pem"));
    const p = start(d);
    await p.port("https");
    writeFileSync(join(d, "cert.pem"), `${readFileSync(join(dir, "srv.pem"), "utf8")}\n`);
    p.kill("SIGHUP");
    await p.waitFor("SIGHUP: reloaded");
    await p.waitFor(`tls.cert: ${join(d, "cert.pem")} changed on disk, but Bun.listen cannot swap certificates`);
    p.kill();
    expect(await p.exit()).toBe(0);
  });

  test("the binary logs error class names and stack frames as in the source", async () => {
    const d = site("names", 'app = "bad.ts"\nbind = "127.0.0.1:0"\n');
    writeFileSync(
      join(d, "bad.ts"),
      'export default (_e: unknown, sr: (s: string, h: never[]) => void) => { sr("999 nope", []); return []; };\n',
    );
    const p = start(d);
    const port = await p.port();
    expect((await curl("-o", "/dev/null", "-w", "%{http_code}", `http://127.0.0.1:${port}/`)).out).toBe("500");
    await p.waitFor('ContractError: invalid status "999 nope"');
    expect(p.stderr).toMatch(/\n {4}at startResponse \(/);
    p.kill();
    expect(await p.exit()).toBe(0);
  });

  test("a thrown value that cannot be made a string is logged as one, by the request or module that threw it, not as the logger's own TypeError", async () => {
    const d = site("hostile-throw", 'app = "hostile.ts"\nbind = "127.0.0.1:0"\n');
    writeFileSync(
      join(d, "hostile.ts"),
      [
        "export default (env: Record<string, unknown>) => {",
        '  if (env.PATH_INFO === "/bare") throw Object.create(null);',
        '  throw { toString() { throw new Error("toString refused"); } };',
        "};",
        "",
      ].join("\n"),
    );
    const p = start(d);
    const port = await p.port();
    for (const path of ["/bare", "/tostring"]) {
      expect((await curl("-o", "/dev/null", "-w", "%{http_code}", `http://127.0.0.1:${port}${path}`)).out).toBe("500");
      await p.waitFor(`Error handling GET ${path} HTTP/1.1 from 127.0.0.1:`);
    }
    await p.waitFor("\na thrown object that cannot be made a string\n");
    expect(p.stderr).not.toContain("toString refused");
    expect(p.stderr).not.toContain("No default value");
    p.kill();
    expect(await p.exit()).toBe(0);
    writeFileSync(join(d, "hostile.ts"), 'throw { toString() { throw new Error("toString refused"); } };\n');
    const q = start(d, ["check"]);
    expect(await q.exit()).toBe(2);
    expect(q.stderr).toContain(
      `cannot load application module ${join(d, "hostile.ts")}: a thrown object that cannot be made a string`,
    );
  });

  test("an app's error thrown outside any request (a timer, a promise nobody awaits) goes to the error log, stamped, and the server serves on", async () => {
    const d = site("late-throw", 'app = "late.ts"\nbind = "127.0.0.1:0"\n[log]\nerror = "error.log"\n');
    writeFileSync(
      join(d, "late.ts"),
      [
        "export default (env: Record<string, unknown>, sr: (s: string, h: [string, string][]) => void) => {",
        '  if (env.PATH_INFO === "/timer") setTimeout(() => { throw new Error("late boom"); }, 5);',
        '  if (env.PATH_INFO === "/promise") void Promise.reject(new Error("rejected boom"));',
        '  sr("200 OK", []);',
        '  return ["ok"];',
        "};",
        "",
      ].join("\n"),
    );
    const p = start(d);
    await waitForFile(join(d, "error.log"), "listening on");
    const port = Number((readFileSync(join(d, "error.log"), "utf8").match(/127\.0\.0\.1:(\d+)/) as RegExpMatchArray)[1]);
    for (const path of ["/timer", "/promise"]) expect((await curl(`http://127.0.0.1:${port}${path}`)).out).toBe("ok");
    const log = await waitForFile(join(d, "error.log"), "rejected boom");
    expect(log).toMatch(
      new RegExp(`${stamp} \\[ERROR\\] bunwsgi: uncaught exception outside any request: Error: late boom\n {4}at `),
    );
    expect(log).toMatch(
      new RegExp(`${stamp} \\[ERROR\\] bunwsgi: unhandled rejection outside any request: Error: rejected boom\n {4}at `),
    );
    expect(p.stderr).not.toContain("boom");
    expect((await curl(`http://127.0.0.1:${port}/`)).out).toBe("ok");
    p.kill();
    expect(await p.exit()).toBe(0);
  });

  test('an app served by the binary imports "bunwsgi" and gets the server\'s own classes', async () => {
    const d = site("by-name", 'app = "named.ts"\nbind = "127.0.0.1:0"\n');
    writeFileSync(
      join(d, "named.ts"),
      `import { HTTPError, ContractError, type Application } from "bunwsgi";
const app: Application = (env, startResponse) => {
  if (env.PATH_INFO === "/teapot") throw new HTTPError(418, "short and stout");
  startResponse("200 OK", []);
  return [ContractError.name];
};
export default app;
`,
    );
    const p = start(d);
    const port = await p.port();
    expect((await curl(`http://127.0.0.1:${port}/`)).out).toBe("ContractError");
    // The handler answers an HTTPError with its status only when it is the handler's own class.
    expect((await curl("-o", "/dev/null", "-w", "%{http_code}", `http://127.0.0.1:${port}/teapot`)).out).toBe("418");
    p.kill();
    expect(await p.exit()).toBe(0);
  });

  test("an app with a syntax error fails with file:line:col and the line", async () => {
    const d = site("syntax", 'app = "broken.ts"\n');
    writeFileSync(join(d, "broken.ts"), "export default () => {\n  return [1, ]];\n};\n");
    const p = start(d, ["check"]);
    expect(await p.exit()).toBe(2);
    expect(p.stderr).toContain(`${join(d, "broken.ts")}:2:15: Expected ";" but found "]"`);
    expect(p.stderr).toContain("    return [1, ]];");
  });

  test("a TOML syntax error and every bad bind are reported with their position", async () => {
    const d = site("toml-syntax", 'app = "app.ts"\n[log]\nformat = "json\n');
    const p = start(d, ["check"]);
    expect(await p.exit()).toBe(2);
    expect(p.stderr).toContain("bunwsgi.toml:3:10: invalid TOML: Unterminated string");
    const e = site("binds", 'app = "app.ts"\nbind = [\n  "127.0.0.1:x",\n  "unix:",\n]\n');
    const q = start(e, ["check"]);
    expect(await q.exit()).toBe(2);
    expect(q.stderr).toContain('bunwsgi.toml:3: bind: invalid listener "127.0.0.1:x"');
    expect(q.stderr).toContain('bunwsgi.toml:4: bind: invalid listener "unix:"');
  });

  describe("a bind that fails names the cause", () => {
    const fails = async (name: string, args: string[], expected: string, wrap: string[] = []): Promise<void> => {
      const d = site(name, 'app = "app.ts"\n');
      const p = wrap.length === 0 ? start(d, args) : null;
      if (p !== null) {
        expect(await p.exit()).toBe(2);
        expect(p.stderr).toContain(expected);
        return;
      }
      const q = Bun.spawn([...wrap, binary, ...args], { cwd: d, stderr: "pipe", stdout: "ignore" });
      const [code, err] = await Promise.all([q.exited, new Response(q.stderr).text()]);
      expect(code).toBe(2);
      expect(err).toContain(expected);
    };

    test("address in use", async () => {
      const taken = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
      try {
        await fails(
          "in-use",
          ["--bind", `127.0.0.1:${taken.port}`],
          `address already in use: another process listens on port ${taken.port}`,
        );
      } finally {
        taken.stop(true);
      }
    });

    test("an address this host does not have", () =>
      fails("not-here", ["--bind", "192.0.2.1:8000"], "192.0.2.1 is not an address of this host"));

    test("a missing folder for a unix socket", () =>
      fails("no-folder", ["--bind", "unix:./missing/s.sock"], "/no-folder/missing does not exist: create it"));

    test("a unix socket path that is too long", () =>
      fails("long-path", ["--bind", `unix:/tmp/${"x".repeat(120)}.sock`], "a unix socket path can have at most 107"));

    test("a descriptor that is not a listening socket", () =>
      fails("not-a-socket", ["--bind", "fd://57"], "descriptor 57 is not a listening socket"));

    test("a port below 1024 without privileges", async () => {
      if (process.getuid?.() !== 0) {
        await fails("privileged", ["--bind", "127.0.0.1:80"], "has neither root nor CAP_NET_BIND_SERVICE");
        return;
      }
      // As root, drop to nobody for the bind; the binary and its folder must be theirs to read.
      const pub = mkdtempSync(join(tmpdir(), "bunwsgi-nobody-"));
      try {
        Bun.spawnSync(["chmod", "755", pub]);
        copyFileSync(binary, join(pub, "bunwsgi"));
        copyFileSync(join(dir, "app.ts"), join(pub, "app.ts"));
        copyFileSync(join(dir, "greeting.ts"), join(pub, "greeting.ts"));
        Bun.spawnSync(["chmod", "-R", "a+rX", pub]);
        const q = Bun.spawn(
          [
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            join(pub, "bunwsgi"),
            "app.ts",
            "--bind",
            "127.0.0.1:80",
          ],
          { cwd: pub, stderr: "pipe", stdout: "ignore" },
        );
        const [code, err] = await Promise.all([q.exited, new Response(q.stderr).text()]);
        // Found with the config, before any listener: the same judgement as `bunwsgi check` (config/host).
        expect(err).toContain(
          '--bind: bind: "127.0.0.1:80": port 80 is below 1024 (net.ipv4.ip_unprivileged_port_start), and this user (uid 65534) has neither root nor CAP_NET_BIND_SERVICE',
        );
        expect(code).toBe(2);
      } finally {
        rmSync(pub, { recursive: true, force: true });
      }
    });
  });

  test("every error-log message starts with a timestamp and a level; a stack stays whole under it", async () => {
    const d = site("stamped", 'app = "thrower.ts"\nbind = "127.0.0.1:0"\n[log]\nerror = "error.log"\naccess = "none"\n');
    writeFileSync(
      join(d, "thrower.ts"),
      'export default (env: Record<string, { write(s: string): void }>) => { env["wsgi.errors"].write("app says hi\\n"); throw new Error("kaput"); };\n',
    );
    const p = start(d);
    const port = Number((await waitForFile(join(d, "error.log"), "listening on")).match(/127\.0\.0\.1:(\d+)/)?.[1]);
    await curl(`http://127.0.0.1:${port}/`);
    const body = await waitForFile(join(d, "error.log"), "Error: kaput");
    p.kill();
    expect(await p.exit()).toBe(0);
    const text = readFileSync(join(d, "error.log"), "utf8");
    expect(body).toMatch(new RegExp(`^${stamp} \\[INFO\\] bunwsgi 0\\.\\d+\\.\\d+: serving `));
    expect(text).toMatch(new RegExp(`\\n${stamp} \\[INFO\\] bunwsgi: listening on http://127\\.0\\.0\\.1:${port}\\n`));
    expect(text).toMatch(new RegExp(`\\n${stamp} \\[ERROR\\] app says hi\\n`));
    expect(text).toMatch(
      new RegExp(`\\n${stamp} \\[ERROR\\] Error handling GET / HTTP/1\\.1 from 127\\.0\\.0\\.1:\\d+\\nError: kaput\\n {4}at `),
    );
    expect(text).toMatch(new RegExp(`\\n${stamp} \\[INFO\\] bunwsgi: stopped\\n$`));
    for (const line of text.trimEnd().split("\n"))
      expect(line).toMatch(new RegExp(`^(${stamp} \\[(INFO|ERROR)\\] |Error: kaput$| {4}at )`));
  });

  test("a unix socket gets unix_socket_mode and unix_socket_group as it is bound", async () => {
    const d = site(
      "perms",
      'app = "app.ts"\nbind = "unix:./p.sock"\nunix_socket_mode = "0660"\nunix_socket_group = "www-data"\n',
    );
    const p = start(d);
    await p.waitFor("listening on unix:");
    const st = statSync(join(d, "p.sock"));
    expect((st.mode & 0o777).toString(8)).toBe("660");
    expect(st.gid).toBe(Number(Bun.spawnSync(["getent", "group", "www-data"]).stdout.toString().split(":")[2]));
    p.kill();
    expect(await p.exit()).toBe(0);
  });

  test("socket activation: a new process takes over the inherited socket of a stopped one, and no connection fails", async () => {
    const d = site("handover", 'app = "pid.ts"\nbind = "fd://3"\n[log]\naccess = "none"\n');
    writeFileSync(
      join(d, "pid.ts"),
      'export default (_e: unknown, sr: (s: string, h: [string, string][]) => void) => { sr("200 OK", []); return [String(process.pid)]; };\n',
    );
    // The parent plays systemd: it holds the listening socket for the whole test, starts a server
    // with it at fd 3, and on "restart" stops it (SIGTERM, waits for its exit) and starts the next.
    // Once listening it never returns to its event loop (it blocks on stdin), so it never accepts.
    const launcher = `
      const net = require("node:net"); const { spawn } = require("node:child_process"); const fs = require("node:fs");
      const sleep = (ms) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
      const line = () => { const b = Buffer.alloc(64); return b.toString("utf8", 0, fs.readSync(0, b)).trim(); };
      const run = (s) => spawn(${JSON.stringify(binary)}, [], { cwd: ${JSON.stringify(d)}, stdio: ["ignore", "ignore", "inherit", s._handle.fd] });
      const stop = (child) => {
        process.kill(child.pid, "SIGTERM");
        for (let i = 0; i < 1000; i++) {
          let state = "Z";
          try { state = fs.readFileSync("/proc/" + child.pid + "/stat", "utf8").split(") ")[1][0]; } catch {}
          if (state === "Z") return;
          sleep(5);
        }
      };
      const s = net.createServer();
      s.listen(0, "127.0.0.1", () => {
        let child = run(s);
        fs.writeSync(1, s.address().port + "\\n");
        while (line() === "restart") { stop(child); child = run(s); fs.writeSync(1, "restarted\\n"); }
        stop(child);
        process.exit(0);
      });`;
    const node = Bun.spawn(["node", "-e", launcher], { stdin: "pipe", stdout: "pipe", stderr: "inherit" });
    const send = (msg: string): void => {
      node.stdin.write(`${msg}\n`);
      node.stdin.flush();
    };
    try {
      const reader = node.stdout.getReader();
      const port = Number(new TextDecoder().decode((await reader.read()).value).trim());
      const served: string[] = [];
      let failures = 0;
      let go = true;
      const client = (async () => {
        for (let i = 0; go && i < 5000; i++) {
          try {
            const res = await fetch(`http://127.0.0.1:${port}/`, { headers: { connection: "close" } });
            served.push(await res.text());
          } catch {
            failures++;
          }
        }
      })();
      const deadline = Date.now() + 4000;
      while (served.length < 20 && Date.now() < deadline) await Bun.sleep(10);
      send("restart");
      expect(new TextDecoder().decode((await reader.read()).value)).toContain("restarted");
      while (!served.some((pid) => pid !== served[0]) && Date.now() < deadline) await Bun.sleep(10);
      const more = served.length;
      while (served.length < more + 20 && Date.now() < deadline) await Bun.sleep(10);
      go = false;
      await client;
      send("stop");
      expect(failures).toBe(0);
      expect(new Set(served).size).toBe(2);
    } finally {
      if (node.exitCode === null) await Promise.race([node.exited, Bun.sleep(3000)]);
      node.kill("SIGKILL");
    }
    expect(node.exitCode).toBe(0);
  });
});
