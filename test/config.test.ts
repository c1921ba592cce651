import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { didYouMean, parseCommandLine } from "../src/config/args.ts";
import { overlap } from "../src/config/binds.ts";
import { groupId } from "../src/config/files.ts";
import { serverOptions } from "../src/config/options.ts";
import { exampleConfig, helpText, readmeSettings } from "../src/config/render.ts";
import { resolveConfig, splitAppSpec } from "../src/config/resolve.ts";
import { SETTINGS } from "../src/config/settings.ts";
import { tomlErrorPosition, tomlLines } from "../src/config/toml.ts";
import { parseListener } from "../src/engine/listeners.ts";
import { makeCertificates } from "./helpers.ts";

const dir = mkdtempSync(join(tmpdir(), "bunwsgi-config-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
writeFileSync(join(dir, "app.ts"), "export default () => [];\n");
writeFileSync(join(dir, "cert.pem"), "not checked here\n");

let n = 0;
/** Resolve `toml` (written to a fresh folder holding app.ts) with extra argv. */
function resolveWith(toml: string | null, argv: string[] = []) {
  const d = join(dir, `case${n++}`);
  mkdirSync(d);
  writeFileSync(join(d, "app.ts"), "export default () => [];\n");
  if (toml !== null) writeFileSync(join(d, "bunwsgi.toml"), toml);
  return { d, ...resolveConfig({ commandLine: parseCommandLine(argv), cwd: d }) };
}

describe("the settings table", () => {
  test("every setting has a flag derived from its key, a doc, a metavar and an example", () => {
    const flag = (key: string): string | undefined => SETTINGS.find((s) => s.key === key)?.flag;
    expect([flag("bind"), flag("tls.client_auth"), flag("timeouts.keep_alive"), flag("log.level")]).toEqual([
      "--bind",
      "--tls-client-auth",
      "--timeouts-keep-alive",
      "--log-level",
    ]);
    for (const s of SETTINGS) {
      expect(s.doc.length).toBeGreaterThan(10);
      expect(s.metavar).not.toBe("");
      expect(s.example).not.toBe("");
    }
    expect(new Set(SETTINGS.map((s) => s.flag)).size).toBe(SETTINGS.length);
  });

  test("--help lists every flag", () => {
    const help = helpText("9.9.9");
    for (const s of SETTINGS) expect(help).toContain(`${s.flag} ${s.metavar}`);
  });

  test("the README's settings reference is exactly what the table generates", () => {
    // The formatter pads Markdown tables; compare cell contents, not padding.
    const norm = (text: string): string =>
      text
        .split("\n")
        .map((l) =>
          l.startsWith("|")
            ? l
                .replace(/-{3,}/g, "---")
                .replace(/ *\| */g, "|")
                .replace(/ {2,}/g, " ")
            : l,
        )
        .join("\n");
    const readme = readFileSync(join(import.meta.dir, "..", "README.md"), "utf8");
    expect(norm(readme)).toContain(norm(readmeSettings()));
  });

  test("the complete example config parses and uses every key (one that needs what others rule out as a comment)", () => {
    const doc = Bun.TOML.parse(exampleConfig().replace(/^# (\w+ = .*?) {2}# .*$/gm, "$1")) as Record<
      string,
      Record<string, unknown>
    >;
    for (const s of SETTINGS) {
      const [a, b] = s.key.split(".") as [string, string | undefined];
      expect(b === undefined ? doc[a] : doc[a]?.[b]).toBeDefined();
    }
  });
});

describe("resolving a config", () => {
  test("defaults apply with no file and no flags except APP", () => {
    const { config, errors, d } = resolveWith(null, ["app.ts"]);
    expect(errors).toEqual([]);
    expect(config.file).toBeNull();
    expect(config.list("bind")).toEqual(["127.0.0.1:8000"]);
    expect(config.str("app")).toBe(join(d, "app.ts"));
    expect(config.num("timeouts.header")).toBe(20);
  });

  test("./bunwsgi.toml is read when --config is not given; paths resolve against its folder", () => {
    const { config, errors, d } = resolveWith(
      'app = "app.ts:named"\nbind = ["127.0.0.1:0", "unix:s.sock"]\npidfile = "p.pid"\n[log]\naccess = ["a.log", "stdout"]\n',
    );
    expect(errors).toEqual([]);
    expect(config.file).toBe(join(d, "bunwsgi.toml"));
    expect(config.str("app")).toBe(`${join(d, "app.ts")}:named`);
    expect(config.list("bind")).toEqual(["127.0.0.1:0", `unix:${join(d, "s.sock")}`]);
    expect(config.str("pidfile")).toBe(join(d, "p.pid"));
    expect(config.list("log.access")).toEqual([join(d, "a.log"), "stdout"]);
  });

  test("flags override the file; repeated list flags accumulate; --environ takes KEY=VALUE", () => {
    const { config, errors } = resolveWith('app = "app.ts"\nbind = "127.0.0.1:1"\n[environ]\nA = "file"\n', [
      "--bind",
      "127.0.0.1:2",
      "--bind=[::1]:3",
      "--environ",
      "B=flag=yes",
      "--timeouts-keep-alive",
      "2.5",
    ]);
    expect(errors).toEqual([]);
    expect(config.list("bind")).toEqual(["127.0.0.1:2", "[::1]:3"]);
    expect(config.environ()).toEqual({ B: "flag=yes" });
    expect(config.num("timeouts.keep_alive")).toBe(2.5);
    expect(config.sources.get("bind")).toBe("flag");
  });

  test("an unknown key names file, line and key, with a did-you-mean from the same table", () => {
    const { errors, d } = resolveWith('app = "app.ts"\n\n[limits]\nrequest_lines = 100\n');
    expect(errors).toEqual([`${join(d, "bunwsgi.toml")}:4: limits.request_lines: unknown key; did you mean "request_line"?`]);
  });

  test("a key in the wrong table is pointed to its table", () => {
    const { errors } = resolveWith('app = "app.ts"\nclient_auth = "require"\n');
    expect(errors[0]).toContain(':2: client_auth: unknown key; did you mean "tls.client_auth"?');
  });

  test("wrong types and out-of-range values say what was expected", () => {
    const { errors } = resolveWith(
      'app = "app.ts"\nbind = 8000\nspawn = 0\n[limits]\nbody = 1.5\n[timeouts]\nheader = "20s"\n[tls]\nclient_auth = "always"\n',
    );
    expect(errors.join("\n")).toContain(
      ":2: bind: expected a non-empty string, a table { address, … } or a list of them, got number 8000",
    );
    expect(errors.join("\n")).toContain(":3: spawn: expected an integer from 1 to 10,000,000, got number 0");
    expect(errors.join("\n")).toContain(":5: limits.body: expected an integer from 1 to");
    expect(errors.join("\n")).toContain(
      ':7: timeouts.header: expected a number of seconds from 0 to 86400, got the string "20s"',
    );
    expect(errors.join("\n")).toContain(
      ':9: tls.client_auth: expected one of "none", "request", "require", got the string "always"',
    );
  });

  test("root_path and log.level are checked where they are written", () => {
    const { errors } = resolveWith('app = "app.ts"\nroot_path = "app/"\n[log]\nlevel = "loud"\n');
    expect(errors.join("\n")).toContain(
      ':2: root_path: expected a path such as "/app": starting with "/", without a trailing "/" or a query, got the string "app/"',
    );
    expect(errors.join("\n")).toContain(
      ':4: log.level: expected one of "debug", "info", "warning", "error", got the string "loud"',
    );
    const ok = resolveWith('app = "app.ts"\nroot_path = "/app"\n[log]\nlevel = "debug"\n');
    expect(ok.errors).toEqual([]);
    expect(serverOptions(ok.config)).toMatchObject({ rootPath: "/app", logLevel: 10 });
  });

  test("a bad flag value names the flag", () => {
    const { errors } = resolveWith('app = "app.ts"\n', ["--limits-headers", "lots", "--bind", "nohost"]);
    expect(errors).toContain('--limits-headers: limits.headers: expected an integer from 1 to 10,000, got the string "lots"');
    expect(errors.join("\n")).toContain("--bind: bind: invalid listener");
  });

  test("an integer's range is written with both ends grouped alike (was 1048576 to 9,007,199,254,740,991)", () => {
    const { errors } = resolveWith('app = "app.ts"\n', ["--limits-buffered-bytes", "3"]);
    expect(errors).toContain(
      '--limits-buffered-bytes: limits.buffered_bytes: expected an integer from 1,048,576 to 9,007,199,254,740,991, got the string "3"',
    );
  });

  test("a missing app, missing cert files and TLS settings that need each other are reported together", () => {
    const { errors } = resolveWith('app = "gone.ts"\n[tls]\ncert = "c.pem"\nclient_auth = "require"\n');
    const all = errors.join("\n");
    expect(all).toContain("app: module");
    expect(all).toContain("gone.ts not found");
    expect(all).toContain(":3: tls.cert: file");
    expect(all).toContain("tls.key: required with tls.cert");
    expect(all).toContain("tls.client_auth: needs tls.ca");
  });

  test("no app at all is an error unless the binary embeds one", () => {
    expect(resolveWith(null).errors[0]).toContain("app: no application given");
    const d = join(dir, "embedded");
    mkdirSync(d);
    expect(resolveConfig({ commandLine: parseCommandLine([]), cwd: d, embedded: true }).errors).toEqual([]);
  });

  test("log sinks: none cannot be mixed, and a file's folder must exist", () => {
    const { errors } = resolveWith('app = "app.ts"\n[log]\naccess = ["none", "stderr"]\nerror = "nodir/e.log"\n');
    expect(errors.join("\n")).toContain('log.access: "none" cannot be combined with other sinks');
    expect(errors.join("\n")).toContain("log.error: folder");
  });

  test('gunicorn\'s "-" for a log is refused with what to say instead, not made a file named "-"', () => {
    const { errors } = resolveWith('app = "app.ts"\n[log]\naccess = "-"\nerror = ["-"]\n');
    expect(errors.join("\n")).toContain('log.access: "-" is not a sink here: say "stdout" or "stderr"');
    expect(errors.join("\n")).toContain('log.error: "-" is not a sink here');
  });

  test("an invalid template names the unknown field", () => {
    const { errors } = resolveWith('app = "app.ts"\n[log]\nformat = "{status} {bogus}"\n');
    expect(errors[0]).toContain("log.format: unknown field {bogus}");
  });

  test("invalid TOML and a missing --config file are clear errors", () => {
    expect(resolveWith("app = \n").errors[0]).toContain("invalid TOML");
    const r = resolveConfig({ commandLine: parseCommandLine(["--config", "absent.toml"]), cwd: dir });
    expect(r.errors).toEqual([`${join(dir, "absent.toml")}: cannot read config file: not found`]);
  });

  test("client_auth maps to Bun's requestCert / rejectUnauthorized", async () => {
    const d = join(dir, "tlsmap");
    mkdirSync(d);
    await makeCertificates(d);
    renameSync(join(d, "srv.pem"), join(d, "c.pem"));
    renameSync(join(d, "srv.key"), join(d, "k.pem"));
    writeFileSync(join(d, "app.ts"), "export default () => [];\n");
    for (const [mode, request, reject] of [
      ["none", false, false],
      ["request", true, false],
      ["require", true, true],
    ] as const) {
      // A CA with "none" is an error of its own (it would do nothing).
      const ca = mode === "none" ? "" : 'ca = "ca.pem"\n';
      writeFileSync(
        join(d, "bunwsgi.toml"),
        `app = "app.ts"\n[tls]\ncert = "c.pem"\nkey = "k.pem"\n${ca}client_auth = "${mode}"\n`,
      );
      const { config, errors } = resolveConfig({ commandLine: parseCommandLine([]), cwd: d });
      expect(errors).toEqual([]);
      const tls = serverOptions(config).tls;
      expect([tls?.requestCert, tls?.rejectUnauthorized]).toEqual([request, reject]);
    }
  });
});

describe("the command line", () => {
  test("commands, --config and one positional APP", () => {
    expect(parseCommandLine(["check", "-c", "x.toml"])).toMatchObject({ command: "check", config: "x.toml" });
    expect(parseCommandLine(["serve", "app.ts"]).flags.map((f) => [f.setting.key, f.raw])).toEqual([["app", "app.ts"]]);
    expect(parseCommandLine(["--help"]).command).toBe("help");
    expect(() => parseCommandLine(["a.ts", "b.ts"])).toThrow("only one APP is served");
    expect(() => parseCommandLine(["--bind"])).toThrow("--bind needs a value");
    expect(() => parseCommandLine(["--spwan", "3"])).toThrow("unknown option --spwan; did you mean --spawn?");
  });

  test("did-you-mean only suggests close names", () => {
    expect(didYouMean("keepalive", ["keep_alive", "header"])).toBe('; did you mean "keep_alive"?');
    expect(didYouMean("zzzzzz", ["keep_alive", "header"])).toBe("");
  });

  test("tomlLines finds keys under [tables], dotted keys, [[array]] tables and list items", () => {
    const text = 'app = "a"\n[tls]\n  cert = "x"\n[log]\nformat = "json"\n';
    const lines = tomlLines(text);
    expect(lines.get("tls.cert")).toBe(3);
    expect(lines.get("log.format")).toBe(5);
    expect(lines.get("spawn")).toBeUndefined();
    expect(tomlLines('tls.cert = "x"\n').get("tls.cert")).toBe(1);
    const nested = tomlLines(
      's = """[not]\nx = 1 """\nbind = [\n  "a", # "b"\n  { address = "c" },\n]\n[[bind2]]\n[[bind2]]\nadress = 1\n[timeouts.extra]\n',
    );
    expect([nested.get("s"), nested.get("not"), nested.get("x"), nested.get("bind[0]"), nested.get("bind[1].address")]).toEqual([
      1,
      undefined,
      undefined,
      4,
      5,
    ]);
    expect([nested.get("bind2[0]"), nested.get("bind2[1]"), nested.get("bind2[1].adress"), nested.get("timeouts.extra")]).toEqual(
      [7, 8, 9, 10],
    );
  });

  test("two listeners overlap on one socket: the same address, a wildcard of their family or [::]; never on port 0", () => {
    const o = (a: string, b: string): boolean => overlap(parseListener(a), parseListener(b));
    expect([
      o("127.0.0.1:80", "127.0.0.1:80 proxy_protocol=v1"),
      o("0.0.0.0:80", "127.0.0.1:80"),
      o("[::]:80", "127.0.0.1:80"),
    ]).toEqual([true, true, true]);
    expect([o("[::1]:80", "[0:0:0:0:0:0:0:1]:80"), o("unix:/a", "unix:/a"), o("fd://3", "fd://3 proxy_protocol=v2")]).toEqual([
      true,
      true,
      true,
    ]);
    expect([
      o("0.0.0.0:80", "[::1]:80"),
      o("127.0.0.1:80", "127.0.0.1:81"),
      o("127.0.0.1:0", "127.0.0.1:0"),
      o("unix:/a", "fd://3"),
    ]).toEqual([false, false, false, false]);
  });

  test("app specs split at the last colon unless it is part of a path", () => {
    expect(splitAppSpec("app.ts:api")).toEqual({ file: "app.ts", name: "api" });
    expect(splitAppSpec("/srv/app.ts")).toEqual({ file: "/srv/app.ts", name: "default" });
    expect(splitAppSpec("C:\\srv\\app.ts")).toEqual({ file: "C:\\srv\\app.ts", name: "default" });
  });
});

describe("TOML syntax errors name the line and column", () => {
  const cases: Array<[string, string, string]> = [
    ["an unterminated string", 'app = "app.ts"\nbind = "127.0.0.1:80\nspawn = 5\n', ":2:8: invalid TOML: Unterminated string"],
    [
      "a table defined twice",
      '[log]\nformat = "json"\n\n[limits]\nbody = 5\n[log]\n',
      ":6:5: invalid TOML: Cannot redefine table 'log'",
    ],
    ["a key defined twice", 'app = "app.ts"\nspawn = 5\nspawn = 6\n', ":3:9: invalid TOML: Cannot redefine key 'spawn'"],
    ["an array never closed", 'app = "app.ts"\nbind = ["127.0.0.1:1",\n', ":2:"],
    ["a value missing", 'app = "app.ts"\n[timeouts]\nheader =\nbody = 5\n', ":3:"],
    // A valid multi-line array before the error must not be taken for it.
    ["an error after a multi-line array", 'bind = [\n  "127.0.0.1:1",\n  "127.0.0.1:2",\n]\nspawn = }\n', ":5:9:"],
  ];
  for (const [name, toml, expected] of cases) {
    test(name, () => {
      const { d, errors } = resolveWith(toml);
      expect(errors).toHaveLength(1);
      expect(errors[0]).toStartWith(join(d, "bunwsgi.toml"));
      expect(errors[0]).toContain(expected);
    });
  }

  test("tomlErrorPosition is null for text that parses", () => {
    expect(tomlErrorPosition('a = "b"\n', "anything")).toBeNull();
  });
});

describe("every error is reported", () => {
  test("each bad item of a bind list, at its own line", () => {
    const { errors } = resolveWith('app = "app.ts"\nbind = [\n  "127.0.0.1:99999",\n  "127.0.0.1:0",\n  "fd://x",\n]\n');
    expect(errors).toHaveLength(2);
    expect(errors[0]).toContain('bunwsgi.toml:3: bind: invalid listener "127.0.0.1:99999"');
    expect(errors[1]).toContain('bunwsgi.toml:5: bind: invalid listener "fd://x"');
  });

  test("each bad key of environ", () => {
    const { errors } = resolveWith('app = "app.ts"\n[environ]\nA = [1]\nB = { c = 1 }\n');
    expect(errors.map((e) => e.replace(/^.*: (environ\.\w+):.*$/, "$1"))).toEqual(["environ.A", "environ.B"]);
  });
});

describe("unix socket permissions", () => {
  test("mode and group are read, and become the server's unixSocketPerms", () => {
    const { config, errors } = resolveWith(
      'app = "app.ts"\nbind = "unix:s.sock"\nunix_socket_mode = "0660"\nunix_socket_group = "0"\n',
    );
    expect(errors).toEqual([]);
    expect(serverOptions(config).unixSocketPerms).toEqual({ mode: 0o660, gid: 0 });
  });

  test("a mode that is not octal, a group that does not exist, or either without a unix bind is an error", () => {
    const bad = resolveWith(
      'app = "app.ts"\nbind = "unix:s.sock"\nunix_socket_mode = 660\nunix_socket_group = "no-such-group-x"\n',
    );
    expect(bad.errors.join("\n")).toContain(
      'unix_socket_mode: expected an octal mode as a string of 3 or 4 digits, such as "0660"',
    );
    expect(bad.errors.join("\n")).toContain('unix_socket_group: no group "no-such-group-x" on this host');
    const tcp = resolveWith('app = "app.ts"\nunix_socket_mode = "0600"\n');
    expect(tcp.errors).toEqual([expect.stringContaining("unix_socket_mode: has no effect without a unix:/path bind")]);
  });

  test("a group name resolves to its id", () => {
    expect(groupId("root")).toBe(0);
    expect(groupId("12345")).toBe(12345);
    expect(groupId("no-such-group-x")).toBeNull();
  });
});

describe("trusted proxies and per-bind PROXY protocol", () => {
  test("forwarded_* and proxy_protocol_from become the server's proxies; booleans and lists from flags too", () => {
    const { config, errors } = resolveWith(
      'app = "app.ts"\nbind = ["127.0.0.1:8000", "unix:s.sock", "127.0.0.1:8001 proxy_protocol=v2"]\nforwarded_allow_ips = ["10.0.0.0/8", "::1"]\nforwarded_headers = ["X-Forwarded-For", "forwarded"]\nforwarded_strip_untrusted = true\n',
      ["--forwarded-allow-unix", "true", "--proxy-protocol-from", "192.0.2.0/24"],
    );
    expect(errors).toEqual([]);
    expect(serverOptions(config).proxies).toEqual({
      forwardedAllowIps: ["10.0.0.0/8", "::1"],
      forwardedAllowUnix: true,
      forwardedHeaders: ["x-forwarded-for", "forwarded"],
      forwardedStripUntrusted: true,
      proxyProtocolFrom: ["192.0.2.0/24"],
    });
  });

  test("a bad address, range, field or boolean names the file, line, key and what was expected", () => {
    const { errors } = resolveWith(
      'app = "app.ts"\nforwarded_allow_ips = ["127.0.0.1", "localhost"]\nproxy_protocol_from = ["10.1.0.0/8"]\nforwarded_headers = ["x-real-ip"]\nforwarded_allow_unix = "yes"\n',
    );
    const text = errors.join("\n");
    expect(text).toContain(
      ':2: forwarded_allow_ips: expected IP addresses, CIDR ranges or "*" ("localhost" is not an IP address or CIDR range)',
    );
    expect(text).toContain(
      ':3: proxy_protocol_from: expected IP addresses, CIDR ranges or "*" ("10.1.0.0/8" has bits set after its /8 prefix',
    );
    expect(text).toContain(':4: forwarded_headers: expected a list of "x-forwarded-for", "x-forwarded-proto"');
    expect(text).toContain(':5: forwarded_allow_unix: expected true or false, got the string "yes"');
  });

  test("[[bind]] tables and the string option give the same binds; a unix path in a table resolves against the file", () => {
    const { config, errors, d } = resolveWith(
      'app = "app.ts"\n\n[[bind]]\naddress = "127.0.0.1:8001"\nproxy_protocol = "v2"\n\n[[bind]]\naddress = "unix:run.sock"\nproxy_protocol = "auto"\n',
    );
    expect(errors).toEqual([]);
    expect(config.list("bind")).toEqual(["127.0.0.1:8001 proxy_protocol=v2", `unix:${join(d, "run.sock")} proxy_protocol=auto`]);
    const flags = resolveWith(null, ["app.ts", "--bind", "127.0.0.1:8001 proxy_protocol=v1"]);
    expect(flags.errors).toEqual([]);
    expect(flags.config.list("bind")).toEqual(["127.0.0.1:8001 proxy_protocol=v1"]);
  });

  test("a bad bind table names its line, the option and the values it takes", () => {
    const { errors } = resolveWith(
      'app = "app.ts"\nbind = [\n  "127.0.0.1:8000",\n  { address = "127.0.0.1:8001", proxy_protocol = "v3" },\n  { address = "127.0.0.1:8002", proxy_protocl = "v1" },\n]\n',
    );
    expect(errors.join("\n")).toContain(
      ':4: bind.proxy_protocol: expected one of "off", "v1", "v2", "auto", got the string "v3"',
    );
    expect(errors.join("\n")).toContain(':5: bind.proxy_protocl: unknown bind option; did you mean "proxy_protocol"?');
  });

  test("proxy_protocol with TLS is refused, saying why (Bun.listen reads no byte before the handshake)", () => {
    const { errors } = resolveWith(null, [
      "app.ts",
      "--bind",
      "127.0.0.1:8443 proxy_protocol=v2",
      "--tls-cert",
      "c.pem",
      "--tls-key",
      "k.pem",
    ]);
    expect(errors.join("\n")).toContain(
      'bind: "127.0.0.1:8443 proxy_protocol=v2": proxy_protocol cannot be used with tls.cert: Bun.listen starts the TLS handshake on a connection\'s first bytes',
    );
  });
});
