/** @module config/resolve — bunwsgi.toml and command-line flags resolved against the settings table and validated; every error names its file, line, key and what was expected. */

import { readFileSync } from "node:fs";
import { dirname, isAbsolute, resolve } from "node:path";
import { AddressSet } from "../http/address.ts";
import { checkRootPath } from "../http/request.ts";
import { compileLogFormat } from "../observe/access.ts";
import { type CommandLine, didYouMean } from "./args.ts";
import { bindText, checkBinds, describe, isTable, proxyProtocolOverTls, tcpEndpoint } from "./binds.ts";
import { groupId, isDirectory, isFile, isReadable } from "./files.ts";
import type { EnvironTable, Setting, Source, Value } from "./setting.ts";
import { DEFAULT_CONFIG_FILE, SECTIONS, SETTINGS, settingByKey } from "./settings.ts";
import { lineOf, lineOfItem, tomlErrorPosition } from "./toml.ts";

/** Where a value came from, for messages: "bunwsgi.toml:7", "--bind" or "default". */
export interface Origin {
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
    if (!(settingByKey(key) !== undefined)) throw new Error(`no setting ${key}`);
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

  bool(key: string): boolean {
    return this.get(key) === true;
  }

  environ(): EnvironTable {
    const v = this.get("environ");
    return v !== null && typeof v === "object" && !Array.isArray(v) ? v : {};
  }

  /** The resolved values as JSON, `overrides` applied: what a master hands its workers, so they never re-read the file. */
  snapshot(overrides: Readonly<Record<string, Value>> = {}): string {
    const values: Record<string, Value> = {};
    for (const [k, v] of this.values) values[k] = k in overrides ? (overrides[k] as Value) : v;
    return JSON.stringify({ file: this.file, values, sources: Object.fromEntries(this.sources) });
  }

  /** A config from snapshot(); a key this build does not know, or text that is not a snapshot, throws. */
  static fromSnapshot(text: string): Config {
    const o = JSON.parse(text) as { file: string | null; values: Record<string, Value>; sources: Record<string, Source> };
    const c = new Config(o.file);
    for (const [k, v] of Object.entries(o.values)) {
      if (settingByKey(k) === undefined) throw new Error(`config snapshot: unknown setting ${k}`);
      c.values.set(k, v);
      c.sources.set(k, o.sources[k] ?? "default");
    }
    return c;
  }
}

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
      case "binds": {
        const list = typeof value === "string" || isTable(value) ? [value] : value;
        if (!Array.isArray(list) || list.length === 0) return bad("a non-empty string, a table { address, … } or a list of them");
        const fail = (where: string, key: string, why: string): void => this.fail(where, key, why);
        const binds = list.map((b) => bindText(s.key, b, o, fail));
        return binds.includes(null) ? undefined : checkBinds(s.key, binds as string[], o, fail);
      }
      case "sinks": {
        const list = typeof value === "string" ? [value] : value;
        if (!Array.isArray(list) || list.length === 0 || !list.every((x) => typeof x === "string" && x !== "")) {
          return bad("a non-empty string or a list of them");
        }
        return this.sinks(s, list as string[], o);
      }
      case "bool":
        if (fromFlag && (value === "true" || value === "false")) return value === "true";
        return typeof value === "boolean" ? value : bad("true or false");
      case "addresses": {
        const list = fromFlag || typeof value === "string" ? [value] : value;
        if (!Array.isArray(list) || !list.every((x) => typeof x === "string")) {
          return bad('a list of IP addresses, CIDR ranges or "*", such as ["127.0.0.1", "10.0.0.0/8"]');
        }
        const set = AddressSet.parse(list as string[]);
        if (typeof set === "string") return bad(`IP addresses, CIDR ranges or "*" (${set})`);
        return list as string[];
      }
      case "fields": {
        const list = fromFlag || typeof value === "string" ? [value] : value;
        const choices = s.choices ?? [];
        if (!Array.isArray(list) || !list.every((x) => typeof x === "string" && choices.includes(x.toLowerCase()))) {
          return bad(`a list of ${choices.map((c) => JSON.stringify(c)).join(", ")}`);
        }
        return (list as string[]).map((x) => x.toLowerCase());
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
      case "workers": {
        if (value === "auto") return value;
        const n = fromFlag ? ((value as string).trim() === "" ? Number.NaN : Number(value)) : value;
        return typeof n === "number" && Number.isInteger(n) && n >= (s.min as number) && n <= (s.max as number)
          ? n
          : bad(`"auto" or an integer from ${s.min} to ${s.max}`);
      }
      case "endpoint":
        return typeof value === "string" && tcpEndpoint(value)
          ? value
          : bad('a TCP address "host:port", such as "127.0.0.1:9101"');
      case "urlpath":
        try {
          return checkRootPath(value as string) || bad('a path such as "/app"');
        } catch {
          return bad('a path such as "/app": starting with "/", without a trailing "/" or a query');
        }
    }
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
    if (cert !== null) this.errors.push(...proxyProtocolOverTls(c.list("bind"), where("bind")));
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
    if (source === "flag") return (settingByKey(key) as Setting).flag;
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
    const setting = settingByKey(key);
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
