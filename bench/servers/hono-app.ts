/** @module bench/servers/hono-app — the one Hono app both Hono bench servers serve: hello, JSON with a path parameter, 1 MiB echo, 1 MiB stream. */

import { Hono } from "hono";
import { stream } from "hono/streaming";

const CHUNK = new Uint8Array(64 * 1024).fill(120);

export const app = new Hono();

app.get("/", (c) => c.text("Hello, World!"));

app.get("/json/:id", (c) => {
  const id = c.req.param("id");
  return c.json({ id, name: `item ${id}`, inStock: true, price: 9.99, tags: ["bench", "hono"] });
});

app.post("/echo", async (c) => {
  const body = await c.req.arrayBuffer();
  return c.body(body, 200, { "Content-Type": "application/octet-stream" });
});

// 16 × 64 KiB through hono/streaming: each write waits until the server has taken the last one.
app.get("/stream", (c) => {
  c.header("Content-Type", "application/octet-stream");
  return stream(c, async (s) => {
    for (let i = 0; i < 16; i++) await s.write(CHUNK);
  });
});
