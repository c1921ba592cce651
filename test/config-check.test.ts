/**
 * @module test/config-check — `bunwsgi check` and the start, run as the real CLI (`bun src/cli.ts`)
 * on configs an operator gets wrong: settings that would have no effect, settings that contradict
 * each other, mistakes that must be found at their line, top-level keys written below a section,
 * and TLS files that cannot serve; each with its exit status and exact message.
 */

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createPrivateKey } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Proc } from "./binary.ts";
import { hello, makeCertificates, serve } from "./helpers.ts";

const root = join(import.meta.dir, "..");
const dir = mkdtempSync(join(tmpdir(), "bunwsgi-check-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
/** A fresh folder with app.ts and `toml` as site.toml; its path, and the config file's. */
function site(toml: string): { d: string; file: string } {
  const d = join(dir, `site${n++}`);
  mkdirSync(d);
  writeFileSync(join(d, "app.ts"), "export default () => [];\n");
  const file = join(d, "site.toml");
  writeFileSync(file, toml);
  return { d, file };
}

/** `bun src/cli.ts check --config FILE ARGS` on `toml`: exit code, stderr, and the config file's path. */
function check(toml: string, args: string[] = []): { code: number | null; stderr: string; file: string; d: string } {
  const { d, file } = site(toml);
  const p = Bun.spawnSync([process.execPath, join(root, "src/cli.ts"), "check", "--config", file, ...args], {
    cwd: d,
    stdout: "pipe",
    stderr: "pipe",
  });
  return { code: p.exitCode, stderr: p.stderr.toString(), file, d };
}

/** What check says of a config with these errors: each line an error, `F` standing for the config file. */
const invalid = (file: string, ...errors: string[]): string =>
  `bunwsgi: configuration is invalid:\n${errors.map((e) => `  ${e.replaceAll("F:", `${file}:`)}\n`).join("")}`;

/** Expect check to exit 2 with exactly these errors, in the file's order of lines. */
function expectErrors(toml: string, errors: string[], args: string[] = []): void {
  const r = check(toml, args);
  // "D/" as a path's start only: a path substituted before (the certificates' folder) may hold
  // "D/" itself, as a temporary folder named …aGrNAD/ did, and was rewritten.
  expect(r.stderr).toBe(invalid(r.file, ...errors.map((e) => e.replace(/(^|[\s"'(])D\//g, `$1${r.d}/`))));
  expect(r.code).toBe(2);
}

/** The start (`bun src/cli.ts --config FILE`) of a config it refuses: exit code and stderr; as `user` (setpriv) when given. */
function start(file: string, asUser: string[] = []): { code: number | null; stderr: string } {
  const p = Bun.spawnSync([...asUser, process.execPath, join(root, "src/cli.ts"), "--config", file], {
    stdout: "pipe",
    stderr: "pipe",
    timeout: 15_000,
  });
  return { code: p.exitCode, stderr: p.stderr.toString() };
}

const WORKERS = "has no effect without workers (workers = 0: this process serves alone)";

describe("a setting that would have no effect is an error saying what it needs", () => {
  test("every setting that only matters with workers, with workers = 0", () => {
    expectErrors(
      'app = "app.ts"\nworkers = 0\nreuse_port = true\nmax_requests = 1000\nmax_requests_jitter = 50\n[timeouts]\nworker = 10\n',
      [
        `F:3: reuse_port: ${WORKERS}`,
        `F:4: max_requests: ${WORKERS}`,
        `F:5: max_requests_jitter: ${WORKERS}`,
        `F:7: timeouts.worker: ${WORKERS}`,
      ],
    );
  });

  test("set by a flag, the flag is named", () => {
    expectErrors('app = "app.ts"\n', [`--max-requests: max_requests: ${WORKERS}`], ["--max-requests", "5"]);
  });

  test("with workers, the same settings pass; jitter still needs max_requests, reuse_port a host:port bind", () => {
    const ok = check(
      'app = "app.ts"\nworkers = 2\nreuse_port = false\nmax_requests = 1000\nmax_requests_jitter = 50\n[timeouts]\nworker = 10\n',
    );
    expect([ok.code, ok.stderr]).toEqual([0, "bunwsgi: configuration is valid\n"]);
    expectErrors('app = "app.ts"\nbind = "unix:s.sock"\nworkers = 2\nreuse_port = false\nmax_requests_jitter = 50\n', [
      "F:4: reuse_port: has no effect without a host:port bind (unix: and fd:// binds are always shared)",
      "F:5: max_requests_jitter: has no effect without max_requests (it is 0: workers are never replaced)",
    ]);
  });

  test("proxies: forwarded_allow_unix without a unix: bind, proxy_protocol_from without a proxy_protocol bind, forwarded_* with nothing to trust or read", () => {
    expectErrors(
      'app = "app.ts"\nforwarded_allow_unix = true\nproxy_protocol_from = ["10.0.0.0/8"]\nunix_socket_mode = "0660"\n',
      [
        "F:2: forwarded_allow_unix: has no effect without a unix:/path bind (or an fd:// one, which may be a unix socket)",
        'F:3: proxy_protocol_from: has no effect without a bind with proxy_protocol on, such as "0.0.0.0:8001 proxy_protocol=v2"',
        "F:4: unix_socket_mode: has no effect without a unix:/path bind",
      ],
    );
    expectErrors('app = "app.ts"\nforwarded_allow_ips = []\nforwarded_headers = ["forwarded"]\n', [
      "F:3: forwarded_headers: has no effect without a trusted peer (forwarded_allow_ips is [] and forwarded_allow_unix is false)",
    ]);
    expectErrors('app = "app.ts"\nforwarded_allow_ips = ["10.0.0.0/8"]\nforwarded_headers = []\n', [
      "F:2: forwarded_allow_ips: has no effect without forwarded_headers (it is []: no forwarding field is read)",
    ]);
  });

  test("logs, rates, TLS and WSGI-only settings without what they act on", () => {
    expectErrors(
      'app = "app.ts"\napp_kind = "fetch"\nroot_path = "/api"\n[tls]\nciphers = "HIGH"\nclient_auth = "none"\n[log]\naccess = "none"\nerror = "none"\nformat = "json"\nlevel = "debug"\n[limits]\nmin_response_rate = 0\n[timeouts]\nmin_response_rate_grace = 3\n',
      [
        'F:3: root_path: has no effect without a WSGI app (app_kind is "fetch")',
        "F:5: tls.ciphers: has no effect without tls.cert and tls.key",
        "F:6: tls.client_auth: has no effect without tls.cert and tls.key",
        'F:10: log.format: has no effect without an access log (log.access is "none")',
        'F:11: log.level: has no effect without an error log (log.error is "none")',
        "F:15: timeouts.min_response_rate_grace: has no effect without limits.min_response_rate (it is 0: off)",
      ],
    );
  });
});

describe("a setting that would have no effect, found among the proxies' settings", () => {
  test('forwarded_strip_untrusted when forwarded_allow_ips has "*": no peer is untrusted, so nothing is ever stripped', () => {
    const why =
      'has no effect without a peer that is not trusted (forwarded_allow_ips has "*": every peer these binds can have is trusted)';
    expectErrors('app = "app.ts"\nforwarded_allow_ips = ["*"]\nforwarded_strip_untrusted = true\n', [
      `F:3: forwarded_strip_untrusted: ${why}`,
    ]);
    // A unix: bind's peers are not trusted unless forwarded_allow_unix says so.
    const ok = check(
      'app = "app.ts"\nbind = ["127.0.0.1:0", "unix:s.sock"]\nforwarded_allow_ips = ["*"]\nforwarded_strip_untrusted = true\n',
    );
    expect([ok.code, ok.stderr]).toEqual([0, "bunwsgi: configuration is valid\n"]);
    expectErrors(
      'app = "app.ts"\nbind = ["127.0.0.1:0", "unix:s.sock"]\nforwarded_allow_ips = ["*"]\nforwarded_allow_unix = true\nforwarded_strip_untrusted = true\n',
      [`F:5: forwarded_strip_untrusted: ${why}`],
    );
  });
});

describe("settings that contradict each other are refused, both named", () => {
  test("limits.body above limits.buffered_bytes, whichever of the two was set", () => {
    const why =
      "an app that reads a whole body holds all of it at once, so a body over buffered_bytes stalls and gets 503 after timeouts.body; keep limits.buffered_bytes at least limits.body";
    expectErrors('app = "app.ts"\n[limits]\nbody = 209715200\nbuffered_bytes = 104857600\n', [
      `F:3: limits.body: 209715200 bytes (200 MiB) is more than limits.buffered_bytes, 104857600 bytes (100 MiB): ${why}`,
    ]);
    expectErrors('app = "app.ts"\n[limits]\nbuffered_bytes = 52428800\n', [
      `F:3: limits.buffered_bytes: 52428800 bytes (50 MiB) is less than limits.body, 104857600 bytes (100 MiB): ${why}`,
    ]);
  });

  test("metrics_bind on a bind's socket, and two binds on one socket", () => {
    const once =
      'a port is listened on once per address, and "[::]" covers every address of both families, "0.0.0.0" every IPv4 one';
    expectErrors(
      'app = "app.ts"\nbind = [\n  "0.0.0.0:18850",\n  "[::]:18850",\n  "127.0.0.1:18851",\n  "127.0.0.1:18851 proxy_protocol=v2",\n]\nmetrics_bind = "127.0.0.1:18850"\n',
      [
        `F:4: bind: "[::]:18850" takes the same socket as "0.0.0.0:18850" (F:3): ${once}`,
        `F:6: bind: "127.0.0.1:18851 proxy_protocol=v2" takes the same socket as "127.0.0.1:18851" (F:5): ${once}`,
        `F:8: metrics_bind: "127.0.0.1:18850" takes the same socket as bind "0.0.0.0:18850" (F:3): the metrics page needs an address and port of its own; ${once}`,
        `F:8: metrics_bind: "127.0.0.1:18850" takes the same socket as bind "[::]:18850" (F:4): the metrics page needs an address and port of its own; ${once}`,
      ],
    );
  });

  test("one path for both probes, an item listed twice, stop_idle past shutdown, a log file that is the pidfile", () => {
    expectErrors(
      'app = "app.ts"\npidfile = "x.pid"\nforwarded_allow_ips = ["10.0.0.1", "10.0.0.1"]\n[health]\nlive_path = "/z"\nready_path = "/z"\n[log]\naccess = [\n  "stderr",\n  "stderr",\n]\nerror = "x.pid"\n[timeouts]\nstop_idle = 30\n',
      [
        'F:3: forwarded_allow_ips: "10.0.0.1" is listed twice',
        'F:6: health.ready_path: "/z" is also health.live_path (F:5): the probes answer differently once a stop begins, so each needs a path of its own',
        'F:10: log.access: "stderr" is listed twice',
        "F:12: log.error: D/x.pid is also pidfile's file (F:2)",
        "F:14: timeouts.stop_idle: 30 s is longer than timeouts.shutdown, 10 s, which ends every connection of a graceful stop; make it at most timeouts.shutdown",
      ],
    );
  });
});

describe("every mistake is found at its line", () => {
  test("a misspelt section, at its header, with a did-you-mean; its keys are not each reported", () => {
    expectErrors('app = "app.ts"\n\n[timeout]\nheader = 5\n[limit]\nbody = 5\n[tsl]\n', [
      'F:3: timeout: unknown section [timeout]; did you mean "timeouts"?',
      'F:5: limit: unknown section [limit]; did you mean "limits"?',
      'F:7: tsl: unknown section [tsl]; did you mean "tls"?',
    ]);
  });

  test("a [[bind]] table: a misspelt key at its line, the missing address at the table's", () => {
    expectErrors('app = "app.ts"\n\n[[bind]]\naddress = "127.0.0.1:18852"\n\n[[bind]]\nadress = "127.0.0.1:18853"\n', [
      'F:6: bind.address: expected the bind\'s address as a non-empty string ("host:port", "unix:/path" or "fd://N"), got none',
      'F:7: bind.adress: unknown bind option; did you mean "address"?',
    ]);
  });

  test("sub-tables where a key or a value belongs", () => {
    expectErrors('app = "app.ts"\n[timeouts]\nheader = 5\n\n[timeouts.extra]\nx = 1\n[log.access]\ny = 2\n', [
      "F:5: timeouts.extra: unknown key",
      "F:7: log.access: expected a non-empty string or a list of them, got a table",
    ]);
  });

  test("each bad address of a list, at its own line", () => {
    expectErrors('app = "app.ts"\nforwarded_allow_ips = [\n  "10.0.0.0/33",\n  "127.0.0.1",\n  "notanip",\n]\n', [
      'F:3: forwarded_allow_ips: expected IP addresses, CIDR ranges or "*" ("10.0.0.0/33": the prefix length must be 0 to 32)',
      'F:5: forwarded_allow_ips: expected IP addresses, CIDR ranges or "*" ("notanip" is not an IP address or CIDR range)',
    ]);
  });
});

describe("a top-level key written below a section is pointed back to the top", () => {
  test("in a [section], in a [[bind]] table and in [environ]", () => {
    const top = (key: string): string => `"${key}" is a top-level setting: put it above the first [section]`;
    expectErrors(
      'app = "app.ts"\n[timeouts]\nheader = 5\nworkers = 2\n[[bind]]\naddress = "127.0.0.1:18854"\nspawn = 10\n[environ]\nAPP_ENV = "x"\nroot_path = "/a"\n',
      [
        `F:4: timeouts.workers: unknown key; ${top("workers")}`,
        `F:7: bind.spawn: unknown bind option; ${top("spawn")}`,
        `F:10: environ.root_path: ${top("root_path")}, not an environ key`,
      ],
    );
  });

  test("a section's key written below another section", () => {
    expectErrors('app = "app.ts"\n[timeouts]\nlog.level = "debug"\n', [
      'F:3: timeouts.log: unknown key; "log" is a section of its own: put its keys under [log]',
    ]);
  });
});

describe("TLS files are read and tried before any listener, each problem naming the key and the file", () => {
  let certs = "";
  beforeAll(async () => {
    certs = join(dir, "certs");
    mkdirSync(certs);
    await makeCertificates(certs);
    const key = createPrivateKey(readFileSync(join(certs, "srv.key"), "utf8"));
    writeFileSync(
      join(certs, "enc.key"),
      key.export({ format: "pem", type: "pkcs8", cipher: "aes-256-cbc", passphrase: "s3cret" }),
    );
    mkdirSync(join(certs, "folder"));
    // Certificates outside their dates: `openssl ca` is what sets a start and an end.
    writeFileSync(
      join(certs, "ca.cnf"),
      "[ca]\ndefault_ca = t\n[t]\ndatabase = index.txt\nnew_certs_dir = .\nserial = serial\ndefault_md = sha256\npolicy = p\nunique_subject = no\n[p]\ncommonName = supplied\n",
    );
    writeFileSync(join(certs, "index.txt"), "");
    writeFileSync(join(certs, "serial"), "01\n");
    const openssl = (args: string[]): void => {
      const p = Bun.spawnSync(["openssl", ...args], { cwd: certs, stderr: "pipe" });
      if (p.exitCode !== 0) throw new Error(`openssl ${args.join(" ")}: ${p.stderr.toString()}`);
    };
    openssl([
      "req",
      "-new",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-subj",
      "/CN=dated",
      "-keyout",
      "dated.key",
      "-out",
      "dated.csr",
    ]);
    for (const [name, start, end] of [
      ["expired", "20200101000000Z", "20200102000000Z"],
      ["future", "20990101000000Z", "20990102000000Z"],
    ] as const) {
      const dates = ["-startdate", start, "-enddate", end];
      openssl([
        "ca",
        "-batch",
        "-config",
        "ca.cnf",
        "-selfsign",
        "-keyfile",
        "dated.key",
        "-in",
        "dated.csr",
        ...dates,
        "-notext",
        "-out",
        `${name}.pem`,
      ]);
    }
  }, 30_000);

  const tls = (lines: string): string => `app = "app.ts"\n[tls]\n${lines.replaceAll("C/", `${certs}/`)}`;
  const at = (text: string): string => text.replaceAll("C/", `${certs}/`);

  test("a key of another certificate, files swapped, a file that is no PEM, a folder", () => {
    expectErrors(tls('cert = "C/srv.pem"\nkey = "C/stranger.key"\n'), [
      at("F:4: tls.key: C/stranger.key does not match tls.cert C/srv.pem: it is not the key of that certificate"),
    ]);
    expectErrors(tls('cert = "C/srv.key"\nkey = "C/srv.pem"\n'), [
      at("F:3: tls.cert: C/srv.key holds a private key, not a certificate: are tls.cert and tls.key swapped?"),
      at("F:4: tls.key: C/srv.pem holds a certificate, not a private key: are tls.cert and tls.key swapped?"),
    ]);
    expectErrors(tls('cert = "C/ca.cnf"\nkey = "C/folder"\n'), [
      at('F:3: tls.cert: C/ca.cnf is not a PEM certificate: no "-----BEGIN CERTIFICATE-----" line'),
      at("F:4: tls.key: C/folder is a directory, not a file"),
    ]);
  });

  test("an encrypted key without its passphrase or with a wrong one; a passphrase for a plain key", () => {
    expectErrors(tls('cert = "C/srv.pem"\nkey = "C/enc.key"\n'), [
      at("F:4: tls.passphrase: needed: tls.key C/enc.key is encrypted"),
    ]);
    expectErrors(tls('cert = "C/srv.pem"\nkey = "C/enc.key"\npassphrase = "guess"\n'), [
      at("F:5: tls.passphrase: does not decrypt tls.key C/enc.key (BAD_DECRYPT)"),
    ]);
    expectErrors(tls('cert = "C/srv.pem"\nkey = "C/srv.key"\npassphrase = "s3cret"\n'), [
      at("F:5: tls.passphrase: has no effect: tls.key C/srv.key is not encrypted"),
    ]);
    const ok = check(tls('cert = "C/srv.pem"\nkey = "C/enc.key"\npassphrase = "s3cret"\n'));
    expect([ok.code, ok.stderr]).toEqual([0, "bunwsgi: configuration is valid\n"]);
  });

  test("a cipher list that names no cipher, a CA file with no certificate", () => {
    expectErrors(tls('cert = "C/srv.pem"\nkey = "C/srv.key"\nciphers = "RC4"\n'), [
      'F:5: tls.ciphers: "RC4" names no TLS 1.2 cipher Bun\'s TLS library (BoringSSL) knows, such as "ECDHE+AESGCM:ECDHE+CHACHA20" (TLS 1.3 suites are not chosen here)',
    ]);
    expectErrors(tls('cert = "C/srv.pem"\nkey = "C/srv.key"\nca = "C/srv.key"\nclient_auth = "require"\n'), [
      at('F:5: tls.ca: C/srv.key holds no PEM certificate: no "-----BEGIN CERTIFICATE-----" line'),
    ]);
  });

  test('a CA file with client_auth = "none" does nothing, so it is an error; the start refuses it alike', () => {
    const why = 'has no effect without tls.client_auth "request" or "require" (it is "none": no client certificate is asked for)';
    expectErrors(tls('cert = "C/srv.pem"\nkey = "C/srv.key"\nca = "C/srv.pem"\n'), [`F:5: tls.ca: ${why}`]);
    expectErrors(tls('cert = "C/srv.pem"\nkey = "C/srv.key"\nca = "C/srv.pem"\nclient_auth = "none"\n'), [`F:5: tls.ca: ${why}`]);
    const { file } = site(tls('cert = "C/srv.pem"\nkey = "C/srv.key"\nca = "C/srv.pem"\n'));
    const refused = start(file);
    expect([refused.code, refused.stderr]).toEqual([
      2,
      `bunwsgi: cannot start: configuration is invalid:\n  ${file}:5: tls.ca: ${why}\n`,
    ]);
  });

  test("a certificate outside its dates is a warning in check, with the file and the dates", () => {
    const r = check(tls('cert = "C/expired.pem"\nkey = "C/dated.key"\nca = "C/future.pem"\nclient_auth = "request"\n'));
    expect(r.stderr).toBe(
      at(
        `bunwsgi: warning: ${r.file}:3: tls.cert: C/expired.pem: certificate "CN=dated" expired on 2020-01-02 00:00:00 UTC (valid from 2020-01-01 00:00:00 UTC)\n` +
          `bunwsgi: warning: ${r.file}:5: tls.ca: C/future.pem: certificate "CN=dated" is not valid until 2099-01-01 00:00:00 UTC (valid to 2099-01-02 00:00:00 UTC)\n` +
          "bunwsgi: configuration is valid\n",
      ),
    );
    expect(r.code).toBe(0);
  });

  test("the start refuses what check refuses, and warns of an expired certificate in the error log", async () => {
    const bad = site(tls('cert = "C/srv.pem"\nkey = "C/stranger.key"\n'));
    const refused = Bun.spawnSync([process.execPath, join(root, "src/cli.ts"), "--config", bad.file], { stderr: "pipe" });
    expect(refused.stderr.toString()).toBe(
      at(
        `bunwsgi: cannot start: configuration is invalid:\n  ${bad.file}:4: tls.key: C/stranger.key does not match tls.cert C/srv.pem: it is not the key of that certificate\n`,
      ),
    );
    expect(refused.exitCode).toBe(2);
    const old = site(tls('cert = "C/expired.pem"\nkey = "C/dated.key"\n').replace("\n", '\nbind = "127.0.0.1:0"\n'));
    const p = new Proc([join(root, "src/cli.ts"), "--config", old.file], old.d, process.execPath);
    await p.waitFor("listening on https://");
    p.kill("SIGTERM");
    expect(await p.exit()).toBe(0);
    expect(p.stderr).toContain(
      at(`[WARNING] bunwsgi: ${old.file}:4: tls.cert: C/expired.pem: certificate "CN=dated" expired on 2020-01-02 00:00:00 UTC`),
    );
  }, 20_000);

  test("a listener whose TLS material Bun rejects says so, not that the address is the problem", () => {
    const cert = readFileSync(join(certs, "srv.pem"), "utf8");
    const key = readFileSync(join(certs, "stranger.key"), "utf8");
    expect(() => serve(hello, { tls: { cert, key } })).toThrow(
      "cannot serve TLS on 127.0.0.1:0: tls.cert, tls.key, tls.passphrase, tls.ca or tls.ciphers is not usable (error:",
    );
  });
});

describe("check refuses what the start would fail at, and the start refuses it the same way", () => {
  const once =
    'a port is listened on once per address, and "[::]" covers every address of both families, "0.0.0.0" every IPv4 one';
  // A private /etc/hosts in a mount namespace of its own, so what a name resolves to is known.
  const namespaces = process.getuid?.() === 0 && Bun.spawnSync(["unshare", "-m", "true"], { stderr: "ignore" }).exitCode === 0;
  /** `bun src/cli.ts ARGS --config FILE` with /etc/hosts as `hosts` says. */
  const withHosts = (hosts: string, args: string[], file: string): { code: number | null; stderr: string } => {
    const path = join(dir, `hosts${n++}`);
    writeFileSync(path, hosts);
    const p = Bun.spawnSync(
      [
        "unshare",
        "-m",
        "sh",
        "-c",
        'mount --bind "$0" /etc/hosts && exec "$@"',
        path,
        process.execPath,
        join(root, "src/cli.ts"),
        ...args,
        "--config",
        file,
      ],
      { stdout: "pipe", stderr: "pipe", timeout: 15_000 },
    );
    return { code: p.exitCode, stderr: p.stderr.toString() };
  };

  test.skipIf(!namespaces)(
    "binds compared by the address each is bound at: a host name as it resolves, a wildcard over its family; metrics_bind too",
    () => {
      const hosts = "127.0.0.1 localhost\n127.0.0.1 web\n";
      const { file } = site(
        'app = "app.ts"\nbind = [\n  "localhost:18880",\n  "web:18880",\n  "0.0.0.0:18881",\n  "127.0.0.1:18881",\n]\nmetrics_bind = "localhost:18881"\n',
      );
      const errors = [
        `${file}:4: bind: "web:18880" takes the same socket as "localhost:18880" (${file}:3) (web is 127.0.0.1 here, localhost is 127.0.0.1 here): ${once}`,
        `${file}:6: bind: "127.0.0.1:18881" takes the same socket as "0.0.0.0:18881" (${file}:5): ${once}`,
        `${file}:8: metrics_bind: "localhost:18881" takes the same socket as bind "0.0.0.0:18881" (${file}:5) (localhost is 127.0.0.1 here): the metrics page needs an address and port of its own; ${once}`,
        `${file}:8: metrics_bind: "localhost:18881" takes the same socket as bind "127.0.0.1:18881" (${file}:6) (localhost is 127.0.0.1 here): the metrics page needs an address and port of its own; ${once}`,
      ];
      expect(withHosts(hosts, ["check"], file)).toEqual({
        code: 2,
        stderr: `bunwsgi: configuration is invalid:\n  ${errors.join("\n  ")}\n`,
      });
      // Without the rule, the second bind of the port fails at the start with EADDRINUSE.
      const two = site('app = "app.ts"\nbind = ["localhost:18882", "127.0.0.1:18882"]\n').file;
      expect(withHosts(hosts, [], two)).toEqual({
        code: 2,
        stderr: `bunwsgi: cannot start: configuration is invalid:\n  ${two}:2: bind: "127.0.0.1:18882" takes the same socket as "localhost:18882" (${two}:2) (localhost is 127.0.0.1 here): ${once}\n`,
      });
    },
  );

  // A name with two loopback addresses: ::1 and 127.0.0.1 where lo has ::1, else two IPv4 ones.
  const v6 = (() => {
    try {
      Bun.listen({ hostname: "::1", port: 0, socket: { data() {} } }).stop(true);
      return true;
    } catch {
      return false;
    }
  })();
  const [first, second] = v6 ? ["::1", "127.0.0.1"] : ["127.0.0.2", "127.0.0.1"];
  const at = (ip: string, port: number): string => (ip.includes(":") ? `[${ip}]:${port}` : `${ip}:${port}`);
  const both = `${first} both\n${second} both\n`;
  /** The server started from `file` with /etc/hosts as `hosts` (its pid is the server's: unshare and sh exec it). */
  const startWithHosts = (hosts: string, file: string, d: string): Proc => {
    const path = join(dir, `hosts${n++}`);
    writeFileSync(path, hosts);
    const args = ["-m", "sh", "-c", 'mount --bind "$0" /etc/hosts && exec "$@"', path];
    return new Proc([...args, process.execPath, join(root, "src/cli.ts"), "--config", file], d, "unshare");
  };
  /** What a GET of / at `ip`:`port` answers. */
  const get = async (ip: string, port: number): Promise<string> => {
    const r = await fetch(`http://${at(ip, port)}/`);
    return `${r.status} ${await r.text()}`;
  };
  const app = 'export default (environ, start) => { start("200 OK", []); return ["served at " + environ.SERVER_NAME]; };\n';

  test.skipIf(!namespaces)(
    "a host name with several addresses is a listener on each: check passes it, and the start serves every address, alone and with workers",
    async () => {
      const why = `both is ${first} and ${second} here`;
      // metrics_bind is one listener, at one of them: said, not refused.
      const { file } = site('app = "app.ts"\nbind = "both:18887"\nmetrics_bind = "both:18888"\n');
      expect(withHosts(both, ["check"], file)).toEqual({
        code: 0,
        stderr: `bunwsgi: warning: ${file}:3: metrics_bind: "both:18888": ${why}, and the metrics page listens on one address, ${at(first, 18888)} (a name's first IPv6 address, else its first IPv4 one), not on each as a bind does: name the address to serve it on\nbunwsgi: configuration is valid\n`,
      });
      // Port 0: each address gets a port of its own, said in its "listening on" line.
      for (const workers of [0, 1]) {
        const { d, file } = site(`app = "app.ts"\nbind = "both:0"\nworkers = ${workers}\npidfile = "bunwsgi.pid"\n`);
        writeFileSync(join(d, "app.ts"), app);
        const p = startWithHosts(both, file, d);
        try {
          const port = async (ip: string): Promise<number> => {
            const prefix = at(ip, 0)
              .slice(0, -1)
              .replace(/[[\].]/g, "\\$&");
            const line = new RegExp(`listening on http://${prefix}(\\d+)`);
            return Number(((await p.waitFor(line)) as RegExpMatchArray)[1]);
          };
          const [one, two] = [await port(first), await port(second)];
          expect(await get(first, one)).toBe(`200 served at ${first}`);
          expect(await get(second, two)).toBe(`200 served at ${second}`);
          if (workers === 0) continue;
          // SIGUSR2: the new master expands the name as the old one did, so it takes over both
          // sockets (keyed by bind), and serves them once the old master has left.
          const pidfile = join(d, "bunwsgi.pid");
          p.kill("SIGUSR2");
          const heir = Number(((await p.waitFor(/started a new master \(pid (\d+)\)/)) as RegExpMatchArray)[1]);
          try {
            for (let t = 0; t < 500 && !(existsSync(pidfile) && readFileSync(pidfile, "utf8").trim() === String(heir)); t++)
              await Bun.sleep(20);
            expect(readFileSync(pidfile, "utf8").trim()).toBe(String(heir));
            p.kill("SIGTERM");
            expect(await p.p.exited).toBe(0);
            expect(await get(first, one)).toBe(`200 served at ${first}`);
            expect(await get(second, two)).toBe(`200 served at ${second}`);
          } finally {
            process.kill(heir, "SIGTERM");
            const alive = (): boolean => {
              try {
                return process.kill(heir, 0);
              } catch {
                return false;
              }
            };
            for (let t = 0; t < 500 && alive(); t++) await Bun.sleep(20);
          }
        } finally {
          p.kill("SIGTERM");
          await p.p.exited;
        }
      }
    },
    40_000,
  );

  test.skipIf(!namespaces)(
    "each address of a name is judged: one that clashes with another bind or metrics_bind, one that is not this host's, named",
    () => {
      const why = `both is ${first} and ${second} here, a bind listening on each`;
      const { file } = site(
        `app = "app.ts"\nbind = [\n  "both:18891",\n  "${second}:18891",\n  "${at(first, 18892)}",\n]\nmetrics_bind = "both:18892"\n`,
      );
      const errors = [
        `${file}:4: bind: "${second}:18891" takes the same socket as "both:18891" (${file}:3) at ${second}:18891 (${why}): ${once}`,
        `${file}:7: metrics_bind: "both:18892" takes the same socket as bind "${at(first, 18892)}" (${file}:5) at ${at(first, 18892)} (${why}): the metrics page needs an address and port of its own; ${once}`,
      ];
      expect(withHosts(both, ["check"], file)).toEqual({
        code: 2,
        stderr: `bunwsgi: configuration is invalid:\n  ${errors.join("\n  ")}\n`,
      });
      // A wildcard covers each address of its family; the start refuses what check does.
      const wild = site('app = "app.ts"\nbind = ["[::]:18893", "both:18893"]\n').file;
      expect(withHosts(both, [], wild)).toEqual({
        code: 2,
        stderr: `bunwsgi: cannot start: configuration is invalid:\n  ${wild}:2: bind: "both:18893" takes the same socket as "[::]:18893" (${wild}:2) at ${at(first, 18893)} and ${second}:18893 (${why}): ${once}\n`,
      });
      // A name whose own addresses meet: each would be a listener, and the second one fails.
      const dual = site('app = "app.ts"\nbind = "dual:18895"\n').file;
      expect(withHosts("0.0.0.0 dual\n:: dual\n", ["check"], dual)).toEqual({
        code: 2,
        stderr: `bunwsgi: configuration is invalid:\n  ${dual}:2: bind: "dual:18895": its addresses take the same socket (dual is 0.0.0.0 and :: here, a bind listening on each): ${once}\n`,
      });
      const away = site('app = "app.ts"\nbind = "away:18894"\n').file;
      expect(withHosts("127.0.0.1 away\n192.0.2.1 away\n", ["check"], away)).toEqual({
        code: 2,
        stderr: `bunwsgi: configuration is invalid:\n  ${away}:2: bind: "away:18894": 192.0.2.1 is not an address of this host: bind one of its addresses (\`ip -brief address\`), 127.0.0.1 for this host only, or 0.0.0.0 for all (away is 127.0.0.1 and 192.0.2.1 here, a bind listening on each)\n`,
      });
    },
  );

  test("an address that is not this host's, tried without taking a port", () => {
    const why =
      "192.0.2.1 is not an address of this host: bind one of its addresses (`ip -brief address`), 127.0.0.1 for this host only, or 0.0.0.0 for all";
    expectErrors('app = "app.ts"\nbind = "192.0.2.1:18885"\nmetrics_bind = "192.0.2.1:18886"\n', [
      `F:2: bind: "192.0.2.1:18885": ${why}`,
      `F:3: metrics_bind: "192.0.2.1:18886": ${why}`,
    ]);
  });

  test("a unix: bind whose folder is missing, a path that is a file, a path longer than a socket's", () => {
    const long = `unix:${"x".repeat(120)}.sock`;
    const { d } = site("");
    writeFileSync(join(d, "file"), "");
    const r = check(`app = "app.ts"\nbind = [\n  "unix:${d}/nodir/s.sock",\n  "unix:${d}/file",\n  "${long}",\n]\n`);
    const longPath = `${r.d}/${"x".repeat(120)}.sock`;
    expect(r.stderr).toBe(
      invalid(
        r.file,
        `F:3: bind: "unix:${d}/nodir/s.sock": folder ${d}/nodir does not exist: create it before the start (under systemd, RuntimeDirectory= makes one in /run)`,
        `F:4: bind: "unix:${d}/file": ${d}/file exists and is not a socket: the start will not remove it`,
        `F:5: bind: "unix:${longPath}": the path is ${Buffer.byteLength(longPath)} bytes and a unix socket path can have at most 107: use a shorter one`,
      ),
    );
    expect(r.code).toBe(2);
    const refused = start(site(`app = "app.ts"\nbind = "unix:${d}/nodir/s.sock"\n`).file);
    expect(refused.stderr).toContain(`bind: "unix:${d}/nodir/s.sock": folder ${d}/nodir does not exist`);
    expect(refused.code).toBe(2);
  });

  const setpriv = process.getuid?.() === 0 && Bun.spawnSync(["setpriv", "--version"], { stdout: "ignore" }).exitCode === 0;
  test.skipIf(!setpriv)(
    "as a user that is not root: a port below 1024, folders it cannot write, a log it cannot write, a group it is not in",
    () => {
      const nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"];
      chmodSync(dir, 0o755);
      const { d, file } = site("");
      writeFileSync(join(d, "root.log"), "");
      chmodSync(join(d, "root.log"), 0o644);
      writeFileSync(
        file,
        'app = "app.ts"\nbind = ["127.0.0.1:80", "unix:s.sock"]\nunix_socket_group = "root"\nmetrics_bind = "127.0.0.1:81"\npidfile = "x.pid"\n[log]\naccess = "root.log"\n',
      );
      const low = (port: number): string =>
        `port ${port} is below 1024 (net.ipv4.ip_unprivileged_port_start), and this user (uid 65534) has neither root nor CAP_NET_BIND_SERVICE: give it that capability (AmbientCapabilities=CAP_NET_BIND_SERVICE in systemd), let systemd open the socket (bind = "fd://3"), or listen on a port from 1024 behind a proxy`;
      const errors = [
        `${file}:2: bind: "127.0.0.1:80": ${low(80)}`,
        `${file}:2: bind: "unix:${d}/s.sock": this user (uid 65534) cannot create files in ${d}: make the folder writable for it or bind elsewhere`,
        `${file}:3: unix_socket_group: "root": this user (uid 65534) is not root and not a member of group 0, so it cannot give its socket files that group`,
        `${file}:4: metrics_bind: "127.0.0.1:81": ${low(81)}`,
        `${file}:5: pidfile: this user (uid 65534) cannot create files in ${d}`,
        `${file}:7: log.access: ${d}/root.log is not writable by this user (uid 65534)`,
      ];
      const p = Bun.spawnSync([...nobody, process.execPath, join(root, "src/cli.ts"), "check", "--config", file], {
        cwd: d,
        stdout: "pipe",
        stderr: "pipe",
      });
      expect(p.stderr.toString()).toBe(`bunwsgi: configuration is invalid:\n  ${errors.join("\n  ")}\n`);
      expect(p.exitCode).toBe(2);
      // Each alone gets past check without the rules, and the start then fails: the port, say.
      const refused = start(site('app = "app.ts"\nbind = "127.0.0.1:80"\n').file, nobody);
      expect(refused.stderr).toContain(`bind: "127.0.0.1:80": ${low(80)}`);
      expect(refused.code).toBe(2);
    },
  );

  test("a backlog the sockets do not get is the same warning from check and in the start's error log", async () => {
    const r = check('app = "app.ts"\nbind = "127.0.0.1:0"\nbacklog = 1024\n');
    const warning = `${r.file}:3: backlog: 1024 is not applied: Bun.listen always asks for 512, whatever is set; the sockets' backlog is 512`;
    expect([r.code, r.stderr]).toEqual([0, `bunwsgi: warning: ${warning}\nbunwsgi: configuration is valid\n`]);
    const p = new Proc([join(root, "src/cli.ts"), "--config", r.file], r.d, process.execPath);
    await p.waitFor("listening on http://");
    p.kill("SIGTERM");
    expect(await p.exit()).toBe(0);
    expect(p.stderr).toContain(`[WARNING] bunwsgi: ${warning}\n`);
    expect(p.stderr.match(/not applied/g)?.length).toBe(1);
  }, 20_000);

  test("a pidfile naming a running process is a warning from check: the start refuses it, but it may be this config's server", async () => {
    const { d, file } = site('app = "app.ts"\nbind = "127.0.0.1:0"\npidfile = "x.pid"\n');
    const running = new Proc([join(root, "src/cli.ts"), "--config", file], d, process.execPath);
    try {
      await running.waitFor("listening on http://");
      const pid = running.p.pid;
      const p = Bun.spawnSync([process.execPath, join(root, "src/cli.ts"), "check", "--config", file], {
        cwd: d,
        stdout: "pipe",
        stderr: "pipe",
      });
      expect(p.stderr.toString()).toBe(
        `bunwsgi: warning: ${file}:3: pidfile: pidfile ${d}/x.pid names process ${pid}, which is running: is bunwsgi already started? A start now is refused; if that is this config's server, SIGHUP applies what a reload can (SIGUSR2: a new binary on the same sockets).\nbunwsgi: configuration is valid\n`,
      );
      expect(p.exitCode).toBe(0);
      const second = start(file);
      expect(second.stderr).toContain(`pidfile ${d}/x.pid names process ${pid}, which is running: is bunwsgi already started?`);
      expect(second.code).toBe(2);
    } finally {
      running.kill("SIGTERM");
      await running.exit();
    }
  }, 20_000);
});
