import { describe, expect, test } from "bun:test";
import {
  type Application,
  type Environ,
  HTTPError,
  LevelLog,
  type StartResponse,
  WSGIHandler,
  WSGIServer,
} from "../src/index.ts";
import { exchange, hello, RawClient, serverPool } from "./helpers.ts";

const start = serverPool();

describe("environ", () => {
  test("carries the PEP 3333 / CGI keys and bunwsgi extensions", async () => {
    let env: Environ | undefined;
    const { port } = start((e, sr) => {
      env = e;
      sr("200 OK", []);
      return [];
    });
    const c = await RawClient.connect(port);
    c.send(
      "POST /caf%C3%A9/a%2Fb%25zz?x=1&y=%20 HTTP/1.1\r\nHost: example.com:8080\r\nContent-Type: text/plain; charset=utf-8\r\n" +
        "Content-Length: 0\r\nX-Multi: a\r\nx-multi: b\r\nCookie: a=1\r\nCookie: b=2\r\nX_Spoof: no\r\nAccept:  */* \r\n\r\n",
    );
    await c.response();
    c.close();
    const e = env as Environ;
    expect(e.REQUEST_METHOD).toBe("POST");
    expect(e.SCRIPT_NAME).toBe("");
    expect(e.PATH_INFO).toBe("/caf\xc3\xa9/a/b%zz");
    expect(e.QUERY_STRING).toBe("x=1&y=%20");
    expect(e.REQUEST_URI).toBe("/caf%C3%A9/a%2Fb%25zz?x=1&y=%20");
    expect(e.CONTENT_TYPE).toBe("text/plain; charset=utf-8");
    expect(e.CONTENT_LENGTH).toBe("0");
    expect(e.SERVER_NAME).toBe("127.0.0.1");
    expect(e.SERVER_PORT).toBe(String(port));
    expect(e.SERVER_PROTOCOL).toBe("HTTP/1.1");
    expect(e.REMOTE_ADDR).toBe("127.0.0.1");
    expect(Number(e.REMOTE_PORT)).toBeGreaterThan(0);
    expect(e.GATEWAY_INTERFACE).toBe("CGI/1.1");
    expect(e.HTTP_HOST).toBe("example.com:8080");
    expect(e.HTTP_X_MULTI).toBe("a, b");
    expect(e.HTTP_COOKIE).toBe("a=1; b=2");
    expect(e.HTTP_ACCEPT).toBe("*/*");
    expect("HTTP_X_SPOOF" in e).toBe(false);
    expect("HTTP_CONTENT_TYPE" in e).toBe(false);
    expect(e["wsgi.version"]).toEqual([1, 0]);
    expect(e["wsgi.url_scheme"]).toBe("http");
    expect(e["wsgi.multithread"]).toBe(false);
    expect(e["wsgi.multiprocess"]).toBe(false);
    expect(e["wsgi.run_once"]).toBe(false);
    expect(e["wsgi.input_terminated"]).toBe(true);
    expect(typeof e["wsgi.errors"].write).toBe("function");
    expect(e["bunwsgi.headers"]).toEqual([
      ["Host", "example.com:8080"],
      ["Content-Type", "text/plain; charset=utf-8"],
      ["Content-Length", "0"],
      ["X-Multi", "a"],
      ["x-multi", "b"],
      ["Cookie", "a=1"],
      ["Cookie", "b=2"],
      ["X_Spoof", "no"],
      ["Accept", "*/*"],
    ]);
  });

  test("omits CONTENT_TYPE and CONTENT_LENGTH when not sent", async () => {
    let env: Environ | undefined;
    const { port } = start((e, sr) => {
      env = e;
      sr("200 OK", []);
      return [];
    });
    await exchange(port, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    expect("CONTENT_TYPE" in (env as Environ)).toBe(false);
    expect("CONTENT_LENGTH" in (env as Environ)).toBe(false);
  });

  test("absolute-form target: PATH_INFO from its path, HTTP_HOST from its authority (RFC 9112 §3.2.2)", async () => {
    let env: Environ | undefined;
    const { port } = start((e, sr) => {
      env = e;
      sr("200 OK", []);
      return [];
    });
    await exchange(port, "GET http://origin.example/p/q?z=1 HTTP/1.1\r\nHost: other\r\n\r\n");
    const e = env as Environ;
    expect([e.PATH_INFO, e.QUERY_STRING, e.HTTP_HOST]).toEqual(["/p/q", "z=1", "origin.example"]);
  });

  test("absolute-form target: SERVER_NAME and SERVER_PORT from its authority, the scheme's port when it has none", async () => {
    const seen: string[] = [];
    const { port } = start((e, sr) => {
      seen.push(`${e.HTTP_HOST} ${e.SERVER_NAME} ${e.SERVER_PORT} ${e.PATH_INFO}`);
      sr("200 OK", []);
      return [];
    });
    const c = await RawClient.connect(port);
    for (const target of [
      "http://a.example/x",
      "http://a.example:8080/",
      "https://b.example?q",
      "http://[::1]:81/v6",
      "http://c.example:/",
    ]) {
      c.send(`GET ${target} HTTP/1.1\r\nHost: other\r\n\r\n`);
      await c.response();
    }
    c.close();
    expect(seen).toEqual([
      "a.example a.example 80 /x",
      "a.example:8080 a.example 8080 /",
      "b.example b.example 443 /",
      "[::1]:81 [::1] 81 /v6",
      "c.example: c.example 80 /",
    ]);
  });

  test("a valid CONNECT is answered 501 by the server (no tunnels), logged with its reason, and never reaches the app", async () => {
    let called = false;
    const { port, access } = start(
      (_e, sr) => {
        called = true;
        sr("200 OK", []);
        return [];
      },
      { logFormat: "{status} {method} {reason}" },
    );
    const r = await exchange(port, "CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n");
    expect(r.status).toBe(501);
    expect(r.closed).toBe(true);
    expect(called).toBe(false);
    expect(access[0]).toBe("501 - connect_not_supported\n");
  });

  test("merges the server's environ option into every environ", async () => {
    let env: Environ | undefined;
    const { port } = start(
      (e, sr) => {
        env = e;
        sr("200 OK", []);
        return [];
      },
      { environ: { "app.name": "demo", SERVER_NAME: "public.example" } },
    );
    await exchange(port, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    expect((env as Environ)["app.name"]).toBe("demo");
    expect((env as Environ).SERVER_NAME).toBe("public.example");
  });

  test("wsgi.errors has write, writelines and flush (PEP 3333), whatever sink the error log is", async () => {
    const app: Application = (e, sr) => {
      const stream = e["wsgi.errors"];
      stream.write("one\n");
      stream.writelines(["two\n", "three\n"]);
      stream.flush();
      sr("200 OK", []);
      return ["ok"];
    };
    const lines: string[] = [];
    const sinks = [
      { write: (s: string) => lines.push(s) },
      new LevelLog({ write: (s: string) => lines.push(s.replace(/^\[[^\]]*\] \[ERROR\] /, "")) }),
      null,
    ];
    for (const errorLog of sinks) {
      const { port } = start(app, { errorLog });
      const r = await exchange(port, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
      expect(r.raw).toMatch(/^HTTP\/1\.1 200 OK\r\nContent-Length: 2\r\nDate: [^\r]+\r\n\r\nok$/);
    }
    expect(lines).toEqual(["one\n", "two\n", "three\n", "one\n", "two\n", "three\n"]);
  });
});

describe("repeated header sections on a keep-alive connection", () => {
  test("a repeated section is reused, a changed one (even of the same length) is decoded afresh", async () => {
    const seen: Array<[unknown, unknown, unknown]> = [];
    const { port } = start((e, sr) => {
      const headers = e["bunwsgi.headers"] as Array<[string, string]>;
      seen.push([e.HTTP_X_A, e.PATH_INFO, headers.map((h) => h.join(":")).join("|")]);
      // What the app does to its copy must not leak into the next request's.
      (headers[1] as [string, string])[1] = "changed";
      headers.push(["X-App", "added"]);
      sr("200 OK", []);
      return [];
    });
    const c = await RawClient.connect(port);
    for (const [path, value, name] of [
      ["/1", "1", "X-A"],
      ["/2", "1", "X-A"],
      ["/3", "2", "X-A"],
      ["/4", "2", "x-a"],
      ["/5", "2", "x-a"],
    ]) {
      c.send(`GET ${path} HTTP/1.1\r\nHost: h\r\n${name}: ${value}\r\n\r\n`);
      await c.response();
    }
    expect(seen).toEqual([
      ["1", "/1", "Host:h|X-A:1"],
      ["1", "/2", "Host:h|X-A:1"],
      ["2", "/3", "Host:h|X-A:2"],
      ["2", "/4", "Host:h|x-a:2"],
      ["2", "/5", "Host:h|x-a:2"],
    ]);
    c.close();
  });
});

describe("request lines on a keep-alive connection", () => {
  test("a repeated line is the same request again; a changed one (even of the same length) is read afresh", async () => {
    const seen: string[] = [];
    const { port, access } = start((e, sr) => {
      seen.push(`${e.REQUEST_METHOD} ${e.REQUEST_URI} ${e.PATH_INFO} ?${e.QUERY_STRING} ${e.SERVER_PROTOCOL}`);
      sr("200 OK", []);
      return [];
    });
    const lines = [
      "GET /a HTTP/1.1",
      "GET /a HTTP/1.1",
      "GET /b HTTP/1.1",
      "PUT /a HTTP/1.1",
      "GET /a?q HTTP/1.1",
      "GET /a?q HTTP/1.1",
      "GET /a?r HTTP/1.1",
      "GET /%41 HTTP/1.1",
      "GET /a HTTP/1.0",
      "GET /a HTTP/1.1",
    ];
    const c = await RawClient.connect(port);
    for (const line of lines) {
      c.send(`${line}\r\nHost: h\r\nConnection: keep-alive\r\n${line.startsWith("PUT") ? "Content-Length: 0\r\n" : ""}\r\n`);
      await c.response();
    }
    c.close();
    expect(seen).toEqual([
      "GET /a /a ? HTTP/1.1",
      "GET /a /a ? HTTP/1.1",
      "GET /b /b ? HTTP/1.1",
      "PUT /a /a ? HTTP/1.1",
      "GET /a?q /a ?q HTTP/1.1",
      "GET /a?q /a ?q HTTP/1.1",
      "GET /a?r /a ?r HTTP/1.1",
      "GET /%41 /A ? HTTP/1.1",
      "GET /a /a ? HTTP/1.0",
      "GET /a /a ? HTTP/1.1",
    ]);
    expect(access.map((l) => l.split('"')[1])).toEqual(lines);
  });
});

describe("the environ a keep-alive connection reuses", () => {
  test("each request gets its own object: what an app changes or deletes does not reach the next", async () => {
    const envs: Environ[] = [];
    const { port } = start((e, sr) => {
      envs.push(e);
      const snapshot = { ...e };
      e.HTTP_X_A = "changed by the app";
      delete e.HTTP_HOST;
      e["app.key"] = true;
      envs.push(snapshot as Environ);
      sr("200 OK", []);
      return [];
    });
    const c = await RawClient.connect(port);
    for (const path of ["/one?a=1", "/two"]) {
      c.send(`GET ${path} HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n\r\n`);
      await c.response();
    }
    c.close();
    const [first, firstSeen, second, secondSeen] = envs as [Environ, Environ, Environ, Environ];
    expect(first).not.toBe(second);
    expect([firstSeen.PATH_INFO, firstSeen.QUERY_STRING, firstSeen.REQUEST_URI]).toEqual(["/one", "a=1", "/one?a=1"]);
    expect([secondSeen.PATH_INFO, secondSeen.QUERY_STRING, secondSeen.REQUEST_URI]).toEqual(["/two", "", "/two"]);
    expect(secondSeen.HTTP_X_A).toBe("1");
    expect(secondSeen.HTTP_HOST).toBe("h");
    expect("app.key" in secondSeen).toBe(false);
  });

  test("a closing request after a repeated one gets its own protocol and headers, then the connection ends", async () => {
    const seen: unknown[][] = [];
    const { port } = start((e, sr) => {
      seen.push([e.SERVER_PROTOCOL, e.PATH_INFO, e.HTTP_X_A, e.HTTP_CONNECTION]);
      sr("200 OK", []);
      return [];
    });
    const c = await RawClient.connect(port);
    for (const path of ["/1", "/2"]) {
      c.send(`GET ${path} HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n\r\n`);
      await c.response();
    }
    // Same header fields as before, but HTTP/1.0 without keep-alive: the last on this connection.
    c.send("GET /3 HTTP/1.0\r\nHost: h\r\nX-A: 1\r\n\r\n");
    const last = await c.response();
    await c.waitClosed();
    expect(last.header("connection")).toBe("close");
    expect(seen).toEqual([
      ["HTTP/1.1", "/1", "1", undefined],
      ["HTTP/1.1", "/2", "1", undefined],
      ["HTTP/1.0", "/3", "1", undefined],
    ]);
  });

  test("setEnviron() between two requests on one connection is seen by the second", async () => {
    const tags: unknown[] = [];
    const { port, server } = start(
      (e, sr) => {
        tags.push(e.TAG);
        sr("200 OK", []);
        return [];
      },
      { environ: { TAG: "a" } },
    );
    const c = await RawClient.connect(port);
    c.send("GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    await c.response();
    server.setEnviron({ TAG: "b" });
    c.send("GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    await c.response();
    c.close();
    expect(tags).toEqual(["a", "b"]);
  });

  test("setEnviron() on a running server keeps SERVER_NAME and SERVER_PORT (PEP 3333 requires them)", async () => {
    const { port, server } = start((e, sr) => {
      sr("200 OK", []);
      return [`${e.SERVER_NAME} ${e.SERVER_PORT} ${e.TAG}`];
    });
    server.setEnviron({ TAG: "b" });
    const r = await exchange(port, "GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
    expect(r.body).toBe(`127.0.0.1 ${port} b`);
  });

  test("a hook that throws past its error handling: the request gets a 500 and its access line, not an empty reply", async () => {
    class Broken extends WSGIHandler {
      override getEnviron(): Environ {
        throw new TypeError("broken hook");
      }
    }
    const r = start(hello, { handlerClass: Broken });
    const c = await RawClient.connect(r.port);
    c.send("GET /x HTTP/1.1\r\nHost: h\r\n\r\n");
    expect((await c.response()).status).toBe(500);
    c.close();
    expect(r.errors.join("")).toContain("broken hook");
    expect(r.access.join("")).toContain('"GET /x HTTP/1.1" 500');
  });

  test("a handler that changes the header fields it read gets an environ of the changed fields", async () => {
    let n = 0;
    class Rewriting extends WSGIHandler {
      override readRequest(line: string): void {
        super.readRequest(line);
        (this.headers[0] as [string, string])[1] = `rewritten-${++n}`;
      }
    }
    const hosts: unknown[] = [];
    const { port } = start(
      (e, sr) => {
        hosts.push(e.HTTP_HOST);
        sr("200 OK", []);
        return [];
      },
      { handlerClass: Rewriting },
    );
    const c = await RawClient.connect(port);
    for (let i = 0; i < 2; i++) {
      c.send("GET / HTTP/1.1\r\nHost: h\r\n\r\n");
      await c.response();
    }
    c.close();
    expect(hosts).toEqual(["rewritten-1", "rewritten-2"]);
  });

  test("a server whose getEnviron() is overridden is asked for every request", async () => {
    let calls = 0;
    class Counting extends WSGIServer {
      override getEnviron(): Record<string, unknown> {
        return { ...super.getEnviron(), CALL: ++calls };
      }
    }
    const seen: unknown[] = [];
    const server = new Counting(
      "127.0.0.1:0",
      (e, sr) => {
        seen.push(e.CALL);
        sr("200 OK", []);
        return [];
      },
      { log: null },
    );
    server.start();
    const c = await RawClient.connect(server.serverPort);
    for (let i = 0; i < 3; i++) {
      c.send("GET / HTTP/1.1\r\nHost: h\r\n\r\n");
      await c.response();
    }
    c.close();
    server.close();
    expect(seen).toEqual([1, 2, 3]);
  });
});

describe("a response head repeated across requests (the server reuses its checked, encoded form)", () => {
  const HEADERS: Array<[string, string]> = [
    ["Content-Type", "text/plain"],
    ["X-Same", "1"],
  ];

  test("each repeat frames its own body length and connection, byte for byte as the first", async () => {
    const { port } = start((e, sr) => {
      sr("200 OK", HEADERS);
      return [e.PATH_INFO === "/long" ? "a longer body" : "short"];
    });
    const c = await RawClient.connect(port);
    const heads: string[] = [];
    for (const [path, version, extra] of [
      ["/short", "1.1", ""],
      ["/short", "1.1", ""],
      ["/long", "1.1", ""],
      ["/long", "1.1", ""],
      ["/short", "1.0", "Connection: keep-alive\r\n"],
      ["/short", "1.0", "Connection: keep-alive\r\n"],
      ["/short", "1.1", ""],
      ["/long", "1.1", "Connection: close\r\n"],
    ]) {
      c.send(`GET ${path} HTTP/${version}\r\nHost: a\r\n${extra}\r\n`);
      const r = await c.response();
      expect(r.body).toBe(path === "/long" ? "a longer body" : "short");
      heads.push(r.raw.slice(0, r.raw.length - r.body.length).replace(/^Date: .*\r\n/m, ""));
    }
    await c.waitClosed();
    const head = (length: number, connection: string): string =>
      `HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Same: 1\r\nContent-Length: ${length}\r\n${connection}\r\n`;
    expect(heads).toEqual([
      head(5, ""),
      head(5, ""),
      head(13, ""),
      head(13, ""),
      head(5, "Connection: keep-alive\r\n"),
      head(5, "Connection: keep-alive\r\n"),
      head(5, ""),
      head(13, "Connection: close\r\n"),
    ]);
  });

  test("a repeated head carries the current Date after a second boundary", async () => {
    const { port } = start((_e, sr) => {
      sr("200 OK", HEADERS);
      return ["x"];
    });
    const c = await RawClient.connect(port);
    const dates: number[] = [];
    for (let i = 0; i < 3; i++) {
      if (i === 2) await Bun.sleep(1000 - (Date.now() % 1000) + 50);
      c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
      const before = Math.floor(Date.now() / 1000);
      dates.push(Date.parse((await c.response()).header("date") as string) / 1000);
      expect(dates.at(-1)).toBeGreaterThanOrEqual(before - 1);
    }
    c.close();
    expect(dates[2]).toBeGreaterThan(dates[0] as number);
    expect(dates[2]).toBe(Math.floor(Date.now() / 1000));
  });

  test("headers the app changes after startResponse are checked like the rest: a CRLF added later is a 500", async () => {
    let round = 0;
    const { port, errors } = start((_e, sr) => {
      const headers: Array<[string, string]> = [["X-Same", "1"]];
      sr("200 OK", headers);
      round++;
      if (round === 2) headers.push(["X-Late", "ok"]);
      if (round === 3) (headers[0] as [string, string])[1] = "1\r\nSet-Cookie: evil=1";
      return ["body"];
    });
    const c = await RawClient.connect(port);
    const got: Array<[number, string | undefined, string | undefined]> = [];
    for (let i = 0; i < 4; i++) {
      c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
      const r = await c.response();
      expect(r.raw).not.toContain("evil=1");
      got.push([r.status, r.header("x-same"), r.header("x-late")]);
      if (r.status === 500) break;
    }
    c.close();
    expect(got).toEqual([
      [200, "1", undefined],
      [200, "1", "ok"],
      [500, undefined, undefined],
    ]);
    expect(errors.join("")).toContain("invalid value for header X-Same: contains CR");
  });

  test("responses in flight at once, each with its own head, get their own fields", async () => {
    const { port } = start(async (e, sr) => {
      const n = e.PATH_INFO.slice(1);
      sr("200 OK", [[`X-Head-${n}`, n]]);
      // Another connection's startResponse() runs before this response's head is written.
      await Bun.sleep(5 * Number(n));
      return [n];
    });
    const clients = await Promise.all([1, 2, 3].map(() => RawClient.connect(port)));
    for (let round = 0; round < 2; round++) {
      clients.forEach((c, i) => {
        c.send(`GET /${i + 1} HTTP/1.1\r\nHost: a\r\n\r\n`);
      });
      const rs = await Promise.all(clients.map((c) => c.response()));
      rs.forEach((r, i) => {
        const n = String(i + 1);
        expect(r.body).toBe(n);
        expect(r.headers.filter(([name]) => name.startsWith("X-Head-"))).toEqual([[`X-Head-${n}`, n]]);
      });
    }
    for (const c of clients) c.close();
  });

  test("a handler whose finalizeHeaders adds a field sends it; one with another protocolVersion gets its own status line", async () => {
    class Tagging extends WSGIHandler {
      override finalizeHeaders(): void {
        this.responseHeaders = [...(this.responseHeaders ?? []), ["X-Tag", "added"]];
        super.finalizeHeaders();
      }
    }
    class Http10 extends WSGIHandler {
      override protocolVersion = "HTTP/1.0";
    }
    const app: Application = (_e, sr) => {
      sr("200 OK", HEADERS);
      return ["x"];
    };
    const plain = start(app).port;
    const tagged = start(app, { handlerClass: Tagging }).port;
    const old = start(app, { handlerClass: Http10 }).port;
    for (const port of [plain, tagged, old, plain, old, tagged]) {
      const c = await RawClient.connect(port);
      for (let i = 0; i < 2; i++) {
        c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        const r = await c.response();
        expect(r.statusLine).toBe(port === old ? "HTTP/1.0 200 OK" : "HTTP/1.1 200 OK");
        expect(r.header("x-tag")).toBe(port === tagged ? "added" : undefined);
        expect(r.header("x-same")).toBe("1");
      }
      c.close();
    }
  });
});

describe("startResponse misuse throws synchronously and nothing of it reaches the wire", () => {
  const misuse: Array<[string, (sr: StartResponse) => void]> = [
    ["an empty status", (sr) => sr("", [])],
    ["a status shorter than three digits", (sr) => sr("20", [])],
    ["a status without a reason separator", (sr) => sr("200OK", [])],
    ["a status that is not a number", (sr) => sr("abc Nope", [])],
    ["a status out of range", (sr) => sr("999 Weird", [])],
    ["a status with CRLF", (sr) => sr("200 OK\r\nX-Evil: 1", [])],
    ["a header name that is not a token", (sr) => sr("200 OK", [["Bad Name", "v"]])],
    ["a header name with a colon", (sr) => sr("200 OK", [["X-A:", "v"]])],
    ["CRLF in a header value (response splitting)", (sr) => sr("200 OK", [["X-A", "v\r\nSet-Cookie: evil=1"]])],
    ["LF in a header value", (sr) => sr("200 OK", [["X-A", "v\nw"]])],
    ["NUL in a header value", (sr) => sr("200 OK", [["X-A", "v\0"]])],
    ["a character above U+00FF in a header value", (sr) => sr("200 OK", [["X-A", "snow ☃"]])],
    ["a Transfer-Encoding header (hop-by-hop)", (sr) => sr("200 OK", [["Transfer-Encoding", "chunked"]])],
    ["a Content-Length that is not digits", (sr) => sr("200 OK", [["Content-Length", "-1"]])],
    ["a non-zero Content-Length on 204", (sr) => sr("204 No Content", [["Content-Length", "5"]])],
    ["a non-zero Content-Length on 205", (sr) => sr("205 Reset Content", [["Content-Length", "5"]])],
    ["an interim 1xx as the final status", (sr) => sr("103 Early Hints", [])],
    ["101 without an Upgrade request", (sr) => sr("101 Switching Protocols", [])],
    [
      "a second call without excInfo",
      (sr) => {
        sr("200 OK", []);
        sr("500 Oops", []);
      },
    ],
  ];
  for (const [name, misuseIt] of misuse) {
    test(`throws on ${name}`, async () => {
      let thrown: unknown;
      const { port, errors } = start((_e, sr) => {
        try {
          misuseIt(sr);
        } catch (e) {
          thrown = e;
          throw e;
        }
        return ["should not be sent"];
      });
      const r = await exchange(port, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
      expect((thrown as Error)?.name).toBe("ContractError");
      expect(r.status).toBe(500);
      expect(r.raw).not.toContain("Evil");
      expect(r.raw).not.toContain("evil=1");
      expect(r.raw).not.toContain("should not be sent");
      expect(errors.join("")).toContain("ContractError");
    });
  }

  test("write() before startResponse throws", async () => {
    let thrown: unknown;
    class EarlyWrite extends WSGIHandler {
      override runApplication(): void | Promise<void> {
        try {
          this.write("too early");
        } catch (e) {
          thrown = e;
        }
        return super.runApplication();
      }
    }
    const { port } = start(hello, { handlerClass: EarlyWrite });
    const r = await exchange(port, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    expect((thrown as Error).message).toBe("write() called before startResponse()");
    expect(r.raw).not.toContain("too early");
    expect(r.body).toBe("Hello, World!");
  });

  test("write() of body data on 204 throws", async () => {
    let thrown: unknown;
    const { port } = start((_e, sr) => {
      const w = sr("204 No Content", []);
      try {
        w("body");
      } catch (e) {
        thrown = e;
      }
      return [];
    });
    const r = await exchange(port, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    expect((thrown as Error).message).toContain("204 response cannot have a body");
    expect(r.status).toBe(204);
  });

  test("startResponse with excInfo before headers are sent replaces the status", async () => {
    const { port } = start((_e, sr) => {
      sr("200 OK", [["X-First", "1"]]);
      sr("503 Busy", [["Retry-After", "1"]], new Error("overloaded"));
      return ["later"];
    });
    const r = await exchange(port, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    expect(r.statusLine).toBe("HTTP/1.1 503 Busy");
    expect(r.header("retry-after")).toBe("1");
    expect(r.header("x-first")).toBeUndefined();
  });

  test("startResponse with excInfo after headers were sent rethrows excInfo and the connection closes", async () => {
    const original = new Error("boom after headers");
    let rethrown: unknown;
    const { port } = start((_e, sr) => {
      sr("200 OK", []);
      return (async function* () {
        yield "partial";
        try {
          sr("500 Oops", [], original);
        } catch (e) {
          rethrown = e;
          throw e;
        }
      })();
    });
    const c = await RawClient.connect(port);
    c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    await c.waitClosed();
    const raw = c.take();
    expect(rethrown).toBe(original);
    expect(raw).toContain("Transfer-Encoding: chunked");
    expect(raw).toContain("7\r\npartial\r\n");
    expect(raw).not.toContain("0\r\n\r\n");
    expect(raw).not.toContain("500");
  });

  test("a bare status code gets its standard reason phrase", async () => {
    const { port } = start((_e, sr) => {
      sr("404", []);
      return [];
    });
    expect((await exchange(port, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")).statusLine).toBe("HTTP/1.1 404 Not Found");
  });

  test("the app's Date header is kept and not duplicated", async () => {
    const { port } = start((_e, sr) => {
      sr("200 OK", [["Date", "Thu, 01 Jan 2026 00:00:00 GMT"]]);
      return [];
    });
    const r = await exchange(port, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    expect(r.headers.filter(([n]) => n === "Date")).toEqual([["Date", "Thu, 01 Jan 2026 00:00:00 GMT"]]);
  });
});

describe("string chunks", () => {
  const bodies = [
    "ascii only",
    "caf\u00e9",
    "snow \u2603",
    "grin \u{1F600}",
    "lone \ud800 surrogate",
    "x".repeat(64),
    `${"x".repeat(64)}\u00e9`,
    `${"\u00e9".repeat(40)}`,
  ];
  for (const text of bodies) {
    test(`go out as UTF-8 framed by their byte length: ${JSON.stringify(text.slice(0, 24))} (${text.length} chars)`, async () => {
      const { port } = start((_e, sr) => {
        sr("200 OK", []);
        return [text];
      });
      const c = await RawClient.connect(port);
      c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
      const r = await c.response();
      c.close();
      const bytes = Buffer.from(text, "utf8");
      expect(Number(r.header("content-length"))).toBe(bytes.length);
      expect(Buffer.from(r.body, "latin1").equals(bytes)).toBe(true);
    });
  }
});

describe("application errors and result lifecycle", () => {
  test("an error before anything was sent gives a plain 500 and the stack in the error log", async () => {
    const { port, errors, access } = start(() => {
      throw new Error("kaboom");
    });
    const r = await exchange(port, "GET /x HTTP/1.1\r\nHost: a\r\n\r\n");
    expect(r.status).toBe(500);
    expect(r.body).toBe("Internal Server Error\n");
    expect(r.closed).toBe(true);
    const log = errors.join("");
    expect(log).toContain("Error handling GET /x HTTP/1.1 from 127.0.0.1:");
    expect(log).toContain("Error: kaboom");
    expect(log).toMatch(/at .*handler\.test\.ts/);
    expect(access.at(-1)).toContain('"GET /x HTTP/1.1" 500');
  });

  test("an error in an async app before headers gives 500", async () => {
    const { port } = start(async () => {
      await Bun.sleep(1);
      throw new TypeError("async kaboom");
    });
    expect((await exchange(port, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")).status).toBe(500);
  });

  test("an error after headers were sent closes the connection: truncated, never spliced", async () => {
    const { port } = start((_e, sr) => {
      sr("200 OK", []);
      return (function* () {
        yield "first";
        throw new Error("mid-stream");
      })();
    });
    const c = await RawClient.connect(port);
    c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n");
    await c.waitClosed();
    const raw = c.take();
    expect(raw.match(/HTTP\/1\.1/g)?.length).toBe(1);
    expect(raw).toContain("5\r\nfirst\r\n");
    expect(raw).not.toContain("0\r\n\r\n");
  });

  test("close() is called exactly once on success and on error", async () => {
    let closes = 0;
    const withClose =
      (fail: boolean): Application =>
      (_e, sr) => {
        sr("200 OK", []);
        const body = fail
          ? (function* () {
              yield "a";
              throw new Error("fail");
            })()
          : ["a", "b"];
        return Object.assign(body, { close: () => closes++ });
      };
    const ok = start(withClose(false));
    await exchange(ok.port, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    expect(closes).toBe(1);
    const bad = start(withClose(true));
    const c = await RawClient.connect(bad.port);
    c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    await c.waitClosed();
    expect(closes).toBe(2);
  });

  test("an async generator abandoned early (client gone) gets return()", async () => {
    let finalized = false;
    let produced = 0;
    const { port } = start((_e, sr) => {
      sr("200 OK", []);
      return (async function* () {
        try {
          for (;;) {
            produced++;
            yield new Uint8Array(256 * 1024);
            await Bun.sleep(1);
          }
        } finally {
          finalized = true;
        }
      })();
    });
    const c = await RawClient.connect(port);
    c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    await Bun.sleep(50);
    c.close();
    for (let i = 0; i < 100 && !finalized; i++) await Bun.sleep(20);
    expect(finalized).toBe(true);
    expect(produced).toBeGreaterThan(0);
  });

  test("a generator that exceeds its Content-Length is stopped (return()) and closed", async () => {
    let finalized = false;
    const { port } = start((_e, sr) => {
      sr("200 OK", [["Content-Length", "3"]]);
      return (function* () {
        try {
          for (;;) yield "abc";
        } finally {
          finalized = true;
        }
      })();
    });
    const r = await exchange(port, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    expect(r.body).toBe("abc");
    expect(r.closed).toBe(true);
    expect(finalized).toBe(true);
  });

  test("returning a string is a contract error (500), not a character stream", async () => {
    const { port, errors } = start(((_e: Environ, sr: StartResponse) => {
      sr("200 OK", []);
      return "oops";
    }) as unknown as Application);
    expect((await exchange(port, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")).status).toBe(500);
    expect(errors.join("")).toContain("wrap a single string");
  });

  test("returning a String object or bare bytes is a contract error too (JavaScript callers skip the type check)", async () => {
    for (const body of [new String("oops"), new TextEncoder().encode("oops")]) {
      const { port, errors } = start(((_e: Environ, sr: StartResponse) => {
        sr("200 OK", []);
        return body;
      }) as unknown as Application);
      expect((await exchange(port, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")).status).toBe(500);
      expect(errors.join("")).toContain("wrap a single string");
    }
  });

  test("an HTTPError the app throws is answered with its status and the standard reason phrase", async () => {
    const { port } = start(() => {
      throw new HTTPError(429, "slow down");
    });
    const r = await exchange(port, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    expect(r.statusLine).toBe("HTTP/1.1 429 Too Many Requests");
  });

  test("returning without calling startResponse is a contract error (500)", async () => {
    const { port, errors } = start(() => ["x"]);
    expect((await exchange(port, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")).status).toBe(500);
    expect(errors.join("")).toContain("without calling startResponse");
  });

  test("startResponse may be called on the generator's first iteration", async () => {
    const { port } = start((_e, sr) =>
      (function* () {
        sr("201 Created", [["X-Lazy", "yes"]]);
        yield "made";
      })(),
    );
    const r = await exchange(port, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    expect(r.statusLine).toBe("HTTP/1.1 201 Created");
    expect(r.body).toBe("made");
  });
});

describe("access log and handlerClass", () => {
  test("one gevent-format line per request, bytes counting status line and headers", async () => {
    const { port, access } = start(hello);
    const r = await exchange(port, "GET /x?y HTTP/1.1\r\nHost: a\r\n\r\n");
    const line = access.at(-1) as string;
    expect(line).toMatch(
      /^127\.0\.0\.1 - - \[\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\] "GET \/x\?y HTTP\/1\.1" 200 (\d+) \d+\.\d{6}\n$/,
    );
    expect(Number(line.match(/" 200 (\d+) /)?.[1])).toBe(r.raw.length);
  });

  test("a handlerClass that overrides formatRequest and getEnviron changes the log line and the environ", async () => {
    class TaggingHandler extends WSGIHandler {
      override formatRequest(): string {
        return `tagged ${this.code} ${this.requestline}`;
      }
      override getEnviron(): Environ {
        const env = super.getEnviron();
        env["app.tag"] = "from-subclass";
        return env;
      }
    }
    let tag: unknown;
    const { port, access } = start(
      (env, sr) => {
        tag = env["app.tag"];
        sr("200 OK", []);
        return [];
      },
      { handlerClass: TaggingHandler },
    );
    await exchange(port, "GET /sub HTTP/1.1\r\nHost: a\r\n\r\n");
    expect(access.at(-1)).toBe("tagged 200 GET /sub HTTP/1.1\n");
    expect(tag).toBe("from-subclass");
  });

  test("an idle keep-alive connection holds none of its last request's environ or result", async () => {
    const handlers: WSGIHandler[] = [];
    const seenAtLog: boolean[] = [];
    class Recording extends WSGIHandler {
      override handle(): void {
        handlers.push(this);
      }
      override logRequest(): void {
        seenAtLog.push(this.environ !== null && this.result !== null);
        super.logRequest();
      }
    }
    const { port } = start(hello, { handlerClass: Recording });
    const c = await RawClient.connect(port);
    c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    expect((await c.response()).status).toBe(200);
    const h = handlers[0] as WSGIHandler;
    expect(h.requestline).toBe("GET / HTTP/1.1");
    expect(h.environ).toBeNull();
    expect(h.result).toBeNull();
    expect(seenAtLog).toEqual([true]);
    c.close();
  });

  test("log: null disables access logging", async () => {
    const { port } = start(hello, { log: null });
    const r = await exchange(port, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    expect(r.status).toBe(200);
  });
});
