/** @module test/forwarded-parse — the pure parts of trusted proxy headers: addresses and CIDR ranges on bytes (http/address), Forwarded's grammar and the chain walked from the right (http/forwarded). */

import { describe, expect, test } from "bun:test";
import { AddressSet, formatIP, parseIP } from "../src/http/address.ts";
import { forwardedAuthority, forwardingValues, Honour, parseForwarded, resolveForwarded } from "../src/http/forwarded.ts";

const set = (...e: string[]): AddressSet => {
  const s = AddressSet.parse(e);
  if (typeof s === "string") throw new Error(s);
  return s;
};
const LOOPBACK = set("127.0.0.1", "::1");
const ALL = Honour.FOR | Honour.PROTO | Honour.HOST | Honour.PORT | Honour.FORWARDED;
const resolve = (headers: Array<[string, string]>, trusted = LOOPBACK, honour = ALL) =>
  resolveForwarded(forwardingValues(headers, honour) ?? [], trusted);

describe("addresses on bytes", () => {
  test.each([
    ["127.0.0.1", "127.0.0.1"],
    ["::1", "::1"],
    ["2001:DB8:0:0:1:0:0:1", "2001:db8::1:0:0:1"],
    ["::ffff:192.0.2.1", "192.0.2.1"],
    ["fe80::", "fe80::"],
    ["1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"],
  ])("%s reads as %s", (text, canonical) => {
    expect(formatIP(parseIP(text) as Uint8Array)).toBe(canonical);
  });

  test.each([
    "",
    "1.2.3",
    "1.2.3.4.5",
    "01.2.3.4",
    "256.1.1.1",
    "1::2::3",
    "1:2:3:4:5:6:7:8:9",
    "[::1]",
    "::1%eth0",
    "12345::",
    "1.2.3.4:80",
    "g::1",
  ])("%j is not an address", (text) => {
    expect(parseIP(text)).toBeNull();
  });

  test("CIDR ranges of both families match on their prefix bits; an IPv4-mapped peer is the IPv4 one", () => {
    const s = set("10.0.0.0/8", "192.168.1.128/25", "2001:db8::/32");
    for (const yes of ["10.255.0.1", "192.168.1.200", "2001:db8:ffff::1", "::ffff:10.1.2.3"])
      expect(s.trustsPeer(yes)).toBe(true);
    for (const no of ["11.0.0.1", "192.168.1.127", "2001:db9::1", "127.0.0.1", "not an ip"]) expect(s.trustsPeer(no)).toBe(false);
  });

  test("bad entries are named: a typo, a prefix too long, host bits after the prefix", () => {
    expect(AddressSet.parse(["127.0.0.1", "localhost"])).toBe('"localhost" is not an IP address or CIDR range');
    expect(AddressSet.parse(["10.0.0.0/33"])).toBe('"10.0.0.0/33": the prefix length must be 0 to 32');
    expect(AddressSet.parse(["10.1.0.0/8"])).toBe('"10.1.0.0/8" has bits set after its /8 prefix (the range is 10.0.0.0/8)');
  });

  test('"*" trusts every peer but no reported hop', () => {
    const s = set("*");
    expect(s.trustsPeer("203.0.113.9")).toBe(true);
    expect(s.has(parseIP("203.0.113.9") as Uint8Array)).toBe(false);
  });
});

describe("X-Forwarded-For walked from the right", () => {
  test.each(["", ",", " , ", ",,"])(
    "an X-Forwarded-For of %p names no client: the peer stays the client, the value is named as malformed, nothing throws",
    (value) => {
      const f = resolve([["X-Forwarded-For", value]]);
      expect(f.addr).toBeNull();
      expect(f.problem).toContain("X-Forwarded-For");
    },
  );

  test("the nearest untrusted hop is the client; what the client wrote to its left is never read", () => {
    expect(resolve([["X-Forwarded-For", "6.6.6.6, 203.0.113.7"]]).addr).toBe("203.0.113.7");
    // A spoofer behind a trusted proxy: its own value comes first, the proxy appends its real address.
    expect(resolve([["x-forwarded-for", "127.0.0.1, 203.0.113.7, ::1"]]).addr).toBe("203.0.113.7");
  });

  test("every hop trusted: the leftmost is the client", () => {
    expect(resolve([["X-Forwarded-For", "::1, 127.0.0.1"]]).addr).toBe("::1");
  });

  test("several field lines are one list (RFC 9110 §5.3), in order", () => {
    expect(
      resolve([
        ["X-Forwarded-For", "203.0.113.7"],
        ["X-Forwarded-For", "127.0.0.1"],
      ]).addr,
    ).toBe("203.0.113.7");
  });

  test('"*" believes one hop only: the rightmost', () => {
    expect(resolve([["X-Forwarded-For", "6.6.6.6, 203.0.113.7"]], set("*")).addr).toBe("203.0.113.7");
  });

  test("ports and brackets: 1.2.3.4:5, [v6]:port, bare v6", () => {
    expect(resolve([["X-Forwarded-For", "203.0.113.7:4711"]])).toMatchObject({ addr: "203.0.113.7", port: "4711" });
    expect(resolve([["X-Forwarded-For", "[2001:db8::7]:4711"]])).toMatchObject({ addr: "2001:db8::7", port: "4711" });
    expect(resolve([["X-Forwarded-For", "2001:db8::7"]])).toMatchObject({ addr: "2001:db8::7", port: "" });
  });

  test("a malformed hop ends the walk at the trusted hop before it, and is named", () => {
    const r = resolve([["X-Forwarded-For", "203.0.113.7, garbage, 127.0.0.1"]]);
    expect(r.addr).toBe("127.0.0.1");
    expect(r.problem).toContain("X-Forwarded-For");
    expect(resolve([["X-Forwarded-For", "garbage"]])).toMatchObject({ addr: null });
  });

  test("X-Forwarded-Proto, -Host and -Port are read at the client's hop", () => {
    const r = resolve([
      ["X-Forwarded-For", "203.0.113.7, 127.0.0.1"],
      ["X-Forwarded-Proto", "https, http"],
      ["X-Forwarded-Host", "shop.example.com, inner.local"],
      ["X-Forwarded-Port", "8443, 80"],
    ]);
    expect(r).toMatchObject({ addr: "203.0.113.7", scheme: "https", host: "shop.example.com", hostPort: "8443", problem: "" });
    expect(forwardedAuthority(r, "ignored:1", "https")).toBe("shop.example.com:8443");
  });

  test("bad proto, host and port values are left out and named", () => {
    const r = resolve([
      ["X-Forwarded-Proto", "gopher"],
      ["X-Forwarded-Host", "a b"],
      ["X-Forwarded-Port", "99999"],
    ]);
    expect(r).toMatchObject({ scheme: null, host: null, hostPort: null });
    expect(r.problem).toBe('X-Forwarded-Proto "gopher"; X-Forwarded-Host "a b"; X-Forwarded-Port "99999"');
  });

  test("fields not honoured are not read", () => {
    const r = resolve(
      [
        ["X-Forwarded-For", "203.0.113.7"],
        ["X-Forwarded-Host", "evil.example"],
      ],
      LOOPBACK,
      Honour.FOR,
    );
    expect(r).toMatchObject({ addr: "203.0.113.7", host: null });
  });
});

describe("RFC 7239 Forwarded", () => {
  test("the grammar: pairs, quoted strings with escapes, case-insensitive names, whitespace around separators", () => {
    expect(parseForwarded('for=192.0.2.60;proto=http;by=203.0.113.43, For="[2001:db8:cafe::17]:4711" ; HOST="a\\"b"')).toEqual([
      new Map([
        ["for", "192.0.2.60"],
        ["proto", "http"],
        ["by", "203.0.113.43"],
      ]),
      new Map([
        ["for", "[2001:db8:cafe::17]:4711"],
        ["host", 'a"b'],
      ]),
    ]);
  });

  test.each(['for="unterminated', "for=1.2.3.4;for=5.6.7.8", "=x", "for=[::1]", "for", "for=a b"])("malformed: %j", (v) => {
    expect(parseForwarded(v)).toBeNull();
  });

  test('quoted IPv6 with a port: for="[::1]:80" is a trusted hop, the element before it the client', () => {
    const r = resolve([["Forwarded", 'for=203.0.113.7;proto=https;host=shop.example.com, for="[::1]:80";proto=http']]);
    expect(r).toMatchObject({ addr: "203.0.113.7", scheme: "https", host: "shop.example.com" });
  });

  test("obfuscated identifiers and unknown stop the walk and are the client as the proxy names it (§6.3)", () => {
    expect(resolve([["Forwarded", 'for=_hidden, for="_SEVKISEK:_4711"']])).toMatchObject({ addr: "_SEVKISEK", port: "_4711" });
    expect(resolve([["Forwarded", "for=unknown;proto=https"]])).toMatchObject({ addr: "unknown", scheme: "https" });
  });

  test("an element without for keeps the peer as the client but still tells the scheme", () => {
    expect(resolve([["Forwarded", "proto=https;host=example.com"]])).toMatchObject({
      addr: null,
      scheme: "https",
      host: "example.com",
    });
  });

  test("Forwarded, when honoured and well-formed, is read alone; malformed, X-Forwarded-* stand", () => {
    const both = (fwd: string) =>
      resolve([
        ["Forwarded", fwd],
        ["X-Forwarded-For", "198.51.100.1"],
      ]);
    expect(both("for=203.0.113.7").addr).toBe("203.0.113.7");
    const bad = both("for=203.0.113.7;;=");
    expect(bad.addr).toBe("198.51.100.1");
    expect(bad.problem).toContain("Forwarded");
  });
});
