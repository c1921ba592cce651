/**
 * @module bench/lb — the hello keep-alive bench behind a load balancer's conventions, in one run: bunwsgi plain, with
 * forwarded_allow_ips set and every request carrying X-Forwarded-For/-Proto (trusted, so applied), and on a
 * `proxy_protocol=v2` bind; and the same forwarding fields from a peer that is not trusted (their bytes' own cost). wrk cannot send a PROXY header, so the PROXY bind is
 * reached through a relay (servers/relay.ts, which adds the header) and compared with a plain server behind the same relay; the others
 * are wrk's own connections. Servers on CPU 0, relays and `wrk -t1 -c50` on CPU 1; interleaved rounds; server CPU per request from /proc; medians, and each
 * variant's CPU per request ÷ the plain one's in the same round (issue #18: within 5 %).
 * Usage: bun bench/lb.ts [--rounds N] [--duration S]
 */

import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { commandLine, wholeNumber } from "./args.ts";

const here = import.meta.dir;
const TOOL = "bench/lb";
const given = commandLine(TOOL, "bun bench/lb.ts [options] (npm run bench:lb -- [options])", {
  rounds: { type: "string", value: "N", help: "interleaved rounds (default 5)" },
  duration: { type: "string", value: "S", help: "seconds of each measured run (default 5)" },
});
const ROUNDS = wholeNumber(TOOL, "--rounds", given.rounds, 5, 1);
const DURATION = wholeNumber(TOOL, "--duration", given.duration, 5, 1);
const TICK = 100; // USER_HZ: /proc's CPU times are in these.

interface Variant {
  readonly name: string;
  readonly bind: (port: number) => string;
  readonly flags: string[];
  /** "direct": wrk to the server; else through servers/relay.ts, adding a PROXY v2 header or not. */
  readonly relay: "direct" | "none" | "v2";
  /** The variant its CPU per request is compared with, in the same round. */
  readonly ref: string;
  readonly wrk: string[];
}

const FORWARDED_FIELDS = ["-H", "X-Forwarded-For: 203.0.113.9", "-H", "X-Forwarded-Proto: https"];
const VARIANTS: Variant[] = [
  { name: "plain", bind: (p) => `127.0.0.1:${p}`, flags: [], relay: "direct", wrk: [], ref: "plain" },
  {
    name: "forwarded_allow_ips + X-Forwarded-For/-Proto",
    bind: (p) => `127.0.0.1:${p}`,
    flags: ["--forwarded-allow-ips", "127.0.0.1"],
    relay: "direct",
    wrk: FORWARDED_FIELDS,
    ref: "plain",
  },
  {
    name: "X-Forwarded-For/-Proto, peer not trusted",
    bind: (p) => `127.0.0.1:${p}`,
    flags: ["--forwarded-allow-ips", "10.0.0.1"],
    relay: "direct",
    wrk: FORWARDED_FIELDS,
    ref: "plain",
  },
  {
    name: "plain, through the relay",
    bind: (p) => `127.0.0.1:${p}`,
    flags: [],
    relay: "none",
    wrk: [],
    ref: "plain, through the relay",
  },
  {
    name: "PROXY v2 bind, through the relay",
    bind: (p) => `127.0.0.1:${p} proxy_protocol=v2`,
    flags: [],
    relay: "v2",
    wrk: [],
    ref: "plain, through the relay",
  },
];

const freePort = (): number => {
  const l = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = l.port;
  l.stop(true);
  return port;
};

const cpuTicks = (pid: number): number => {
  const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.split(" ") ?? [];
  return Number(f[11]) + Number(f[12]);
};

async function waitForPort(port: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const ok = await fetch(`http://127.0.0.1:${port}/`).then(
      (r) => r.status,
      () => 0,
    );
    if (ok === 200) return;
    await Bun.sleep(50);
  }
  throw new Error(`nothing answers on ${port}`);
}

const procs: Subprocess[] = [];
process.on("exit", () => {
  for (const p of procs) p.kill("SIGKILL");
});

const running = await Promise.all(
  VARIANTS.map(async (v) => {
    const port = freePort();
    const front = freePort();
    const server = Bun.spawn(
      [
        "taskset",
        "-c",
        "0",
        process.execPath,
        join(here, "../src/cli.ts"),
        join(here, "servers/workers-app.ts"),
        "--bind",
        v.bind(port),
        "--log-access",
        "none",
        ...v.flags,
      ],
      { stdout: "ignore", stderr: "inherit" },
    );
    procs.push(server);
    if (v.relay === "direct") {
      await waitForPort(port);
      return { v, server, front: port };
    }
    const relay = Bun.spawn(
      ["taskset", "-c", "1", process.execPath, join(here, "servers/relay.ts"), String(front), String(port), v.relay],
      { stdout: "ignore", stderr: "inherit" },
    );
    procs.push(relay);
    await waitForPort(front);
    return { v, server, front };
  }),
);

const results = new Map<string, { rps: number[]; cpu: number[]; errors: number }>(
  VARIANTS.map((v) => [v.name, { rps: [], cpu: [], errors: 0 }]),
);
for (let r = 0; r < ROUNDS; r++) {
  // A different variant goes first each round.
  const order = running.map((_, i) => running[(i + r) % running.length] as (typeof running)[number]);
  for (const { v, server, front } of order) {
    const before = cpuTicks(server.pid);
    const w = Bun.spawnSync(
      ["taskset", "-c", "1", "wrk", "-t1", "-c50", `-d${DURATION}s`, "--timeout", "5s", ...v.wrk, `http://127.0.0.1:${front}/`],
      { stdout: "pipe", stderr: "pipe", timeout: (DURATION + 15) * 1000 },
    );
    const cpu = (cpuTicks(server.pid) - before) / TICK;
    const out = w.stdout.toString();
    const requests = Number(/(\d+) requests in/.exec(out)?.[1] ?? Number.NaN);
    const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
    const res = results.get(v.name) as { rps: number[]; cpu: number[]; errors: number };
    res.errors += sock ? Number(sock[1]) + Number(sock[2]) + Number(sock[3]) + Number(sock[4]) : 0;
    res.errors += Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
    res.rps.push(requests / DURATION);
    res.cpu.push((cpu * 1e6) / requests);
    console.log(
      `round ${r + 1} ${v.name.padEnd(46)} ${(requests / DURATION).toFixed(0).padStart(7)} req/s ${((cpu * 1e6) / requests).toFixed(2)} µs CPU/req`,
    );
  }
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1] as number;
const range = (xs: number[], d: number): string =>
  `${median(xs).toFixed(d)} (${Math.min(...xs).toFixed(d)}–${Math.max(...xs).toFixed(d)})`;
const load = readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
console.log(
  `\nBun ${Bun.version}; ${ROUNDS} interleaved rounds × ${DURATION}s; servers on CPU 0; \`wrk -t1 -c50\` (and the relay, for the PROXY pair) on CPU 1; load average at the end ${load}; median (min–max); ratio = CPU/req ÷ the reference's in the same round (plain; the PROXY bind: plain through the same relay).\n`,
);
console.log("| variant | req/s | server CPU µs/req | CPU/req ÷ its reference | errors |\n|---|---|---|---|---|");
for (const v of VARIANTS) {
  const r = results.get(v.name) as { rps: number[]; cpu: number[]; errors: number };
  const ref = results.get(v.ref) as { cpu: number[] };
  const ratios = r.cpu.map((c, i) => c / (ref.cpu[i] as number));
  console.log(`| ${v.name} | ${range(r.rps, 0)} | ${range(r.cpu, 2)} | ${range(ratios, 3)} | ${r.errors} |`);
}
process.exit(0);
