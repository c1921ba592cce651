/**
 * @module bench/lb-ab — the JavaScript cost per request behind a load balancer, in one process (the low-noise view of
 * bench/lb.ts): 50 stand-in keep-alive connections each on three servers of this checkout — plain; forwarded_allow_ips
 * trusting the peer and every request carrying X-Forwarded-For/-Proto; the same requests from an untrusted peer (their
 * bytes' own cost); and connections that began with a PROXY v2
 * header (parsed once per connection by http/proxy-protocol, as the engine's PROXY stage does) — in rounds that rotate
 * the order, CPU time, each variant's own round function. Prints each variant's CPU ns per request ÷ plain's: the median
 * over rounds, then the geometric mean over PROCS processes. Run: bun bench/lb-ab.ts (env PROCS=6, ROUNDS=15, REQS=60000)
 */

import { Connection, type ServerSocket } from "../src/engine/connection.ts";
import { ProxyParser } from "../src/http/proxy-protocol.ts";
import { WSGIServer } from "../src/index.ts";
import type { ClientAddress } from "../src/observe/access.ts";
import { envWhole } from "./args.ts";
import { helloApp, readLoop, standInSocket } from "./heads.ts";

const PROCS = envWhole("bench/lb-ab", "PROCS", 6, 1);
const ROUNDS = envWhole("bench/lb-ab", "ROUNDS", 15, 1);
const REQUESTS = envWhole("bench/lb-ab", "REQS", 60_000, 20);
const CONNECTIONS = 50;

const PLAIN = Buffer.from("GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n", "latin1");
const FORWARDED = Buffer.from(
  "GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nX-Forwarded-For: 203.0.113.9\r\nX-Forwarded-Proto: https\r\n\r\n",
  "latin1",
);

/** PROXY v2, TCP over IPv4, from 203.0.113.(i + 1):(40000 + i). */
function proxyHeader(i: number): NonNullable<ProxyParser["header"]> {
  const h = Buffer.alloc(28);
  Buffer.from("\r\n\r\n\0\r\nQUIT\n", "latin1").copy(h, 0);
  h[12] = 0x21;
  h[13] = 0x11;
  h.writeUInt16BE(12, 14);
  h.set([203, 0, 113, i + 1, 127, 0, 0, 1], 16);
  h.writeUInt16BE(40000 + i, 24);
  h.writeUInt16BE(8080, 26);
  const p = new ProxyParser("v2");
  if (p.execute(h, 0, h.length) !== h.length || p.header === null) throw new Error("PROXY v2 header not parsed");
  return p.header;
}

interface Variant {
  readonly name: string;
  readonly request: Buffer;
  readonly conns: Connection[];
  readonly run: (n: number, conns: Connection[], req: Buffer) => number;
}

function variant(name: string, request: Buffer, proxies: Record<string, unknown>, proxy: boolean): Variant {
  const server = new WSGIServer("127.0.0.1:0", helloApp, { log: null, proxies });
  const conns: Connection[] = [];
  for (let i = 0; i < CONNECTIONS; i++) {
    const socket = standInSocket(40000 + i) as unknown as ServerSocket;
    const conn = new Connection(socket, server);
    socket.data = conn;
    let address: ClientAddress = ["127.0.0.1", 40000 + i];
    if (proxy) {
      const header = proxyHeader(i);
      conn.proxy = { socketPeer: address, header };
      address = [header.source, header.sourcePort];
    }
    server.handle(socket, address as [string, number]);
    conns.push(conn);
  }
  // Its own round function: its own code and inline caches.
  const run = readLoop<Connection>(name, 1);
  return { name, request, conns, run };
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1] as number;

if (process.env.LB_AB_CHILD === "1") {
  const variants = [
    variant("plain", PLAIN, {}, false),
    variant("forwarded", FORWARDED, { forwardedAllowIps: ["127.0.0.1"] }, false),
    variant("forwarded, untrusted", FORWARDED, { forwardedAllowIps: [] }, false),
    variant("proxy v2", PLAIN, {}, true),
  ];
  for (let i = 0; i < 40; i++) for (const v of variants) v.run(REQUESTS / 20, v.conns, v.request);
  const ns: number[][] = variants.map(() => []);
  for (let r = 0; r < ROUNDS; r++) {
    for (let k = 0; k < variants.length; k++) {
      const j = (k + r) % variants.length;
      const v = variants[j] as Variant;
      (ns[j] as number[]).push(v.run(REQUESTS, v.conns, v.request));
    }
  }
  const plain = ns[0] as number[];
  console.log(JSON.stringify(ns.map((xs) => ({ ns: median(xs), ratio: median(xs.map((x, i) => x / (plain[i] as number))) }))));
} else {
  const names = [
    "plain",
    "forwarded_allow_ips + X-Forwarded-For/-Proto",
    "X-Forwarded-For/-Proto, peer not trusted",
    "PROXY v2 connections",
  ];
  const per: Array<{ ns: number; ratio: number }[]> = [];
  for (let p = 0; p < PROCS; p++) {
    const run = Bun.spawnSync([process.execPath, import.meta.path], {
      env: { ...process.env, LB_AB_CHILD: "1" },
      stderr: "inherit",
    });
    if (run.exitCode !== 0) process.exit(1);
    per.push(JSON.parse(run.stdout.toString().trim().split("\n").pop() as string));
  }
  console.log(
    `${PROCS} processes × ${ROUNDS} rounds × ${REQUESTS} requests; CPU ns per request; ratio to plain: geometric mean of each process's median`,
  );
  names.forEach((name, i) => {
    const ratios = per.map((x) => (x[i] as { ratio: number }).ratio);
    const gm = Math.exp(ratios.reduce((s, r) => s + Math.log(r), 0) / ratios.length);
    console.log(
      `${name.padEnd(46)} ${median(per.map((x) => (x[i] as { ns: number }).ns)).toFixed(0)} ns  ÷ plain ${gm.toFixed(3)} (${ratios.map((r) => r.toFixed(3)).join(" ")})`,
    );
  });
}
