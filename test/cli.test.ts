import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { makeCertificates, RawClient } from "./helpers.ts";

/*
 * The compiled binary, run as a process from a temp folder that holds an app module (which
 * imports a relative module) and a bunwsgi.toml, as a user deploys it.
 */

const root = join(import.meta.dir, "..");
const dir = mkdtempSync(join(tmpdir(), "bunwsgi-cli-"));
const binary = join(dir, "bin", "bunwsgi");
const embeddedBinary = join(dir, "bin", "bunwsgi-embedded");

async function build(args: string[]): Promise<void> {
  const p = Bun.spawn([process.execPath, "build.ts", ...args], { cwd: root, stdout: "pipe", stderr: "pipe" });
  const [code, err] = await Promise.all([p.exited, new Response(p.stderr).text()]);
  if (code !== 0) throw new Error(`build ${args.join(" ")} failed: ${err}`);
}

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
    build(["--outfile", binary]),
    build(["--outfile", embeddedBinary, "--app", join(dir, "app.ts")]),
    makeCertificates(dir),
  ]);
}, 120_000);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A running binary whose stderr is collected as it arrives. */
class Proc {
  readonly p: Subprocess<"ignore", "pipe", "pipe">;
  stderr = "";
  private readonly done: Promise<void>;

  constructor(args: string[], cwd: string, bin = binary) {
    const p = Bun.spawn([bin, ...args], { cwd, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
    this.p = p;
    this.done = (async () => {
      const decoder = new TextDecoder();
      for await (const chunk of p.stderr) this.stderr += decoder.decode(chunk, { stream: true });
    })();
  }

  async waitFor(text: string | RegExp, ms = 10_000): Promise<RegExpMatchArray | string> {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
      if (typeof text === "string" ? this.stderr.includes(text) : text.test(this.stderr)) {
        return typeof text === "string" ? text : (this.stderr.match(text) as RegExpMatchArray);
      }
      if (this.p.exitCode !== null) break;
      await Bun.sleep(20);
    }
    throw new Error(`binary never printed ${text}; exit ${this.p.exitCode}; stderr:\n${this.stderr}`);
  }

  /** The port of the first TCP listener, from the start-up line. */
  async port(scheme = "http"): Promise<number> {
    const m = (await this.waitFor(new RegExp(`listening on ${scheme}://127\\.0\\.0\\.1:(\\d+)`))) as RegExpMatchArray;
    return Number(m[1]);
  }

  async exit(): Promise<number> {
    const code = await this.p.exited;
    await this.done;
    return code;
  }

  kill(signal: NodeJS.Signals = "SIGTERM"): void {
    if (this.p.exitCode === null) this.p.kill(signal);
  }
}

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

function start(cwd: string, args: string[] = [], bin = binary): Proc {
  const p = new Proc(args, cwd, bin);
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
    // Node makes the listening socket and hands it to the binary as descriptor 3, as systemd does.
    const launcher = `
      const net = require("node:net"); const { spawn } = require("node:child_process");
      const s = net.createServer(); s.listen(0, "127.0.0.1", () => {
        const child = spawn(${JSON.stringify(binary)}, [], { cwd: ${JSON.stringify(d)}, stdio: ["ignore", "inherit", "inherit", s._handle.fd] });
        console.log(s.address().port); s.close();
        process.on("SIGTERM", () => child.kill("SIGTERM")); child.on("exit", (c) => process.exit(c));
      });`;
    const node = Bun.spawn(["node", "-e", launcher], { stdout: "pipe", stderr: "pipe" });
    try {
      const reader = node.stdout.getReader();
      const { value } = await reader.read();
      const port = Number(new TextDecoder().decode(value).trim());
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
    expect(p.stderr).toContain(`cannot load application module ${join(d, "boom.ts")}: kaboom at import`);
    const q = start(d, ["check", "app.ts:absent"]);
    expect(await q.exit()).toBe(2);
    expect(q.stderr).toContain('has no function export "absent" (it exports: default, named)');
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
