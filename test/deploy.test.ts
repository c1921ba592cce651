import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { makeCertificates } from "./helpers.ts";

/*
 * What a deploy starts from: `npm start`, the package as npm ships it, and every config block
 * of the README (TOML through `bunwsgi check`, systemd units through systemd-analyze or a parse).
 */

const root = join(import.meta.dir, "..");
const dir = mkdtempSync(join(tmpdir(), "bunwsgi-deploy-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const readme = readFileSync(join(root, "README.md"), "utf8");

/** The fenced blocks of one language in the README, in order. */
const blocks = (lang: string): string[] =>
  [...readme.matchAll(new RegExp(`^\`\`\`${lang}\\n([\\s\\S]*?)^\`\`\`$`, "gm"))].map((m) => m[1] as string);

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe("npm start", () => {
  test("SIGTERM to npm stops the server: the port is freed and no server process is left", async () => {
    const npm = Bun.spawn(["npm", "start", "--", "--bind", "127.0.0.1:0"], { cwd: root, stdout: "pipe", stderr: "pipe" });
    let err = "";
    const reading = (async () => {
      const decoder = new TextDecoder();
      for await (const chunk of npm.stderr) err += decoder.decode(chunk, { stream: true });
    })();
    let server = 0;
    try {
      const deadline = Date.now() + 4000;
      while (!/listening on http:\/\/127\.0\.0\.1:\d+/.test(err) && Date.now() < deadline) await Bun.sleep(20);
      const port = Number(err.match(/listening on http:\/\/127\.0\.0\.1:(\d+)/)?.[1]);
      server = Number(err.match(/\(pid (\d+)\)/)?.[1]);
      expect(port).toBeGreaterThan(0);
      expect(await (await fetch(`http://127.0.0.1:${port}/x`)).text()).toContain("You asked for /x");
      npm.kill("SIGTERM");
      await npm.exited;
      while (alive(server) && Date.now() < deadline + 2000) await Bun.sleep(20);
      expect(alive(server)).toBe(false);
      expect(
        await fetch(`http://127.0.0.1:${port}/`).then(
          () => "served",
          () => "refused",
        ),
      ).toBe("refused");
      await reading;
      expect(err).toContain("stopped");
    } finally {
      if (server > 0 && alive(server)) process.kill(server, "SIGKILL");
    }
  });
});

describe("the package npm ships", () => {
  test('a project that installs the npm pack tarball imports "bunwsgi", type-checks and serves', async () => {
    const packed = Bun.spawnSync(["npm", "pack", "--silent", "--pack-destination", dir], { cwd: root, stderr: "pipe" });
    expect(packed.exitCode).toBe(0);
    const tarball = join(dir, packed.stdout.toString().trim().split("\n").pop() as string);
    const project = join(dir, "project");
    mkdirSync(project);
    writeFileSync(join(project, "package.json"), '{ "name": "site", "private": true, "type": "module" }\n');
    const install = Bun.spawnSync(["npm", "install", "--offline", "--no-audit", "--no-fund", tarball], {
      cwd: project,
      stderr: "pipe",
    });
    expect(install.stderr.toString()).not.toContain("ERR");
    expect(install.exitCode).toBe(0);
    writeFileSync(
      join(project, "main.ts"),
      `import { HTTPError, WSGIServer, type Application } from "bunwsgi";
const app: Application = (env, startResponse) => {
  if (env.PATH_INFO === "/teapot") throw new HTTPError(418, "short and stout");
  startResponse("200 OK", [["Content-Type", "text/plain"]]);
  return ["installed"];
};
const server = new WSGIServer("127.0.0.1:0", app, { log: null });
server.start();
const ok = await (await fetch(\`http://127.0.0.1:\${server.serverPort}/\`)).text();
const teapot = (await fetch(\`http://127.0.0.1:\${server.serverPort}/teapot\`)).status;
console.log(ok, teapot);
server.close();
`,
    );
    writeFileSync(
      join(project, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          target: "ESNext",
          module: "Preserve",
          moduleResolution: "bundler",
          strict: true,
          noEmit: true,
          allowImportingTsExtensions: true,
          resolveJsonModule: true,
          types: ["bun-types"],
          typeRoots: [join(root, "node_modules")],
          skipLibCheck: true,
        },
        include: ["main.ts"],
      }),
    );
    const tsc = Bun.spawnSync([join(root, "node_modules/.bin/tsc"), "-p", project], { stdout: "pipe" });
    expect(tsc.stdout.toString()).toBe("");
    expect(tsc.exitCode).toBe(0);
    const run = Bun.spawnSync([process.execPath, "main.ts"], { cwd: project, stdout: "pipe", stderr: "pipe" });
    expect(run.stdout.toString().trim()).toBe("installed 418");
    // What ships: the sources and the README, no tests.
    const list = Bun.spawnSync(["tar", "-tzf", tarball], { stdout: "pipe" }).stdout.toString();
    expect(list).toContain("package/src/index.ts");
    expect(list).not.toContain("package/test/");
  }, 30_000);
});

describe("the README's config blocks", () => {
  test("every TOML block passes `bunwsgi check`, its absolute paths moved under a temp root", async () => {
    const toml = blocks("toml");
    expect(toml.length).toBeGreaterThanOrEqual(3);
    const certs = join(dir, "certs");
    mkdirSync(certs);
    await makeCertificates(certs);
    for (const [i, block] of toml.entries()) {
      const site = join(dir, `toml${i}`);
      mkdirSync(site);
      // Each absolute path becomes one under the site's folder; certificates get real ones, and
      // other files' folders are made (a log or pidfile's folder must exist).
      const text = block.replace(/"(unix:)?(\/[^"]+)"/g, (_m, unix: string | undefined, path: string) => {
        const moved = join(site, "root", path);
        mkdirSync(dirname(moved), { recursive: true });
        if (path.endsWith(".pem") || path.endsWith(".key")) {
          writeFileSync(
            moved,
            readFileSync(join(certs, path.endsWith(".key") ? "srv.key" : path.includes("ca") ? "ca.pem" : "srv.pem")),
          );
        }
        return JSON.stringify(`${unix ?? ""}${moved}`);
      });
      writeFileSync(join(site, "bunwsgi.toml"), text);
      writeFileSync(join(site, "app.ts"), "export default () => [];\n");
      const p = Bun.spawnSync([process.execPath, join(root, "src/cli.ts"), "check"], {
        cwd: site,
        stderr: "pipe",
        stdout: "pipe",
      });
      expect(`block ${i}: ${p.stderr.toString()}`).toBe(`block ${i}: bunwsgi: configuration is valid\n`);
    }
  });

  test("every systemd unit has known sections and keys, and the units agree with the configs", () => {
    const units = blocks("ini");
    expect(units.length).toBe(4);
    const known: Record<string, string[]> = {
      Unit: ["Description", "After", "Requires"],
      Service: [
        "ExecStart",
        "ExecReload",
        "WorkingDirectory",
        "User",
        "Group",
        "RuntimeDirectory",
        "RuntimeDirectoryMode",
        "KillSignal",
        "TimeoutStopSec",
        "Restart",
        "LimitNOFILE",
        "NoNewPrivileges",
        "ProtectSystem",
        "ReadWritePaths",
        "PIDFile",
        "ExitType",
        "RuntimeDirectoryPreserve",
      ],
      Socket: ["ListenStream", "NoDelay", "SocketUser", "SocketGroup", "SocketMode"],
      Install: ["WantedBy"],
    };
    const parsed = new Map<string, Map<string, string>>();
    for (const unit of units) {
      const name = unit.match(/^# \/etc\/systemd\/system\/(\S+)$/m)?.[1] as string;
      expect(name).toMatch(/\.(service|socket)$/);
      const keys = new Map<string, string>();
      let section = "";
      for (const line of unit.split("\n")) {
        if (line === "" || line.startsWith("#")) continue;
        const header = line.match(/^\[(\w+)\]$/);
        if (header) {
          section = header[1] as string;
          expect(Object.keys(known)).toContain(section);
          continue;
        }
        const [key, value] = [line.slice(0, line.indexOf("=")), line.slice(line.indexOf("=") + 1)];
        expect(known[section]).toContain(key);
        keys.set(key, value);
      }
      parsed.set(name, keys);
    }
    const service = parsed.get("bunwsgi.service") as Map<string, string>;
    // The configs bind and write their pidfile under /run/bunwsgi: the service must create it,
    // since ProtectSystem=strict leaves the rest of /run read-only.
    expect(service.get("RuntimeDirectory")).toBe("bunwsgi");
    expect(readme).toContain('bind = "unix:/run/bunwsgi/bunwsgi.sock"');
    expect(readme).toContain('pidfile = "/run/bunwsgi/bunwsgi.pid"');
    expect(parsed.get("bunwsgi-activated.service")?.get("ExecStart")).toContain("--bind fd://3");
    expect(parsed.get("bunwsgi-activated.service")?.get("Requires")).toBe("bunwsgi.socket");
    // The upgrade unit's reload reads the pidfile its ExecStart writes.
    const upgrade = parsed.get("bunwsgi-workers.service") as Map<string, string>;
    expect(upgrade.get("ExecStart")).toContain(`--pidfile ${upgrade.get("PIDFile")}`);
    expect(upgrade.get("ExecReload")).toContain(`p=${upgrade.get("PIDFile")};`);
  });

  test("systemd-analyze verify accepts the units", () => {
    const analyze = Bun.which("systemd-analyze");
    if (analyze === null) {
      console.warn("SKIPPED: systemd-analyze is not installed; the units were only parsed");
      return;
    }
    const units = join(dir, "units");
    mkdirSync(units);
    const files: string[] = [];
    for (const unit of blocks("ini")) {
      const name = unit.match(/^# \/etc\/systemd\/system\/(\S+)$/m)?.[1] as string;
      // ExecStart must name an executable that exists here; /opt/site is where the README puts it.
      writeFileSync(join(units, name), unit.replaceAll("/opt/site/bunwsgi ", `${process.execPath} `));
      files.push(join(units, name));
    }
    const p = Bun.spawnSync([analyze, "verify", ...files], {
      stdout: "pipe",
      stderr: "pipe",
      env: { ...process.env, SYSTEMD_LOG_LEVEL: "warning" },
    });
    const out = `${p.stdout.toString()}${p.stderr.toString()}`;
    expect(out.split("\n").filter((l) => l.includes("/units/"))).toEqual([]);
    expect(p.exitCode).toBe(0);
  });
});
