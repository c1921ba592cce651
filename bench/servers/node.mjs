/** @module bench/servers/node — the same benchmark app on node:http, run by Node.js. */

import { createServer } from "node:http";

const CHUNK = Buffer.alloc(64 * 1024, 120);

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
  res.writeHead(200, { "Content-Type": "text/plain", "Content-Length": 13 });
  res.end("Hello, World!");
});
server.keepAliveTimeout = 60_000;
server.listen(Number(process.argv[2] ?? 0), "127.0.0.1", () => console.log(`ready ${server.address().port}`));
