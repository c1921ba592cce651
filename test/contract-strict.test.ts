/**
 * @module test/contract-strict — what an app hands the server is held to its request and to the
 * status grammar: a WSGI request's startResponse and write never act on a later request of the
 * connection, interim and content-free statuses are framed as RFC 9110 says, and a fetch app
 * never sees a method its Request cannot carry.
 */

import { afterAll, describe, expect, test } from "bun:test";
import type { Application, StartResponse, Write } from "../src/index.ts";
import { exchange, RawClient, serve, serveFetch } from "./helpers.ts";

const running: Array<{ server: { close(): void } }> = [];
afterAll(() => {
  for (const r of running) r.server.close();
});

let keptWrite: Write | null = null;
let keptStart: StartResponse | null = null;

const app: Application = (env, startResponse) => {
  const path = env.PATH_INFO as string;
  if (path === "/keep") {
    keptStart = startResponse;
    keptWrite = startResponse("200 OK", [["Content-Type", "text/plain"]]);
    return ["first"];
  }
  if (path === "/stale-start") {
    const old = keptStart as StartResponse;
    let refused = "";
    try {
      old("418 Stale", [["X-Stale", "1"]]);
    } catch (e) {
      refused = (e as Error).message;
    }
    startResponse("200 OK", [["Content-Type", "text/plain"]]);
    return [refused];
  }
  if (path === "/slow") {
    startResponse("200 OK", [["Content-Type", "text/plain"]]);
    return (async function* () {
      yield "a";
      await Bun.sleep(150);
      yield "b";
    })();
  }
  if (path === "/103") {
    startResponse("103 Early Hints", [["Link", "</a>; rel=preload"]]);
    return [];
  }
  if (path === "/304") {
    startResponse("304 Not Modified", [
      ["Content-Length", "1234"],
      ["ETag", '"x"'],
    ]);
    return [];
  }
  if (path === "/205") {
    startResponse("205 Reset Content", []);
    return [];
  }
  if (path === "/205-body") {
    startResponse("205 Reset Content", []);
    return ["content"];
  }
  startResponse(path === "/418" ? "418" : "200 OK", [["Content-Type", "text/plain"]]);
  return ["ok"];
};

describe("a WSGI request's own callables", () => {
  test("a write kept past its response is refused, and never reaches the next response on the connection", async () => {
    const r = serve(app);
    running.push(r);
    const c = await RawClient.connect(r.port);
    c.send("GET /keep HTTP/1.1\r\nHost: a\r\n\r\n");
    expect((await c.response()).body).toBe("first");
    // Idle connection: nothing may be written after the response.
    await expect((keptWrite as Write)("INJECTED")).rejects.toThrow("whose response has ended");
    c.send("GET /slow HTTP/1.1\r\nHost: a\r\n\r\n");
    await Bun.sleep(50);
    // During the next request: the kept write must not splice into its chunked body.
    await expect((keptWrite as Write)("INJECTED")).rejects.toThrow("whose response has ended");
    const next = await c.response();
    expect(next.body).toBe("ab");
    c.close();
  });

  test("a startResponse kept from an earlier request throws instead of setting the next request's status", async () => {
    const r = serve(app);
    running.push(r);
    const c = await RawClient.connect(r.port);
    c.send("GET /keep HTTP/1.1\r\nHost: a\r\n\r\nGET /stale-start HTTP/1.1\r\nHost: a\r\n\r\n");
    expect((await c.response()).body).toBe("first");
    const second = await c.response();
    expect(second.status).toBe(200);
    expect(second.header("x-stale")).toBeUndefined();
    expect(second.body).toContain("startResponse() of a request whose response has ended");
    c.close();
  });
});

describe("statuses framed as RFC 9110 says", () => {
  test("a 1xx as the app's final status is a 500 (an interim response needs a final one)", async () => {
    const r = serve(app);
    running.push(r);
    const c = await RawClient.connect(r.port);
    c.send("GET /103 HTTP/1.1\r\nHost: a\r\n\r\n");
    expect((await c.response()).status).toBe(500);
    c.close();
    expect(r.errors.join("")).toContain("103 is an interim status");
  });

  test("a 304 may carry the 200's Content-Length, and has no body", async () => {
    const r = serve(app);
    running.push(r);
    const c = await RawClient.connect(r.port);
    c.send("GET /304 HTTP/1.1\r\nHost: a\r\n\r\nGET /other HTTP/1.1\r\nHost: a\r\n\r\n");
    const res = await c.response({ head: true });
    expect(res.status).toBe(304);
    expect(res.header("content-length")).toBe("1234");
    // No body was sent: the next response follows at once.
    expect((await c.response()).body).toBe("ok");
    c.close();
  });

  test("a 205 is framed with Content-Length: 0; a WSGI 205 with content is the app's error", async () => {
    const r = serve(app);
    running.push(r);
    const c = await RawClient.connect(r.port);
    c.send("GET /205 HTTP/1.1\r\nHost: a\r\n\r\n");
    const res = await c.response();
    expect(res.status).toBe(205);
    expect(res.header("content-length")).toBe("0");
    c.send("GET /205-body HTTP/1.1\r\nHost: a\r\n\r\n");
    expect((await c.response()).status).toBe(500);
    c.close();
  });

  test("a code with no known reason keeps the SP before the empty reason-phrase (RFC 9112 §4)", async () => {
    const r = serve(app);
    running.push(r);
    const c = await RawClient.connect(r.port);
    c.send("GET /418 HTTP/1.1\r\nHost: a\r\n\r\n");
    expect((await c.response()).statusLine).toBe("HTTP/1.1 418 ");
    c.close();
  });
});

describe("fields the server owns are written once, by the server", () => {
  // What each case's app sends: status and headers by path.
  const owned: Record<string, [string, Array<[string, string]>]> = {
    "/keep-alive": [
      "200 OK",
      [
        ["Connection", "keep-alive"],
        ["Keep-Alive", "timeout=99"],
      ],
    ],
    "/close": ["200 OK", [["connection", "Close"]]],
    "/proxy-connection": ["200 OK", [["Proxy-Connection", "keep-alive"]]],
    "/204": [
      "204 No Content",
      [
        ["Content-Length", "0"],
        ["X-Kept", "1"],
      ],
    ],
    "/304": [
      "304 Not Modified",
      [
        ["Content-Length", "2"],
        ["Connection", "keep-alive"],
      ],
    ],
    // RFC 9110 §15.5.22's example: the Upgrade field a 426 advertises, with its Connection option.
    "/426": [
      "426 Upgrade Required",
      [
        ["Upgrade", "HTTP/3.0"],
        ["Connection", "Upgrade"],
      ],
    ],
  };
  const ownApp: Application = (env, startResponse) => {
    const [status, headers] = owned[env.PATH_INFO as string] as [string, Array<[string, string]>];
    startResponse(status, headers);
    return status.startsWith("200") || status.startsWith("426") ? ["ok"] : [];
  };
  const names = (res: { headers: Array<[string, string]> }, name: string): string[] =>
    res.headers.filter(([n]) => n.toLowerCase() === name).map(([, v]) => v);

  test("an app's Connection: keep-alive and Keep-Alive are not sent beside the server's Connection: close", async () => {
    const r = serve(ownApp);
    running.push(r);
    const res = await exchange(r.port, "GET /keep-alive HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    expect(names(res, "connection")).toEqual(["close"]);
    expect(names(res, "keep-alive")).toEqual([]);
    expect(res.closed).toBe(true);
  });

  test("an app's Connection: keep-alive to an HTTP/1.1 client that stays is not sent; the connection stays", async () => {
    const r = serve(ownApp);
    running.push(r);
    const c = await RawClient.connect(r.port);
    for (let i = 0; i < 2; i++) {
      // Twice: the second head comes from the cache of encoded heads.
      c.send("GET /keep-alive HTTP/1.1\r\nHost: a\r\n\r\n");
      const res = await c.response();
      expect(res.body).toBe("ok");
      expect(names(res, "connection")).toEqual([]);
      expect(names(res, "keep-alive")).toEqual([]);
    }
    c.close();
  });

  test("an HTTP/1.0 keep-alive client gets one Connection: keep-alive, the server's", async () => {
    const r = serve(ownApp);
    running.push(r);
    const c = await RawClient.connect(r.port);
    c.send("GET /keep-alive HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    const res = await c.response();
    expect(names(res, "connection")).toEqual(["keep-alive"]);
    c.close();
  });

  test("an app's Connection: close closes the connection, with one Connection: close", async () => {
    const r = serve(ownApp);
    running.push(r);
    const res = await exchange(r.port, "GET /close HTTP/1.1\r\nHost: a\r\n\r\n");
    expect(names(res, "connection")).toEqual(["close"]);
    expect(res.closed).toBe(true);
  });

  test("an app's Proxy-Connection is not sent", async () => {
    const r = serve(ownApp);
    running.push(r);
    const res = await exchange(r.port, "GET /proxy-connection HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    expect(names(res, "proxy-connection")).toEqual([]);
    expect(names(res, "connection")).toEqual(["close"]);
  });

  test("a 204 carries no Content-Length even when the app gives 0 (RFC 9110 §8.6); a 304 keeps its own", async () => {
    const r = serve(ownApp);
    running.push(r);
    const c = await RawClient.connect(r.port);
    c.send("GET /204 HTTP/1.1\r\nHost: a\r\n\r\nGET /304 HTTP/1.1\r\nHost: a\r\n\r\nGET /close HTTP/1.1\r\nHost: a\r\n\r\n");
    const none = await c.response({ head: true });
    expect(none.status).toBe(204);
    expect(names(none, "content-length")).toEqual([]);
    expect(none.header("x-kept")).toBe("1");
    const notModified = await c.response({ head: true });
    expect(notModified.status).toBe(304);
    expect(names(notModified, "content-length")).toEqual(["2"]);
    expect(names(notModified, "connection")).toEqual([]);
    // Neither sent a body: the third response follows at once.
    expect((await c.response()).body).toBe("ok");
    c.close();
  });

  test("an app's Upgrade field keeps its upgrade option in the server's one Connection field (RFC 9110 §7.8: a MUST)", async () => {
    const r = serve(ownApp);
    running.push(r);
    const c = await RawClient.connect(r.port);
    // Twice on a connection that stays (the second head comes from the cache of encoded heads), then closing, then HTTP/1.0.
    c.send("GET /426 HTTP/1.1\r\nHost: a\r\n\r\nGET /426 HTTP/1.1\r\nHost: a\r\n\r\n");
    for (let i = 0; i < 2; i++) {
      const res = await c.response();
      expect(res.raw).toMatch(
        /^HTTP\/1\.1 426 Upgrade Required\r\nUpgrade: HTTP\/3\.0\r\nContent-Length: 2\r\nConnection: Upgrade\r\nDate: [^\r]+\r\n\r\nok$/,
      );
    }
    c.close();
    const closing = await exchange(r.port, "GET /426 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    expect(names(closing, "connection")).toEqual(["close, Upgrade"]);
    expect(closing.closed).toBe(true);
    const http10 = await exchange(r.port, "GET /426 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    expect(names(http10, "connection")).toEqual(["keep-alive, Upgrade"]);
  });
});

describe("framing fields given twice", () => {
  const twice: Application = (env, startResponse) => {
    const second = env.PATH_INFO === "/equal" ? "2" : "3";
    startResponse("200 OK", [
      ["Content-Length", "2"],
      ["content-length", second],
    ]);
    return ["ok"];
  };

  test("an app's Content-Length given twice, equal or not, is a 500: never two lengths on the wire (RFC 9110 §5.3, §8.6)", async () => {
    const r = serve(twice);
    running.push(r);
    for (const path of ["/equal", "/different"]) {
      const res = await exchange(r.port, `GET ${path} HTTP/1.1\r\nHost: a\r\n\r\n`);
      expect(res.raw).toStartWith("HTTP/1.1 500 Internal Server Error\r\n");
      expect(res.raw.toLowerCase().split("content-length:").length).toBe(2);
    }
    expect(r.errors.join("")).toContain("Content-Length given twice");
  });
});

describe("fetch apps", () => {
  const calls: string[] = [];
  const fetchApp = (req: Request): Response => {
    calls.push(req.method);
    const path = new URL(req.url).pathname;
    if (path === "/205") return new Response("content", { status: 205 });
    if (path === "/451") return new Response("gone", { status: 451 });
    if (path === "/599") return new Response("x", { status: 599 });
    if (path === "/426") return new Response("x", { status: 426, headers: { Upgrade: "HTTP/3.0", Connection: "Upgrade" } });
    return new Response(req.method);
  };

  test.each(["FOO", "get", "Delete", "PROPFIND-X"])(
    "method %p, which a Request cannot carry as sent, gets 501 and never reaches the app",
    async (method) => {
      const r = serveFetch(fetchApp);
      running.push(r);
      calls.length = 0;
      const c = await RawClient.connect(r.port);
      c.send(`${method} / HTTP/1.1\r\nHost: a\r\n\r\n`);
      expect((await c.response()).status).toBe(501);
      expect(calls).toEqual([]);
      c.close();
    },
  );

  test("a Response's Upgrade field keeps its upgrade option in the server's Connection field (RFC 9110 §7.8)", async () => {
    const r = serveFetch(fetchApp);
    running.push(r);
    const res = await exchange(r.port, "GET /426 HTTP/1.1\r\nHost: a\r\n\r\n");
    expect(res.status).toBe(426);
    expect(res.header("upgrade")).toBe("HTTP/3.0");
    expect(res.headers.filter(([n]) => n.toLowerCase() === "connection")).toEqual([["Connection", "Upgrade"]]);
  });

  test("known methods reach the app as sent", async () => {
    const r = serveFetch(fetchApp);
    running.push(r);
    const c = await RawClient.connect(r.port);
    for (const m of ["GET", "POST", "DELETE", "PATCH", "OPTIONS"]) {
      c.send(`${m} / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n`);
      expect((await c.response()).body).toBe(m);
    }
    c.close();
  });

  test("a 205 Response's content is dropped (Content-Length: 0); reasons for 451, an empty one for 599", async () => {
    const r = serveFetch(fetchApp);
    running.push(r);
    const c = await RawClient.connect(r.port);
    c.send("GET /205 HTTP/1.1\r\nHost: a\r\n\r\nGET /451 HTTP/1.1\r\nHost: a\r\n\r\n");
    const reset = await c.response();
    expect(reset.status).toBe(205);
    expect(reset.header("content-length")).toBe("0");
    expect(reset.body).toBe("");
    const gone = await c.response();
    expect(gone.statusLine).toBe("HTTP/1.1 451 Unavailable For Legal Reasons");
    expect(gone.body).toBe("gone");
    c.send("GET /599 HTTP/1.1\r\nHost: a\r\n\r\n");
    expect((await c.response()).statusLine).toBe("HTTP/1.1 599 ");
    c.close();
  });
});
