/** @module test/real-use — what a production team runs before adopting bunwsgi: uploads, streams and proxies cut or overrun, seen from real clients and the logs. */

import { describe, expect, test } from "bun:test";
import { type Application, ClientDisconnected, type ConnectionClosedError } from "../src/index.ts";
import { RawClient, serve, serveFetch, waitFor } from "./helpers.ts";

const UPLOAD_HEAD =
  "POST /upload HTTP/1.1\r\nHost: a\r\nContent-Type: application/octet-stream\r\nContent-Length: 1000000\r\n\r\n";

describe("an upload in flight when a graceful stop runs out of time", () => {
  test("a WSGI app's read rejects saying the server stopped, not that the client reset; the access record's reason is shutdown", async () => {
    let failure: unknown = null;
    const app: Application = async (env, sr) => {
      try {
        while ((await env["wsgi.input"].read(65536)).length > 0);
      } catch (e) {
        failure = e;
        throw e;
      }
      sr("200 OK", []);
      return ["done"];
    };
    const { server, port, access, errors } = serve(app, { logFormat: "json" });
    const c = await RawClient.connect(port);
    c.send(UPLOAD_HEAD + "x".repeat(5000));
    await Bun.sleep(100);
    await server.stop(0.3);
    await waitFor(() => access.length > 0);
    expect(failure).not.toBeNull();
    expect(failure).not.toBeInstanceOf(ClientDisconnected);
    expect((failure as ConnectionClosedError).message).toContain(
      "the server closed the connection (shutdown) before the request body was complete (received 5000 of 1000000 bytes)",
    );
    expect(JSON.parse(access[0] as string).reason).toBe("shutdown");
    expect(errors.join("")).not.toContain("client reset");
    expect(errors.join("")).toContain("timeouts.shutdown ran out after 0.3s: cutting 1 connection");
    await c.waitClosed();
  });

  test("a fetch app's request.arrayBuffer() rejects saying the server stopped; the access record's reason is shutdown", async () => {
    let failure: unknown = null;
    const running = serveFetch(
      async (request) => {
        try {
          await request.arrayBuffer();
        } catch (e) {
          failure = e;
          throw e;
        }
        return new Response("done");
      },
      { logFormat: "json" },
    );
    const c = await RawClient.connect(running.port);
    c.send(UPLOAD_HEAD + "x".repeat(5000));
    await Bun.sleep(100);
    await running.server.stop(0.3);
    await waitFor(() => running.access.length > 0);
    expect(String(failure)).toContain("the server closed the connection (shutdown) before the request body was complete");
    expect(JSON.parse(running.access[0] as string).reason).toBe("shutdown");
    expect(running.errors.join("")).not.toContain("client reset");
    await c.waitClosed();
  });

  test("a stream cut at the end of a graceful stop has shutdown as its access record's reason", async () => {
    const app: Application = (_env, sr) => {
      sr("200 OK", [["Content-Type", "text/event-stream"]]);
      return (async function* () {
        for (let i = 0; i < 100; i++) {
          yield `data: ${i}\n\n`;
          await Bun.sleep(50);
        }
      })();
    };
    const { server, port, access } = serve(app, { logFormat: "json" });
    const c = await RawClient.connect(port);
    c.send("GET /events HTTP/1.1\r\nHost: a\r\n\r\n");
    await Bun.sleep(150);
    await server.stop(0.2);
    await waitFor(() => access.length > 0);
    const record = JSON.parse(access[0] as string);
    expect([record.status, record.reason]).toEqual([200, "shutdown"]);
    await c.waitClosed();
  });
});

describe("a body cut short by the client", () => {
  test("the error names the bytes received of a chunked body in plain words", async () => {
    let failure = "";
    const app: Application = async (env, sr) => {
      try {
        await env["wsgi.input"].read();
      } catch (e) {
        failure = String(e);
      }
      sr("200 OK", []);
      return [];
    };
    const { server, port } = serve(app);
    const c = await RawClient.connect(port);
    c.send("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
    await Bun.sleep(50);
    c.endWrite();
    await waitFor(() => failure !== "");
    expect(failure).toContain("(received 5 bytes of a chunked body)");
    server.close();
  });
});

/** GET then a pipelined sentinel on one connection: the first response read by its framing, then whether the sentinel was answered. */
async function getThenSentinel(port: number, method = "GET"): Promise<{ first: string; sentinel: boolean }> {
  const c = await RawClient.connect(port);
  c.send(`${method} /r HTTP/1.1\r\nHost: a\r\n\r\nGET /sentinel HTTP/1.1\r\nHost: a\r\n\r\n`);
  const r = await c.response({ head: method === "HEAD" });
  let sentinel = false;
  try {
    sentinel = (await c.response()).body === "sentinel";
  } catch {}
  c.close();
  return { first: `${r.header("content-length")} ${r.body}`, sentinel };
}

describe("a fetch app's Content-Length that disagrees with its body", () => {
  const enc = new TextEncoder();
  // A Response rebuilt around new content with the old one's headers (`new Response(changed,
  // upstream)`, a middleware's rewrite) keeps a stale Content-Length: Bun.serve sends the body it
  // holds, sized by its true length, and so must bunwsgi, losing nothing (test/fetch-parity
  // compares strings, bytes and Blobs with Bun.serve's wire bytes).
  const stale: Array<[string, () => Response | Promise<Response>]> = [
    ["Response.json", () => Response.json("01234567", { headers: { "content-length": "3" } })],
    [
      "a stream ending at once",
      () =>
        new Response(
          new ReadableStream({
            start(c) {
              c.enqueue(enc.encode("0123456789"));
              c.close();
            },
          }),
          { headers: { "content-length": "5" } },
        ),
    ],
  ];
  for (const [name, make] of stale) {
    test(`${name} is sent whole under its true length, as Bun.serve sends it, and the connection goes on`, async () => {
      const running = serveFetch(async (request) =>
        new URL(request.url).pathname === "/sentinel" ? new Response("sentinel") : await make(),
      );
      const got = await getThenSentinel(running.port);
      const expected = name === "Response.json" ? '10 "01234567"' : "10 0123456789";
      expect(got).toEqual({ first: expected, sentinel: true });
      expect(running.errors.join("")).toBe("");
      running.server.close();
    });
  }

  test("an empty body on GET is sized 0 (HEAD keeps the app's length, the GET's)", async () => {
    const running = serveFetch((request) =>
      new URL(request.url).pathname === "/sentinel"
        ? new Response("sentinel")
        : new Response(null, { headers: { "content-length": "5" } }),
    );
    expect(await getThenSentinel(running.port)).toEqual({ first: "0 ", sentinel: true });
    expect(await getThenSentinel(running.port, "HEAD")).toEqual({ first: "5 ", sentinel: true });
    running.server.close();
  });

  test("a stream that runs past the app's Content-Length is cut there, and the error log says so", async () => {
    // A proxied fetch() Response that Bun decompressed keeps the upstream's Content-Length (and
    // Content-Encoding): its body runs past it, and only the error log can tell the operator why.
    const running = serveFetch(async (request) => {
      if (new URL(request.url).pathname === "/sentinel") return new Response("sentinel");
      let i = 0;
      const body = new ReadableStream({
        async pull(c) {
          await Bun.sleep(5);
          if (i++ < 3) c.enqueue(enc.encode("0123456789"));
          else c.close();
        },
      });
      return new Response(body, { headers: { "content-length": "15" } });
    });
    const got = await getThenSentinel(running.port);
    expect(got).toEqual({ first: "15 012345678901234", sentinel: false });
    await waitFor(() => running.errors.length > 0);
    expect(running.errors.join("")).toContain(
      "GET /r HTTP/1.1: the Response's body ran past its Content-Length of 15; response cut, connection closed",
    );
    running.server.close();
  });
});

describe("a long-lived stream", () => {
  test("a quiet stream outlives timeouts.write, timeouts.keep_alive and the response-rate grace", async () => {
    const app: Application = (_env, sr) => {
      sr("200 OK", [["Content-Type", "text/event-stream"]]);
      return (async function* () {
        for (let i = 0; i < 3; i++) {
          if (i > 0) await Bun.sleep(2500);
          yield `data: ${i} ${Date.now()}\n\n`;
        }
      })();
    };
    const { server, port, errors } = serve(app, {
      timeouts: { write: 1, keepAlive: 1, minResponseRateGrace: 1 },
      limits: { minResponseRate: 1000 },
    });
    const c = await RawClient.connect(port);
    c.send("GET /events HTTP/1.1\r\nHost: a\r\n\r\n");
    const r = await c.response({ ms: 8000 });
    const events = [...r.body.matchAll(/data: (\d) \d+\n\n/g)];
    expect(events.map((m) => m[1])).toEqual(["0", "1", "2"]);
    expect(errors.join("")).toBe("");
    c.close();
    server.close();
  }, 10000);
});

describe("a client that gives up on a slow fetch app", () => {
  // curl's --max-time, a Bun fetch aborted by its AbortController and a closed tab close with a
  // FIN, not a reset: Bun.serve aborts request.signal on it, and an app that waits on the signal
  // stops then instead of running its whole course for nobody.
  const waiting = (events: string[]) => async (request: Request) => {
    const signal = request.signal;
    const t0 = Date.now();
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 3000);
      const stop = (): void => {
        clearTimeout(timer);
        resolve();
      };
      signal.addEventListener("abort", stop, { once: true });
    });
    events.push(`aborted ${signal.aborted} after ${Date.now() - t0 < 2000 ? "less" : "more"} than 2 s`);
    return new Response("late");
  };

  test("request.signal aborts when curl's --max-time closes the connection", async () => {
    const events: string[] = [];
    const running = serveFetch(waiting(events));
    const curl = Bun.spawn(["curl", "-s", "--max-time", "0.3", `http://127.0.0.1:${running.port}/slow`]);
    await curl.exited;
    await waitFor(() => events.length > 0, 4000);
    expect(events).toEqual(["aborted true after less than 2 s"]);
    running.server.close();
  });

  test("request.signal aborts when a Bun fetch is aborted by its AbortController", async () => {
    const events: string[] = [];
    const running = serveFetch(waiting(events));
    const failure = await fetch(`http://127.0.0.1:${running.port}/slow`, { signal: AbortSignal.timeout(300) }).catch(
      (e: Error) => e.name,
    );
    expect(failure).toBe("TimeoutError");
    await waitFor(() => events.length > 0, 4000);
    expect(events).toEqual(["aborted true after less than 2 s"]);
    running.server.close();
  });

  test("a client that only half-closed still gets the response an app sends after the abort", async () => {
    const running = serveFetch(async (request) => {
      await new Promise((resolve) => request.signal.addEventListener("abort", resolve, { once: true }));
      return new Response("sent anyway");
    });
    const c = await RawClient.connect(running.port);
    c.send("GET /slow HTTP/1.1\r\nHost: a\r\n\r\n");
    await Bun.sleep(50);
    c.endWrite();
    const r = await c.response();
    expect(r.status).toBe(200);
    expect(r.body).toBe("sent anyway");
    running.server.close();
  });
});

describe("a keep-alive client's next request after an upload the app did not read", () => {
  // Node's http.Agent (keepAlive) sends a whole 300 KB POST before the app answers, then its next
  // request on the same connection. The body had all arrived, above the unread-input mark, so
  // reading was paused for the app; the app answered without reading it, and reading stayed
  // paused: the next request sat unread until timeouts.keep_alive (75 s) closed the connection.
  test("is answered at once, for a WSGI app and a fetch app", async () => {
    const upload = `POST /form HTTP/1.1\r\nHost: a\r\nContent-Length: 300000\r\n\r\n${"x".repeat(300000)}`;
    const wsgi = serve(async (_env, sr) => {
      await Bun.sleep(100);
      sr("404 Not Found", []);
      return ["no"];
    });
    const fetchApp = serveFetch(async () => {
      await Bun.sleep(100);
      return new Response("no", { status: 404 });
    });
    for (const port of [wsgi.port, fetchApp.port]) {
      const c = await RawClient.connect(port);
      c.send(upload);
      const first = await c.response();
      expect(first.status).toBe(404);
      expect(first.header("connection")).toBeUndefined();
      c.send("GET /next HTTP/1.1\r\nHost: a\r\n\r\n");
      const next = await c.response({ ms: 2000 });
      expect(next.status).toBe(404);
      c.close();
    }
    wsgi.server.close();
    fetchApp.server.close();
  });
});
