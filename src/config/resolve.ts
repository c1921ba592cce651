/** @module config/resolve — bunwsgi.toml and command-line flags resolved against the settings table and validated; every error names its file, line, key and what was expected. */

import { readFileSync } from "node:fs";
import { dirname, isAbsolute, resolve } from "node:path";
import { AddressSet } from "../http/address.ts";
import { checkRootPath } from "../http/request.ts";
import { compileLogFormat } from "../observe/access.ts";
import { type CommandLine, didYouMean } from "./args.ts";
import { bindText, checkBinds, describe, isTable, tcpEndpoint } from "./binds.ts";
import { isFile, readProblem } from "./files.ts";
import { conflictErrors, fileErrors, hostWarnings, needErrors } from "./rules.ts";
import type { EnvironTable, Setting, Source, Value } from "./setting.ts";
import { DEFAULT_CONFIG_FILE, misplacedHint, SECTIONS, SETTINGS, settingByKey } from "./settings.ts";
import { checkTls } from "./tls-files.ts";
import { tomlErrorPosition, tomlLines } from "./toml.ts";

/** Where a value came from, for messages: "bunwsgi.toml:7", "--bind" or "default". */
export interface Origin {
  source: Source;
  label: string;
  /** Folder that relative paths are resolved against. */
  base: string;
  /**
   * Where a part of the value is, by its path after the key: "[1]" (a list's second item),
   * "[1].address", ".APP_ENV" (a table's key); the label when the source cannot tell.
   */
  at: (sub: string) => string;
}

/** A resolved configuration: every setting's value and where it came from. */
export class Config {
  /** The config file read, or null. */
  readonly file: string | null;
  readonly values = new Map<string, Value>();
  readonly sources = new Map<string, Source>();
  /** Where each value not a default was set ("bunwsgi.toml:7", "--bind"), and each item of a list from the file. */
  readonly places = new Map<string, string>();
  readonly itemPlaces = new Map<string, string[]>();
  /** What resolving found that does not stop a start but an operator should know (an expired certificate). */
  readonly warnings: string[] = [];
  /** The [tls] files' text by key, as first read (see tlsFile). */
  private readonly tlsText = new Map<string, string>();

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

  /** Where `key`'s value came from, for a message: its file and line, its flag, or the file (or command line) for a default. */
  where(key: string): string {
    return this.places.get(key) ?? this.file ?? "command line";
  }

  /**
   * The text of the file the [tls] setting `key` names, read the first time it is asked for and
   * kept: what config/tls-files checked as the config resolved is what a listener serves, and
   * what a master hands each worker it starts (tlsHandOff), so a worker started later, to replace
   * one that died, serves its generation's certificate, not the files as they are by then (half
   * written by a renewal, or renewed with nobody's SIGHUP). Throws as readFileSync does.
   */
  tlsFile(key: "tls.cert" | "tls.key" | "tls.ca"): string {
    let text = this.tlsText.get(key);
    if (text === undefined) {
      text = readFileSync(this.str(key) as string, "utf8");
      this.tlsText.set(key, text);
    }
    return text;
  }

  /** The [tls] files' text read so far, by key. */
  get tlsTexts(): ReadonlyMap<string, string> {
    return this.tlsText;
  }

  /** The [tls] files' text as a worker takes it (adoptTls): JSON, not the environment, where the app's own child processes would find the key. */
  tlsHandOff(): string {
    return JSON.stringify(Object.fromEntries(this.tlsText));
  }

  /** A worker's [tls] files' text from its master (tlsHandOff); empty text (a master of an older build) leaves them to be read. */
  adoptTls(handOff: string): void {
    if (handOff === "") return;
    for (const [k, text] of Object.entries(JSON.parse(handOff) as Record<string, string>)) this.tlsText.set(k, text);
  }

  /** Where item `i` of list `key` came from; where the list did when it cannot tell. */
  whereItem(key: string, i: number): string {
    return this.itemPlaces.get(key)?.[i] ?? this.where(key);
  }

  environ(): EnvironTable {
    const v = this.get("environ");
    return v !== null && typeof v === "object" && !Array.isArray(v) ? v : {};
  }

  /** The resolved values as JSON, `overrides` applied: what a master hands its workers, so they never re-read the file. */
  snapshot(overrides: Readonly<Record<string, Value>> = {}): string {
    const values: Record<string, Value> = {};
    for (const [k, v] of this.values) values[k] = k in overrides ? (overrides[k] as Value) : v;
    const { file, sources, places } = this;
    return JSON.stringify({ file, values, sources: Object.fromEntries(sources), places: Object.fromEntries(places) });
  }

  /** A config from snapshot(); a key this build does not know, or text that is not a snapshot, throws. */
  static fromSnapshot(text: string): Config {
    const o = JSON.parse(text) as {
      file: string | null;
      values: Record<string, Value>;
      sources: Record<string, Source>;
      /** Absent from an older build's snapshot (a master whose binary was replaced on disk). */
      places?: Record<string, string>;
    };
    const c = new Config(o.file);
    for (const [k, v] of Object.entries(o.values)) {
      if (settingByKey(k) === undefined) throw new Error(`config snapshot: unknown setting ${k}`);
      c.values.set(k, v);
      c.sources.set(k, o.sources[k] ?? "default");
      const place = o.places?.[k];
      if (place !== undefined) c.places.set(k, place);
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
    const c = this.config;
    const prev = c.values.get(s.key);
    let next: Value = v;
    const appending = append && c.sources.get(s.key) === "flag";
    if (appending) {
      if (Array.isArray(prev) && Array.isArray(v)) next = [...prev, ...v];
      else if (s.kind === "table") next = { ...(prev as EnvironTable), ...(v as EnvironTable) };
    }
    c.values.set(s.key, next);
    c.sources.set(s.key, origin.source);
    c.places.set(s.key, origin.label);
    const items = Array.isArray(v) ? v.map((_, i) => origin.at(`[${i}]`)) : [];
    c.itemPlaces.set(s.key, appending ? [...(c.itemPlaces.get(s.key) ?? []), ...items] : items);
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
            ? `an integer from ${(s.min as number).toLocaleString("en-US")} to ${(s.max as number).toLocaleString("en-US")}`
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
        const binds = list.map((b, i) => bindText(s.key, b, i, o, fail));
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
        let ok = true;
        (list as string[]).forEach((x, i) => {
          const set = AddressSet.parse([x]);
          if (typeof set !== "string") return;
          this.fail(o.at(`[${i}]`), s, `expected IP addresses, CIDR ranges or "*" (${set})`);
          ok = false;
        });
        return ok ? (list as string[]) : undefined;
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
    // gunicorn's "-" (stdout for its access log, stderr for its error log) would be a file named
    // "-" here, made in the working directory: said, not guessed.
    if (list.includes("-")) {
      this.fail(o.label, s, '"-" is not a sink here: say "stdout" or "stderr" (or a file path)');
      return undefined;
    }
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
      // Keys written below [environ] that were meant for the top: the file cannot leave a table.
      const misplaced = misplacedHint(k);
      if (misplaced !== "") this.fail(o.at(`.${k}`), `${s.key}.${k}`, `${misplaced}, not an environ key`);
      else if (typeof v !== "string" && typeof v !== "number" && typeof v !== "boolean") {
        this.fail(o.at(`.${k}`), `${s.key}.${k}`, `expected a string, number or boolean, got ${describe(v)}`);
      } else {
        out[k] = v;
        continue;
      }
      ok = false;
    }
    return ok ? out : undefined;
  }

  /** Rules between settings, the files a config names, and the TLS material they hold. */
  crossCheck(): void {
    const c = this.config;
    const app = c.str("app");
    if (app === null) {
      if (!this.embedded)
        this.errors.push(`${c.where("app")}: app: no application given (set app in the config file or pass APP)`);
    } else {
      const problem = readProblem(splitAppSpec(app).file, "module");
      if (problem !== null) this.errors.push(`${c.where("app")}: app: ${problem}`);
    }
    this.errors.push(...fileErrors(c), ...needErrors(c), ...conflictErrors(c));
    const tls = checkTls(c);
    this.errors.push(...tls.errors);
    c.warnings.push(...tls.warnings, ...hostWarnings(c));
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
    const lines = tomlLines(text);
    const at = (path: string): string | null => (lines.has(path) ? `${file}:${lines.get(path)}` : null);
    readTable(r, doc as Record<string, unknown>, "", { file, at }, dirname(file));
  }
  const seenFlags = new Set<Setting>();
  for (const { setting, raw } of commandLine.flags) {
    const append = seenFlags.has(setting);
    seenFlags.add(setting);
    const label = setting.key === "app" ? "APP" : setting.flag;
    r.set(setting, raw, { source: "flag", label, base: cwd, at: () => label }, append);
  }
  r.crossCheck();
  return { config, errors: file === null ? r.errors : byLine(r.errors, file) };
}

/** Errors in the file's order of lines, as an operator reads it; the rest (flags, the file as a whole) after them, as found. */
function byLine(errors: readonly string[], file: string): string[] {
  const line = (e: string): number => {
    const m = e.startsWith(`${file}:`) ? /^:(\d+):/.exec(e.slice(file.length)) : null;
    return m === null ? Number.POSITIVE_INFINITY : Number(m[1]);
  };
  return errors
    .map((e) => ({ e, n: line(e) }))
    .sort((a, b) => a.n - b.n)
    .map((x) => x.e);
}

/** The file and where a path ("bind[1].address") is in it, "file:line", if anywhere. */
interface Places {
  file: string;
  at: (path: string) => string | null;
}

/** The keys of one table of the file (the top level: ""), each checked and set. */
function readTable(r: Resolver, doc: Record<string, unknown>, table: string, places: Places, base: string): void {
  for (const [name, value] of Object.entries(doc)) {
    const key = table === "" ? name : `${table}.${name}`;
    const setting = settingByKey(key);
    const where = places.at(key) ?? places.file;
    if (setting !== undefined) {
      r.set(setting, value, { source: "file", label: where, base, at: (sub) => places.at(`${key}${sub}`) ?? where }, false);
      continue;
    }
    if (table === "" && name in SECTIONS) {
      if (isTable(value)) readTable(r, value as Record<string, unknown>, name, places, base);
      else r.fail(where, key, `expected a table ([${name}]), got ${describe(value)}`);
      continue;
    }
    if (table === "" && isTable(value)) {
      // A misspelt [section]: one error for it, none for each key under it.
      const headers = SETTINGS.filter((s) => s.kind === "table" || s.kind === "binds").map((s) => s.key);
      for (const section of Object.keys(SECTIONS)) if (section !== "") headers.push(section);
      r.fail(where, key, `unknown section [${name}]${didYouMean(name, headers)}`);
      continue;
    }
    // A top-level key written below a [section] is read as part of it: say where it belongs.
    const misplaced = table === "" ? "" : misplacedHint(name);
    if (misplaced !== "") {
      r.fail(where, key, `unknown key; ${misplaced}`);
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
