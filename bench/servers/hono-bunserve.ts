/** @module bench/servers/hono-bunserve — the Hono bench app on Bun.serve, the reference for the Hono scenarios. */

import { app } from "./hono-app.ts";

const server = Bun.serve({
  hostname: "127.0.0.1",
  port: Number(process.argv[2] ?? 0),
  fetch: app.fetch,
});
console.log(`ready ${server.port}`);
process.on("SIGTERM", () => process.exit(0));
