/** @module test/binary — the compiled binary for process tests: building it with build.ts, and running it with its stderr collected. */

import { join } from "node:path";
import type { Subprocess } from "bun";

const root = join(import.meta.dir, "..");

/** `bun run build.ts ARGS` (e.g. --outfile PATH); throws with build.ts's stderr on failure. */
export async function buildBinary(args: string[]): Promise<void> {
  const p = Bun.spawn([process.execPath, "build.ts", ...args], { cwd: root, stdout: "pipe", stderr: "pipe" });
  const [code, err] = await Promise.all([p.exited, new Response(p.stderr).text()]);
  if (code !== 0) throw new Error(`build ${args.join(" ")} failed: ${err}`);
}

/** A running binary whose stderr is collected as it arrives. */
export class Proc {
  readonly p: Subprocess<"ignore", "pipe", "pipe">;
  stderr = "";
  private readonly done: Promise<void>;

  /** `env`: added to this process's environment. */
  constructor(args: string[], cwd: string, bin: string, env: Record<string, string> = {}) {
    const p = Bun.spawn([bin, ...args], {
      cwd,
      env: { ...process.env, ...env },
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
    });
    this.p = p;
    this.done = (async () => {
      const decoder = new TextDecoder();
      for await (const chunk of p.stderr) this.stderr += decoder.decode(chunk, { stream: true });
    })();
  }

  async waitFor(text: string | RegExp, ms = 10_000): Promise<RegExpMatchArray | string> {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
      if (typeof text === "string" ? this.stderr.includes(text) : text.test(this.stderr)) {
        return typeof text === "string" ? text : (this.stderr.match(text) as RegExpMatchArray);
      }
      if (this.p.exitCode !== null) break;
      await Bun.sleep(20);
    }
    throw new Error(`binary never printed ${text}; exit ${this.p.exitCode}; stderr:\n${this.stderr}`);
  }

  /** The port of the first TCP listener, from the start-up line. */
  async port(scheme = "http"): Promise<number> {
    const m = (await this.waitFor(new RegExp(`listening on ${scheme}://127\\.0\\.0\\.1:(\\d+)`))) as RegExpMatchArray;
    return Number(m[1]);
  }

  async exit(): Promise<number> {
    const code = await this.p.exited;
    await this.done;
    return code;
  }

  kill(signal: NodeJS.Signals = "SIGTERM"): void {
    if (this.p.exitCode === null) this.p.kill(signal);
  }
}

/**
 * Start `bin` in `cwd` as systemd's socket activation would: Node makes a listening socket on an
 * ephemeral loopback port and hands it to the binary as descriptor 3 (`bind = "fd://3"`). The
 * launcher forwards SIGTERM and exits with the binary's code. Resolves once the port is known.
 */
export async function launchWithFd3(
  bin: string,
  cwd: string,
): Promise<{ node: Subprocess<"ignore", "pipe", "pipe">; port: number }> {
  const launcher = `
      const net = require("node:net"); const { spawn } = require("node:child_process");
      const s = net.createServer(); s.listen(0, "127.0.0.1", () => {
        const child = spawn(${JSON.stringify(bin)}, [], { cwd: ${JSON.stringify(cwd)}, stdio: ["ignore", "inherit", "inherit", s._handle.fd] });
        console.log(s.address().port); s.close();
        process.on("SIGTERM", () => child.kill("SIGTERM")); child.on("exit", (c) => process.exit(c));
      });`;
  const node = Bun.spawn(["node", "-e", launcher], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const reader = node.stdout.getReader();
  const { value } = await reader.read();
  reader.releaseLock();
  return { node, port: Number(new TextDecoder().decode(value).trim()) };
}
