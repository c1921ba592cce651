/** @module bench/servers/bunserve — the same benchmark app on Bun.serve, the reference. */

const CHUNK = new Uint8Array(64 * 1024).fill(120);

const server = Bun.serve({
  hostname: "127.0.0.1",
  port: Number(process.argv[2] ?? 0),
  async fetch(req) {
    const path = new URL(req.url).pathname;
    if (path === "/echo") {
      return new Response(await req.arrayBuffer(), { headers: { "Content-Type": "application/octet-stream" } });
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
    return new Response("Hello, World!", { headers: { "Content-Type": "text/plain" } });
  },
});
console.log(`ready ${server.port}`);
