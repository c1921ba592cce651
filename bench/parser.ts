/**
 * @module bench/parser — request-head parser micro-benchmark: ns per head and heap bytes
 * allocated per head, for a minimal request and a realistic browser request. Run: bun run bench:parser
 */

import { defaultHeadLimits } from "../src/config/limits.ts";
import { RequestParser } from "../src/http/parser.ts";
import { allocatedPer, HEADS, timeRounds } from "./heads.ts";

const ITERATIONS = 200_000;
const ROUNDS = 7;
const parser = new RequestParser(defaultHeadLimits());

function run(head: Uint8Array, n: number): void {
  for (let i = 0; i < n; i++) {
    if (parser.execute(head, 0, head.length) !== head.length) throw new Error("parse failed");
    parser.reset();
  }
}

console.log(`Bun ${Bun.version}; ${ITERATIONS} heads per round, median (min–max) of ${ROUNDS} rounds`);
for (const [name, head] of Object.entries(HEADS)) {
  const [median, min, max] = timeRounds((n) => run(head, n), ITERATIONS, ROUNDS);
  // The parser allocates nothing: a long run, for the finest resolution.
  const perHead = allocatedPer((n) => run(head, n), 100_000);
  console.log(
    `${name.padEnd(28)} ${head.length.toString().padStart(4)} B  ${median.toFixed(0).padStart(5)} ns/head  ` +
      `(${min.toFixed(0)}–${max.toFixed(0)})  ${perHead.toFixed(1)} heap B/head`,
  );
}
