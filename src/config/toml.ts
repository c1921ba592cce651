/** @module config/toml — where things are in a TOML text: the line of each key, table and list item, and the position of a syntax error Bun's parser reports without one. */

/**
 * Where each key, table and list item of a TOML text is first written, by path: "spawn",
 * "timeouts.header", "bind[1]", "bind[1].address" (the 2nd [[bind]] table, or the 2nd item of
 * a bind list) → its 1-based line. A [table] header is where its table is. The text is one
 * Bun.TOML.parse accepted, so this reads only as much of the grammar as tells keys apart
 * from values: keys, headers, strings (which may hold any of the other tokens), arrays and
 * inline tables.
 */
export function tomlLines(text: string): Map<string, number> {
  const lines = new Map<string, number>();
  const starts = [0];
  for (let k = 0; k < text.length; k++) if (text[k] === "\n") starts.push(k + 1);
  const lineAt = (pos: number): number => {
    let lo = 0;
    let hi = starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if ((starts[mid] as number) <= pos) lo = mid;
      else hi = mid - 1;
    }
    return lo + 1;
  };
  const note = (path: string, pos: number): void => {
    if (!lines.has(path)) lines.set(path, lineAt(pos));
  };
  /** [[table]] headers seen, by path: the last one's index is where later keys and sub-tables go. */
  const arrays = new Map<string, number>();
  let i = 0;
  const skipBlank = (newlines: boolean): void => {
    while (i < text.length) {
      const c = text[i] as string;
      if (c === " " || c === "\t" || c === "\r" || (newlines && c === "\n")) i++;
      else if (c === "#") while (i < text.length && text[i] !== "\n") i++;
      else return;
    }
  };
  /** Past a string starting at i (any of TOML's four kinds); returns its text for a key. */
  const readString = (): string => {
    const q = text[i] as string;
    const long = text.startsWith(q.repeat(3), i);
    const close = long ? q.repeat(3) : q;
    let k = i + close.length;
    while (k < text.length && !text.startsWith(close, k)) k += q === '"' && text[k] === "\\" ? 2 : 1;
    const body = text.slice(i + close.length, k);
    k += close.length;
    // A long string may end in up to two quotes of its own before its closing three ("""a"""").
    for (let extra = 0; long && extra < 2 && text[k] === q; extra++) k++;
    i = k;
    return body;
  };
  /** A dotted key's parts, bare or quoted, with any blanks around the dots. */
  const readKey = (): string[] => {
    const parts: string[] = [];
    for (;;) {
      skipBlank(false);
      if (text[i] === '"' || text[i] === "'") parts.push(readString());
      else {
        const m = /^[A-Za-z0-9_-]+/.exec(text.slice(i, i + 256));
        parts.push(m?.[0] ?? "");
        i += m?.[0].length ?? 1;
      }
      skipBlank(false);
      if (text[i] !== ".") return parts;
      i++;
    }
  };
  /** A header's path, each [[array]] table it passes through at its last element; the tables it names are noted. */
  const tablePath = (parts: readonly string[], array: boolean, pos: number): string => {
    let path = "";
    parts.forEach((part, k) => {
      path = path === "" ? part : `${path}.${part}`;
      note(path, pos);
      const n = arrays.get(path);
      if (n !== undefined && (k < parts.length - 1 || !array)) path = `${path}[${n - 1}]`;
    });
    return path;
  };
  /** A key's path in `table`, each table its dots pass through noted at the key's place. */
  const noteKey = (table: string, parts: readonly string[], pos: number): string => {
    let path = table;
    for (const part of parts) {
      path = path === "" ? part : `${path}.${part}`;
      note(path, pos);
    }
    return path;
  };
  const readValue = (path: string): void => {
    const c = text[i];
    if (c === '"' || c === "'") readString();
    else if (c === "[" || c === "{") {
      i++;
      for (let n = 0; ; n++) {
        skipBlank(true);
        if (text[i] === "]" || text[i] === "}" || i >= text.length) break;
        if (c === "[") {
          note(`${path}[${n}]`, i);
          readValue(`${path}[${n}]`);
        } else readPair(path);
        skipBlank(true);
        if (text[i] === ",") i++;
      }
      i++;
    } else while (i < text.length && !",]}#\n".includes(text[i] as string)) i++;
  };
  let table = "";
  while (i < text.length) {
    skipBlank(true);
    if (i >= text.length) break;
    const at = i;
    if (text.startsWith("[[", i)) {
      i += 2;
      const array = tablePath(readKey(), true, at);
      const n = arrays.get(array) ?? 0;
      arrays.set(array, n + 1);
      table = `${array}[${n}]`;
      note(table, at);
      i += 2;
    } else if (text[i] === "[") {
      i++;
      table = tablePath(readKey(), false, at);
      i++;
    } else readPair(table);
    skipBlank(false);
  }
  return lines;

  /** A `key = value` pair in `table` (a statement, or one of an inline table's). */
  function readPair(table: string): void {
    const at = i;
    const key = noteKey(table, readKey(), at);
    skipBlank(false);
    i++; // =
    skipBlank(false);
    readValue(key);
  }
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
