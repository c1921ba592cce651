/**
 * Fuzzing in the normal test run: a short, fixed-seed budget of each property. A failure prints
 * fast-check's seed and path (replay with `npm run fuzz -- --seed S --path P`) or the input.
 */
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { compare, differential, newTally, runLlhttp } from "./differential.ts";
import { drive } from "./driver.ts";
import { anyCase, latin1Bytes, validCase } from "./gen.ts";
import { splitInvariant, validAccepted } from "./properties.ts";

const SEED = 20261203;

describe("fuzz (fixed seed, short budget)", () => {
  test("split invariance: valid and mutated pipelined requests give the same events whole, byte by byte and cut anywhere", () => {
    fc.assert(
      fc.property(anyCase, (c) => splitInvariant(c)),
      { seed: SEED, numRuns: 1500 },
    );
  }, 60_000);

  test("valid request sequences are accepted with exactly the fields, bodies and trailers sent", () => {
    fc.assert(fc.property(validCase, validAccepted), { seed: SEED, numRuns: 1500 });
  }, 60_000);

  test("differential: every request bunwsgi accepts, llhttp accepts the same way or an RFC exception covers it", () => {
    const inputs = fc.sample(anyCase, { seed: SEED, numRuns: 3000 }).map((c) => c.bytes);
    const tally = newTally();
    differential(inputs, tally);
    expect(tally.mismatches).toEqual([]);
    // Enough inputs are accepted by both for the comparison to mean something.
    expect(tally.same).toBeGreaterThan(inputs.length / 5);
  }, 60_000);

  test("differential: nothing after a request llhttp treats as an upgrade is compared (HTTP/1.0 Upgrade, found by the fuzzer)", () => {
    const input = latin1Bytes(
      "OPTIONS / HTTP/1.0\r\nUpgrade: h2c\r\nConnection: upgrade, keep-alive\r\n\r\nGET / HTTP/1.0\r\n\r\n",
    );
    const ours = drive(input, []);
    expect(ours.filter((e) => e.kind === "head").length).toBe(2);
    const [theirs] = runLlhttp([input]);
    expect(theirs?.msgs.map((m) => m.upgrade)).toEqual([true]);
    expect(compare(input, ours, theirs!)).toEqual({ kind: "same" });
  });
});
