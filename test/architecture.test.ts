/**
 * @module test/architecture — the layers of src/ and what each may import, checked on every import.
 *
 * The rules (ARCHITECTURE.md draws the picture):
 *  1. No import cycle among runtime imports (`import type` is erased, so it cannot make one).
 *  2. http/ is pure protocol code: it imports only http/ and errors.ts, and no Bun or Node module.
 *  3. observe/ (logs, clock, access records) imports only observe/, errors.ts and Node/Bun.
 *  4. engine/ (sockets, connections, server) never imports wsgi/ or any other kind of app.
 *  4b. The kinds of app stand side by side: wsgi/ never imports fetch/, nor fetch/ wsgi/.
 *  5. config/ imports no engine class: from engine/ only the listener-spec parser (listeners.ts).
 *  6. Nothing imports cli.ts; only cli.ts imports index.ts (the public API it lends to apps).
 *  7. Every file opens with a one-line `@module` comment saying its job.
 *  8. process/ (a lone server, a master, a worker) is imported only by cli.ts and process/; the
 *     master's runtime imports, followed all the way, reach no app loader or kind of app
 *     (app.ts, wsgi/, fetch/): the master imports no app.
 */

import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";

const SRC = resolve(import.meta.dir, "..", "src");

interface Import {
  from: string;
  to: string;
  typeOnly: boolean;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sourceFiles(join(dir, e.name)) : e.name.endsWith(".ts") ? [join(dir, e.name)] : [],
  );
}

/** Every import and re-export of a file: relative ones as src-relative paths, others as written. */
function importsOf(file: string): Import[] {
  const text = readFileSync(file, "utf8");
  const out: Import[] = [];
  const re = /^(import|export)\s+(type\s+)?(?:[^;]*?\s+from\s+)?["']([^"']+)["'];?/gm;
  for (const m of text.matchAll(re)) {
    const spec = m[3] as string;
    const to = spec.startsWith(".") ? relative(SRC, resolve(dirname(file), spec)) : spec;
    out.push({ from: relative(SRC, file), to, typeOnly: m[2] !== undefined });
  }
  return out;
}

const files = sourceFiles(SRC).map((f) => relative(SRC, f));
const imports = sourceFiles(SRC).flatMap(importsOf);
const inSrc = (i: Import): boolean => !i.to.startsWith("node:") && !i.to.startsWith("bun") && !i.to.startsWith("../");
const layer = (path: string): string => (path.includes("/") ? (path.split("/")[0] as string) : path);
const violations = (rule: (i: Import) => boolean): string[] => imports.filter(rule).map((i) => `${i.from} → ${i.to}`);

describe("the layers of src/", () => {
  test("the import scanner sees the files and their imports (a scanner that finds none would pass every rule)", () => {
    expect(files.length).toBeGreaterThan(25);
    expect(imports.some((i) => i.from === "engine/connection.ts" && i.to === "engine/output.ts")).toBe(true);
    expect(imports.some((i) => i.from === "wsgi/handler.ts" && i.to === "wsgi/server.ts" && i.typeOnly)).toBe(true);
  });

  test("1. no import cycle among runtime imports", () => {
    const graph = new Map<string, string[]>();
    for (const i of imports) if (!i.typeOnly && inSrc(i)) graph.set(i.from, [...(graph.get(i.from) ?? []), i.to]);
    const cycles: string[] = [];
    const state = new Map<string, "open" | "done">();
    const visit = (node: string, path: string[]): void => {
      if (state.get(node) === "done") return;
      if (state.get(node) === "open") {
        cycles.push([...path.slice(path.indexOf(node)), node].join(" → "));
        return;
      }
      state.set(node, "open");
      for (const next of graph.get(node) ?? []) visit(next, [...path, node]);
      state.set(node, "done");
    };
    for (const f of files) visit(f, []);
    expect(cycles).toEqual([]);
  });

  test("2. http/ imports only http/ and errors.ts, and no Bun or Node module", () => {
    expect(violations((i) => layer(i.from) === "http" && layer(i.to) !== "http" && i.to !== "errors.ts")).toEqual([]);
  });

  test("3. observe/ imports only observe/ and errors.ts (and Node or Bun)", () => {
    expect(
      violations((i) => layer(i.from) === "observe" && inSrc(i) && layer(i.to) !== "observe" && i.to !== "errors.ts"),
    ).toEqual([]);
  });

  test("4. engine/ imports no kind of app (wsgi/, fetch/)", () => {
    expect(
      violations((i) => layer(i.from) === "engine" && ["wsgi", "fetch", "cli.ts", "index.ts"].includes(layer(i.to))),
    ).toEqual([]);
  });

  test("4b. the kinds of app stand side by side: wsgi/ never imports fetch/, nor fetch/ wsgi/", () => {
    expect(imports.some((i) => layer(i.from) === "fetch")).toBe(true);
    expect(
      violations(
        (i) => (layer(i.from) === "wsgi" && layer(i.to) === "fetch") || (layer(i.from) === "fetch" && layer(i.to) === "wsgi"),
      ),
    ).toEqual([]);
  });

  test("5. config/ imports no engine class: from engine/ only the listener-spec parser", () => {
    expect(
      violations((i) => layer(i.from) === "config" && !i.typeOnly && layer(i.to) === "engine" && i.to !== "engine/listeners.ts"),
    ).toEqual([]);
  });

  test("6. nothing imports cli.ts, and only cli.ts imports index.ts", () => {
    expect(violations((i) => i.to === "cli.ts" || (i.to === "index.ts" && i.from !== "cli.ts"))).toEqual([]);
  });

  test("8. only cli.ts imports process/, and the master reaches no app loader or kind of app", () => {
    expect(violations((i) => layer(i.to) === "process" && i.from !== "cli.ts" && layer(i.from) !== "process")).toEqual([]);
    const reached = new Set<string>();
    const visit = (f: string): void => {
      if (reached.has(f)) return;
      reached.add(f);
      for (const i of imports) if (i.from === f && !i.typeOnly && inSrc(i)) visit(i.to);
    };
    visit("process/master.ts");
    expect(reached.has("process/descriptors.ts")).toBe(true);
    expect([...reached].filter((f) => f === "app.ts" || ["wsgi", "fetch"].includes(layer(f)))).toEqual([]);
  });

  test("7. every file opens with a one-line @module comment saying its job", () => {
    const missing = files.filter((f) => !/^\/\*\* @module \S+ — \S/.test(readFileSync(join(SRC, f), "utf8")));
    expect(missing).toEqual([]);
  });
});
