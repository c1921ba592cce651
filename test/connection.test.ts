import { describe, expect, test } from "bun:test";
import type { Application } from "../src/index.ts";
import { exchange, hello, RawClient, serverPool } from "./helpers.ts";

const DATE = /^Date: [A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$/m;
const start = serverPool();

const echo: Application = async (env, startResponse) => {
  const body = await env["wsgi.input"].read();
  startResponse("200 OK", [["Content-Type", "text/plain"]]);
  return [`${env.REQUEST_METHOD} ${env.PATH_INFO} ${body.length}:`, body];
};

describe("responses on the wire", () => {
  test("a sized response: status line, app headers in order, Content-Length, Date", async () => {
    const { port } = start(hello);
    const r = await exchange(port, "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    const expected = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\nConnection: close\r\nDate: ";
    expect(r.raw.startsWith(expected)).toBe(true);
    expect(r.raw).toMatch(DATE);
    expect(r.raw.endsWith("GMT\r\n\r\nHello, World!")).toBe(true);
    expect(r.closed).toBe(true);
  });

  test("keeps an HTTP/1.1 connection alive and answers pipelined requests in order", async () => {
    const { port } = start((env, sr) => {
      sr("200 OK", []);
      return [String(env.PATH_INFO)];
    });
    const c = await RawClient.connect(port);
    c.send("GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\nGET /3 HTTP/1.1\r\nHost: a\r\n\r\n");
    expect((await c.response()).body).toBe("/1");
    expect((await c.response()).body).toBe("/2");
    expect((await c.response()).body).toBe("/3");
    expect(c.closed).toBe(false);
    c.close();
  });

  test("answers pipelined requests in order when the app is asynchronous", async () => {
    const { port } = start(async (env, sr) => {
      await Bun.sleep(env.PATH_INFO === "/slow" ? 50 : 0);
      sr("200 OK", []);
      return [String(env.PATH_INFO)];
    });
    const c = await RawClient.connect(port);
    c.send("GET /slow HTTP/1.1\r\nHost: a\r\n\r\nGET /fast HTTP/1.1\r\nHost: a\r\n\r\n");
    expect((await c.response()).body).toBe("/slow");
    expect((await c.response()).body).toBe("/fast");
    c.close();
  });

  test("parses a request sent one byte at a time", async () => {
    const { port } = start(echo);
    const c = await RawClient.connect(port);
    await c.trickle("POST /t HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
    expect((await c.response()).body).toBe("POST /t 3:abc");
    c.close();
  });

  test("HTTP/1.0 closes by default and keeps alive with Connection: keep-alive and a known length", async () => {
    const { port } = start(hello);
    const a = await exchange(port, "GET / HTTP/1.0\r\n\r\n");
    expect(a.closed).toBe(true);
    expect(a.header("connection")).toBe("close");
    const c = await RawClient.connect(port);
    c.send("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    const r = await c.response();
    expect(r.header("connection")).toBe("keep-alive");
    c.send("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    expect((await c.response()).body).toBe("Hello, World!");
    c.close();
  });

  test("Connection: close from the client closes after the response", async () => {
    const { port } = start(hello);
    const r = await exchange(port, "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, close\r\n\r\n");
    expect(r.header("connection")).toBe("close");
    expect(r.closed).toBe(true);
  });

  test("Connection: close from the app closes after the response", async () => {
    const { port } = start((_e, sr) => {
      sr("200 OK", [["Connection", "close"]]);
      return ["x"];
    });
    const r = await exchange(port, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    expect(r.headers.filter(([n]) => n.toLowerCase() === "connection")).toEqual([["Connection", "close"]]);
    expect(r.closed).toBe(true);
  });

  test("a generator is chunked on HTTP/1.1 and close-delimited on HTTP/1.0", async () => {
    const gen: Application = (_e, sr) => {
      sr("200 OK", []);
      return (function* () {
        yield "ab";
        yield new Uint8Array([99, 100]);
        yield "";
        yield "é";
      })();
    };
    const { port } = start(gen);
    const r = await exchange(port, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    expect(r.header("transfer-encoding")).toBe("chunked");
    expect(r.raw.endsWith("\r\n\r\n2\r\nab\r\n2\r\ncd\r\n2\r\n\xc3\xa9\r\n0\r\n\r\n")).toBe(true);
    expect(r.closed).toBe(false);
    const r10 = await exchange(port, "GET / HTTP/1.0\r\n\r\n");
    expect(r10.header("transfer-encoding")).toBeUndefined();
    expect(r10.body).toBe("abcd\xc3\xa9");
    expect(r10.closed).toBe(true);
  });

  test("an async generator streams with backpressure to a reader", async () => {
    const { port } = start((_e, sr) => {
      sr("200 OK", [["Content-Type", "application/octet-stream"]]);
      return (async function* () {
        for (let i = 0; i < 64; i++) yield new Uint8Array(64 * 1024).fill(i);
      })();
    });
    const res = await fetch(`http://127.0.0.1:${port}/`);
    const body = new Uint8Array(await res.arrayBuffer());
    expect(body.length).toBe(64 * 64 * 1024);
    expect(body[64 * 1024 * 63]).toBe(63);
  });

  test("a slow reader gets the exact chunked stream though writes went partial and queued", async () => {
    const { port } = start((_e, sr) => {
      sr("200 OK", []);
      return (async function* () {
        for (let i = 0; i < 64; i++) yield new Uint8Array(64 * 1024).fill(i);
      })();
    });
    const c = await RawClient.connect(port);
    c.pauseReading();
    c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    await Bun.sleep(300);
    c.resumeReading();
    const r = await c.response({ ms: 10000 });
    expect(r.body.length).toBe(64 * 64 * 1024);
    for (let i = 0; i < 64; i++) {
      const chunk = r.body.slice(i * 65536, (i + 1) * 65536);
      expect(chunk).toBe(String.fromCharCode(i).repeat(65536));
    }
    c.close();
  });

  test("body bytes that arrived with a head spanning reads survive reuse of the head buffer", async () => {
    const { port } = start(async (env, sr) => {
      await Bun.sleep(env.PATH_INFO === "/late-reader" ? 150 : 0);
      const body = await env["wsgi.input"].read();
      sr("200 OK", []);
      return [body];
    });
    const a = await RawClient.connect(port);
    a.send("POST /late-reader HTTP/1.1\r\nHost: a\r\nContent-");
    await Bun.sleep(30);
    a.send("Length: 11\r\n\r\nhello world");
    await Bun.sleep(30);
    const b = await RawClient.connect(port);
    b.send("POST /other HTTP/1.1\r\nHost: b\r\nContent-");
    await Bun.sleep(30);
    b.send("Length: 11\r\n\r\nXXXXXXXXXXX");
    expect((await b.response()).body).toBe("XXXXXXXXXXX");
    expect((await a.response()).body).toBe("hello world");
    a.close();
    b.close();
  });

  test("a generator that yields nothing gets Content-Length: 0", async () => {
    const { port } = start((_e, sr) => {
      sr("200 OK", []);
      return (function* () {})();
    });
    const r = await exchange(port, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    expect(r.header("content-length")).toBe("0");
    expect(r.body).toBe("");
  });

  test("HEAD gets the GET headers and no body", async () => {
    const { port } = start(hello);
    const c = await RawClient.connect(port);
    c.send("HEAD / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n");
    const h = await c.response({ head: true });
    expect(h.header("content-length")).toBe("13");
    expect(h.raw.endsWith("\r\n\r\n")).toBe(true);
    expect((await c.response()).body).toBe("Hello, World!");
    c.close();
  });

  test("204 and 304 never carry a body or framing headers", async () => {
    for (const status of ["204 No Content", "304 Not Modified"]) {
      const { port } = start((_e, sr) => {
        sr(status, []);
        return [];
      });
      const c = await RawClient.connect(port);
      c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n");
      const r = await c.response();
      expect(r.status).toBe(Number(status.slice(0, 3)));
      expect(r.header("content-length")).toBeUndefined();
      expect(r.header("transfer-encoding")).toBeUndefined();
      expect((await c.response()).status).toBe(Number(status.slice(0, 3)));
      c.close();
    }
  });

  test("the app's Content-Length is honoured; sending more is cut and the connection closed", async () => {
    const { port, errors } = start((_e, sr) => {
      sr("200 OK", [["Content-Length", "5"]]);
      return ["hello", " and more"];
    });
    const r = await exchange(port, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    expect(r.body).toBe("hello");
    expect(r.raw.endsWith("\r\n\r\nhello")).toBe(true);
    expect(r.closed).toBe(true);
    expect(errors.join("")).toContain("more than its Content-Length of 5");
  });

  test("sending less than the app's Content-Length closes the connection", async () => {
    const { port } = start((_e, sr) => {
      sr("200 OK", [["Content-Length", "10"]]);
      return ["short"];
    });
    const c = await RawClient.connect(port);
    c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    await c.waitClosed();
    expect(c.take().endsWith("\r\n\r\nshort")).toBe(true);
  });

  test("a client that half-closes after its request still gets the response", async () => {
    const { port } = start(async (_e, sr) => {
      await Bun.sleep(20);
      sr("200 OK", []);
      return ["late"];
    });
    const c = await RawClient.connect(port);
    c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    c.endWrite();
    const r = await c.response();
    expect(r.body).toBe("late");
    expect(r.header("connection")).toBe("close");
    await c.waitClosed();
  });
});

describe("request bodies", () => {
  test("reads a Content-Length body and a chunked body with trailers", async () => {
    let trailers: unknown;
    const { port } = start(async (env, sr) => {
      const body = await env["wsgi.input"].read();
      trailers = env["bunwsgi.trailers"];
      sr("200 OK", []);
      return [body];
    });
    const c = await RawClient.connect(port);
    c.send("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello");
    expect((await c.response()).body).toBe("hello");
    c.send(
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n4;ext=1\r\nwiki\r\n5\r\npedia\r\n0\r\nX-Sum: 9\r\n\r\n",
    );
    expect((await c.response()).body).toBe("wikipedia");
    expect(trailers).toEqual([["X-Sum", "9"]]);
    c.close();
  });

  test("read() of a body far above the input high-water mark completes (no flow-control deadlock)", async () => {
    const { port } = start(echo, { timeouts: { body: 3 } });
    const size = 3 * 1024 * 1024;
    for (const framing of ["length", "chunked"] as const) {
      const c = await RawClient.connect(port);
      const body = new Uint8Array(size).fill(97);
      if (framing === "length") c.send(`POST /big HTTP/1.1\r\nHost: a\r\nContent-Length: ${size}\r\n\r\n`);
      else c.send(`POST /big HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n${size.toString(16)}\r\n`);
      c.send(body);
      if (framing === "chunked") c.send("\r\n0\r\n\r\n");
      const res = await c.response({ ms: 5000 });
      expect(res.status).toBe(200);
      expect(res.body.length).toBe(`POST /big ${size}:`.length + size);
      c.close();
    }
  });

  test("large reads freed once consumed never cost body bytes, however the app reads", async () => {
    // Reads of 64 KiB and more are freed as soon as every byte is consumed: a count that
    // included bytes still held as views would hand the app zeroed or empty chunks.
    const digest = (b: Uint8Array): string => {
      let sum = 0;
      for (let i = 0; i < b.length; i++) sum = (sum * 31 + (b[i] as number)) >>> 0;
      return `${b.length}/${sum}`;
    };
    const { port } = start(async (env, sr) => {
      const input = env["wsgi.input"];
      let body: Uint8Array;
      if (env.PATH_INFO === "/all") body = await input.read();
      else {
        // The body arrives before the first read: it is held as views of the reads.
        await Bun.sleep(50);
        const parts: Uint8Array[] = [];
        for (;;) {
          const part = await input.read(env.PATH_INFO === "/late" ? -1 : 100_000);
          if (part.length === 0) break;
          parts.push(part);
          if (env.PATH_INFO === "/late") break;
        }
        body = Buffer.concat(parts);
      }
      sr("200 OK", []);
      return [digest(body)];
    });
    const size = 2 * 1024 * 1024 + 7;
    const body = new Uint8Array(size);
    for (let i = 0; i < size; i++) body[i] = (i * 7 + (i >> 12)) & 255;
    const c = await RawClient.connect(port);
    for (const path of ["/all", "/late", "/pieces", "/all"]) {
      // The next request's head follows the body in the same write, so it may share a read.
      await c.sendAll(Buffer.concat([Buffer.from(`POST ${path} HTTP/1.1\r\nHost: a\r\nContent-Length: ${size}\r\n\r\n`), body]));
    }
    for (const path of ["/all", "/late", "/pieces", "/all"]) {
      const res = await c.response({ ms: 5000 });
      expect(`${path} ${res.body}`).toBe(`${path} ${digest(body)}`);
    }
    c.close();
  });

  test("unread body bytes are discarded, never parsed as a request", async () => {
    const { port } = start((env, sr) => {
      sr("200 OK", []);
      return [String(env.PATH_INFO)];
    });
    const smuggled = "GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n";
    const c = await RawClient.connect(port);
    c.send(`POST /first HTTP/1.1\r\nHost: a\r\nContent-Length: ${smuggled.length}\r\n\r\n${smuggled}`);
    c.send(
      `POST /second HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n${smuggled.length.toString(16)}\r\n${smuggled}\r\n0\r\n\r\n`,
    );
    c.send("GET /third HTTP/1.1\r\nHost: a\r\n\r\n");
    expect((await c.response()).body).toBe("/first");
    expect((await c.response()).body).toBe("/second");
    expect((await c.response()).body).toBe("/third");
    c.close();
  });

  describe("a response streamed while its request's body is still arriving", () => {
    const MiB = 1024 * 1024;
    const body = "x".repeat(MiB);
    const post = (path: string) => `POST ${path} HTTP/1.1\r\nHost: a\r\nContent-Length: ${MiB}\r\n\r\n${body}`;
    const { port } = start((env, sr) => {
      const input = env["wsgi.input"];
      sr("200 OK", []);
      if (env.PATH_INFO === "/ignore")
        return (async function* () {
          yield "ignored";
        })();
      if (env.PATH_INFO !== "/echo") return ["hi"];
      return (async function* () {
        for (let part = await input.read(65536); part.length > 0; part = await input.read(65536)) yield part;
      })();
    });

    test("an echo that reads its body as it answers keeps its connection: no Connection: close, and the next request is answered on it", async () => {
      const c = await RawClient.connect(port);
      c.send(post("/echo"));
      const r = await c.response({ ms: 10_000 });
      expect(r.body.length).toBe(MiB);
      expect(r.header("connection")).toBeUndefined();
      c.send("GET /next HTTP/1.1\r\nHost: a\r\n\r\n");
      expect((await c.response()).body).toBe("hi");
      c.close();
    });

    test("a stream that never reads its 1 MiB body: the answer is whole, then the connection closes (too much left to drop), and no body byte is read as a request", async () => {
      const c = await RawClient.connect(port);
      c.send(post("/ignore"));
      const r = await c.response({ ms: 10_000 });
      expect(r.body).toBe("ignored");
      await c.waitClosed(5000);
      expect(c.take()).toBe("");
    });

    test("Expect: 100-continue and a stream that never reads: the head announces the close, the body was never asked for", async () => {
      const c = await RawClient.connect(port);
      c.send(`POST /ignore HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: ${MiB}\r\n\r\n`);
      const r = await c.response({ ms: 10_000 });
      expect(r.status).toBe(200);
      expect(r.header("connection")).toBe("close");
      await c.waitClosed(5000);
    });
  });

  test("Expect: 100-continue sends 100 Continue only when the app first reads", async () => {
    let sawContinueBeforeRead = false;
    let client: RawClient | null = null;
    const { port } = start(async (env, sr) => {
      await Bun.sleep(30);
      sawContinueBeforeRead = (client as RawClient).take().includes("100 Continue");
      const body = await env["wsgi.input"].read();
      sr("200 OK", []);
      return [body];
    });
    client = await RawClient.connect(port);
    client.send("PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n");
    const cont = await client.response();
    expect(cont.raw).toBe("HTTP/1.1 100 Continue\r\n\r\n");
    client.send("data");
    expect((await client.response()).body).toBe("data");
    expect(sawContinueBeforeRead).toBe(false);
    client.close();
  });

  test("Expect: 100-continue without a read: no 100, and the connection closes after the response", async () => {
    const { port } = start(hello);
    const r = await exchange(port, "PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n");
    expect(r.status).toBe(200);
    expect(r.raw).not.toContain("100 Continue");
    expect(r.header("connection")).toBe("close");
    expect(r.closed).toBe(true);
  });

  test("a chunked body over the limit gets 413 when the app reads it", async () => {
    const { port } = start(echo, { limits: { maxBodySize: 8 } });
    const r = await exchange(
      port,
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n",
    );
    expect(r.status).toBe(413);
    expect(r.closed).toBe(true);
  });

  test("a malformed chunk gets 400 when the app reads it", async () => {
    const { port } = start(echo);
    const r = await exchange(port, "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n");
    expect(r.status).toBe(400);
    expect(r.closed).toBe(true);
  });

  test("readline, readlines and async iteration over wsgi.input", async () => {
    const { port } = start(async (env, sr) => {
      const input = env["wsgi.input"];
      const first = await input.readline();
      const capped = await input.readline(2);
      const rest: string[] = [];
      for await (const line of input) rest.push(new TextDecoder().decode(line));
      sr("200 OK", []);
      return [JSON.stringify([new TextDecoder().decode(first), new TextDecoder().decode(capped), rest])];
    });
    const c = await RawClient.connect(port);
    c.send("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18\r\n\r\none\nthree\nfour\nfiv");
    expect(JSON.parse((await c.response()).body)).toEqual(["one\n", "th", ["ree\n", "four\n", "fiv"]]);
    c.close();
  });
});

describe("rejected requests: precise status, closed connection, server keeps serving", () => {
  const cases: Array<[string, string, number]> = [
    ["malformed request line", "GARBAGE\r\n\r\n", 400],
    ["bare LF line ends", "GET / HTTP/1.1\nHost: a\n\n", 400],
    ["bare CR", "GET / HTTP/1.1\r\nHost: a\rX: y\r\n\r\n", 400],
    ["NUL in a header", "GET / HTTP/1.1\r\nHost: a\r\nX: \0\r\n\r\n", 400],
    ["space before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400],
    ["invalid header name", "GET / HTTP/1.1\r\nHost: a\r\nX[1]: y\r\n\r\n", 400],
    ["CRLF injection in a header value (bare CR)", "GET / HTTP/1.1\r\nHost: a\r\nX: a\rSet-Cookie: b\r\n\r\n", 400],
    ["missing Host", "GET / HTTP/1.1\r\n\r\n", 400],
    ["duplicate Host", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400],
    [
      "Content-Length and Transfer-Encoding",
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
      400,
    ],
    ["Content-Length +5", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\nhello", 400],
    ["Content-Length 1_0", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1_0\r\n\r\n", 400],
    ["Content-Length lists that disagree", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 2\r\n\r\n", 400],
    [
      "Transfer-Encoding not ending in chunked",
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
      400,
    ],
    ["obs-fold in Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n 2\r\n\r\n", 400],
    ["an unknown transfer coding", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501],
    ["HTTP/2.0 in the request line", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505],
    ["the HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505],
    ["a request line over 8 KiB", `GET /${"a".repeat(8200)} HTTP/1.1\r\nHost: a\r\n\r\n`, 414],
    ["a header section over the limit", `GET / HTTP/1.1\r\nHost: a\r\nX: ${"b".repeat(40000)}\r\n\r\n`, 431],
    ["too many header fields", `GET / HTTP/1.1\r\nHost: a\r\n${"X: y\r\n".repeat(101)}\r\n`, 431],
    ["a Content-Length over the body limit", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 104857601\r\n\r\n", 413],
    ["obs-fold in an ordinary field", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n", 400],
    ["a target holding <script>", "GET /<script> HTTP/1.1\r\nHost: a\r\n\r\n", 400],
    ["a target with a bad percent-encoding (%zz)", "GET /%zz HTTP/1.1\r\nHost: a\r\n\r\n", 400],
    ["a target ending in a lone %", "GET /a% HTTP/1.1\r\nHost: a\r\n\r\n", 400],
    ["a query holding <b>", "GET /?a=<b> HTTP/1.1\r\nHost: a\r\n\r\n", 400],
    ["a backslash in an absolute-form path", "GET http://b/\\x HTTP/1.1\r\nHost: a\r\n\r\n", 400],
    [
      "Transfer-Encoding: gzip and Transfer-Encoding: chunked on two field lines",
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
      501,
    ],
    ["Content-Length: 5 twice", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello", 400],
    ["Content-Length: 5, 5", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\nhello", 400],
    [
      "Expect: 100-continue and an unknown expectation on two field lines",
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\nExpect: foo\r\n\r\nhello",
      417,
    ],
    [
      "an unknown expectation on a request with Content-Length and Transfer-Encoding (the 400 of the smuggling attempt, not the 417)",
      "POST / HTTP/1.1\r\nHost: a\r\nExpect: foo\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
      400,
    ],
    ["a method longer than any implemented", `${"A".repeat(40)} / HTTP/1.1\r\nHost: a\r\n\r\n`, 501],
    ["an overlong version (HTTP/1.1111…)", `GET / HTTP/1.1${"1".repeat(9000)}\r\nHost: a\r\n\r\n`, 400],
  ];
  for (const [name, raw, status] of cases) {
    test(`rejects ${name} with ${status}`, async () => {
      const { port, access } = start(hello);
      const bystander = await RawClient.connect(port);
      const r = await exchange(port, raw);
      expect(r.status).toBe(status);
      expect(r.header("connection")).toBe("close");
      expect(r.raw).toMatch(DATE);
      expect(r.closed).toBe(true);
      expect(access.at(-1)).toMatch(new RegExp(`" ${status} \\d+ \\d+\\.\\d{6}\\n$`));
      bystander.send("GET /still HTTP/1.1\r\nHost: a\r\n\r\n");
      expect((await bystander.response()).body).toBe("Hello, World!");
      bystander.close();
    });
  }

  test("with --limits-request-line 64, a 70-byte method is 501 and HTTP/1.1111… is 400, a long target 414", async () => {
    const { port } = start(hello, { limits: { maxRequestLine: 64 } });
    const method = await exchange(port, `${"M".repeat(70)} / HTTP/1.1\r\nHost: a\r\n\r\n`);
    expect([method.status, method.closed]).toEqual([501, true]);
    const version = await exchange(port, `GET / HTTP/1.1${"1".repeat(70)}\r\nHost: a\r\n\r\n`);
    expect([version.status, version.closed]).toEqual([400, true]);
    const target = await exchange(port, `GET /${"a".repeat(70)} HTTP/1.1\r\nHost: a\r\n\r\n`);
    expect([target.status, target.closed]).toEqual([414, true]);
  });

  // Connection was read from the raw value before unfolding: "close\r\n x" did not close, and
  // the request pipelined behind it was served on a connection that should have ended.
  const folded: Array<[string, string]> = [
    ["Connection: close", "Connection: close\r\n x"],
    ["Connection: close and a whitespace-only fold", "Connection: close\r\n \t"],
    ["Connection: upgrade", "Upgrade: websocket\r\nConnection: upgrade\r\n x"],
  ];
  for (const [name, fields] of folded) {
    test(`obs-fold after ${name} gets 400 and the request pipelined behind it is never served`, async () => {
      let calls = 0;
      const { port } = start((env, sr) => {
        calls++;
        return hello(env, sr);
      });
      const c = await RawClient.connect(port);
      c.send(`GET / HTTP/1.1\r\nHost: a\r\n${fields}\r\n\r\nGET /second HTTP/1.1\r\nHost: a\r\n\r\n`);
      expect((await c.response()).status).toBe(400);
      await c.waitClosed(2000);
      expect(c.take()).toBe("");
      expect(calls).toBe(0);
    });
  }

  test("Expect: 100-continue twice, in one list or on two field lines, sends 100 Continue as once", async () => {
    const { port } = start(echo);
    for (const expectation of ["Expect: 100-continue, 100-continue", "Expect: 100-continue\r\nExpect: 100-continue"]) {
      const c = await RawClient.connect(port);
      c.send(`POST /e HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n${expectation}\r\n\r\n`);
      expect((await c.response()).raw).toBe("HTTP/1.1 100 Continue\r\n\r\n");
      c.send("hello");
      expect((await c.response()).body).toBe("POST /e 5:hello");
      c.close();
    }
  });

  test("exact bytes of a 400", async () => {
    const { port } = start(hello);
    const r = await exchange(port, "GET / HTTP/1.1\r\nHost : a\r\n\r\n");
    expect(r.raw.replace(DATE, "Date: X")).toBe(
      "HTTP/1.1 400 Bad Request\r\nDate: X\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 12\r\n\r\nBad Request\n",
    );
  });

  test("a request head that never completes gets 408 after the header timeout (slowloris)", async () => {
    const { port, access } = start(hello, { timeouts: { header: 1 } });
    const slow = await RawClient.connect(port);
    slow.send("GET / HTTP/1.1\r\nHost: a\r\n");
    const other = await exchange(port, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    expect(other.status).toBe(200);
    const r = await slow.response({ ms: 4000 });
    expect(r.status).toBe(408);
    await slow.waitClosed();
    expect(access.some((l) => l.includes('"GET / HTTP/1.1" 408'))).toBe(true);
  });

  test("an idle keep-alive connection is closed after the keep-alive timeout", async () => {
    const { port } = start(hello, { timeouts: { keepAlive: 1 } });
    const c = await RawClient.connect(port);
    c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    await c.response();
    await c.waitClosed(4000);
  });
});
