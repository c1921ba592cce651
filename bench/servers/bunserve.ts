/** @module bench/servers/bunserve — the same benchmark app on Bun.serve, the reference. */

import { join } from "node:path";

const CHUNK = new Uint8Array(64 * 1024).fill(120);

/** The bench's files, by route: /file1 and /file100 are BENCH_FILES/file1.bin and file100.bin (made by bench/run.ts). */
const DIR = process.env.BENCH_FILES;
const FILES = new Map(DIR === undefined ? [] : ["/file1", "/file100"].map((r) => [r, join(DIR, `${r.slice(1)}.bin`)]));

const server = Bun.serve({
  hostname: "127.0.0.1",
  port: Number(process.argv[2] ?? 0),
  async fetch(req) {
    const path = new URL(req.url).pathname;
    if (path === "/echo") {
      return new Response(await req.arrayBuffer(), { headers: { "Content-Type": "application/octet-stream" } });
    }
    if (path === "/echo-stream") {
      return new Response(req.body, { headers: { "Content-Type": "application/octet-stream" } });
    }
    if (path === "/stream") {
      let i = 0;
      const body = new ReadableStream({
        pull(controller) {
          if (i++ < 16) controller.enqueue(CHUNK);
          else controller.close();
        },
      });
      return new Response(body, { headers: { "Content-Type": "application/octet-stream" } });
    }
    const file = FILES.get(path);
    if (file !== undefined) return new Response(Bun.file(file));
    return new Response("Hello, World!", { headers: { "Content-Type": "text/plain" } });
  },
});
console.log(`ready ${server.port}`);
