/** @module test/proxy-protocol — PROXY protocol v1/v2 binds over real sockets: the header's client is every request's peer (keep-alive too), and a malformed, missing, late, oversized or unallowed header closes the connection with its reason counted. */

import { afterAll, describe, expect, test } from "bun:test";
import { ConfigError } from "../src/errors.ts";
import { PROXY_REASONS, ProxyError } from "../src/http/codes.ts";
import type { Application, WSGIServerOptions } from "../src/index.ts";
import { RawClient, type Running, serve, serveFetch } from "./helpers.ts";
import { ascii, tlv, V2_TCP4, v2 } from "./proxy-bytes.ts";

const running: Running<never>[] = [];
afterAll(() => {
  for (const r of running) (r as Running).server.close();
});

/** The environ keys a proxied request is about. */
const echo: Application = (env, startResponse) => {
  startResponse("200 OK", [["Content-Type", "application/json"]]);
  const proxy = env["bunwsgi.proxy"] as { authority: string | null } | undefined;
  return [
    JSON.stringify({
      addr: env.REMOTE_ADDR,
      port: env.REMOTE_PORT,
      peer: env["bunwsgi.peer"],
      scheme: env["wsgi.url_scheme"],
      authority: proxy?.authority ?? null,
      cipher: env.SSL_CIPHER ?? null,
    }),
  ];
};

function start(proxyProtocol: "v1" | "v2" | "auto", options: WSGIServerOptions = {}): Running {
  const r = serve(echo, { proxyProtocol, logLevel: 10, timeouts: { header: 1 }, ...options });
  running.push(r as Running<never>);
  return r;
}

const REQUEST = "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n";
const refused = (r: Running, code: number): number => r.server.proxyStage?.refused[code] ?? 0;

async function bodyOf(c: RawClient): Promise<Record<string, unknown>> {
  const res = await c.response();
  expect(res.status).toBe(200);
  return JSON.parse(res.body);
}

describe("a valid header names the client of every request on its connection", () => {
  test("v1 TCP4: REMOTE_ADDR/PORT are the client's, bunwsgi.peer the proxy's, also on the keep-alive request after", async () => {
    const r = start("v1");
    const c = await RawClient.connect(r.port);
    c.send(`PROXY TCP4 203.0.113.7 192.0.2.1 51234 443\r\n${REQUEST}`);
    const first = await bodyOf(c);
    expect(first).toMatchObject({ addr: "203.0.113.7", port: "51234", scheme: "http" });
    expect((first.peer as [string, number])[0]).toBe("127.0.0.1");
    c.send(REQUEST);
    expect(await bodyOf(c)).toMatchObject({ addr: "203.0.113.7", port: "51234" });
    c.close();
    expect(r.access.join("")).toStartWith("203.0.113.7 - - [");
  });

  test("v1 TCP6 and UNKNOWN (the socket's own peer stands)", async () => {
    const r = start("auto");
    const six = await RawClient.connect(r.port);
    six.send(`PROXY TCP6 2001:db8::42 2001:db8::1 40000 8443\r\n${REQUEST}`);
    expect(await bodyOf(six)).toMatchObject({ addr: "2001:db8::42", port: "40000" });
    six.close();
    const unknown = await RawClient.connect(r.port);
    unknown.send(`PROXY UNKNOWN\r\n${REQUEST}`);
    expect(await bodyOf(unknown)).toMatchObject({ addr: "127.0.0.1" });
    unknown.close();
  });

  test("v2 split byte by byte, with TLVs: authority and the SSL TLV's facts (https, cipher) reach the environ", async () => {
    const r = start("v2");
    const ssl = [0x01, 0, 0, 0, 0, ...tlv(0x21, ascii("TLSv1.3")), ...tlv(0x23, ascii("TLS_AES_128_GCM_SHA256"))];
    const header = V2_TCP4([...tlv(0x02, ascii("shop.example.com")), ...tlv(0x20, ssl)]);
    const c = await RawClient.connect(r.port);
    for (const b of header) {
      c.send(Uint8Array.of(b));
      await Bun.sleep(1);
    }
    await c.trickle(REQUEST.slice(0, 5));
    c.send(REQUEST.slice(5));
    expect(await bodyOf(c)).toMatchObject({
      addr: "203.0.113.7",
      port: "51234",
      authority: "shop.example.com",
      scheme: "https",
      cipher: "TLS_AES_128_GCM_SHA256",
    });
    c.send(REQUEST);
    expect(await bodyOf(c)).toMatchObject({ addr: "203.0.113.7", scheme: "https" });
    c.close();
  });

  test("v2 TCP6, UNIX and LOCAL", async () => {
    const r = start("v2");
    const six = v2(0x21, 0x21, [
      0x20,
      1,
      0x0d,
      0xb8,
      ...new Array(11).fill(0),
      0x42,
      0x20,
      1,
      0x0d,
      0xb8,
      ...new Array(11).fill(0),
      1,
      0x9c,
      0x40,
      0x20,
      0xfb,
    ]);
    const path = (p: string): number[] => [...ascii(p), ...new Array(108 - p.length).fill(0)];
    const cases: Array<[Uint8Array, Record<string, unknown>]> = [
      [six, { addr: "2001:db8::42", port: "40000" }],
      [v2(0x21, 0x31, [...path("/run/client.sock"), ...path("/run/h.sock")]), { addr: "", port: "" }],
      [v2(0x20, 0x00, [0x04, 0, 1, 0]), { addr: "127.0.0.1" }],
    ];
    for (const [header, expected] of cases) {
      const c = await RawClient.connect(r.port);
      c.send(Uint8Array.from([...header, ...ascii(REQUEST)]));
      expect(await bodyOf(c)).toMatchObject(expected);
      c.close();
    }
  });

  test("a UNIX-family client named on a TCP bind is not a unix: bind's peer: forwarded_allow_unix does not trust its X-Forwarded-For", async () => {
    const path = (p: string): number[] => [...ascii(p), ...new Array(108 - p.length).fill(0)];
    const unixClient = v2(0x21, 0x31, [...path("/run/client.sock"), ...path("/run/h.sock")]);
    const forged = "GET / HTTP/1.1\r\nHost: example.com\r\nX-Forwarded-For: 198.51.100.9\r\n\r\n";
    const r = start("v2", { proxies: { forwardedAllowUnix: true, forwardedAllowIps: [] } });
    const c = await RawClient.connect(r.port);
    c.send(Uint8Array.from([...unixClient, ...ascii(forged)]));
    expect(await bodyOf(c)).toMatchObject({ addr: "" });
    c.close();
    const f = serveFetch((req, server) => Response.json({ ip: server.requestIP(req) }), {
      proxyProtocol: "v2",
      proxies: { forwardedAllowUnix: true, forwardedAllowIps: [] },
    });
    running.push(f as Running<never>);
    const d = await RawClient.connect(f.port);
    d.send(Uint8Array.from([...unixClient, ...ascii(forged)]));
    expect((await d.response()).body).not.toContain("198.51.100.9");
    d.close();
  });

  test("fetch apps: requestIP is the header's client, peerIP the proxy", async () => {
    const r = serveFetch(
      (req, server) => Response.json({ ip: server.requestIP(req), peer: server.peerIP(req)?.address, url: req.url }),
      { proxyProtocol: "v1" },
    );
    running.push(r as Running<never>);
    const c = await RawClient.connect(r.port);
    c.send(`PROXY TCP4 203.0.113.7 192.0.2.1 51234 443\r\n${REQUEST}`);
    expect(JSON.parse((await c.response()).body)).toEqual({
      ip: { address: "203.0.113.7", port: 51234, family: "IPv4" },
      peer: "127.0.0.1",
      url: "http://example.com/",
    });
    c.close();
  });
});

describe("a misconfigured proxy is a warning in the error log at the default level (at most one every 10 s, counting the rest)", () => {
  /** A server at log level info whose error-log lines keep their level. */
  function quiet(options: WSGIServerOptions, listener = "127.0.0.1:0"): { r: Running; lines: string[] } {
    const lines: string[] = [];
    const r = serve(
      echo,
      { timeouts: { header: 1 }, errorLog: { write: (s: string, level?: string) => lines.push(`${level} ${s}`) }, ...options },
      listener,
    );
    running.push(r as Running<never>);
    return { r, lines };
  }

  test("a proxy bind whose proxy sends no header (HAProxy without send-proxy-v2): the proxy's 502s have their cause logged", async () => {
    const { r, lines } = quiet({ proxyProtocol: "v2" });
    for (let i = 0; i < 3; i++) {
      const c = await RawClient.connect(r.port);
      c.send(REQUEST);
      await c.waitClosed();
      expect(c.take()).toBe("");
    }
    const warnings = lines.filter((l) => l.startsWith("WARNING "));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain("closed connection from 127.0.0.1:");
    expect(warnings[0]).toContain(
      "the connection does not start with a PROXY protocol header (proxy_missing) on http://127.0.0.1:",
    );
    expect(warnings[0]).toContain("send-proxy");
    // Each one is still a debug line for an operator who asks; none is at info.
    expect(lines.filter((l) => !l.startsWith("WARNING "))).toEqual([]);
  });

  test("a proxy whose address is not in proxy_protocol_from, and one that sends the other version", async () => {
    const untrusted = quiet({ proxyProtocol: "v1", proxies: { proxyProtocolFrom: ["10.0.0.0/8"] } });
    const c = await RawClient.connect(untrusted.r.port);
    await c.waitClosed();
    expect(untrusted.lines.join("")).toContain("WARNING ");
    expect(untrusted.lines.join("")).toContain(
      `(proxy_untrusted) on http://127.0.0.1:${untrusted.r.port}; list the proxy's address in proxy_protocol_from`,
    );
    const wrong = quiet({ proxyProtocol: "v1" });
    const w = await RawClient.connect(wrong.r.port);
    w.send(V2_TCP4());
    await w.waitClosed();
    expect(wrong.lines.join("")).toContain(
      `(proxy_wrong_version) on http://127.0.0.1:${wrong.r.port}; the proxy sends the other version`,
    );
  });

  test("a connection that closes or times out before its header is no misconfiguration (a TCP health check, a port scan): no warning", async () => {
    const { r, lines } = quiet({ proxyProtocol: "v2" });
    const gone = await RawClient.connect(r.port);
    gone.close();
    const silent = await RawClient.connect(r.port);
    await silent.waitClosed(3500);
    expect(refused(r, ProxyError.PROXY_CLOSED) + refused(r, ProxyError.PROXY_TIMEOUT)).toBe(2);
    expect(lines).toEqual([]);
  }, 8000);

  test("a PROXY header on a bind without proxy_protocol (send-proxy to a plain bind): 400, and a warning that says so", async () => {
    const { r, lines } = quiet({});
    for (const header of [V2_TCP4(), Uint8Array.from(ascii("PROXY TCP4 203.0.113.7 192.0.2.1 51234 443\r\n"))]) {
      const c = await RawClient.connect(r.port);
      c.send(Uint8Array.from([...header, ...ascii(REQUEST)]));
      expect((await c.response()).status).toBe(400);
      await c.waitClosed();
    }
    const warnings = lines.filter((l) => l.startsWith("WARNING "));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain("a PROXY protocol header from 127.0.0.1:");
    expect(warnings[0]).toContain("a bind without proxy_protocol");
    // An ordinary bad request says nothing of the kind.
    const plain = quiet({});
    const c = await RawClient.connect(plain.r.port);
    c.send("PROXY / HTTP/1.1\r\nHost: a\r\n\r\n");
    await c.response();
    const bad = await RawClient.connect(plain.r.port);
    bad.send("\r\n\r\n\0junk\r\n\r\n");
    expect((await bad.response()).status).toBe(400);
    expect(plain.lines).toEqual([]);
  });
});

describe("a bad header closes the connection without a response, counted and logged by reason", () => {
  async function closedBy(r: Running, bytes: string | Uint8Array, code: number): Promise<void> {
    const c = await RawClient.connect(r.port);
    c.send(bytes);
    await c.waitClosed();
    expect(c.take()).toBe("");
    expect(refused(r, code)).toBeGreaterThan(0);
    expect(r.errors.join("")).toContain(`(${PROXY_REASONS[code]})`);
  }

  test("missing: a request without the header (HTTP where PROXY was expected)", async () => {
    await closedBy(start("auto"), REQUEST, ProxyError.PROXY_MISSING);
  });

  test("wrong signature: one byte off in v2's", async () => {
    const bad = V2_TCP4();
    bad[7] = 0x52;
    await closedBy(start("v2"), bad, ProxyError.PROXY_MISSING);
  });

  test("the wrong version for the bind", async () => {
    await closedBy(start("v1"), V2_TCP4(), ProxyError.PROXY_WRONG_VERSION);
  });

  test("malformed v1: a dotted quad given as TCP6", async () => {
    await closedBy(start("v1"), `PROXY TCP6 203.0.113.7 2001:db8::1 1 2\r\n${REQUEST}`, ProxyError.PROXY_V1_BAD_ADDRESS);
  });

  test("oversized: a v2 length past the limit is refused from the fixed part, and a v1 line past 107 bytes", async () => {
    const head = Uint8Array.from([
      0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, 0x21, 0x11, 0xff, 0xff,
    ]);
    await closedBy(start("v2"), head, ProxyError.PROXY_V2_TOO_LONG);
    await closedBy(start("v1"), `PROXY UNKNOWN ${"x".repeat(120)}\r\n`, ProxyError.PROXY_V1_TOO_LONG);
  });

  test("truncated: a header that stops coming is closed at timeouts.header; one whose peer leaves is counted as closed", async () => {
    const r = start("v2");
    const slow = await RawClient.connect(r.port);
    slow.send(V2_TCP4().subarray(0, 20));
    await slow.waitClosed(3500);
    expect(refused(r, ProxyError.PROXY_TIMEOUT)).toBe(1);
    const gone = await RawClient.connect(r.port);
    gone.send(V2_TCP4().subarray(0, 10));
    await Bun.sleep(50);
    gone.abort();
    await Bun.sleep(100);
    expect(refused(r, ProxyError.PROXY_CLOSED)).toBe(1);
    expect(r.server.connectionCount).toBe(0);
  }, 8000);

  test("untrusted: a peer outside proxy_protocol_from is closed before anything is read", async () => {
    const r = start("v1", { proxies: { proxyProtocolFrom: ["10.0.0.0/8"] } });
    const c = await RawClient.connect(r.port);
    await c.waitClosed();
    expect(refused(r, ProxyError.PROXY_UNTRUSTED)).toBe(1);
    expect(r.errors.join("")).toContain("PROXY header from a peer not in proxy_protocol_from (proxy_untrusted)");
  });

  test("a TLS server with the PROXY protocol is refused at construction, saying why", () => {
    expect(() => serve(echo, { proxyProtocol: "v2", tls: { cert: "x", key: "y" } })).toThrow(ConfigError);
  });
});
