/** @module bench/heads — what the micro-benchmarks share: their request heads, the hello-world app, a socket stand-in, a heap-allocation probe and timed rounds. */

import { heapStats } from "bun:jsc";

const latin1 = (s: string): Buffer => Buffer.from(s, "latin1");

/** wrk's request, and a realistic browser request (12 fields, cookies, about 700 bytes). */
export const HEADS: Readonly<Record<string, Buffer>> = {
  "minimal (wrk)": latin1("GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n"),
  "browser, 12 fields, ~700 B": latin1(
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

/**
 * Heap bytes per operation of `run(n)`: growth of the heap's capacity over a run too short for a
 * collection (heapSize would not do: it is the size the last collection found, blind to anything
 * allocated since). Capacity grows in 16 KiB blocks: n = 100000 resolves 0.2 B, n = 5000 3.3 B;
 * an n whose allocation starts a collection reads low.
 */
export function allocatedPer(run: (n: number) => void, n: number): number {
  Bun.gc(true);
  const before = heapStats().heapCapacity;
  run(n);
  return Math.max(0, heapStats().heapCapacity - before) / n;
}

/** ns per operation of `run(n)` over `rounds` rounds after a warm-up: median, min, max. */
export function timeRounds(run: (n: number) => void, n: number, rounds: number): [number, number, number] {
  run(n);
  const times: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const t0 = Bun.nanoseconds();
    run(n);
    times.push((Bun.nanoseconds() - t0) / n);
  }
  times.sort((a, b) => a - b);
  return [times[rounds >> 1] as number, times[0] as number, times[rounds - 1] as number];
}

/**
 * A timed loop made for one caller alone (its own code and inline caches: a loop shared by two
 * copies of the code under test would be polymorphic): runs `body` for i < n with `args` bound
 * to its parameters, then returns the CPU time in ns divided by `per` (an expression of n).
 * `gc`: a minor collection inside the timed span, so a round pays for the garbage it made.
 */
export function timedLoop<A extends unknown[]>(
  tag: string,
  params: readonly string[],
  body: string,
  per: string,
  gc: boolean,
): (n: number, ...args: A) => number {
  return new Function(
    "n",
    ...params,
    `// ${tag}
    const c0 = process.cpuUsage();
    for (let i = 0; i < n; i++) {
      ${body}
    }
    ${gc ? "Bun.gc(false);" : ""}
    const c = process.cpuUsage(c0);
    return ((c.user + c.system) * 1e3) / (${per});`,
  ) as (n: number, ...args: A) => number;
}

/** A loop of `timedLoop` feeding a copy of `batch` to the stand-in connections in turn, per `perRead` requests in a read. */
export function readLoop<C>(tag: string, perRead: number): (n: number, conns: C[], batch: Buffer) => number {
  return timedLoop<[C[], Buffer]>(
    tag,
    ["conns", "batch"],
    `const b = Buffer.allocUnsafe(batch.length);
      batch.copy(b);
      conns[i % conns.length].onData(b);`,
    `n * ${perRead}`,
    true,
  );
}

/** The micro-benchmarks' app: hello world, sized. */
export function helloApp(
  _environ: unknown,
  startResponse: (status: string, headers: Array<[string, string]>) => unknown,
): string[] {
  startResponse("200 OK", [["Content-Type", "text/plain"]]);
  return ["Hello, World!"];
}

/** What Connection and WSGIHandler use of a Bun socket; every write is taken whole and counted in `written`. */
export interface StandInSocket {
  /** The connection, once the caller made it. */
  data: unknown;
  readonly remoteAddress: string;
  readonly remotePort: number;
  written: number;
  write(buf: Uint8Array, offset: number, length: number): number;
  pause(): void;
  resume(): void;
  end(): void;
  shutdown(): void;
  terminate(): void;
}

export function standInSocket(port: number): StandInSocket {
  return {
    data: null,
    remoteAddress: "127.0.0.1",
    remotePort: port,
    written: 0,
    write(_buf, _offset, length) {
      this.written += length;
      return length;
    },
    pause() {},
    resume() {},
    end() {},
    shutdown() {},
    terminate() {},
  };
}
