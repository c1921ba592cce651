/**
 * @module bench/handler — the JavaScript cost of one keep-alive request, parse to response bytes:
 * ns and heap bytes per request through Connection and WSGIHandler, with a hello-world app and a
 * socket stand-in that takes every write, so no syscall is timed. The wrk bench times the same
 * code with the kernel's share on top; this is its low-noise view. Run: bun run bench:handler
 */

import type { ServerSocket } from "../src/engine/connection.ts";
import { Connection } from "../src/engine/connection.ts";
import { WSGIServer } from "../src/index.ts";
import { allocatedPer, HEADS, helloApp, standInSocket, timeRounds } from "./heads.ts";

const ITERATIONS = 200_000;
const ROUNDS = 7;
/** A run that allocates a few MiB, below what starts a collection. */
const ALLOCATION_RUN = 5_000;

const server = new WSGIServer("127.0.0.1:0", helloApp, { log: null });
const socket = standInSocket(40000);
const conn = new Connection(socket as unknown as ServerSocket, server);
socket.data = conn;
server.handle(socket as unknown as ServerSocket, ["127.0.0.1", 40000]);

console.log(`Bun ${Bun.version}; ${ITERATIONS} requests per round, median (min–max) of ${ROUNDS} rounds`);
for (const [name, head] of Object.entries(HEADS)) {
  const run = (n: number): void => {
    for (let i = 0; i < n; i++) conn.onData(head);
  };
  socket.written = 0;
  run(1);
  const responseBytes = socket.written;
  const [median, min, max] = timeRounds(run, ITERATIONS, ROUNDS);
  const perRequest = allocatedPer(run, ALLOCATION_RUN);
  if (socket.written !== responseBytes * (1 + ITERATIONS * (ROUNDS + 1) + ALLOCATION_RUN))
    throw new Error("a response went missing");
  console.log(
    `${name.padEnd(28)} ${median.toFixed(0).padStart(5)} ns/request  (${min.toFixed(0)}–${max.toFixed(0)})  ` +
      `${perRequest.toFixed(0)} heap B/request  (${responseBytes} B response)`,
  );
}
