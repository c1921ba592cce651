/** @module build — compile the bunwsgi CLI into one self-contained executable, dist/bunwsgi. */

export {};

const outfile = process.argv.includes("--outfile")
  ? (process.argv[process.argv.indexOf("--outfile") + 1] as string)
  : "dist/bunwsgi";

const result = await Bun.build({
  entrypoints: ["./src/cli.ts"],
  compile: {
    outfile,
    // A deployed binary must not pick up a .env or bunfig.toml from wherever it is started.
    autoloadDotenv: false,
    autoloadBunfig: false,
  },
  minify: true,
  sourcemap: "linked",
  target: "bun",
});

if (!result.success) {
  for (const log of result.logs) console.error(log);
  process.exit(1);
}
console.log(`built ${outfile}`);
