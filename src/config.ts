/** @module config — the settings table, and bunwsgi.toml plus CLI flags resolved and validated against it. */

import { accessSync, constants, readFileSync, statSync } from "node:fs";
import { dirname, isAbsolute, resolve } from "node:path";
import type { TLSOptions } from "bun";
import type { Timeouts } from "./engine/exchange.ts";
import { ConfigError } from "./errors.ts";
import { compileLogFormat, LEVEL_NUMBERS, type LogLevel } from "./log.ts";
import { checkRootPath, DEFAULT_LIMITS, DEFAULT_TIMEOUTS, type Limits, parseListener, type WSGIServerOptions } from "./server.ts";

/** How a setting's value is checked and converted. */
type Kind =
  | "app"
  | "string"
  | "path"
  | "file"
  | "int"
  | "seconds"
  | "choice"
  | "binds"
  | "sinks"
  | "table"
  | "format"
  | "mode"
  | "group"
  | "urlpath";

export type EnvironTable = Record<string, string | number | boolean>;
export type Value = string | number | string[] | EnvironTable | null;
export type Source = "default" | "file" | "flag";

export interface Setting {
  /** Dotted key: "bind", "tls.client_auth". The part before the dot is the TOML table. */
  readonly key: string;
  /** The CLI flag, derived from the key: "--tls-client-auth". */
  readonly flag: string;
  /** The TOML table ("" at top level) and the key within it, derived from the key. */
  readonly table: string;
  readonly name: string;
  readonly kind: Kind;
  readonly default: Value;
  readonly doc: string;
  /** What --help shows after the flag. */
  readonly metavar: string;
  readonly min?: number;
  readonly max?: number;
  readonly choices?: readonly string[];
  /** Whether SIGHUP applies a change; the others (sockets, TLS, pidfile) need a restart. */
  readonly reload: boolean;
  /** A value for the README's complete example config (TOML syntax). */
  readonly example: string;
}

type Row = Omit<Setting, "flag" | "table" | "name">;

const MiB = 1024 * 1024;
const SECTIONS: Readonly<Record<string, string>> = {
  "": "Top level",
  tls: "[tls] — serve HTTPS",
  log: "[log] — access and error logs",
  limits: "[limits] — request size limits",
  timeouts: "[timeouts] — seconds; 0 turns one off",
};

const rows: Row[] = [
  {
    key: "app",
    kind: "app",
    default: null,
    metavar: "MODULE[:EXPORT]",
    reload: true,
    example: '"app.ts"',
    doc: "Application module (TypeScript or JavaScript) and export: the default export, or the named one after `:`. Also the positional APP argument.",
  },
  {
    key: "bind",
    kind: "binds",
    default: ["127.0.0.1:8000"],
    metavar: "ADDR",
    reload: false,
    example: '["0.0.0.0:8000", "[::]:8000", "unix:/run/bunwsgi/bunwsgi.sock"]',
    doc: "Where to listen: `host:port`, `[v6]:port`, `unix:/path` or `fd://N` (an inherited listening socket); one or a list. Repeat the flag for several.",
  },
  {
    key: "unix_socket_mode",
    kind: "mode",
    default: null,
    metavar: "MODE",
    reload: false,
    example: '"0660"',
    doc: 'Permissions of every `unix:` socket file, in octal, set as it is bound (a client needs write permission to connect): `"0660"` lets the owner and `unix_socket_group` in. Unset: the process umask decides.',
  },
  {
    key: "unix_socket_group",
    kind: "group",
    default: null,
    metavar: "GROUP",
    reload: false,
    example: '"www-data"',
    doc: "Group (name or number) given to every `unix:` socket file, such as the web server's (`www-data` for Debian's nginx). bunwsgi's user must be root or a member of it.",
  },
  {
    key: "backlog",
    kind: "int",
    default: null,
    min: 1,
    max: 65535,
    metavar: "N",
    reload: false,
    example: "512",
    doc: "Listen backlog. Bun.listen's is fixed at 512: another value is reported at start, not silently dropped.",
  },
  {
    key: "spawn",
    kind: "int",
    default: null,
    min: 1,
    max: 10_000_000,
    metavar: "N",
    reload: true,
    example: "10000",
    doc: "Most connections served at once, over all binds; more wait, unread, until one closes. Unset: no limit.",
  },
  {
    key: "pidfile",
    kind: "path",
    default: null,
    metavar: "FILE",
    reload: false,
    example: '"/run/bunwsgi/bunwsgi.pid"',
    doc: "Write the process id here once listening; removed at exit. Refuses to start if it names a live process.",
  },
  {
    key: "root_path",
    kind: "urlpath",
    default: null,
    metavar: "PATH",
    reload: true,
    example: '"/app"',
    doc: "The path prefix the app is mounted under behind a proxy (gunicorn's `SCRIPT_NAME`, uvicorn's `--root-path`): a request under it gets `SCRIPT_NAME` = the prefix and `PATH_INFO` = the rest; other paths pass whole.",
  },
  {
    key: "environ",
    kind: "table",
    default: {},
    metavar: "KEY=VALUE",
    reload: true,
    example: '{ APP_ENV = "production" }',
    doc: "Extra keys added to every request's environ. Repeat the flag for several.",
  },
  {
    key: "tls.cert",
    kind: "file",
    default: null,
    metavar: "FILE",
    reload: false,
    example: '"/etc/bunwsgi/server.pem"',
    doc: "Server certificate chain (PEM). With `tls.key`, every bind serves HTTPS.",
  },
  {
    key: "tls.key",
    kind: "file",
    default: null,
    metavar: "FILE",
    reload: false,
    example: '"/etc/bunwsgi/server.key"',
    doc: "Private key (PEM) for `tls.cert`.",
  },
  {
    key: "tls.ca",
    kind: "file",
    default: null,
    metavar: "FILE",
    reload: false,
    example: '"/etc/bunwsgi/clients-ca.pem"',
    doc: "CA certificates (PEM) that client certificates must chain to; needed by `client_auth`.",
  },
  {
    key: "tls.passphrase",
    kind: "string",
    default: null,
    metavar: "TEXT",
    reload: false,
    example: '"change-me"',
    doc: "Passphrase of an encrypted `tls.key`.",
  },
  {
    key: "tls.ciphers",
    kind: "string",
    default: null,
    metavar: "LIST",
    reload: false,
    example: '"ECDHE+AESGCM:ECDHE+CHACHA20"',
    doc: "OpenSSL cipher list for TLS 1.2 (TLS 1.3 suites are not affected).",
  },
  {
    key: "tls.client_auth",
    kind: "choice",
    default: "none",
    choices: ["none", "request", "require"],
    metavar: "MODE",
    reload: false,
    example: '"none"',
    doc: "Client certificates: `none`; `request` (asked for, optional); `require` (a client without one that verifies against `tls.ca` is refused). A verified certificate's subject is environ `SSL_CLIENT_S_DN`.",
  },
  {
    key: "log.access",
    kind: "sinks",
    default: ["stderr"],
    metavar: "SINK",
    reload: true,
    example: '["/var/log/bunwsgi/access.log", "stdout"]',
    doc: 'Access log: `"stderr"`, `"stdout"`, `"none"` or a file path (appended to); one or a list.',
  },
  {
    key: "log.error",
    kind: "sinks",
    default: ["stderr"],
    metavar: "SINK",
    reload: true,
    example: '"stderr"',
    doc: "Error log (also environ `wsgi.errors`): the same choices as `log.access`.",
  },
  {
    key: "log.level",
    kind: "choice",
    default: "info",
    choices: ["debug", "info", "warning", "error"],
    metavar: "LEVEL",
    reload: true,
    example: '"info"',
    doc: "Least severe error-log line written: `debug` adds why each refused request was refused (the access record's `reason`, with the parser's message).",
  },
  {
    key: "log.format",
    kind: "format",
    default: "gevent",
    metavar: "FORMAT",
    reload: true,
    example: '"combined"',
    doc: "Access-log line: `gevent` (gevent.pywsgi's), `combined` (Apache/nginx), `json` (one object per line) or a template such as `{remote_addr} {method} {path} {status} {duration_ms}ms`.",
  },
  {
    key: "limits.request_line",
    kind: "int",
    default: DEFAULT_LIMITS.maxRequestLine,
    min: 64,
    max: MiB,
    metavar: "BYTES",
    reload: true,
    example: String(DEFAULT_LIMITS.maxRequestLine),
    doc: "Longest request line; longer gets 414.",
  },
  {
    key: "limits.header_bytes",
    kind: "int",
    default: DEFAULT_LIMITS.maxHeaderBytes,
    min: 256,
    max: 16 * MiB,
    metavar: "BYTES",
    reload: true,
    example: String(DEFAULT_LIMITS.maxHeaderBytes),
    doc: "Largest header section; larger gets 431.",
  },
  {
    key: "limits.headers",
    kind: "int",
    default: DEFAULT_LIMITS.maxHeaders,
    min: 1,
    max: 10_000,
    metavar: "N",
    reload: true,
    example: String(DEFAULT_LIMITS.maxHeaders),
    doc: "Most header fields; more gets 431.",
  },
  {
    key: "limits.body",
    kind: "int",
    default: DEFAULT_LIMITS.maxBodySize,
    min: 1,
    max: Number.MAX_SAFE_INTEGER,
    metavar: "BYTES",
    reload: true,
    example: String(DEFAULT_LIMITS.maxBodySize),
    doc: "Largest request body, by Content-Length or chunked; larger gets 413.",
  },
  ...(
    [
      ["header", DEFAULT_TIMEOUTS.header, "Whole request head must arrive in this time (slowloris), else 408 and close."],
      ["keep_alive", DEFAULT_TIMEOUTS.keepAlive, "Idle keep-alive connection is closed after this."],
      ["body", DEFAULT_TIMEOUTS.body, "Request body may stall this long between reads, else 408 and close."],
      ["write", DEFAULT_TIMEOUTS.write, "A client that accepts no response bytes this long is cut off."],
      ["shutdown", DEFAULT_TIMEOUTS.shutdown, "Graceful stop (SIGTERM/SIGINT) waits this long for in-flight requests."],
      [
        "stop_idle",
        DEFAULT_TIMEOUTS.stopIdle,
        "During a graceful stop, idle keep-alive connections stay open this long (at most `shutdown`): a request already on its way gets an answer with `Connection: close`, not a reset.",
      ],
    ] as const
  ).map(
    ([name, value, doc]): Row => ({
      key: `timeouts.${name}`,
      kind: "seconds",
      default: value,
      min: 0,
      max: 86_400,
      metavar: "SECONDS",
      reload: true,
      example: String(value),
      doc,
    }),
  ),
];

/** The settings table: one row per setting, driving the config file, flags, --help, validation and the README. */
export const SETTINGS: readonly Setting[] = rows.map((r) => ({
  ...r,
  ...splitKey(r.key),
  flag: `--${r.key.replace(/[._]/g, "-")}`,
}));

const BY_KEY = new Map(SETTINGS.map((s) => [s.key, s]));
const BY_FLAG = new Map(SETTINGS.map((s) => [s.flag, s]));

/** Where a value came from, for messages: "bunwsgi.toml:7", "--bind" or "default". */
interface Origin {
  source: Source;
  label: string;
  /** Folder that relative paths are resolved against. */
  base: string;
  /** Where one item of a list value is ("site.toml:4"), when the source can tell. */
  item?: (item: string) => string;
}

/** A resolved configuration: every setting's value and where it came from. */
export class Config {
  /** The config file read, or null. */
  readonly file: string | null;
  readonly values = new Map<string, Value>();
  readonly sources = new Map<string, Source>();

  constructor(file: string | null) {
    this.file = file;
    for (const s of SETTINGS) {
      this.values.set(s.key, s.default);
      this.sources.set(s.key, "default");
    }
  }

  get(key: string): Value {
    if (!BY_KEY.has(key)) throw new Error(`no setting ${key}`);
    return this.values.get(key) ?? null;
  }

  str(key: string): string | null {
    const v = this.get(key);
    return typeof v === "string" ? v : null;
  }

  num(key: string): number | null {
    const v = this.get(key);
    return typeof v === "number" ? v : null;
  }

  list(key: string): string[] {
    const v = this.get(key);
    return Array.isArray(v) ? v : [];
  }

  environ(): EnvironTable {
    const v = this.get("environ");
    return v !== null && typeof v === "object" && !Array.isArray(v) ? v : {};
  }
}

/** Raw flag values as parsed from argv, in order; validated with the file's values. */
export type FlagValues = Array<{ setting: Setting; raw: string }>;

/** What the command line asked for. */
export interface CommandLine {
  command: "serve" | "check" | "help" | "version";
  config: string | null;
  flags: FlagValues;
}

/** Parse argv (after the program name). Unknown options are errors with a did-you-mean. */
export function parseCommandLine(argv: readonly string[]): CommandLine {
  const out: CommandLine = { command: "serve", config: null, flags: [] };
  let positional = 0;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === "--help" || arg === "-h") return { ...out, command: "help" };
    if (arg === "--version" || arg === "-V") return { ...out, command: "version" };
    if (i === 0 && (arg === "serve" || arg === "check")) {
      out.command = arg;
      continue;
    }
    if (!arg.startsWith("-") || arg === "-") {
      if (positional++ > 0) throw new ConfigError(`unexpected argument ${JSON.stringify(arg)}: only one APP is served`);
      out.flags.push({ setting: BY_KEY.get("app") as Setting, raw: arg });
      continue;
    }
    const eq = arg.indexOf("=");
    const name = eq > 0 ? arg.slice(0, eq) : arg;
    const value = (): string => {
      if (eq > 0) return arg.slice(eq + 1);
      const next = argv[++i];
      if (next === undefined) throw new ConfigError(`${name} needs a value`);
      return next;
    };
    if (name === "--config" || name === "-c") {
      out.config = value();
      continue;
    }
    const setting = BY_FLAG.get(name);
    if (setting === undefined) {
      const hint = didYouMean(name, ["--config", "--help", "--version", ...BY_FLAG.keys()]);
      throw new ConfigError(`unknown option ${name}${hint} (see --help)`);
    }
    out.flags.push({ setting, raw: value() });
  }
  return out;
}

/** " (did you mean x?)" for the closest name within a small edit distance, else "". */
export function didYouMean(name: string, candidates: Iterable<string>): string {
  let best = "";
  let bestDistance = Math.max(2, Math.floor(name.length / 3)) + 1;
  for (const c of candidates) {
    const d = editDistance(name.toLowerCase(), c.toLowerCase());
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  return best === "" ? "" : `; did you mean ${best.startsWith("-") ? best : JSON.stringify(best)}?`;
}

/** Optimal string alignment distance: Levenshtein plus adjacent transpositions. */
function editDistance(a: string, b: string): number {
  const rows: number[][] = [];
  for (let i = 0; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      if (i === 0) {
        row.push(j);
        continue;
      }
      const prev = rows[i - 1] as number[];
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min((prev[j] as number) + 1, (row[j - 1] as number) + 1, (prev[j - 1] as number) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d = Math.min(d, (rows[i - 2]?.[j - 2] as number) + 1);
      row.push(d);
    }
    rows.push(row);
  }
  return rows[a.length]?.[b.length] as number;
}

/** "tls.client_auth" → table "tls", name "client_auth"; a top-level key has table "". */
function splitKey(key: string): { table: string; name: string } {
  const dot = key.indexOf(".");
  return dot < 0 ? { table: "", name: key } : { table: key.slice(0, dot), name: key.slice(dot + 1) };
}

/** The line of `key` in a TOML text, tracking [table] headers and dotted keys; null if not found. */
export function lineOf(text: string, key: string): number | null {
  const { table, name } = splitKey(key);
  let current = "";
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = (lines[i] as string).trim();
    if (line.startsWith("[")) {
      current = line.slice(1, line.indexOf("]") < 0 ? line.length : line.indexOf("]")).trim();
      continue;
    }
    const eq = line.indexOf("=");
    if (eq < 0) continue;
    const k = line.slice(0, eq).trim().replace(/^"|"$/g, "");
    if ((current === table && k === name) || (current === "" && table !== "" && k === `${table}.${name}`)) return i + 1;
    if (current === "" && table !== "" && k === table) return i + 1;
  }
  return null;
}

/**
 * Where Bun.TOML.parse failed in `text`, as 1-based line and column; null if not found. Its
 * errors carry no position, so prefixes are parsed again: the line is the first from which
 * every longer prefix fails with the same message (a multi-line array or string that is
 * still open at a cut fails differently, or the same way only until it closes), and the
 * column is the shortest part of that line with which the prefix fails that way: where the
 * parser gives up.
 */
export function tomlErrorPosition(text: string, message: string): { line: number; column: number } | null {
  const failsTheSame = (prefix: string): boolean => {
    try {
      Bun.TOML.parse(prefix);
      return false;
    } catch (e) {
      return (e as Error).message === message;
    }
  };
  const lines = text.split("\n");
  // A line keeps its newline: some messages depend on it ("newlines must be escaped").
  const end = (k: number): string => (k < lines.length ? "\n" : "");
  let line = -1;
  for (let k = lines.length; k >= 1 && failsTheSame(lines.slice(0, k).join("\n") + end(k)); k--) line = k;
  if (line < 0) return null;
  const before = line === 1 ? "" : `${lines.slice(0, line - 1).join("\n")}\n`;
  const content = lines[line - 1] as string;
  for (let c = 1; c <= content.length; c++) {
    if (failsTheSame(before + content.slice(0, c) + end(line))) return { line, column: c };
  }
  return { line, column: 1 };
}

/** The line of a list item written as a TOML string literal, at or after `from`; null if not found. */
function lineOfItem(text: string, from: number, item: string): number | null {
  const lines = text.split("\n");
  const forms = [JSON.stringify(item), `'${item}'`];
  for (let i = Math.max(0, from - 1); i < lines.length; i++) {
    if (forms.some((f) => (lines[i] as string).includes(f))) return i + 1;
  }
  return null;
}

/** Sets a value after checking it, collecting errors instead of stopping at the first. */
class Resolver {
  readonly errors: string[] = [];

  constructor(
    readonly config: Config,
    private readonly embedded: boolean,
  ) {}

  fail(where: string, setting: Setting | string, why: string): void {
    const key = typeof setting === "string" ? setting : setting.key;
    this.errors.push(`${where}: ${key}: ${why}`);
  }

  /** Check `value` against `s` and store it; `append` accumulates list kinds (repeated flags). */
  set(s: Setting, value: unknown, origin: Origin, append: boolean): void {
    const v = this.check(s, value, origin);
    if (v === undefined) return;
    const prev = this.config.values.get(s.key);
    let next: Value = v;
    if (append && this.config.sources.get(s.key) === "flag") {
      if (Array.isArray(prev) && Array.isArray(v)) next = [...prev, ...v];
      else if (s.kind === "table") next = { ...(prev as EnvironTable), ...(v as EnvironTable) };
    }
    this.config.values.set(s.key, next);
    this.config.sources.set(s.key, origin.source);
  }

  /** The converted value, or undefined after recording an error. */
  private check(s: Setting, value: unknown, o: Origin): Value | undefined {
    const bad = (expected: string): undefined => {
      this.fail(o.label, s, `expected ${expected}, got ${describe(value)}`);
      return undefined;
    };
    const fromFlag = o.source === "flag" && typeof value === "string";
    switch (s.kind) {
      case "string":
        return typeof value === "string" && value !== "" ? value : bad("a non-empty string");
      case "app":
      case "path":
      case "file":
        if (typeof value !== "string" || value === "") return bad("a non-empty string (a path)");
        return s.kind === "app" ? resolveAppSpec(value, o.base) : resolve(o.base, value);
      case "int":
      case "seconds": {
        let n = value;
        if (fromFlag) n = (value as string).trim() === "" ? Number.NaN : Number(value);
        const what =
          s.kind === "int"
            ? `an integer from ${s.min} to ${(s.max as number).toLocaleString("en-US")}`
            : `a number of seconds from ${s.min} to ${s.max}`;
        if (typeof n !== "number" || !Number.isFinite(n) || (s.kind === "int" && !Number.isInteger(n))) return bad(what);
        if (n < (s.min as number) || n > (s.max as number)) return bad(what);
        return n;
      }
      case "choice":
        return typeof value === "string" && s.choices?.includes(value)
          ? value
          : bad(`one of ${s.choices?.map((c) => JSON.stringify(c)).join(", ")}`);
      case "format":
        if (typeof value !== "string" || value === "") return bad('"gevent", "combined", "json" or a {field} template');
        try {
          compileLogFormat(value);
        } catch (e) {
          this.fail(o.label, s, (e as Error).message.replace(/^log format:? ?/, ""));
          return undefined;
        }
        return value;
      case "binds":
      case "sinks": {
        const list = typeof value === "string" ? [value] : value;
        if (!Array.isArray(list) || list.length === 0 || !list.every((x) => typeof x === "string" && x !== "")) {
          return bad("a non-empty string or a list of them");
        }
        return s.kind === "binds" ? this.binds(s, list as string[], o) : this.sinks(s, list as string[], o);
      }
      case "table":
        return this.table(s, value, o);
      case "mode":
        // A string, because a TOML integer such as 660 would be decimal (0o660 is 432).
        return typeof value === "string" && /^0?[0-7]{3}$/.test(value)
          ? value
          : bad('an octal mode as a string of 3 or 4 digits, such as "0660"');
      case "group":
        return typeof value === "string" && value !== "" ? value : bad("a group name or number as a string");
      case "urlpath":
        try {
          return checkRootPath(value as string) || bad('a path such as "/app"');
        } catch {
          return bad('a path such as "/app": starting with "/", without a trailing "/" or a query');
        }
    }
  }

  /** Every bad bind is reported, each at its own line when the file spreads the list over several. */
  private binds(s: Setting, list: string[], o: Origin): string[] | undefined {
    const seen = new Set<string>();
    let ok = true;
    for (const b of list) {
      const where = o.item?.(b) ?? o.label;
      try {
        parseListener(b);
      } catch (e) {
        this.fail(where, s, (e as Error).message);
        ok = false;
        continue;
      }
      if (seen.has(b)) {
        this.fail(where, s, `${JSON.stringify(b)} is listed twice`);
        ok = false;
      }
      seen.add(b);
    }
    if (!ok) return undefined;
    // A unix socket path is relative to the config file like every other path.
    return list.map((b) => (b.startsWith("unix:") ? `unix:${resolve(o.base, b.slice(5))}` : b));
  }

  private sinks(s: Setting, list: string[], o: Origin): string[] | undefined {
    if (list.includes("none") && list.length > 1) {
      this.fail(o.label, s, '"none" cannot be combined with other sinks');
      return undefined;
    }
    return list.map((t) => (t === "stderr" || t === "stdout" || t === "none" ? t : resolve(o.base, t)));
  }

  private table(s: Setting, value: unknown, o: Origin): EnvironTable | undefined {
    if (o.source === "flag" && typeof value === "string") {
      const eq = value.indexOf("=");
      if (eq <= 0) {
        this.fail(o.label, s, `expected KEY=VALUE, got ${JSON.stringify(value)}`);
        return undefined;
      }
      return { [value.slice(0, eq)]: value.slice(eq + 1) };
    }
    if (value === null || typeof value !== "object" || Array.isArray(value)) {
      this.fail(o.label, s, `expected a table of strings, numbers or booleans, got ${describe(value)}`);
      return undefined;
    }
    const out: EnvironTable = {};
    let ok = true;
    for (const [k, v] of Object.entries(value)) {
      if (typeof v !== "string" && typeof v !== "number" && typeof v !== "boolean") {
        this.fail(o.label, `${s.key}.${k}`, `expected a string, number or boolean, got ${describe(v)}`);
        ok = false;
      } else out[k] = v;
    }
    return ok ? out : undefined;
  }

  /** Rules between settings, and files that must exist. */
  crossCheck(where: (key: string) => string): void {
    const c = this.config;
    const app = c.str("app");
    if (app === null) {
      if (!this.embedded) this.errors.push(`${where("app")}: app: no application given (set app in the config file or pass APP)`);
    } else {
      const file = splitAppSpec(app).file;
      if (!isFile(file)) this.errors.push(`${where("app")}: app: module ${file} not found`);
    }
    for (const key of ["tls.cert", "tls.key", "tls.ca"]) {
      const path = c.str(key);
      if (path === null) continue;
      if (!isFile(path)) this.errors.push(`${where(key)}: ${key}: file ${path} not found`);
      else if (!isReadable(path)) this.errors.push(`${where(key)}: ${key}: file ${path} is not readable`);
    }
    const cert = c.str("tls.cert");
    const key = c.str("tls.key");
    if ((cert === null) !== (key === null)) {
      const missing = cert === null ? "tls.cert" : "tls.key";
      this.errors.push(
        `${where(cert === null ? "tls.key" : "tls.cert")}: ${missing}: required with ${missing === "tls.cert" ? "tls.key" : "tls.cert"}`,
      );
    }
    if (cert === null && key === null) {
      for (const k of ["tls.ca", "tls.passphrase", "tls.ciphers"]) {
        if (c.get(k) !== null) this.errors.push(`${where(k)}: ${k}: has no effect without tls.cert and tls.key`);
      }
      if (c.str("tls.client_auth") !== "none") {
        this.errors.push(
          `${where("tls.client_auth")}: tls.client_auth: needs tls.cert and tls.key (client certificates are a TLS feature)`,
        );
      }
    } else if (c.str("tls.client_auth") !== "none" && c.str("tls.ca") === null) {
      this.errors.push(
        `${where("tls.client_auth")}: tls.client_auth: needs tls.ca, the CA that client certificates must chain to`,
      );
    }
    const unixBinds = c.list("bind").filter((b) => b.startsWith("unix:"));
    for (const key of ["unix_socket_mode", "unix_socket_group"]) {
      if (c.get(key) !== null && unixBinds.length === 0) {
        this.errors.push(`${where(key)}: ${key}: has no effect without a unix:/path bind`);
      }
    }
    const group = c.str("unix_socket_group");
    if (group !== null && groupId(group) === null) {
      this.errors.push(`${where("unix_socket_group")}: unix_socket_group: no group ${JSON.stringify(group)} on this host`);
    }
    for (const key of ["log.access", "log.error", "pidfile"]) {
      const paths = key === "pidfile" ? [c.str(key)] : c.list(key);
      for (const p of paths) {
        if (p === null || p === "stderr" || p === "stdout" || p === "none") continue;
        if (!isDirectory(dirname(p))) this.errors.push(`${where(key)}: ${key}: folder ${dirname(p)} does not exist`);
      }
    }
  }
}

const describe = (v: unknown): string => {
  if (Array.isArray(v)) return `a list (${JSON.stringify(v)})`;
  if (v !== null && typeof v === "object") return "a table";
  if (typeof v === "string") return `the string ${JSON.stringify(v)}`;
  return `${typeof v} ${String(v)}`;
};

const isFile = (p: string): boolean => {
  try {
    return statSync(p).isFile();
  } catch {
    return false;
  }
};
const isDirectory = (p: string): boolean => {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
};
const isReadable = (p: string): boolean => {
  try {
    accessSync(p, constants.R_OK);
    return true;
  } catch {
    return false;
  }
};

/**
 * A group's id from its name (or number): the system's group database through getent (which
 * also asks LDAP and the like), else /etc/group; null when there is no such group.
 */
export function groupId(group: string): number | null {
  if (/^\d+$/.test(group)) return Number(group);
  const fromLine = (line: string): number | null => {
    const [name, , gid] = line.split(":");
    return name === group && gid !== undefined && /^\d+$/.test(gid) ? Number(gid) : null;
  };
  try {
    const p = Bun.spawnSync(["getent", "group", group], { stdout: "pipe", stderr: "ignore" });
    if (p.exitCode === 0) return fromLine(p.stdout.toString().trim());
    if (p.exitCode === 2) return null;
  } catch {
    // No getent on this system: read the file.
  }
  try {
    for (const line of readFileSync("/etc/group", "utf8").split("\n")) {
      const gid = fromLine(line);
      if (gid !== null) return gid;
    }
  } catch {
    // No /etc/group either.
  }
  return null;
}

/** Split "path/mod.ts:export" into file and export name ("default" when there is no `:`). */
export function splitAppSpec(spec: string): { file: string; name: string } {
  const colon = spec.lastIndexOf(":");
  // "C:\\app.ts" or a path with no export part has no `:` after its last separator.
  const hasExport = colon > 1 && !/[/\\]/.test(spec.slice(colon + 1)) && colon < spec.length - 1;
  return hasExport ? { file: spec.slice(0, colon), name: spec.slice(colon + 1) } : { file: spec, name: "default" };
}

function resolveAppSpec(spec: string, base: string): string {
  const { file, name } = splitAppSpec(spec);
  const abs = isAbsolute(file) ? file : resolve(base, file);
  return name === "default" && !spec.endsWith(":default") ? abs : `${abs}:${name}`;
}

/** The default config file looked for in the working folder when --config is not given. */
export const DEFAULT_CONFIG_FILE = "bunwsgi.toml";

export interface ResolveOptions {
  /** The command line (flags override the file). */
  commandLine: CommandLine;
  /** Working folder: where flags' relative paths and ./bunwsgi.toml are looked up. */
  cwd: string;
  /** The binary embeds an application, so `app` may be left unset. */
  embedded?: boolean;
}

/**
 * Read the config file (the --config one, else ./bunwsgi.toml if present), apply flags, and
 * validate everything. Returns the config and every error found, each naming the file and
 * line (or the flag), the key and what was expected.
 */
export function resolveConfig(opts: ResolveOptions): { config: Config; errors: string[] } {
  const { commandLine, cwd } = opts;
  let file: string | null = null;
  if (commandLine.config !== null) file = resolve(cwd, commandLine.config);
  else if (isFile(resolve(cwd, DEFAULT_CONFIG_FILE))) file = resolve(cwd, DEFAULT_CONFIG_FILE);
  const config = new Config(file);
  const r = new Resolver(config, opts.embedded ?? false);
  let text = "";
  if (file !== null) {
    try {
      text = readFileSync(file, "utf8");
    } catch (e) {
      const code = (e as { code?: string }).code;
      r.errors.push(`${file}: cannot read config file: ${code === "ENOENT" ? "not found" : (e as Error).message}`);
      return { config, errors: r.errors };
    }
    let doc: unknown;
    try {
      doc = Bun.TOML.parse(text);
    } catch (e) {
      const message = (e as Error).message;
      const at = tomlErrorPosition(text, message);
      const why = message.replace(/^TOML Parse error: /, "");
      r.errors.push(`${file}${at === null ? "" : `:${at.line}:${at.column}`}: invalid TOML: ${why}`);
      return { config, errors: r.errors };
    }
    readTable(r, doc as Record<string, unknown>, "", file, text);
  }
  const where = (key: string): string => {
    const source = config.sources.get(key);
    if (source === "flag") return (BY_KEY.get(key) as Setting).flag;
    if (file !== null && source === "file") return `${file}:${lineOf(text, key) ?? "?"}`;
    return file ?? "command line";
  };
  const seenFlags = new Set<Setting>();
  for (const { setting, raw } of commandLine.flags) {
    const append = seenFlags.has(setting);
    seenFlags.add(setting);
    r.set(setting, raw, { source: "flag", label: setting.key === "app" ? "APP" : setting.flag, base: cwd }, append);
  }
  r.crossCheck(where);
  return { config, errors: r.errors };
}

function readTable(r: Resolver, doc: Record<string, unknown>, table: string, file: string, text: string): void {
  const base = dirname(file);
  for (const [name, value] of Object.entries(doc)) {
    const key = table === "" ? name : `${table}.${name}`;
    const setting = BY_KEY.get(key);
    const line = lineOf(text, key);
    const where = `${file}:${line ?? "?"}`;
    if (setting !== undefined) {
      const item = (v: string): string => `${file}:${lineOfItem(text, line ?? 1, v) ?? line ?? "?"}`;
      r.set(setting, value, { source: "file", label: where, base, item }, false);
      continue;
    }
    if (table === "" && name in SECTIONS && value !== null && typeof value === "object" && !Array.isArray(value)) {
      readTable(r, value as Record<string, unknown>, name, file, text);
      continue;
    }
    if (table === "" && name in SECTIONS) {
      r.fail(where, key, `expected a table ([${name}]), got ${describe(value)}`);
      continue;
    }
    // Suggest from this table's keys first, then from every key (a key put in the wrong table).
    const local = SETTINGS.filter((s) => s.key.startsWith(table === "" ? "" : `${table}.`)).map((s) =>
      table === "" ? s.key : s.key.slice(table.length + 1),
    );
    let hint = didYouMean(name, local);
    if (hint === "") {
      const elsewhere = SETTINGS.find((s) => s.key.endsWith(`.${name}`) || s.key === name);
      if (elsewhere !== undefined) hint = `; did you mean ${JSON.stringify(elsewhere.key)}?`;
    }
    r.fail(where, key, `unknown key${hint}`);
  }
}

/** TLS options for Bun.listen; files are read now so a bad path fails at start, not at the first handshake. */
export function tlsOptions(c: Config): TLSOptions | undefined {
  const cert = c.str("tls.cert");
  const key = c.str("tls.key");
  if (cert === null || key === null) return undefined;
  const mode = c.str("tls.client_auth");
  const ca = c.str("tls.ca");
  const passphrase = c.str("tls.passphrase");
  const ciphers = c.str("tls.ciphers");
  return {
    cert: readFileSync(cert, "utf8"),
    key: readFileSync(key, "utf8"),
    ...(ca !== null ? { ca: readFileSync(ca, "utf8") } : {}),
    ...(passphrase !== null ? { passphrase } : {}),
    ...(ciphers !== null ? { ciphers } : {}),
    requestCert: mode !== "none",
    rejectUnauthorized: mode === "require",
  };
}

/** The limits and timeouts of a config in WSGIServer's terms. */
export function limitsOf(c: Config): { limits: Limits; timeouts: Timeouts } {
  const n = (key: string): number => c.num(key) as number;
  return {
    limits: {
      maxRequestLine: n("limits.request_line"),
      maxHeaderBytes: n("limits.header_bytes"),
      maxHeaders: n("limits.headers"),
      maxBodySize: n("limits.body"),
    },
    timeouts: {
      header: n("timeouts.header"),
      keepAlive: n("timeouts.keep_alive"),
      body: n("timeouts.body"),
      write: n("timeouts.write"),
      shutdown: n("timeouts.shutdown"),
      stopIdle: n("timeouts.stop_idle"),
    },
  };
}

/** WSGIServer options from a config, except the logs, spawn pool and application the caller owns. */
export function serverOptions(c: Config): WSGIServerOptions {
  const { limits, timeouts } = limitsOf(c);
  const tls = tlsOptions(c);
  const mode = c.str("unix_socket_mode");
  const group = c.str("unix_socket_group");
  const gid = group === null ? null : groupId(group);
  if (group !== null && gid === null) throw new ConfigError(`unix_socket_group: no group ${JSON.stringify(group)} on this host`);
  return {
    backlog: c.num("backlog"),
    unixSocketPerms: { mode: mode === null ? null : Number.parseInt(mode, 8), gid },
    environ: c.environ(),
    logFormat: c.str("log.format") ?? "gevent",
    logLevel: LEVEL_NUMBERS[(c.str("log.level") ?? "info").toUpperCase() as LogLevel],
    rootPath: c.str("root_path") ?? "",
    limits,
    timeouts,
    ...(tls !== undefined ? { tls } : {}),
  };
}

const tomlValue = (v: Value): string => {
  if (v === null) return "";
  if (Array.isArray(v)) return `[${v.map((x) => JSON.stringify(x)).join(", ")}]`;
  if (typeof v === "object") {
    const entries = Object.entries(v);
    return entries.length === 0 ? "{}" : `{ ${entries.map(([k, x]) => `${tomlKey(k)} = ${JSON.stringify(x)}`).join(", ")} }`;
  }
  return JSON.stringify(v);
};
const tomlKey = (k: string): string => (/^[A-Za-z0-9_-]+$/.test(k) ? k : JSON.stringify(k));

/** TOML text with one line per setting, grouped under its [table]; `line` renders one setting. */
function tomlBySetting(line: (s: Setting, name: string) => string): string {
  const out: string[] = [];
  let table = "";
  for (const s of SETTINGS) {
    if (s.table !== table) {
      out.push("", `[${s.table}]`);
      table = s.table;
    }
    out.push(line(s, s.name));
  }
  return out.join("\n");
}

/** The resolved config as TOML, each line marked with where its value came from (for `bunwsgi check`). */
export function formatConfig(c: Config): string {
  return tomlBySetting((s, name) => {
    const v = c.get(s.key);
    const source = c.sources.get(s.key);
    if (v === null) return `# ${name} is not set`;
    if (s.key === "tls.passphrase") return `${name} = "********"  # ${source}`;
    return `${name} = ${tomlValue(v)}  # ${source}`;
  });
}

/** --help text, generated from the settings table. */
export function helpText(version: string): string {
  const lines = [
    `bunwsgi ${version} — a strict HTTP/1.1 server for WSGI-style TypeScript applications`,
    "",
    "Usage: bunwsgi [serve] [--config FILE] [APP[:EXPORT]] [--setting VALUE ...]",
    "       bunwsgi check [--config FILE] [...]   validate, print the resolved config; exit 0, or 2 with the errors",
    "       bunwsgi --version | --help",
    "",
    `  -c, --config FILE   TOML config file (default: ./${DEFAULT_CONFIG_FILE} when present); flags override it`,
  ];
  let section = "\u0000";
  for (const s of SETTINGS) {
    if (s.table !== section) {
      lines.push("", `${SECTIONS[s.table]}:`);
      section = s.table;
    }
    const def = s.default === null ? "" : ` [default: ${tomlValue(s.default)}]`;
    const words = `${plain(s.doc)}${def}`.split(" ");
    let line = `  ${s.flag} ${s.metavar}`.padEnd(HELP_INDENT - 1);
    for (const w of words) {
      if (line.length + 1 + w.length > HELP_WIDTH && line.trim() !== "") {
        lines.push(line);
        line = " ".repeat(HELP_INDENT - 1);
      }
      line += ` ${w}`;
    }
    lines.push(line);
  }
  lines.push(
    "",
    "Signals: SIGTERM/SIGINT stop gracefully (in-flight requests finish; exit 0); SIGUSR1 reopens log files;",
    "SIGHUP re-reads the config and re-imports the app, keeping the listening sockets.",
  );
  return lines.join("\n");
}

const HELP_INDENT = 32;
const HELP_WIDTH = 100;
const plain = (doc: string): string => doc.replace(/`/g, "");

/** The README's settings reference (Markdown), generated from the table so it cannot drift. */
export function settingsMarkdown(): string {
  const out: string[] = [];
  let section = "\u0000";
  for (const s of SETTINGS) {
    if (s.table !== section) {
      out.push("", `#### ${SECTIONS[s.table]}`, "", "| key | flag | default | reload | meaning |", "|---|---|---|---|---|");
      section = s.table;
    }
    const def = s.default === null ? "unset" : `\`${tomlValue(s.default)}\``;
    out.push(
      `| \`${s.name}\` | \`${s.flag} ${s.metavar}\` | ${def} | ${s.reload ? "yes" : "restart"} | ${s.doc.replace(/\|/g, "\\|")} |`,
    );
  }
  return out.join("\n").trim();
}

/** A complete example bunwsgi.toml with every key, generated from the table. */
export function exampleConfig(): string {
  return tomlBySetting((s, name) => `${name} = ${s.example}`);
}

export const README_START = "<!-- settings:start (generated by `bun run build.ts --readme`) -->";
export const README_END = "<!-- settings:end -->";

/** The README section the settings table generates: the reference tables and a complete example. */
export function readmeSettings(): string {
  return `${README_START}\n${settingsMarkdown()}\n\nA complete \`bunwsgi.toml\` with every key:\n\n\`\`\`toml\n${exampleConfig().trim()}\n\`\`\`\n${README_END}`;
}
