/**
 * @module test/fuzz/run — the long fuzz run: `npm run fuzz -- --runs N --seed S` runs every
 * property N times from seed S (default: the time). A property failure prints fast-check's
 * seed and path: replay it with `--seed S --path P --only a` (or tight, valid). A differential
 * mismatch prints its batch seed and the input.
 */

import fc from "fast-check";
import { differential, newTally } from "./differential.ts";
import { anyCase, validCase } from "./gen.ts";
import { splitInvariant, splitInvariantTight, validAccepted } from "./properties.ts";

function option(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const runs = Number(option("runs") ?? 100_000);
const seed = Number(option("seed") ?? Date.now() % 2 ** 31);
const path = option("path");
const batch = Number(option("batch") ?? 20_000);
const only = new Set((option("only") ?? "a,tight,valid,diff").split(","));
if (!Number.isSafeInteger(runs) || runs <= 0 || !Number.isSafeInteger(seed) || !Number.isSafeInteger(batch) || batch <= 0) {
  console.error("usage: bun test/fuzz/run.ts [--runs N] [--seed S] [--path P] [--batch B] [--only a,tight,valid,diff]");
  process.exit(2);
}

const t0 = performance.now();
const secs = (): string => ((performance.now() - t0) / 1000).toFixed(1);
console.log(`fuzz: runs ${runs}, seed ${seed}${path === undefined ? "" : `, path ${path}`}`);
let failed = false;

const props: Array<[string, string, () => void]> = [
  [
    "a",
    "split invariance",
    () =>
      fc.assert(
        fc.property(anyCase, (c) => splitInvariant(c)),
        params(),
      ),
  ],
  ["tight", "split invariance under tight limits", () => fc.assert(fc.property(anyCase, splitInvariantTight), params())],
  ["valid", "valid sequences accepted as sent", () => fc.assert(fc.property(validCase, validAccepted), params())],
];

function params(): fc.Parameters<[unknown]> {
  return path === undefined ? { seed, numRuns: runs } : { seed, numRuns: runs, path };
}

for (const [key, name, run] of props) {
  if (!only.has(key)) continue;
  try {
    run();
    console.log(`ok   ${name}: ${runs} runs (${secs()} s)`);
  } catch (e) {
    failed = true;
    console.log(`FAIL ${name} (${secs()} s)\n${e instanceof Error ? e.message : String(e)}`);
  }
}

if (only.has("diff")) {
  const tally = newTally();
  for (let done = 0, b = 0; done < runs && tally.mismatches.length === 0; b++) {
    const n = Math.min(batch, runs - done);
    const batchSeed = seed + b;
    differential(
      fc.sample(anyCase, { seed: batchSeed, numRuns: n }).map((c) => c.bytes),
      tally,
    );
    done += n;
    for (const m of tally.mismatches)
      console.log(`FAIL differential, batch seed ${batchSeed}: request ${m.index}: ${m.what}\n  input ${m.input}`);
  }
  failed ||= tally.mismatches.length > 0;
  console.log(
    `${tally.mismatches.length === 0 ? "ok  " : "FAIL"} differential: ${tally.inputs} inputs, ${tally.same} same, ` +
      `${tally.stricter} rejected by bunwsgi only, exceptions ${JSON.stringify(tally.exceptions)} (${secs()} s)`,
  );
}

console.log(`fuzz: ${failed ? "FAILED" : "passed"} in ${secs()} s, seed ${seed}`);
process.exit(failed ? 1 : 0);
