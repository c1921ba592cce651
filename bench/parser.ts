/**
 * @module bench/parser — request-head parser micro-benchmark: ns per head and heap bytes
 * allocated per head, for a minimal request and a realistic browser request. Run: bun run bench:parser
 */

import { heapStats } from "bun:jsc";
import { RequestParser } from "../src/parser.ts";

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

const HEADS: Record<string, Uint8Array> = {
  "minimal (wrk)": enc("GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n"),
  "browser, 12 fields, ~700 B": enc(
    "GET /products/42?ref=home&utm_source=newsletter HTTP/1.1\r\n" +
      "Host: shop.example.com\r\n" +
      "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36\r\n" +
      "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8\r\n" +
      "Accept-Language: en-GB,en;q=0.9,de;q=0.8\r\n" +
      "Accept-Encoding: gzip, deflate, br, zstd\r\n" +
      "Referer: https://shop.example.com/\r\n" +
      "Cookie: session=3f2a9c1e7b5d4a8f9e0c1b2a3d4e5f60; theme=dark; consent=analytics%3Dfalse%26ads%3Dfalse; cart=7c1e2d3f\r\n" +
      "Sec-Fetch-Dest: document\r\n" +
      "Sec-Fetch-Mode: navigate\r\n" +
      "Sec-Fetch-Site: same-origin\r\n" +
      "Upgrade-Insecure-Requests: 1\r\n" +
      "Cache-Control: max-age=0\r\n\r\n",
  ),
};

const ITERATIONS = 200_000;
const ROUNDS = 7;
const parser = new RequestParser();

function run(head: Uint8Array, n: number): void {
  for (let i = 0; i < n; i++) {
    if (parser.execute(head, 0, head.length) !== head.length) throw new Error("parse failed");
    parser.reset();
  }
}

console.log(`Bun ${Bun.version}; ${ITERATIONS} heads per round, median of ${ROUNDS} rounds`);
for (const [name, head] of Object.entries(HEADS)) {
  run(head, ITERATIONS); // warm up the JIT
  const times: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = Bun.nanoseconds();
    run(head, ITERATIONS);
    times.push((Bun.nanoseconds() - t0) / ITERATIONS);
  }
  times.sort((a, b) => a - b);
  // Allocation: heap growth over a run too short for a collection to hide it.
  Bun.gc(true);
  const before = heapStats().heapSize;
  run(head, 10_000);
  const perHead = Math.max(0, (heapStats().heapSize - before) / 10_000);
  console.log(
    `${name.padEnd(28)} ${head.length.toString().padStart(4)} B  ${(times[ROUNDS >> 1] as number).toFixed(0).padStart(5)} ns/head  ` +
      `(${(times[0] as number).toFixed(0)}–${(times[ROUNDS - 1] as number).toFixed(0)})  ${perHead.toFixed(1)} heap B/head`,
  );
}
