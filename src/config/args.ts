/** @module config/args — the command line: subcommand, --config, and one flag per setting, with a did-you-mean for unknown ones. */

import { ConfigError } from "../errors.ts";
import type { Setting } from "./setting.ts";
import { SETTINGS, settingByFlag, settingByKey } from "./settings.ts";

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
      out.flags.push({ setting: settingByKey("app") as Setting, raw: arg });
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
    const setting = settingByFlag(name);
    if (setting === undefined) {
      const hint = didYouMean(name, ["--config", "--help", "--version", ...SETTINGS.map((s) => s.flag)]);
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
