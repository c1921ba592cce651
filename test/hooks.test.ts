/** @module test/hooks — a WSGIHandler subclass sees gevent.pywsgi's hooks called in gevent's order. */

import { describe, expect, test } from "bun:test";
import { type Application, type Chunk, type ResponseHeaders, type Write, WSGIHandler } from "../src/index.ts";
import { RawClient, serverPool } from "./helpers.ts";

const start = serverPool();

/** Records each hook as it is entered, then does what the hook does. */
function recorder(calls: string[]): typeof WSGIHandler {
  return class Recording extends WSGIHandler {
    override handle(): void {
      calls.push("handle");
      super.handle();
    }
    override handleOneRequest(): void | Promise<void> {
      calls.push("handleOneRequest");
      return super.handleOneRequest();
    }
    override readRequestline(): string {
      calls.push("readRequestline");
      return super.readRequestline();
    }
    override readRequest(line: string): void {
      calls.push("readRequest");
      super.readRequest(line);
    }
    override getEnviron(): ReturnType<WSGIHandler["getEnviron"]> {
      calls.push("getEnviron");
      return super.getEnviron();
    }
    override handleOneResponse(): void | Promise<void> {
      calls.push("handleOneResponse");
      return super.handleOneResponse();
    }
    override runApplication(): void | Promise<void> {
      calls.push("runApplication");
      return super.runApplication();
    }
    override startResponse(status: string, headers: ResponseHeaders, excInfo?: unknown): Write {
      calls.push("startResponse");
      return super.startResponse(status, headers, excInfo);
    }
    override processResult(): void | Promise<void> {
      calls.push("processResult");
      return super.processResult();
    }
    override write(data: Chunk): Promise<void> {
      calls.push("write");
      return super.write(data);
    }
    override finalizeHeaders(): void {
      calls.push("finalizeHeaders");
      super.finalizeHeaders();
    }
    override logRequest(): void {
      calls.push("logRequest");
      super.logRequest();
    }
    override formatRequest(): string {
      calls.push("formatRequest");
      return super.formatRequest();
    }
    override handleError(err: unknown): void {
      calls.push("handleError");
      super.handleError(err);
    }
  };
}

/**
 * gevent.pywsgi: handle() → handle_one_request() → read_requestline() → read_request() →
 * get_environ() → handle_one_response() → run_application() → [the app calls start_response()]
 * → process_result() → write() per chunk, the first through finalize_headers() → log_request()
 * → format_request().
 */
const GEVENT_ORDER = [
  "handleOneRequest",
  "readRequestline",
  "readRequest",
  "getEnviron",
  "handleOneResponse",
  "runApplication",
  "startResponse",
  "processResult",
  "write",
  "finalizeHeaders",
  "write",
  "logRequest",
  "formatRequest",
];

describe("gevent's hooks, in gevent's order", () => {
  const apps: Array<[string, Application]> = [
    [
      "a list of chunks",
      (_env, sr) => {
        sr("200 OK", []);
        return ["a", "b"];
      },
    ],
    [
      "a generator that calls startResponse on its first step",
      (_env, sr) =>
        (function* () {
          sr("200 OK", []);
          yield "a";
          yield "b";
        })(),
    ],
    [
      "an async app returning an async generator",
      async (_env, sr) => {
        sr("200 OK", []);
        return (async function* () {
          yield "a";
          yield "b";
        })();
      },
    ],
  ];
  for (const [name, app] of apps) {
    test(`${name}: handle once per connection, then per request the order gevent calls them in`, async () => {
      const calls: string[] = [];
      const { port } = start(app, { handlerClass: recorder(calls) });
      const c = await RawClient.connect(port);
      c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
      expect((await c.response()).body).toBe("ab");
      c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
      await c.response();
      c.close();
      // A generator calls startResponse inside processResult's iteration, as in gevent.
      const order = name.startsWith("a generator")
        ? GEVENT_ORDER.filter((h) => h !== "startResponse").flatMap((h) => (h === "processResult" ? [h, "startResponse"] : [h]))
        : GEVENT_ORDER;
      expect(calls).toEqual(["handle", ...order, ...order]);
    });
  }

  test("a subclass's own logRequest reads when its request arrived, also with the server's access log off", async () => {
    const durations: number[] = [];
    class Timing extends WSGIHandler {
      override logRequest(): void {
        durations.push(this.timeFinish - this.timeStart);
      }
    }
    const { port } = start(
      (_env, sr) => {
        sr("200 OK", [["Content-Length", "1"]]);
        return ["a"];
      },
      { handlerClass: Timing, log: null },
    );
    const c = await RawClient.connect(port);
    // The connection's last time reading is from when it opened, 400 ms before the request.
    await Bun.sleep(400);
    c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    expect((await c.response()).body).toBe("a");
    c.close();
    expect(durations).toHaveLength(1);
    expect(durations[0]).toBeGreaterThanOrEqual(0);
    expect(durations[0]).toBeLessThan(0.2);
  });

  test("an error before the response: handleError between runApplication and logRequest", async () => {
    const calls: string[] = [];
    const { port } = start(
      () => {
        throw new Error("boom");
      },
      { handlerClass: recorder(calls) },
    );
    const c = await RawClient.connect(port);
    c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    expect((await c.response()).status).toBe(500);
    c.close();
    expect(calls).toEqual([
      "handle",
      "handleOneRequest",
      "readRequestline",
      "readRequest",
      "getEnviron",
      "handleOneResponse",
      "runApplication",
      "handleError",
      "logRequest",
      "formatRequest",
    ]);
  });
});
