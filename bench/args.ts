/** @module bench/args — the command lines of the bench and stress scripts: their own options only (an unknown one, or one without its value, stops the script naming it, with the usage), `--help` prints the usage, and numbers are checked as they are read. */

import { parseArgs } from "node:util";

/** A script's options by name (without the dashes): a value (`value` names it in the usage) or a switch, and its line of help. */
export type OptionTable = Record<
  string,
  { readonly type: "string"; readonly value: string; readonly help: string } | { readonly type: "boolean"; readonly help: string }
>;

/** What was given: a value's text, a switch's true; absent when not given. */
export type Given<T extends OptionTable> = { [K in keyof T]?: T[K]["type"] extends "boolean" ? boolean : string };

/** The usage text: the synopsis, then each option with its help. */
function usage(synopsis: string, table: OptionTable): string {
  const rows = Object.entries(table).map(([name, o]) => [`--${name}${o.type === "string" ? ` ${o.value}` : ""}`, o.help]);
  const width = Math.max(...rows.map(([flag]) => (flag as string).length));
  return [`usage: ${synopsis}`, ...rows.map(([flag, help]) => `  ${(flag as string).padEnd(width)}  ${help}`)].join("\n");
}

/**
 * Parse `argv` against `table`: `--name value`, `--name=value`, `--switch`. `--help` or `-h`
 * prints the usage and exits 0; anything else not in the table (a misspelt option, a value
 * missing, a stray word) exits 2 saying what, instead of a run that silently measured
 * something other than asked.
 */
export function commandLine<T extends OptionTable>(
  tool: string,
  synopsis: string,
  table: T,
  argv: readonly string[] = process.argv.slice(2),
): Given<T> {
  if (argv.includes("--help") || argv.includes("-h")) {
    console.log(usage(synopsis, table));
    process.exit(0);
  }
  const options = Object.fromEntries(Object.entries(table).map(([name, o]) => [name, { type: o.type }]));
  try {
    return parseArgs({ args: [...argv], options, strict: true, allowPositionals: false }).values as Given<T>;
  } catch (e) {
    console.error(`${tool}: ${(e as Error).message}\n${usage(synopsis, table)}`);
    process.exit(2);
  }
}

/** `text` as a whole number of at least `least` (`fallback` when absent), or the script stops saying what `what` got. */
export function wholeNumber(tool: string, what: string, text: string | undefined, fallback: number, least: number): number {
  if (text === undefined) return fallback;
  if (!/^\d+$/.test(text) || Number(text) < least) {
    console.error(`${tool}: ${what} takes a whole number of at least ${least}, got ${JSON.stringify(text)}`);
    process.exit(2);
  }
  return Number(text);
}

/** The environment variable `name` as a whole number of at least `least`, `fallback` when unset. */
export const envWhole = (tool: string, name: string, fallback: number, least: number): number =>
  wholeNumber(tool, name, process.env[name], fallback, least);

/** The environment variable `name`, one of `choices` (`fallback` when unset), or the script stops saying what it got. */
export function envChoice<C extends string>(tool: string, name: string, choices: readonly C[], fallback: C): C {
  const text = process.env[name];
  if (text === undefined) return fallback;
  if (!(choices as readonly string[]).includes(text)) {
    console.error(`${tool}: ${name} is one of ${choices.join(", ")}, got ${JSON.stringify(text)}`);
    process.exit(2);
  }
  return text as C;
}
