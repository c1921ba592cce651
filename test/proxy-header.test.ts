/** @module test/proxy-header — the pure PROXY protocol reader (http/proxy-protocol): v1 and v2 headers whole, byte by byte and at every two-chunk split, and each malformed form's code. */

import { describe, expect, test } from "bun:test";
import { PROXY_REASONS, ProxyError } from "../src/http/codes.ts";
import { MAX_V2_LENGTH, type ProxyHeader, type ProxyMode, ProxyParser } from "../src/http/proxy-protocol.ts";
import { ascii, SIG, tlv, u16, V2_TCP4, v2 } from "./proxy-bytes.ts";

const V2_TCP6 = v2(0x21, 0x21, [
  0x20,
  0x01,
  0x0d,
  0xb8,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0x42,
  0x20,
  0x01,
  0x0d,
  0xb8,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  1,
  ...u16(40000),
  ...u16(8443),
]);
const path = (p: string): number[] => [...ascii(p), ...new Array(108 - p.length).fill(0)];
const V2_UNIX = v2(0x21, 0x31, [...path("/run/client.sock"), ...path("/run/haproxy.sock")]);
const V2_LOCAL = v2(0x20, 0x00, tlv(0x04, [0, 0, 0]));

/** Feed `bytes` in the given pieces; the result code and the header. */
function feed(mode: ProxyMode, pieces: Uint8Array[]): { code: number; header: ProxyHeader | null; rest: number } {
  const p = new ProxyParser(mode);
  for (let k = 0; k < pieces.length; k++) {
    const piece = pieces[k] as Uint8Array;
    const n = p.execute(piece, 0, piece.length);
    if (n !== 0) {
      const rest = n < 0 ? 0 : piece.length - n + pieces.slice(k + 1).reduce((a, b) => a + b.length, 0);
      return { code: n, header: p.header, rest };
    }
  }
  return { code: 0, header: p.header, rest: 0 };
}

/** Whole, byte by byte and split at every point: the same outcome each way. */
function everySplit(mode: ProxyMode, bytes: Uint8Array): { code: number; header: ProxyHeader | null; rest: number } {
  const whole = feed(mode, [bytes]);
  const bytewise = feed(
    mode,
    [...bytes].map((b) => Uint8Array.of(b)),
  );
  expect(bytewise.code > 0).toBe(whole.code > 0);
  expect(bytewise.header).toEqual(whole.header);
  expect(bytewise.rest).toBe(whole.rest);
  for (let cut = 1; cut < bytes.length; cut++) {
    const split = feed(mode, [bytes.subarray(0, cut), bytes.subarray(cut)]);
    expect(split.code > 0).toBe(whole.code > 0);
    if (whole.code < 0) expect(split.code).toBe(whole.code);
    expect(split.header).toEqual(whole.header);
    expect(split.rest).toBe(whole.rest);
  }
  return whole;
}

const withRequest = (h: Uint8Array): Uint8Array => Uint8Array.from([...h, ...ascii("GET / HTTP/1.1\r\nHost: a\r\n\r\n")]);

describe("PROXY v1 (spec §2.1)", () => {
  test("TCP4 names the client; the bytes after CRLF are left for HTTP, whatever the split", () => {
    const r = everySplit("v1", withRequest(Uint8Array.from(ascii("PROXY TCP4 203.0.113.7 192.0.2.1 51234 443\r\n"))));
    expect(r.code).toBeGreaterThan(0);
    expect(r.rest).toBe(27);
    expect(r.header).toMatchObject({
      version: 1,
      proxied: true,
      family: "TCP4",
      source: "203.0.113.7",
      sourcePort: 51234,
      destinationPort: 443,
    });
  });

  test("TCP6 addresses come out in RFC 5952 form", () => {
    const r = everySplit("auto", Uint8Array.from(ascii("PROXY TCP6 2001:DB8:0:0:0:0:0:42 2001:db8::1 40000 8443\r\n")));
    expect(r.header).toMatchObject({ family: "TCP6", source: "2001:db8::42", destination: "2001:db8::1", sourcePort: 40000 });
  });

  test("UNKNOWN keeps the connection's own endpoints, and ignores what follows it", () => {
    for (const line of ["PROXY UNKNOWN\r\n", "PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n"]) {
      const r = everySplit("v1", Uint8Array.from(ascii(line)));
      expect(r.code).toBe(line.length);
      expect(r.header).toMatchObject({ proxied: false, family: "UNSPEC" });
    }
  });

  test.each([
    ["PROXY TCP4 203.0.113.7 192.0.2.1 51234\r\n", ProxyError.PROXY_V1_MALFORMED],
    ["PROXY TCP4  203.0.113.7 192.0.2.1 1 2\r\n", ProxyError.PROXY_V1_MALFORMED],
    ["PROXY TCP5 203.0.113.7 192.0.2.1 1 2\r\n", ProxyError.PROXY_V1_MALFORMED],
    ["PROXY TCP4 203.0.113.7 192.0.2.1 1 2\n", ProxyError.PROXY_V1_MALFORMED],
    ["PROXY TCP4 2001:db8::1 192.0.2.1 1 2\r\n", ProxyError.PROXY_V1_BAD_ADDRESS],
    ["PROXY TCP6 203.0.113.7 2001:db8::1 1 2\r\n", ProxyError.PROXY_V1_BAD_ADDRESS],
    ["PROXY TCP4 203.0.113.256 192.0.2.1 1 2\r\n", ProxyError.PROXY_V1_BAD_ADDRESS],
    ["PROXY TCP4 203.0.113.7 192.0.2.1 65536 2\r\n", ProxyError.PROXY_V1_BAD_PORT],
    ["PROXY TCP4 203.0.113.7 192.0.2.1 -1 2\r\n", ProxyError.PROXY_V1_BAD_PORT],
    [`PROXY UNKNOWN ${"x".repeat(100)}\r\n`, ProxyError.PROXY_V1_TOO_LONG],
    ["GET / HTTP/1.1\r\n", ProxyError.PROXY_MISSING],
    ["PROXZ TCP4\r\n", ProxyError.PROXY_MISSING],
  ])("refused: %j", (line, code) => {
    const r = everySplit("v1", Uint8Array.from(ascii(line)));
    expect(r.code).toBe(-code);
    expect(PROXY_REASONS[code]).toStartWith("proxy_");
  });

  test("a v2 header on a v1-only bind is the wrong version, not a missing one", () => {
    expect(feed("v1", [V2_TCP4()]).code).toBe(-ProxyError.PROXY_WRONG_VERSION);
    expect(feed("v2", [Uint8Array.from(ascii("PROXY UNKNOWN\r\n"))]).code).toBe(-ProxyError.PROXY_WRONG_VERSION);
  });
});

describe("PROXY v2 (spec §2.2)", () => {
  test("TCP4 with the address block, whatever the split", () => {
    const bytes = withRequest(V2_TCP4());
    const r = everySplit("v2", bytes);
    expect(r.code).toBe(28);
    expect(r.rest).toBe(bytes.length - 28);
    expect(r.header).toMatchObject({
      version: 2,
      proxied: true,
      family: "TCP4",
      source: "203.0.113.7",
      sourcePort: 51234,
      destination: "192.0.2.1",
      destinationPort: 443,
    });
  });

  test("TCP6 and UNIX families", () => {
    expect(everySplit("auto", V2_TCP6).header).toMatchObject({ family: "TCP6", source: "2001:db8::42", sourcePort: 40000 });
    expect(everySplit("v2", V2_UNIX).header).toMatchObject({
      family: "UNIX",
      source: "/run/client.sock",
      destination: "/run/haproxy.sock",
    });
  });

  test("LOCAL (a health check) keeps the connection's endpoints, its TLVs skipped", () => {
    const r = everySplit("v2", V2_LOCAL);
    expect(r.code).toBe(V2_LOCAL.length);
    expect(r.header).toMatchObject({ proxied: false, family: "UNSPEC" });
  });

  test("TLVs: authority, ALPN and SSL (with its sub-TLVs) kept, unknown and NOOP ones skipped", () => {
    const ssl = [
      0x01,
      0,
      0,
      0,
      0,
      ...tlv(0x21, ascii("TLSv1.3")),
      ...tlv(0x23, ascii("TLS_AES_128_GCM_SHA256")),
      ...tlv(0x22, ascii("alice")),
    ];
    const bytes = V2_TCP4([
      ...tlv(0xea, [1, 2, 3]),
      ...tlv(0x02, ascii("shop.example.com")),
      ...tlv(0x01, ascii("h2")),
      ...tlv(0x20, ssl),
      ...tlv(0x04, []),
    ]);
    const r = everySplit("v2", bytes);
    expect(r.code).toBe(bytes.length);
    expect(r.header).toMatchObject({
      authority: "shop.example.com",
      alpn: "h2",
      ssl: { client: 1, verify: 0, version: "TLSv1.3", cipher: "TLS_AES_128_GCM_SHA256", cn: "alice" },
    });
  });

  test.each([
    ["version 1 in the version nibble", v2(0x11, 0x11, new Array(12).fill(0)), ProxyError.PROXY_V2_BAD_VERSION],
    ["command 2", v2(0x22, 0x11, new Array(12).fill(0)), ProxyError.PROXY_V2_BAD_COMMAND],
    ["family 4", v2(0x21, 0x41, new Array(12).fill(0)), ProxyError.PROXY_V2_BAD_FAMILY],
    ["UDP over TCP4", v2(0x21, 0x12, new Array(12).fill(0)), ProxyError.PROXY_V2_BAD_FAMILY],
    ["TCP6 with a TCP4-sized block", v2(0x21, 0x21, new Array(12).fill(0)), ProxyError.PROXY_V2_SHORT_ADDRESS],
    ["a TLV longer than the header", V2_TCP4([0x02, 0, 9, 1, 2]), ProxyError.PROXY_V2_BAD_TLV],
    ["a TLV cut in its length", V2_TCP4([0x02, 0]), ProxyError.PROXY_V2_BAD_TLV],
    ["an SSL TLV whose sub-TLV overruns it", V2_TCP4(tlv(0x20, [1, 0, 0, 0, 0, 0x21, 0, 5, 1])), ProxyError.PROXY_V2_BAD_TLV],
    [
      "a wrong signature byte",
      Uint8Array.from([...SIG.slice(0, 7), 0x52, ...SIG.slice(8), 0x21, 0x11, 0, 0]),
      ProxyError.PROXY_MISSING,
    ],
  ])("refused: %s", (_what, bytes, code) => {
    expect(everySplit("v2", bytes).code).toBe(-code);
  });

  test("oversized: a length past MAX_V2_LENGTH is refused from the fixed part alone, before its bytes arrive", () => {
    const head = Uint8Array.from([...SIG, 0x21, 0x11, ...u16(MAX_V2_LENGTH + 1)]);
    expect(feed("v2", [head]).code).toBe(-ProxyError.PROXY_V2_TOO_LONG);
    const most = v2(0x21, 0x11, [...new Array(12).fill(0), ...tlv(0xee, new Array(MAX_V2_LENGTH - 15).fill(7))]);
    expect(feed("v2", [most]).code).toBe(16 + MAX_V2_LENGTH);
  });

  test("truncated: a header cut short asks for more and never completes", () => {
    const bytes = V2_TCP4();
    for (let cut = 0; cut < bytes.length; cut++) expect(feed("v2", [bytes.subarray(0, cut)]).code).toBe(0);
  });
});
