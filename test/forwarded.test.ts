/** @module test/forwarded — trusted proxy headers over real sockets, for WSGI and fetch apps: a trusted peer's X-Forwarded-* and Forwarded fields name the client, scheme and host; an untrusted peer's are ignored (or stripped); spoofing in either hop order fails; malformed values never make a 500. */

import { afterAll, describe, expect, test } from "bun:test";
import type { Application, FetchServerOptions, WSGIServerOptions } from "../src/index.ts";
import { exchange, RawClient, type Running, serve, serveFetch } from "./helpers.ts";

const running: Array<{ server: { close(): void } }> = [];
afterAll(() => {
  for (const r of running) r.server.close();
});

const KEYS = [
  "REMOTE_ADDR",
  "REMOTE_PORT",
  "wsgi.url_scheme",
  "HTTPS",
  "HTTP_HOST",
  "SERVER_NAME",
  "SERVER_PORT",
  "HTTP_X_FORWARDED_FOR",
  "HTTP_FORWARDED",
];
const echo: Application = (env, startResponse) => {
  startResponse("200 OK", [["Content-Type", "application/json"]]);
  const out: Record<string, unknown> = { peer: env["bunwsgi.peer"] };
  for (const k of KEYS) if (env[k] !== undefined) out[k] = env[k];
  return [JSON.stringify(out)];
};

function wsgi(options: WSGIServerOptions = {}): Running {
  const r = serve(echo, { logLevel: 10, ...options });
  running.push(r);
  return r;
}

function fetchApp(options: FetchServerOptions = {}): Running<import("../src/index.ts").FetchServer> {
  const r = serveFetch(
    (req, server) =>
      Response.json({
        url: req.url,
        ip: server.requestIP(req),
        peer: server.peerIP(req)?.address,
        xff: req.headers.get("x-forwarded-for"),
      }),
    { logLevel: 10, ...options },
  );
  running.push(r);
  return r;
}

async function get(port: number, fields: string): Promise<Record<string, unknown>> {
  const res = await exchange(port, `GET /p?q=1 HTTP/1.1\r\nHost: internal:8000\r\n${fields}\r\n`);
  expect(res.status).toBe(200);
  return JSON.parse(res.body);
}

const ALL = ["x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-forwarded-port", "forwarded"];

describe("WSGI: from a trusted peer (loopback, the default)", () => {
  test("X-Forwarded-For and -Proto name the client and https; bunwsgi.peer stays the socket's; the access log shows the client", async () => {
    const r = wsgi();
    const env = await get(r.port, "X-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: https\r\n");
    expect(env).toMatchObject({ REMOTE_ADDR: "203.0.113.7", REMOTE_PORT: "", "wsgi.url_scheme": "https", HTTPS: "on" });
    expect((env.peer as [string, number])[0]).toBe("127.0.0.1");
    expect(r.access.at(-1)).toStartWith("203.0.113.7 - - [");
  });

  test("spoofing, client before the proxy: the client's own X-Forwarded-For is to the left and never read", async () => {
    const r = wsgi();
    // The client sent "X-Forwarded-For: 10.0.0.1"; the trusted proxy appended the client's real address.
    expect((await get(r.port, "X-Forwarded-For: 10.0.0.1, 203.0.113.7\r\n")).REMOTE_ADDR).toBe("203.0.113.7");
    // The client claims a trusted address: still only the hop the proxy appended is walked past.
    expect((await get(r.port, "X-Forwarded-For: 127.0.0.1, 203.0.113.7\r\n")).REMOTE_ADDR).toBe("203.0.113.7");
  });

  test("a chain of trusted proxies is walked to the first untrusted hop", async () => {
    const r = wsgi({ proxies: { forwardedAllowIps: ["127.0.0.1", "10.0.0.0/8"] } });
    const env = await get(r.port, "X-Forwarded-For: 6.6.6.6, 203.0.113.7, 10.1.1.1, 10.2.2.2\r\n");
    expect(env.REMOTE_ADDR).toBe("203.0.113.7");
  });

  test("the host and port a proxy was asked for are how PEP 3333 rebuilds the URL", async () => {
    const r = wsgi({ proxies: { forwardedHeaders: ALL } });
    const env = await get(r.port, "X-Forwarded-Proto: https\r\nX-Forwarded-Host: shop.example.com\r\nX-Forwarded-Port: 8443\r\n");
    expect(env).toMatchObject({
      HTTP_HOST: "shop.example.com:8443",
      SERVER_NAME: "shop.example.com",
      SERVER_PORT: "8443",
      "wsgi.url_scheme": "https",
    });
    const plain = await get(r.port, "X-Forwarded-Proto: https\r\nX-Forwarded-Host: shop.example.com:443\r\n");
    expect(plain).toMatchObject({ HTTP_HOST: "shop.example.com", SERVER_PORT: "443" });
  });

  test('RFC 7239 Forwarded: quoted [IPv6]:port, proto and host; for="[::1]:80" is the trusted hop', async () => {
    const r = wsgi({ proxies: { forwardedHeaders: ["forwarded"] } });
    const env = await get(r.port, 'Forwarded: for="[2001:db8::7]:4711";proto=https;host=shop.example.com, for="[::1]:80"\r\n');
    expect(env).toMatchObject({
      REMOTE_ADDR: "2001:db8::7",
      REMOTE_PORT: "4711",
      "wsgi.url_scheme": "https",
      HTTP_HOST: "shop.example.com",
    });
  });

  test("RFC 7239 obfuscated identifiers are the client as the proxy names it", async () => {
    const r = wsgi({ proxies: { forwardedHeaders: ["forwarded"] } });
    expect(await get(r.port, "Forwarded: for=_hidden\r\n")).toMatchObject({ REMOTE_ADDR: "_hidden" });
  });

  test("fields not in forwarded_headers are not read (X-Forwarded-Host by default)", async () => {
    const r = wsgi();
    expect(await get(r.port, "X-Forwarded-Host: evil.example\r\n")).toMatchObject({ HTTP_HOST: "internal:8000" });
  });

  test("malformed values are ignored with a debug line, never a 500", async () => {
    const r = wsgi({ proxies: { forwardedHeaders: ALL } });
    const env = await get(
      r.port,
      'X-Forwarded-For: 203.0.113.7, not-an-ip\r\nX-Forwarded-Proto: gopher\r\nForwarded: for="unterminated\r\n',
    );
    expect(env).toMatchObject({ REMOTE_ADDR: "127.0.0.1", "wsgi.url_scheme": "http" });
    const debug = r.errors.join("");
    expect(debug).toContain("ignored forwarding fields from 127.0.0.1:");
    expect(debug).toContain('X-Forwarded-Proto "gopher"');
  });

  test("keep-alive: each request's fields decide its own client; a request without them is the peer's", async () => {
    const r = wsgi();
    const c = await RawClient.connect(r.port);
    const ask = async (fields: string): Promise<unknown> => {
      c.send(`GET / HTTP/1.1\r\nHost: a\r\n${fields}\r\n`);
      return JSON.parse((await c.response()).body).REMOTE_ADDR;
    };
    expect(await ask("X-Forwarded-For: 203.0.113.7\r\n")).toBe("203.0.113.7");
    expect(await ask("X-Forwarded-For: 203.0.113.7\r\n")).toBe("203.0.113.7");
    expect(await ask("X-Forwarded-For: 198.51.100.9\r\n")).toBe("198.51.100.9");
    expect(await ask("")).toBe("127.0.0.1");
    c.close();
    expect(r.access.map((l) => l.split(" ")[0])).toEqual(["203.0.113.7", "203.0.113.7", "198.51.100.9", "127.0.0.1"]);
  });
});

describe("WSGI: from an untrusted peer", () => {
  const untrusted = { forwardedAllowIps: ["10.0.0.0/8"], forwardedHeaders: ALL };

  test("spoofing straight to bunwsgi, in either hop order, leaves REMOTE_ADDR and the scheme the socket's", async () => {
    const r = wsgi({ proxies: untrusted });
    for (const xff of ["203.0.113.7, 10.0.0.1", "10.0.0.1, 203.0.113.7"]) {
      const env = await get(
        r.port,
        `X-Forwarded-For: ${xff}\r\nX-Forwarded-Proto: https\r\nForwarded: for=203.0.113.7;proto=https\r\n`,
      );
      expect(env).toMatchObject({ REMOTE_ADDR: "127.0.0.1", "wsgi.url_scheme": "http", HTTP_X_FORWARDED_FOR: xff });
    }
  });

  test("forwarded_strip_untrusted removes the forwarding fields from environ", async () => {
    const r = wsgi({ proxies: { ...untrusted, forwardedStripUntrusted: true } });
    const env = await get(r.port, "X-Forwarded-For: 203.0.113.7\r\nForwarded: for=203.0.113.7\r\n");
    expect(env.HTTP_X_FORWARDED_FOR).toBeUndefined();
    expect(env.HTTP_FORWARDED).toBeUndefined();
  });

  test("forwarded_allow_ips = []: nobody is trusted, loopback included", async () => {
    const r = wsgi({ proxies: { forwardedAllowIps: [] } });
    expect((await get(r.port, "X-Forwarded-For: 203.0.113.7\r\n")).REMOTE_ADDR).toBe("127.0.0.1");
  });
});

describe("fetch apps", () => {
  test("trusted: requestIP, the URL's scheme and host come from the fields; peerIP is the proxy", async () => {
    const r = fetchApp({ proxies: { forwardedHeaders: ALL } });
    const body = await get(
      r.port,
      "X-Forwarded-For: 203.0.113.7:4711\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: shop.example.com\r\n",
    );
    expect(body).toEqual({
      url: "https://shop.example.com/p?q=1",
      ip: { address: "203.0.113.7", port: 4711, family: "IPv4" },
      peer: "127.0.0.1",
      xff: "203.0.113.7:4711",
    });
    expect(r.access.at(-1)).toStartWith("203.0.113.7 - - [");
  });

  test("untrusted: spoofed fields are ignored, and stripped from the Request's headers when asked", async () => {
    const r = fetchApp({ proxies: { forwardedAllowIps: ["10.0.0.0/8"], forwardedStripUntrusted: true } });
    const body = await get(r.port, "X-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: https\r\n");
    expect(body).toMatchObject({ url: "http://internal:8000/p?q=1", ip: { address: "127.0.0.1" }, xff: null });
  });

  test("a Forwarded obfuscated client has no IP: requestIP is null, never a made-up family", async () => {
    const r = fetchApp({ proxies: { forwardedHeaders: ["forwarded"] } });
    expect(await get(r.port, "Forwarded: for=_hidden;proto=https\r\n")).toMatchObject({
      url: "https://internal:8000/p?q=1",
      ip: null,
    });
  });
});
