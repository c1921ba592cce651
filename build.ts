/**
 * @module build — compile the bunwsgi CLI into one self-contained executable (dist/bunwsgi),
 * optionally with an application embedded (--app), and regenerate the README's settings
 * reference from the settings table (--readme).
 */

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { README_END, README_START, readmeSettings } from "./src/config/render.ts";
import { splitAppSpec } from "./src/config/resolve.ts";

const USAGE = `Usage: bun run build.ts [--outfile FILE] [--app path/to/app.ts[:export]]
       bun run build.ts --readme     rewrite the README's settings reference from src/config/settings.ts`;

const args = process.argv.slice(2);
let outfile = "dist/bunwsgi";
let app: string | null = null;
let readme = false;
for (let i = 0; i < args.length; i++) {
  const a = args[i] as string;
  const value = (): string => {
    const v = args[++i];
    if (v === undefined) fail(`${a} needs a value\n${USAGE}`);
    return v as string;
  };
  if (a === "--outfile") outfile = value();
  else if (a === "--app") app = value();
  else if (a === "--readme") readme = true;
  else fail(`unknown argument ${a}\n${USAGE}`);
}

function fail(msg: string): never {
  console.error(`build: ${msg}`);
  process.exit(2);
}

if (import.meta.main && readme) {
  const text = readFileSync("README.md", "utf8");
  const start = text.indexOf(README_START);
  const end = text.indexOf(README_END);
  if (start < 0 || end < start) fail(`README.md has no ${README_START} … ${README_END} section`);
  writeFileSync("README.md", text.slice(0, start) + readmeSettings() + text.slice(end + README_END.length));
  // Let the project's formatter pad the tables now, so `biome ci` stays clean.
  Bun.spawnSync(["node_modules/.bin/biome", "format", "--write", "README.md"], { stdout: "ignore", stderr: "inherit" });
  console.log("README.md settings reference regenerated");
} else if (import.meta.main) {
  let entry = resolve("src/cli.ts");
  let tmp: string | null = null;
  if (app !== null) {
    const { file, name } = splitAppSpec(app);
    const path = resolve(file);
    if (!(await Bun.file(path).exists())) fail(`--app: module ${path} not found`);
    // A generated entry imports the app statically, so the bundler compiles it (and its
    // imports and node_modules) into the binary; config/flags may still name another app.
    tmp = mkdtempSync(join(tmpdir(), "bunwsgi-build-"));
    entry = join(tmp, "entry.ts");
    writeFileSync(
      entry,
      [
        `import * as mod from ${JSON.stringify(path)};`,
        `import { main } from ${JSON.stringify(resolve("src/cli.ts"))};`,
        `if (!(${JSON.stringify(name)} in mod)) throw new Error(${JSON.stringify(`embedded module ${path} has no export "${name}"`)});`,
        // Its kind (WSGI or fetch) is decided at start, by app_kind, as for an app imported from a file.
        `process.exit(await main(process.argv.slice(2), { app: (mod as Record<string, unknown>)[${JSON.stringify(name)}], name: ${JSON.stringify(app)} }));`,
        "",
      ].join("\n"),
    );
  }
  try {
    const result = await Bun.build({
      entrypoints: [entry],
      compile: {
        outfile,
        // A deployed binary must not pick up a .env or bunfig.toml from wherever it is started.
        autoloadDotenv: false,
        autoloadBunfig: false,
        // An app loaded from disk imports its packages by their package.json ("exports",
        // "main"): without this a compiled binary resolves only a package's index.js, so
        // Hono, and most ESM packages, cannot be found.
        autoloadPackageJson: true,
      },
      // Identifiers keep their names, so error names and stack frames in the error log read as
      // in the source ("ContractError", not "p"). Bun 1.4.5's keepNames leaves class names
      // minified (new.target.name is still "p"), so renaming is off altogether.
      minify: { whitespace: true, syntax: true, identifiers: false },
      sourcemap: "linked",
      target: "bun",
    });
    if (!result.success) {
      for (const log of result.logs) console.error(log);
      process.exit(1);
    }
  } finally {
    if (tmp !== null) rmSync(tmp, { recursive: true, force: true });
  }
  console.log(`built ${outfile}${app !== null ? ` with ${app} embedded` : ""}`);
}
