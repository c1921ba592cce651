/** @module bench/servers/workers-bunserve — the workers scenarios' app on Bun.serve, their reference: hello, and /cpu, the same CPU-bound work as bunwsgi's. */

import { cpuBody } from "./cpu-work.ts";

const server = Bun.serve({
  hostname: "127.0.0.1",
  port: Number(process.argv[2] ?? 0),
  fetch(req) {
    // The path parsed as bench/servers/bunserve.ts does, so its hello costs what the pinned bench's does.
    if (new URL(req.url).pathname === "/cpu") return new Response(cpuBody(), { headers: { "Content-Type": "text/plain" } });
    return new Response("Hello, World!", { headers: { "Content-Type": "text/plain" } });
  },
});
console.log(`ready ${server.port}`);
