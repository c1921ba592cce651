/** @module bench/stress/run — runs the stress scripts in sequence (each its own process, with its own server), prints each one's summary line and `stress: N passed, M failed`; exits non-zero if any failed. Usage: bun bench/stress/run.ts [--only a,b] [--fast] [--seconds N] [--seed N] [--kind wsgi|fetch] */

import { join } from "node:path";
import { BUN, now, parseOptions, STRESS_OPTIONS, stressArgs } from "./lib.ts";

/** In running order; `fast`: quick enough for CI. */
const SCRIPTS = [
  { name: "slowloris", fast: false },
  { name: "body-trickle", fast: true },
  { name: "slow-readers", fast: true },
  { name: "big-bodies", fast: true },
  { name: "soak", fast: true },
  { name: "fuzz", fast: true },
] as const;

const given = stressArgs({
  only: { type: "string", value: "a,b", help: "these comma-separated scripts (default: all; with --fast, the fast ones)" },
});
const opts = parseOptions();
const only = (given.only ?? "").split(",").filter((s) => s !== "");
const unknown = only.filter((o) => !SCRIPTS.some((s) => s.name === o));
if (unknown.length > 0) {
  console.error(`stress: no script ${unknown.join(", ")} (have: ${SCRIPTS.map((s) => s.name).join(", ")})`);
  process.exit(2);
}
const selected = SCRIPTS.filter((s) => (only.length > 0 ? only.includes(s.name) : !opts.fast || s.fast));
// The scripts' own options, handed on as given.
const pass: string[] = [];
for (const name of Object.keys(STRESS_OPTIONS) as (keyof typeof STRESS_OPTIONS)[]) {
  const v = given[name];
  if (v === true) pass.push(`--${name}`);
  else if (typeof v === "string") pass.push(`--${name}`, v);
}

const t0 = now();
let passed = 0;
const failed: string[] = [];
for (const s of selected) {
  const t = now();
  const child = Bun.spawn([BUN, join(import.meta.dir, `${s.name}.ts`), ...pass], { stdout: "pipe", stderr: "inherit" });
  // Each script has its own watchdog; this one only catches a script that ignores it.
  const killer = setTimeout(() => child.kill("SIGTERM"), 240_000);
  const out = await new Response(child.stdout).text();
  clearTimeout(killer);
  const code = await child.exited;
  const summary = out.split("\n").findLast((l) => l.startsWith(`stress ${s.name}:`));
  for (const line of out.split("\n")) if (line.startsWith("  ")) console.log(line);
  console.log(`${summary ?? `stress ${s.name}: FAIL — no summary line (exit ${code})`}  [${((now() - t) / 1000).toFixed(0)}s]`);
  if (code === 0 && summary?.includes(": PASS")) passed++;
  else failed.push(s.name);
}
console.log(
  `stress: ${passed} passed, ${failed.length} failed${failed.length > 0 ? ` (${failed.join(", ")})` : ""} in ${((now() - t0) / 1000).toFixed(0)}s`,
);
process.exit(failed.length > 0 ? 1 : 0);
