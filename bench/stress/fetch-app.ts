/** @module bench/stress/fetch-app — the stress application as a fetch app (`--kind fetch`): the same routes as app.ts (the file as `Bun.file`), less the upgrade echo (fetch apps have no upgrade). */

const KiB = 1024;
const CHUNK = new Uint8Array(64 * KiB).fill(120);
const TEXT = { "Content-Type": "text/plain" };

/** `mib` MiB of 64 KiB chunks, produced as fast as the server reads them. */
function big(mib: number): ReadableStream<Uint8Array> {
  let left = mib * 16;
  return new ReadableStream({
    pull(controller) {
      if (left-- <= 0) controller.close();
      else controller.enqueue(CHUNK);
    },
  });
}

export default {
  async fetch(request: Request): Promise<Response> {
    const url = new URL(request.url);
    switch (url.pathname) {
      case "/read": {
        // Reads the whole body (Content-Length or chunked) and answers its size.
        const body = await request.arrayBuffer();
        return new Response(`read ${body.byteLength}\n`, { headers: TEXT });
      }
      case "/sink": {
        // Reads the body as it comes and keeps none of it, as an upload to object storage would.
        let n = 0;
        if (request.body !== null) for await (const part of request.body) n += part.length;
        return new Response(`sank ${n}\n`, { headers: TEXT });
      }
      case "/file": {
        const file = process.env.STRESS_FILE;
        if (file !== undefined) return new Response(Bun.file(file));
        break;
      }
      case "/big": {
        const mib = Math.min(Number(/mib=(\d+)/.exec(url.search)?.[1] ?? 64), 1024);
        return new Response(big(mib), { headers: { "Content-Type": "application/octet-stream" } });
      }
      case "/stream": {
        const parts = [1, 2, 3, 4].map((i) => `part ${i}\n`);
        return new Response(
          new ReadableStream({
            pull(controller) {
              const p = parts.shift();
              if (p === undefined) controller.close();
              else controller.enqueue(new TextEncoder().encode(p));
            },
          }),
          { headers: TEXT },
        );
      }
      case "/sleep":
        await Bun.sleep(10_000);
        break;
    }
    return new Response("ok\n", { headers: TEXT });
  },
};
