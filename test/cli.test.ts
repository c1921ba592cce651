import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const root = join(import.meta.dir, "..");
const dir = mkdtempSync(join(tmpdir(), "bunwsgi-cli-"));
const binary = join(dir, "bunwsgi");

beforeAll(async () => {
  const p = Bun.spawn([process.execPath, "build.ts", "--outfile", binary], { cwd: root, stdout: "pipe", stderr: "pipe" });
  const [code, err] = await Promise.all([p.exited, new Response(p.stderr).text()]);
  if (code !== 0) throw new Error(`build failed: ${err}`);
  // biome-ignore lint/suspicious/noTemplateCurlyInString: this is the source text of a module the test writes.
  writeFileSync(join(dir, "greeting.ts"), "export const greeting = (who: string): string => `hi ${who}`;\n");
  writeFileSync(
    join(dir, "app.ts"),
    'import { greeting } from "./greeting.ts";\n' +
      "export const named = (env: Record<string, unknown>, sr: (s: string, h: [string, string][]) => unknown) => {\n" +
      '  sr("200 OK", [["Content-Type", "text/plain"]]);\n' +
      "  return [greeting(String(env.PATH_INFO))];\n" +
      "};\n",
  );
}, 60000);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function freePort(): Promise<number> {
  const l = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = l.port;
  l.stop(true);
  return port;
}

async function waitUp(port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    try {
      await fetch(`http://127.0.0.1:${port}/`);
      return;
    } catch {
      await Bun.sleep(50);
    }
  }
  throw new Error(`nothing listening on ${port}`);
}

describe("the compiled binary", () => {
  test("serves a module with a relative import, logs access, and exits 0 on SIGTERM", async () => {
    const port = await freePort();
    const p = Bun.spawn([binary, "serve", "app.ts:named", "--bind", `127.0.0.1:${port}`], {
      cwd: dir,
      stdout: "pipe",
      stderr: "pipe",
    });
    try {
      await waitUp(port);
      const curl = Bun.spawn(["curl", "-sS", `http://127.0.0.1:${port}/there`], { stdout: "pipe" });
      expect(await new Response(curl.stdout).text()).toBe("hi /there");
    } finally {
      p.kill("SIGTERM");
    }
    expect(await p.exited).toBe(0);
    const err = await new Response(p.stderr).text();
    expect(err).toContain('"GET /there HTTP/1.1" 200');
    expect(err).toContain("stopping gracefully");
  });

  test("a missing module or export fails at start with exit 2 and a message naming it", async () => {
    const missing = Bun.spawn([binary, "nope.ts"], { cwd: dir, stderr: "pipe" });
    expect(await missing.exited).toBe(2);
    expect(await new Response(missing.stderr).text()).toContain(`cannot load application module ${join(dir, "nope.ts")}`);
    const noExport = Bun.spawn([binary, "app.ts:absent"], { cwd: dir, stderr: "pipe" });
    expect(await noExport.exited).toBe(2);
    expect(await new Response(noExport.stderr).text()).toContain('has no function export "absent" (it exports: named)');
  });

  test("--version and --help print and exit 0; an unknown flag exits 2", async () => {
    const v = Bun.spawn([binary, "--version"], { stdout: "pipe" });
    expect(await new Response(v.stdout).text()).toMatch(/^bunwsgi \d+\.\d+\.\d+ \(Bun /);
    expect(await v.exited).toBe(0);
    const h = Bun.spawn([binary, "--help"], { stdout: "pipe" });
    expect(await new Response(h.stdout).text()).toContain("Usage: bunwsgi");
    const bad = Bun.spawn([binary, "--frobnicate"], { stderr: "pipe" });
    expect(await bad.exited).toBe(2);
    expect(await new Response(bad.stderr).text()).toContain("unknown option --frobnicate");
  });
});
