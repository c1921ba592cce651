/** @module bench/stress/app — the application the stress scripts serve: hello, a body reader, a streaming body sink, a large async stream, a file (STRESS_FILE, by wsgi.file_wrapper), a small stream, an upgrade echo and a sleeper. */

import type { Application, Chunk } from "../../src/index.ts";

const KiB = 1024;
const CHUNK = new Uint8Array(64 * KiB).fill(120);
const TEXT = [["Content-Type", "text/plain"]] as Array<[string, string]>;

/** `mib` MiB of 64 KiB chunks, produced as fast as the server takes them. */
async function* big(mib: number): AsyncGenerator<Chunk> {
  const n = mib * 16;
  for (let i = 0; i < n; i++) yield CHUNK;
}

function* small(): Generator<Chunk> {
  for (let i = 1; i <= 4; i++) yield `part ${i}\n`;
}

const app: Application = async (environ, startResponse) => {
  const path = environ.PATH_INFO;
  if (path === "/read") {
    // Reads the whole body (Content-Length or chunked) and answers its size.
    const body = await environ["wsgi.input"].read();
    startResponse("200 OK", TEXT);
    return [`read ${body.length}\n`];
  }
  if (path === "/sink") {
    // Reads the body 64 KiB at a time and keeps none of it, as an upload to object storage would.
    const input = environ["wsgi.input"];
    let n = 0;
    for (let part = await input.read(64 * KiB); part.length > 0; part = await input.read(64 * KiB)) n += part.length;
    startResponse("200 OK", TEXT);
    return [`sank ${n}\n`];
  }
  const file = process.env.STRESS_FILE;
  if (path === "/file" && file !== undefined) {
    startResponse("200 OK", [["Content-Type", "application/octet-stream"]]);
    return environ["wsgi.file_wrapper"](file);
  }
  if (path === "/big") {
    const mib = Math.min(Number(/mib=(\d+)/.exec(environ.QUERY_STRING)?.[1] ?? 64), 1024);
    startResponse("200 OK", [["Content-Type", "application/octet-stream"]]);
    return big(mib);
  }
  if (path === "/stream") {
    startResponse("200 OK", TEXT);
    return small();
  }
  const raw = environ["bunwsgi.raw_input"];
  if (path === "/upgrade" && raw !== undefined) {
    // Accepts the upgrade and echoes the raw stream until the client ends it.
    await environ["wsgi.input"].read();
    startResponse("101 Switching Protocols", [
      ["Upgrade", String(environ.HTTP_UPGRADE ?? "echo")],
      ["Connection", "Upgrade"],
    ]);
    return (async function* () {
      for (;;) {
        const data = await raw.read(4096);
        if (data.length === 0) return;
        yield data;
      }
    })();
  }
  if (path === "/sleep") {
    await Bun.sleep(10_000);
  }
  startResponse("200 OK", TEXT);
  return ["ok\n"];
};

export default app;
