/** @module bench/servers/bunwsgi — the benchmark app on bunwsgi: hello, 1 MiB echo (read whole, or streamed back as read), 1 MiB generator stream, files (wsgi.file_wrapper). */

import { join } from "node:path";
import { type Application, WSGIServer } from "../../src/index.ts";
import { keepFreedMemory } from "../../src/process/allocator.ts";

// As the bunwsgi command starts (process/allocator): freed memory kept 10 s for reuse.
keepFreedMemory();

const HELLO = "Hello, World!";
const CHUNK = new Uint8Array(64 * 1024).fill(120);

/** The bench's files, by route: /file1 and /file100 are BENCH_FILES/file1.bin and file100.bin (made by bench/run.ts). */
const DIR = process.env.BENCH_FILES;
const FILES = new Map(DIR === undefined ? [] : ["/file1", "/file100"].map((r) => [r, join(DIR, `${r.slice(1)}.bin`)]));

function* stream() {
  for (let i = 0; i < 16; i++) yield CHUNK;
}

const app: Application = (environ, startResponse) => {
  const path = environ.PATH_INFO;
  if (path === "/echo") {
    return (async () => {
      const body = await environ["wsgi.input"].read();
      startResponse("200 OK", [["Content-Type", "application/octet-stream"]]);
      return [body];
    })();
  }
  if (path === "/echo-stream") {
    // The body streamed back as it is read, 64 KiB at a time (chunked): a proxy's or an upload's shape.
    const input = environ["wsgi.input"];
    startResponse("200 OK", [["Content-Type", "application/octet-stream"]]);
    return (async function* () {
      for (let part = await input.read(65536); part.length > 0; part = await input.read(65536)) yield part;
    })();
  }
  if (path === "/stream") {
    startResponse("200 OK", [["Content-Type", "application/octet-stream"]]);
    return stream();
  }
  const file = FILES.get(path);
  if (file !== undefined) {
    startResponse("200 OK", [["Content-Type", "application/octet-stream"]]);
    return environ["wsgi.file_wrapper"](file);
  }
  startResponse("200 OK", [["Content-Type", "text/plain"]]);
  return [HELLO];
};

const server = new WSGIServer(`127.0.0.1:${process.argv[2] ?? 0}`, app, { log: null });
server.start();
console.log(`ready ${server.serverPort}`);
process.on("SIGTERM", () => process.exit(0));
