/** @module bench/servers/hono-bunwsgi — the same Hono app object on bunwsgi's FetchServer. */

import { FetchServer } from "../../src/index.ts";
import { keepFreedMemory } from "../../src/process/allocator.ts";
import { app } from "./hono-app.ts";

// As the bunwsgi command starts (process/allocator): freed memory kept 10 s for reuse.
keepFreedMemory();

const server = new FetchServer(`127.0.0.1:${process.argv[2] ?? 0}`, app, { log: null });
server.start();
console.log(`ready ${server.serverPort}`);
process.on("SIGTERM", () => process.exit(0));
