/** @module config/toml — where things are in a TOML text: the line of a key or list item, and the position of a syntax error Bun's parser reports without one. */

import { splitKey } from "./settings.ts";

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
export function lineOfItem(text: string, from: number, item: string): number | null {
  const lines = text.split("\n");
  const forms = [JSON.stringify(item), `'${item}'`];
  for (let i = Math.max(0, from - 1); i < lines.length; i++) {
    if (forms.some((f) => (lines[i] as string).includes(f))) return i + 1;
  }
  return null;
}

/** Sets a value after checking it, collecting errors instead of stopping at the first. */
