import { afterAll, expect, test } from "bun:test";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { makeCertificates } from "./helpers.ts";

/*
 * The README's nginx recipe, run: Debian's nginx (as root, workers as www-data, in the
 * foreground with a temp prefix) in front of bunwsgi on a unix socket, with the README's
 * upstream and server blocks; only the listen address, certificate paths and socket path are
 * moved to this test's loopback port and temp folder.
 */

const root = join(import.meta.dir, "..");
const nginx = Bun.which("nginx") ?? Bun.which("/usr/sbin/nginx");
const dir = mkdtempSync(join(tmpdir(), "bunwsgi-nginx-"));
// nginx's workers (www-data) must reach the socket through this folder.
chmodSync(dir, 0o755);
const procs: Subprocess[] = [];
afterAll(async () => {
  for (const p of procs) p.kill("SIGTERM");
  await Promise.all(procs.map((p) => Promise.race([p.exited, Bun.sleep(3000)])));
  rmSync(dir, { recursive: true, force: true });
});

const readme = readFileSync(join(root, "README.md"), "utf8");
const block = (lang: string, containing: string): string => {
  const found = [...readme.matchAll(new RegExp(`^\`\`\`${lang}\\n([\\s\\S]*?)^\`\`\`$`, "gm"))]
    .map((m) => m[1] as string)
    .find((b) => b.includes(containing));
  if (found === undefined) throw new Error(`README has no ${lang} block with ${containing}`);
  return found;
};

const APP = `export default (env: Record<string, any>, startResponse: (s: string, h: [string, string][]) => unknown) => {
  if (env.HTTP_UPGRADE === "echo") {
    startResponse("101 Switching Protocols", [["Upgrade", "echo"], ["Connection", "Upgrade"]]);
    return (async function* () {
      yield "ready\\n";
      for await (const line of env["bunwsgi.raw_input"]) yield line;
    })();
  }
  startResponse("200 OK", [["Content-Type", "text/plain"]]);
  return [\`\${env["wsgi.url_scheme"]} from \${env.REMOTE_ADDR} to \${env.PATH_INFO}\`];
};
`;

async function waitFor(what: () => boolean | Promise<boolean>, label: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await what()) return;
    await Bun.sleep(25);
  }
  throw new Error(`timed out waiting for ${label}`);
}

test.skipIf(nginx === null || process.getuid?.() !== 0)(
  "nginx's README recipe proxies HTTP and a WebSocket-style Upgrade to bunwsgi's unix socket as www-data",
  async () => {
    await makeCertificates(dir);
    const socket = join(dir, "run", "bunwsgi.sock");
    mkdirSync(join(dir, "run"), { mode: 0o755 });
    chmodSync(join(dir, "run"), 0o755);
    // bunwsgi's side: the README's TOML for nginx, with the socket moved here.
    const toml = block("toml", "# nginx's group").replaceAll("/run/bunwsgi/bunwsgi.sock", socket);
    writeFileSync(join(dir, "bunwsgi.toml"), `${toml}\n[log]\naccess = "none"\n`);
    writeFileSync(join(dir, "app.ts"), APP);
    const server = Bun.spawn([process.execPath, join(root, "src/cli.ts")], { cwd: dir, stdout: "ignore", stderr: "pipe" });
    procs.push(server);
    let serverErr = "";
    void (async () => {
      for await (const c of server.stderr) serverErr += new TextDecoder().decode(c);
    })();
    await waitFor(() => serverErr.includes("listening on unix:"), `bunwsgi to listen (exit ${server.exitCode}: ${serverErr})`);

    // nginx's side: the README's block, on a free loopback port with this test's certificate.
    const probe = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    const port = probe.port;
    probe.stop(true);
    const site = block("nginx", "upstream bunwsgi")
      .replaceAll("/run/bunwsgi/bunwsgi.sock", socket)
      .replace("listen 443 ssl;", `listen 127.0.0.1:${port} ssl;`)
      .replace(/ssl_certificate \S+;/, `ssl_certificate ${join(dir, "srv.pem")};`)
      .replace(/ssl_certificate_key \S+;/, `ssl_certificate_key ${join(dir, "srv.key")};`);
    expect(site).toContain(`listen 127.0.0.1:${port} ssl;`);
    const prefix = join(dir, "nginx");
    mkdirSync(join(prefix, "logs"), { recursive: true });
    writeFileSync(
      join(prefix, "nginx.conf"),
      `user www-data;
worker_processes 1;
error_log ${join(prefix, "logs", "error.log")} warn;
pid ${join(prefix, "nginx.pid")};
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path ${join(prefix, "body")};
  proxy_temp_path ${join(prefix, "proxy")};
  fastcgi_temp_path ${join(prefix, "fastcgi")};
  uwsgi_temp_path ${join(prefix, "uwsgi")};
  scgi_temp_path ${join(prefix, "scgi")};
${site}
}
`,
    );
    const proxy = Bun.spawn([nginx as string, "-p", prefix, "-c", join(prefix, "nginx.conf"), "-g", "daemon off;"], {
      stdout: "ignore",
      stderr: "pipe",
    });
    procs.push(proxy);
    const ca = readFileSync(join(dir, "ca.pem"), "utf8");
    const get = (path: string, headers: Record<string, string> = {}): Promise<Response> =>
      fetch(`https://127.0.0.1:${port}${path}`, {
        tls: { ca, serverName: "localhost" },
        headers: { host: "localhost", ...headers },
      });
    await waitFor(
      () =>
        get("/").then(
          () => true,
          () => proxy.exitCode !== null,
        ),
      "nginx to listen",
    );
    expect(proxy.exitCode).toBeNull();

    const res = await get("/hello");
    const log = (): string => readFileSync(join(prefix, "logs", "error.log"), "utf8");
    // bunwsgi's peer is nginx on a unix socket: the client's address and https come from nginx's
    // X-Forwarded-For and X-Forwarded-Proto (forwarded_allow_unix in the README's TOML).
    expect(`${res.status} ${await res.text()}`, log()).toBe("200 https from 127.0.0.1 to /hello");
    // A client's own forwarding fields: nginx keeps its X-Forwarded-For to the left of the address
    // it appends (never read) and replaces its X-Forwarded-Proto.
    const spoof = await get("/spoof", { "X-Forwarded-For": "6.6.6.6", "X-Forwarded-Proto": "http" });
    expect(await spoof.text()).toBe("https from 127.0.0.1 to /spoof");

    // An Upgrade through the README's /ws/ location: nginx passes it on, the app answers 101
    // and then echoes lines both ways over the connection it owns.
    const received: string[] = [];
    let handshake = false;
    const conn = await Bun.connect({
      hostname: "127.0.0.1",
      port,
      tls: { ca, serverName: "localhost" },
      socket: {
        handshake() {
          handshake = true;
        },
        data(_s, d) {
          received.push(new TextDecoder().decode(d));
        },
      },
    });
    await waitFor(() => handshake, "the TLS handshake");
    conn.write(`GET /ws/echo HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n`);
    await waitFor(
      () => received.join("").includes("ready\n"),
      `the 101 (got ${JSON.stringify(received.join(""))}; bunwsgi: ${serverErr}; nginx: ${log()})`,
    );
    expect(received.join("")).toStartWith("HTTP/1.1 101 Switching Protocols\r\n");
    conn.write("ping\n");
    await waitFor(() => received.join("").endsWith("ping\n"), "the echo");
    conn.end();
  },
  15_000,
);

test.if(nginx === null)("nginx is installed (CI installs Debian's nginx in .ci/run)", () => {
  console.error("LOUD WARNING: nginx is not installed, so the README's nginx recipe was NOT tested");
  expect(nginx).not.toBeNull();
});
