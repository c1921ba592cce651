import { afterAll, describe, expect, test } from "bun:test";
import { createPrivateKey } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
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
      // A block with tls.passphrase gets its key encrypted with it (a passphrase for a plain key is refused).
      const passphrase = (Bun.TOML.parse(block) as { tls?: { passphrase?: string } }).tls?.passphrase;
      const key = readFileSync(join(certs, "srv.key"), "utf8");
      // Each absolute path becomes one under the site's folder; certificates get real ones, and
      // other files' folders are made (a log or pidfile's folder must exist).
      const text = block.replace(/"(unix:)?(\/[^"]+)"/g, (_m, unix: string | undefined, path: string) => {
        const moved = join(site, "root", path);
        mkdirSync(dirname(moved), { recursive: true });
        if (path.endsWith(".key")) {
          const cipher = { cipher: "aes-256-cbc", passphrase } as const;
          writeFileSync(
            moved,
            passphrase === undefined ? key : createPrivateKey(key).export({ format: "pem", type: "pkcs8", ...cipher }),
          );
        } else if (path.endsWith(".pem")) {
          writeFileSync(moved, readFileSync(join(certs, path.includes("ca") ? "ca.pem" : "srv.pem")));
        }
        return JSON.stringify(`${unix ?? ""}${moved}`);
      });
      // The production host's own addresses (10.x) become this host's, as check refuses an address it does not have.
      writeFileSync(join(site, "bunwsgi.toml"), text.replace(/"10\.\d+\.\d+\.\d+:/g, '"127.0.0.1:'));
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

describe("deploy/", () => {
  const deploy = join(root, "deploy");
  const file = (name: string): string => readFileSync(join(deploy, name), "utf8");
  /** What `bunwsgi check` says of deploy/bunwsgi.toml, beside a stand-in app. */
  const checked = (): { stderr: string; exitCode: number | null } => {
    const site = join(dir, "deploy-site");
    mkdirSync(site, { recursive: true });
    writeFileSync(join(site, "bunwsgi.toml"), file("bunwsgi.toml"));
    writeFileSync(join(site, "app.ts"), "export default () => [];\n");
    const p = Bun.spawnSync([process.execPath, join(root, "src/cli.ts"), "check"], { cwd: site, stderr: "pipe", stdout: "pipe" });
    return { stderr: p.stderr.toString(), exitCode: p.exitCode };
  };
  const toml = Bun.TOML.parse(file("bunwsgi.toml")) as {
    bind: string[];
    health: { live_path: string; ready_path: string };
    timeouts: { drain_delay: number; shutdown: number };
  };

  test("bunwsgi.toml passes `bunwsgi check`, with both probes and a drain", () => {
    expect(checked()).toEqual({ stderr: "bunwsgi: configuration is valid\n", exitCode: 0 });
    expect(toml.health.live_path).toStartWith("/");
    expect(toml.health.ready_path).toStartWith("/");
    expect(toml.timeouts.drain_delay).toBeGreaterThan(0);
  });

  test("kubernetes.yaml: a Deployment whose probes ask bunwsgi.toml's paths on its plain port, a grace period that covers drain_delay + shutdown, and a Service", () => {
    const docs = Bun.YAML.parse(file("kubernetes.yaml")) as Array<Record<string, unknown>>;
    expect(docs.map((d) => d.kind)).toEqual(["Deployment", "Service"]);
    type Probe = { httpGet: { path: string; port: string } };
    type Container = {
      args: string[];
      ports: Array<{ name: string; containerPort: number }>;
      livenessProbe: Probe;
      readinessProbe: Probe;
      startupProbe: Probe;
    };
    const deployment = docs[0] as {
      apiVersion: string;
      spec: {
        selector: { matchLabels: Record<string, string> };
        template: {
          metadata: { labels: Record<string, string> };
          spec: {
            terminationGracePeriodSeconds: number;
            securityContext: { runAsNonRoot: boolean; runAsUser: number };
            containers: Container[];
          };
        };
      };
    };
    expect(deployment.apiVersion).toBe("apps/v1");
    const pod = deployment.spec.template.spec;
    expect(deployment.spec.template.metadata.labels).toMatchObject(deployment.spec.selector.matchLabels);
    const c = pod.containers[0] as Container;
    expect(c.args).toEqual(["--config", "/srv/site/bunwsgi.toml"]);
    // The kubelet sends no PROXY header: the probes go to the bind without proxy_protocol.
    const plain = toml.bind.find((b) => !b.includes("proxy_protocol")) as string;
    const port = (name: string): number => (c.ports.find((p) => p.name === name) as { containerPort: number }).containerPort;
    for (const probe of [c.livenessProbe, c.readinessProbe, c.startupProbe]) {
      expect(plain).toEndWith(`:${port(probe.httpGet.port)}`);
    }
    expect(c.livenessProbe.httpGet.path).toBe(toml.health.live_path);
    expect(c.startupProbe.httpGet.path).toBe(toml.health.live_path);
    expect(c.readinessProbe.httpGet.path).toBe(toml.health.ready_path);
    expect(pod.terminationGracePeriodSeconds).toBeGreaterThan(toml.timeouts.drain_delay + toml.timeouts.shutdown);
    expect(pod.securityContext.runAsNonRoot).toBe(true);
    expect(pod.securityContext.runAsUser).toBeGreaterThan(0);
    const service = docs[1] as {
      apiVersion: string;
      spec: { selector: Record<string, string>; ports: Array<{ targetPort: string }> };
    };
    expect(service.spec.selector).toEqual(deployment.spec.selector.matchLabels);
    expect(c.ports.map((p) => p.name)).toContain(service.spec.ports[0]?.targetPort as string);
  });

  test("Dockerfile: a build stage makes the binary with build.ts, a slim glibc stage runs it as a non-root user (Docker itself is not run here)", () => {
    const lines = file("Dockerfile")
      .split("\n")
      .filter((l) => l !== "" && !l.startsWith("#"));
    const stages = lines.filter((l) => l.startsWith("FROM "));
    expect(stages).toEqual(["FROM node:22-bookworm-slim AS build", "FROM debian:bookworm-slim AS run"]);
    const run = lines.slice(lines.indexOf(stages[1] as string));
    const build = lines.slice(0, lines.indexOf(stages[1] as string));
    expect(build.some((l) => /^RUN .*build\.ts --outfile \/out\/bunwsgi/.test(l))).toBe(true);
    expect(run).toContain("COPY --from=build /out/bunwsgi /usr/local/bin/bunwsgi");
    expect(run).toContain("COPY --chown=root:root deploy/bunwsgi.toml ./bunwsgi.toml");
    const user = run.find((l) => l.startsWith("USER ")) as string;
    expect(user).toBeDefined();
    expect(user).not.toMatch(/^USER (root|0)\b/);
    // The user the image runs as is the one the Deployment asks for.
    expect(file("kubernetes.yaml")).toContain(`runAsUser: ${user.slice(5).split(":")[0]}`);
    expect(run.findIndex((l) => l.startsWith("USER "))).toBeGreaterThan(run.findIndex((l) => l.startsWith("COPY --from=build")));
    expect(run.at(-2)).toBe('ENTRYPOINT ["/usr/local/bin/bunwsgi"]');
    // Every COPY source outside the build stage exists in the repository (the build context).
    for (const l of lines.filter((x) => x.startsWith("COPY ") && !x.includes("--from="))) {
      const parts = l.split(/\s+/).filter((p) => !p.startsWith("--"));
      for (const src of parts.slice(1, -1)) expect(`${src}: ${existsSync(join(root, src))}`).toBe(`${src}: true`);
    }
  });

  test("haproxy.cfg: `haproxy -c` accepts it; it sends PROXY v2 to bunwsgi.toml's PROXY bind and checks its readiness path", () => {
    const cfg = file("haproxy.cfg");
    const proxyPort = (toml.bind.find((b) => b.includes("proxy_protocol=v2")) as string).split(" ")[0]?.split(":")[1];
    expect(cfg).toContain(`uri ${toml.health.ready_path} `);
    expect(cfg).toMatch(/default-server send-proxy-v2 check /);
    expect(cfg).toContain("option httpchk");
    expect([...cfg.matchAll(/^\s+server \S+ [\d.]+:(\d+)$/gm)].map((m) => m[1])).toEqual([proxyPort, proxyPort]);
    const haproxy = Bun.which("haproxy") ?? Bun.which("/usr/sbin/haproxy");
    if (haproxy === null) {
      console.warn("SKIPPED: haproxy is not installed; deploy/haproxy.cfg was only read");
      return;
    }
    const p = Bun.spawnSync([haproxy, "-c", "-f", join(deploy, "haproxy.cfg")], { stdout: "pipe", stderr: "pipe" });
    expect(`${p.stdout.toString()}${p.stderr.toString()}`).toBe("Configuration file is valid\n");
    expect(p.exitCode).toBe(0);
  });

  test("nginx.conf: `nginx -t` accepts it inside an http block; it sets X-Forwarded-For and -Proto toward bunwsgi.toml's plain bind", () => {
    const conf = file("nginx.conf");
    const plainPort = (toml.bind.find((b) => !b.includes("proxy_protocol")) as string).split(":")[1];
    expect(conf).toContain("proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;");
    expect(conf).toContain("proxy_set_header X-Forwarded-Proto $scheme;");
    expect([...conf.matchAll(/^\s+server [\d.]+:(\d+) /gm)].map((m) => m[1])).toEqual([plainPort, plainPort]);
    const nginx = Bun.which("nginx") ?? Bun.which("/usr/sbin/nginx");
    if (nginx === null) {
      console.warn("SKIPPED: nginx is not installed; deploy/nginx.conf was only read");
      return;
    }
    const prefix = join(dir, "nginx-t");
    mkdirSync(join(prefix, "logs"), { recursive: true });
    writeFileSync(
      join(prefix, "nginx.conf"),
      `error_log ${prefix}/logs/error.log;\npid ${prefix}/nginx.pid;\nevents {}\nhttp {\n  access_log off;\n  include ${join(deploy, "nginx.conf")};\n}\n`,
    );
    // Testing a config does not bind its listen ports; as a non-root user nginx says so in a warning only.
    const p = Bun.spawnSync([nginx, "-t", "-p", prefix, "-c", join(prefix, "nginx.conf"), "-g", "daemon off;"], {
      stdout: "pipe",
      stderr: "pipe",
    });
    expect(p.stderr.toString()).toContain("test is successful");
    expect(p.exitCode).toBe(0);
  });
});
