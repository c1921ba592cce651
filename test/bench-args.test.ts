/** The bench and stress scripts refuse a command line they do not understand, before running anything: a misspelt option or a bad number must not become a run that measured something other than asked. */

import { describe, expect, test } from "bun:test";
import { join } from "node:path";

const ROOT = join(import.meta.dir, "..");

/** Run a bench script with `args` (and `env` added): its exit code and what it printed. */
async function run(script: string, args: string[], env: Record<string, string> = {}) {
  const proc = Bun.spawn([process.execPath, join(ROOT, script), ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdout: "pipe",
    stderr: "pipe",
    timeout: 20_000,
  });
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { code, out, err };
}

describe("bench and stress command lines", () => {
  test("--help lists every option of npm run bench and exits 0", async () => {
    const r = await run("bench/run.ts", ["--help"]);
    expect(r.code).toBe(0);
    for (const o of [
      "--rounds N",
      "--duration S",
      "--warmup S",
      "--lead S",
      "--only a,b",
      "--servers a,b",
      "--baseline DIR",
      "--markdown FILE",
    ]) {
      expect(r.out).toContain(o);
    }
  });

  test.each([
    ["bench/run.ts", ["--round", "3"], "Unknown option '--round'"],
    ["bench/run.ts", ["--rounds"], "'--rounds <value>' argument missing"],
    ["bench/run.ts", ["--rounds", "2.5"], '--rounds takes a whole number of at least 1, got "2.5"'],
    ["bench/run.ts", ["--duration", "0"], '--duration takes a whole number of at least 1, got "0"'],
    ["bench/run.ts", ["--warmup", "-1"], "'--warmup' argument is ambiguous"],
    ["bench/run.ts", ["--baseline", "/nonexistent/checkout"], "--baseline /nonexistent/checkout is no checkout of bunwsgi"],
    ["bench/run.ts", ["fast"], "Unexpected argument 'fast'"],
    ["bench/lb.ts", ["--duration", "0"], '--duration takes a whole number of at least 1, got "0"'],
    ["bench/lb.ts", ["--only", "plain"], "Unknown option '--only'"],
    ["bench/stress/run.ts", ["--kind", "nope"], 'stress: --kind takes wsgi or fetch, got "nope"'],
    ["bench/stress/run.ts", ["--seconds", "0"], 'stress: --seconds takes a whole number of at least 1, got "0"'],
    ["bench/stress/run.ts", ["--count", "many"], 'stress: --count takes a whole number of at least 0, got "many"'],
    ["bench/stress/run.ts", ["--fats"], "Unknown option '--fats'"],
    ["bench/stress/fuzz.ts", ["--only", "fuzz"], "Unknown option '--only'"],
  ])("%s %p stops with exit 2 saying why", async (script, args, message) => {
    const r = await run(script, args);
    expect(r.code).toBe(2);
    expect(r.err).toContain(message);
  });

  test("bench/ab and bench/lb-ab check their environment and arguments", async () => {
    const head = await run("bench/ab.ts", [ROOT, ROOT], { HEAD: "brow" });
    expect(head.code).toBe(2);
    expect(head.err).toContain('HEAD is one of minimal, browser, got "brow"');
    const extra = await run("bench/ab.ts", [ROOT, ROOT, ROOT]);
    expect(extra.code).toBe(2);
    expect(extra.err).toContain("usage: bun bench/ab.ts DIR_A DIR_B");
    const procs = await run("bench/lb-ab.ts", [], { PROCS: "x" });
    expect(procs.code).toBe(2);
    expect(procs.err).toContain('PROCS takes a whole number of at least 1, got "x"');
  });

  test("the stress runner lists --only in its help, beside the scripts' options", async () => {
    const help = await run("bench/stress/run.ts", ["--help"]);
    expect(help.code).toBe(0);
    for (const o of ["--only a,b", "--fast", "--seconds N", "--seed N", "--count N", "--kind wsgi|fetch"])
      expect(help.out).toContain(o);
  });
});
