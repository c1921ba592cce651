/** @module bench/servers/node — the same benchmark app on node:http, run by Node.js. */

import { createReadStream, statSync } from "node:fs";
import { createServer } from "node:http";
import { join } from "node:path";

const CHUNK = Buffer.alloc(64 * 1024, 120);

/** The bench's files, by route: /file1 and /file100 are BENCH_FILES/file1.bin and file100.bin (made by bench/run.ts). */
const DIR = process.env.BENCH_FILES;
const FILES = new Map(DIR === undefined ? [] : ["/file1", "/file100"].map((r) => [r, join(DIR, `${r.slice(1)}.bin`)]));

const server = createServer((req, res) => {
  if (req.url === "/echo") {
    const parts = [];
    req.on("data", (c) => parts.push(c));
    req.on("end", () => {
      const body = Buffer.concat(parts);
      res.writeHead(200, { "Content-Type": "application/octet-stream", "Content-Length": body.length });
      res.end(body);
    });
    return;
  }
  if (req.url === "/echo-stream") {
    res.writeHead(200, { "Content-Type": "application/octet-stream" });
    req.pipe(res);
    return;
  }
  if (req.url === "/stream") {
    res.writeHead(200, { "Content-Type": "application/octet-stream" });
    let i = 0;
    const more = () => {
      while (i < 16) {
        i++;
        if (!res.write(CHUNK)) return res.once("drain", more);
      }
      res.end();
    };
    more();
    return;
  }
  const file = FILES.get(req.url);
  if (file !== undefined) {
    res.writeHead(200, { "Content-Type": "application/octet-stream", "Content-Length": statSync(file).size });
    const stream = createReadStream(file);
    // pipe() leaves the file open when the client goes away mid-body (wrk stopping): close it then.
    res.on("close", () => stream.destroy());
    stream.on("error", () => res.destroy());
    stream.pipe(res);
    return;
  }
  res.writeHead(200, { "Content-Type": "text/plain", "Content-Length": 13 });
  res.end("Hello, World!");
});
server.keepAliveTimeout = 60_000;
server.listen(Number(process.argv[2] ?? 0), "127.0.0.1", () => console.log(`ready ${server.address().port}`));
