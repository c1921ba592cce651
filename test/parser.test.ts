import { describe, expect, test } from "bun:test";
import { defaultHeadLimits } from "../src/config/limits.ts";
import { ParseError } from "../src/http/codes.ts";
import { FIELD_SLOTS } from "../src/http/fields.ts";
import { type HeadLimits, RequestParser } from "../src/http/parser.ts";
import { MAX_METHOD, TargetForm } from "../src/http/request-line.ts";

const enc = (s: string): Uint8Array => Uint8Array.from(s, (c) => c.charCodeAt(0));
const dec = (b: Uint8Array): string => String.fromCharCode(...b);

interface Summary {
  consumed: number;
  method?: string;
  target?: string;
  form?: number;
  authority?: string;
  version?: string;
  fields?: Array<[string, string]>;
  contentLength?: number;
  chunked?: boolean;
  close?: boolean;
  keepAlive?: boolean;
  upgrade?: boolean;
  expectContinue?: boolean;
  error?: number;
}

function summarize(p: RequestParser, buf: Uint8Array, base: number, n: number): Summary {
  if (n < 0) return { consumed: 0, error: -n };
  if (n === 0) return { consumed: 0 };
  const fields: Array<[string, string]> = [];
  for (let i = 0; i < p.fieldCount; i++) {
    const k = i * FIELD_SLOTS;
    const f = p.fields;
    fields.push([
      dec(buf.subarray(base + (f[k] as number), base + (f[k + 1] as number))),
      dec(buf.subarray(base + (f[k + 2] as number), base + (f[k + 3] as number))),
    ]);
  }
  return {
    consumed: n,
    method: p.method,
    target: dec(buf.subarray(base + p.targetStart, base + p.targetEnd)),
    form: p.targetForm,
    authority: dec(buf.subarray(base + p.authorityStart, base + p.authorityEnd)),
    version: `1.${p.versionMinor}`,
    fields,
    contentLength: p.contentLength,
    chunked: p.chunked,
    close: p.connectionClose,
    keepAlive: p.connectionKeepAlive,
    upgrade: p.connectionUpgrade || p.hasUpgrade,
    expectContinue: p.expectContinue,
  };
}

/**
 * Feed `bytes` growing to each cut, each time as a fresh copy at an odd offset (as the connection
 * re-presents a head), with CR LF bytes around it: a parser that looks outside [start, end) sees
 * line ends that are not there.
 */
function feed(bytes: Uint8Array, cuts: number[], limits?: HeadLimits): Summary {
  const p = new RequestParser(limits ?? defaultHeadLimits());
  const base = 7;
  for (const end of [...cuts, bytes.length]) {
    const buf = new Uint8Array(base + end + 3).map((_, i) => (i % 2 === 0 ? 13 : 10));
    buf.set(bytes.subarray(0, end), base);
    const n = p.execute(buf, base, base + end);
    if (n !== 0) return summarize(p, buf, base, n);
  }
  return { consumed: 0 };
}

/** Whole, byte by byte, and every two-chunk split: all must agree. */
function parseAllWays(raw: string, limits?: HeadLimits): Summary {
  const bytes = enc(raw);
  const whole = feed(bytes, [], limits);
  const ones = feed(
    bytes,
    Array.from({ length: bytes.length - 1 }, (_, i) => i + 1),
    limits,
  );
  expect(ones).toEqual(whole);
  for (let cut = 1; cut < bytes.length; cut++) {
    const split = feed(bytes, [cut], limits);
    if (JSON.stringify(split) !== JSON.stringify(whole)) {
      throw new Error(`split at ${cut} gave ${JSON.stringify(split)}, whole gave ${JSON.stringify(whole)}`);
    }
  }
  return whole;
}

const H = "Host: example.com\r\n";

describe("parses valid request heads (whole, byte by byte, every split)", () => {
  test("simple GET", () => {
    const raw = `GET /index.html HTTP/1.1\r\n${H}\r\n`;
    expect(parseAllWays(raw)).toEqual({
      consumed: raw.length,
      method: "GET",
      target: "/index.html",
      form: TargetForm.ORIGIN,
      authority: "",
      version: "1.1",
      fields: [["Host", "example.com"]],
      contentLength: -1,
      chunked: false,
      close: false,
      keepAlive: false,
      upgrade: false,
      expectContinue: false,
    });
  });

  test("strips optional whitespace around field values", () => {
    const r = parseAllWays(`GET /a?b=c HTTP/1.1\r\nHost:  x \r\nX-A:\tv1 \t\r\nX-Empty:\r\n\r\n`);
    expect(r.fields).toEqual([
      ["Host", "x"],
      ["X-A", "v1"],
      ["X-Empty", ""],
    ]);
    expect(r.target).toBe("/a?b=c");
  });

  test("HTTP/1.0 without Host", () => {
    const r = parseAllWays("GET / HTTP/1.0\r\n\r\n");
    expect(r.version).toBe("1.0");
    expect(r.error).toBeUndefined();
  });

  test("ignores an empty line before the request line (RFC 9112 §2.2)", () => {
    const raw = `\r\nGET / HTTP/1.1\r\n${H}\r\n`;
    expect(parseAllWays(raw).consumed).toBe(raw.length);
  });

  test("reads Content-Length and stops at the end of the head", () => {
    const head = `POST /up HTTP/1.1\r\n${H}Content-Length: 5\r\n\r\n`;
    const r = parseAllWays(`${head}hello`);
    expect(r.consumed).toBe(head.length);
    expect(r.contentLength).toBe(5);
  });

  test("recognises chunked case-insensitively", () => {
    expect(parseAllWays(`POST / HTTP/1.1\r\n${H}Transfer-Encoding: Chunked\r\n\r\n`).chunked).toBe(true);
  });

  test("reads Connection tokens and Upgrade", () => {
    const r = parseAllWays(`GET /ws HTTP/1.1\r\n${H}Connection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n`);
    expect(r.keepAlive).toBe(true);
    expect(r.upgrade).toBe(true);
    expect(r.close).toBe(false);
    expect(parseAllWays(`GET / HTTP/1.1\r\n${H}Connection: foo,  CLOSE \r\n\r\n`).close).toBe(true);
  });

  test("reads Expect: 100-continue", () => {
    expect(parseAllWays(`PUT / HTTP/1.1\r\n${H}Expect: 100-Continue\r\nContent-Length: 3\r\n\r\n`).expectContinue).toBe(true);
  });

  test("ignores Expect in HTTP/1.0 (RFC 9110 §10.1.1)", () => {
    expect(parseAllWays("PUT / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n").expectContinue).toBe(false);
  });

  test("accepts absolute-form, asterisk-form and authority-form targets", () => {
    expect(parseAllWays(`GET http://example.com/x?y HTTP/1.1\r\n${H}\r\n`).target).toBe("http://example.com/x?y");
    expect(parseAllWays(`OPTIONS * HTTP/1.1\r\n${H}\r\n`).target).toBe("*");
    expect(parseAllWays(`CONNECT example.com:443 HTTP/1.1\r\n${H}\r\n`).target).toBe("example.com:443");
  });

  test("keeps obs-text bytes in values", () => {
    expect(parseAllWays(`GET / HTTP/1.1\r\n${H}X-Name: caf\xe9\r\n\r\n`).fields?.[1]?.[1]).toBe("caf\xe9");
  });

  test("accepts extension methods and HTTP/1.x minor versions", () => {
    const r = parseAllWays(`PURGE /cache HTTP/1.2\r\n${H}\r\n`);
    expect(r.method).toBe("PURGE");
    expect(r.version).toBe("1.2");
  });
});

const small: HeadLimits = { maxRequestLine: 32, maxHeaderBytes: 64, maxHeaders: 3 };

describe("rejects malformed request heads with a precise code (whole, byte by byte, every split)", () => {
  const cases: Array<[string, string, number, HeadLimits?]> = [
    ["bare LF line ends", "GET / HTTP/1.1\nHost: a\n\n", ParseError.BARE_LF],
    ["bare LF after a header", "GET / HTTP/1.1\r\nHost: a\n\r\n", ParseError.BARE_LF],
    ["bare CR inside a header line", "GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n", ParseError.BARE_CR],
    ["bare CR in the request line", "GET /\r HTTP/1.1\r\nHost: a\r\n\r\n", ParseError.BARE_CR],
    ["bare CR in the method", "GE\rT / HTTP/1.1\r\nHost: a\r\n\r\n", ParseError.BARE_CR],
    ["bare CR in the version", "GET / HTTP/1.\r1\r\nHost: a\r\n\r\n", ParseError.BARE_CR],
    // The request line is judged byte by byte as it arrives: the NUL comes first.
    ["a NUL then a bare CR in the target (the NUL is the verdict)", "GET /\0\r HTTP/1.1\r\nHost: a\r\n\r\n", ParseError.NUL],
    ["a bare CR then a NUL in the target (the CR is the verdict)", "GET /\rx\0 HTTP/1.1\r\nHost: a\r\n\r\n", ParseError.BARE_CR],
    [
      "a CR then a non-LF byte after the last field (found by the fuzzer)",
      "GET / HTTP/1.1\r\nHost: a\r\n\r\x0b",
      ParseError.BARE_CR,
    ],
    ["a CR then a non-LF byte ending the request line", "GET / HTTP/1.1\rx", ParseError.BARE_CR],
    ["a CR then a non-LF byte ending a field value", "GET / HTTP/1.1\r\nHost: a\rb", ParseError.BARE_CR],
    [
      "a CR then another byte before the LF (found by the fuzzer)",
      "GET / HTTP/1.1\r\nHost: a\r\nX: b\r=\n\r\n",
      ParseError.BARE_CR,
    ],
    [
      "a NUL then a bare CR in a field line (the CR is the verdict; found by the fuzzer)",
      "GET / HTTP/1.0\r\n\0\rG\r\n\r\n",
      ParseError.BARE_CR,
    ],
    ["a bad name byte then a bare CR in a field line", "GET / HTTP/1.1\r\nHost: a\r\nX(\r: y\r\n\r\n", ParseError.BARE_CR],
    ["NUL in a header value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n", ParseError.NUL],
    ["a control character right before a bare LF", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x01\n\r\n", ParseError.BARE_LF],
    ["a CR that ends a value but no line", "GET / HTTP/1.1\r\nHost: a\r\nX:\r\r\n\r\n", ParseError.BARE_CR],
    ["NUL in the method", "G\0T / HTTP/1.1\r\n\r\n", ParseError.NUL],
    ["whitespace before the colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", ParseError.SPACE_BEFORE_COLON],
    ["tab before the colon", "GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", ParseError.SPACE_BEFORE_COLON],
    ["invalid token character in a field name", "GET / HTTP/1.1\r\nHo(st: a\r\n\r\n", ParseError.BAD_HEADER_NAME],
    ["a field line without a colon", "GET / HTTP/1.1\r\nHost a\r\n\r\n", ParseError.SPACE_BEFORE_COLON],
    ["an empty field name", "GET / HTTP/1.1\r\n: a\r\nHost: a\r\n\r\n", ParseError.BAD_HEADER_NAME],
    ["a control character in a value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x01b\r\n\r\n", ParseError.BAD_HEADER_VALUE],
    ["DEL in a value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x7fb\r\n\r\n", ParseError.BAD_HEADER_VALUE],
    ["a missing Host on HTTP/1.1", "GET / HTTP/1.1\r\nX: y\r\n\r\n", ParseError.MISSING_HOST],
    ["a duplicate Host", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", ParseError.DUPLICATE_HOST],
    ["a duplicate Host on HTTP/1.0", "GET / HTTP/1.0\r\nHost: a\r\nhost: a\r\n\r\n", ParseError.DUPLICATE_HOST],
    ["a Host with a space", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", ParseError.BAD_HOST],
    ["a Host with a slash", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", ParseError.BAD_HOST],
    [
      "Content-Length with Transfer-Encoding",
      `POST / HTTP/1.1\r\n${H}Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n`,
      ParseError.CL_AND_TE,
    ],
    ["a signed Content-Length (+5)", `POST / HTTP/1.1\r\n${H}Content-Length: +5\r\n\r\n`, ParseError.BAD_CONTENT_LENGTH],
    ["Content-Length 1_0", `POST / HTTP/1.1\r\n${H}Content-Length: 1_0\r\n\r\n`, ParseError.BAD_CONTENT_LENGTH],
    [
      "a Content-Length list that disagrees",
      `POST / HTTP/1.1\r\n${H}Content-Length: 5, 6\r\n\r\n`,
      ParseError.DUPLICATE_CONTENT_LENGTH,
    ],
    [
      "two Content-Length fields that disagree",
      `POST / HTTP/1.1\r\n${H}Content-Length: 5\r\nContent-Length: 6\r\n\r\n`,
      ParseError.DUPLICATE_CONTENT_LENGTH,
    ],
    ["an empty Content-Length", `POST / HTTP/1.1\r\n${H}Content-Length:\r\n\r\n`, ParseError.BAD_CONTENT_LENGTH],
    ["a hex Content-Length", `POST / HTTP/1.1\r\n${H}Content-Length: 0x10\r\n\r\n`, ParseError.BAD_CONTENT_LENGTH],
    [
      "a Content-Length of 2^53 (no longer an exact integer)",
      `POST / HTTP/1.1\r\n${H}Content-Length: 9007199254740992\r\n\r\n`,
      ParseError.BAD_CONTENT_LENGTH,
    ],
    [
      "a Content-Length of 2^53 after leading zeros",
      `POST / HTTP/1.1\r\n${H}Content-Length: 00009007199254740992\r\n\r\n`,
      ParseError.BAD_CONTENT_LENGTH,
    ],
    ["a final coding other than chunked", `POST / HTTP/1.1\r\n${H}Transfer-Encoding: gzip\r\n\r\n`, ParseError.TE_NOT_CHUNKED],
    [
      "chunked followed by another coding",
      `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked, gzip\r\n\r\n`,
      ParseError.TE_NOT_CHUNKED,
    ],
    [
      "chunked twice",
      `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n`,
      ParseError.TE_NOT_CHUNKED,
    ],
    [
      "an unknown coding before chunked",
      `POST / HTTP/1.1\r\n${H}Transfer-Encoding: gzip, chunked\r\n\r\n`,
      ParseError.UNKNOWN_CODING,
    ],
    ["Transfer-Encoding in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", ParseError.TE_IN_HTTP10],
    ["obs-fold in Content-Length", `POST / HTTP/1.1\r\n${H}Content-Length:\r\n 5\r\n\r\n`, ParseError.FOLD_IN_FRAMING],
    [
      "obs-fold in Transfer-Encoding",
      `POST / HTTP/1.1\r\n${H}Transfer-Encoding: gzip,\r\n chunked\r\n\r\n`,
      ParseError.FOLD_IN_FRAMING,
    ],
    ["obs-fold in Host", "GET / HTTP/1.1\r\nHost: a\r\n b\r\n\r\n", ParseError.FOLD_IN_FRAMING],
    ["whitespace before the first field", "GET / HTTP/1.1\r\n Host: a\r\n\r\n", ParseError.BAD_FOLD],
    ["HTTP/2.0 in an HTTP/1 request line", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", ParseError.VERSION_NOT_SUPPORTED],
    ["the HTTP/2 connection preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", ParseError.VERSION_NOT_SUPPORTED],
    // HTTP-version is exactly "HTTP/" DIGIT "." DIGIT (RFC 9112 §2.3): "HTTP/3" is malformed, not another version.
    ["HTTP/3", "GET / HTTP/3\r\nHost: a\r\n\r\n", ParseError.BAD_VERSION],
    ["a lowercase version", "GET / http/1.1\r\nHost: a\r\n\r\n", ParseError.BAD_VERSION],
    ["a version without a minor digit", "GET / HTTP/1\r\nHost: a\r\n\r\n", ParseError.BAD_VERSION],
    ["a version with trailing garbage", "GET / HTTP/1.1x\r\nHost: a\r\n\r\n", ParseError.BAD_VERSION],
    ["two spaces after the method", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", ParseError.BAD_REQUEST_LINE],
    ["a request line without a version", "GET /\r\n\r\n", ParseError.BAD_REQUEST_LINE],
    ["a fragment in the target", "GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n", ParseError.BAD_TARGET],
    ["a raw non-ASCII byte in the target", "GET /caf\xe9 HTTP/1.1\r\nHost: a\r\n\r\n", ParseError.BAD_TARGET],
    ["a relative target", "GET foo HTTP/1.1\r\nHost: a\r\n\r\n", ParseError.BAD_TARGET],
    ["asterisk-form with GET", "GET * HTTP/1.1\r\nHost: a\r\n\r\n", ParseError.TARGET_FORM],
    ["an invalid method character", "G@T / HTTP/1.1\r\nHost: a\r\n\r\n", ParseError.BAD_METHOD],
    ["a request line over the limit", `GET /${"a".repeat(40)} HTTP/1.1\r\nHost: a\r\n\r\n`, ParseError.URI_TOO_LONG, small],
    [
      "a header section over the limit",
      `GET / HTTP/1.1\r\nHost: a\r\nX: ${"b".repeat(80)}\r\n\r\n`,
      ParseError.HEADERS_TOO_LARGE,
      small,
    ],
    [
      "a bare CR inside a field line longer than the header limit, before the limit (found by the fuzzer)",
      `GET / HTTP/1.1\r\nX: ${"a".repeat(10)}\r\x0b${"b".repeat(80)}\r\n\r\n`,
      ParseError.BARE_CR,
      small,
    ],
    [
      "a bare CR past the header limit (the limit came first)",
      `GET / HTTP/1.1\r\nX: ${"a".repeat(80)}\r\x0bb\r\n\r\n`,
      ParseError.HEADERS_TOO_LARGE,
      small,
    ],
    ["a bare LF past the header limit", `GET / HTTP/1.1\r\nX: ${"a".repeat(80)}\n\r\n`, ParseError.HEADERS_TOO_LARGE, small],
    ["a bare LF past the request-line limit", `GET /${"a".repeat(40)}\n\r\n`, ParseError.URI_TOO_LONG, small],
    ["a bare CR before the request-line limit", `GET /a\rb${"a".repeat(40)} HTTP/1.1\r\n\r\n`, ParseError.BARE_CR, small],
    ["too many header fields", "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", ParseError.TOO_MANY_HEADERS, small],
    ["an unsupported expectation", `GET / HTTP/1.1\r\n${H}Expect: 200-ok\r\n\r\n`, ParseError.EXPECTATION_FAILED],
    [
      "a flood of empty lines before the request line",
      `${"\r\n".repeat(6)}GET / HTTP/1.1\r\n${H}\r\n`,
      ParseError.BAD_REQUEST_LINE,
    ],
  ];
  for (const [name, raw, code, limits] of cases) {
    test(`rejects ${name}`, () => {
      expect(parseAllWays(raw, limits).error).toBe(code);
    });
  }

  test("detects a bare CR before any LF arrives (no wait for the limit)", () => {
    const p = new RequestParser(defaultHeadLimits());
    const b = enc("GET / HTTP/1.1\rX");
    expect(p.execute(b, 0, b.length)).toBe(-ParseError.BARE_CR);
  });

  test("reports 414 before the line ends once the limit is passed", () => {
    const p = new RequestParser(small);
    const b = enc(`GET /${"a".repeat(100)}`);
    expect(p.execute(b, 0, b.length)).toBe(-ParseError.URI_TOO_LONG);
  });

  test("reports 431 before the head ends once the limit is passed", () => {
    const p = new RequestParser(small);
    const b = enc(`GET / HTTP/1.1\r\nX: ${"a".repeat(100)}`);
    expect(p.execute(b, 0, b.length)).toBe(-ParseError.HEADERS_TOO_LARGE);
  });
});

describe("parser reuse", () => {
  test("parses pipelined heads one after another with one parser", () => {
    const p = new RequestParser(defaultHeadLimits());
    const b = enc(`GET /1 HTTP/1.1\r\n${H}\r\nGET /2 HTTP/1.1\r\n${H}X: y\r\n\r\n`);
    const n1 = p.execute(b, 0, b.length);
    expect(summarize(p, b, 0, n1).target).toBe("/1");
    const n2 = p.execute(b, n1, b.length);
    const s2 = summarize(p, b, n1, n2);
    expect(s2.target).toBe("/2");
    expect(s2.fields?.length).toBe(2);
    expect(n1 + n2).toBe(b.length);
  });
});

describe("Content-Length is capped by value, not by digit count (RFC 9110 §8.6: 1*DIGIT)", () => {
  test("accepts leading zeros, 16 and 40 of them", () => {
    expect(parseAllWays(`POST / HTTP/1.1\r\n${H}Content-Length: 0000000000000005\r\n\r\n`).contentLength).toBe(5);
    expect(parseAllWays(`POST / HTTP/1.1\r\n${H}Content-Length: ${"0".repeat(40)}5\r\n\r\n`).contentLength).toBe(5);
  });

  test("accepts 2^53 - 1, the largest exact value (the connection answers 413 beyond its limit)", () => {
    expect(parseAllWays(`POST / HTTP/1.1\r\n${H}Content-Length: 9007199254740991\r\n\r\n`).contentLength).toBe(
      Number.MAX_SAFE_INTEGER,
    );
  });
});

const hostRequest = (host: string): string => `GET / HTTP/1.1\r\nHost: ${host}\r\n\r\n`;

describe('Host = uri-host [ ":" port ] (RFC 9110 §7.2, RFC 3986 §3.2.2–3.2.3)', () => {
  const valid = [
    "a.example",
    "a.example:8080",
    "a.example:",
    "[::1]:80",
    "[::1]",
    "[::]",
    "[2001:db8::1]",
    "[1:2:3:4:5:6:7:8]",
    "[1:2:3:4:5:6:7::]",
    "[::2:3:4:5:6:7:8]",
    "[1:2:3:4:5:6:1.2.3.4]",
    "[::ffff:1.2.3.4]",
    "[FE80::aBcD]",
    "[v1.x]",
    "[V7f.a:b!$]",
    "127.0.0.1:80",
    "xn--bcher-kva.example",
    "A.EXAMPLE",
    "a_b.example",
    "%41.example",
    "a!$&'()*+;=~b",
  ];
  for (const host of valid) {
    test(`accepts Host: ${host}`, () => {
      const r = parseAllWays(hostRequest(host));
      expect(r.error).toBeUndefined();
      expect(r.fields?.[0]).toEqual(["Host", host]);
    });
  }

  test("accepts an empty Host (RFC 9110 §7.2: the target has no authority)", () => {
    expect(parseAllWays("GET / HTTP/1.1\r\nHost:\r\n\r\n").fields?.[0]).toEqual(["Host", ""]);
  });

  const invalid: Array<[string, string]> = [
    ["a.example:x", "a non-digit port"],
    ["a.example:80:80", "two ports"],
    ["::1", "an IPv6 address without brackets"],
    ["[::1", "an unclosed bracket"],
    ["[::1]x", "bytes after the bracket"],
    ["[::1]:x", "a non-digit port after a literal"],
    ["[a.example]", "a name in brackets"],
    ["[]", "empty brackets"],
    ["a.example,b.example", "a comma (two Host values joined into a list)"],
    ["a b", "a space"],
    ["@a", "an empty userinfo"],
    ["a@b", "userinfo"],
    ["u:p@a.example", "userinfo with a password"],
    ["[1:2:3:4:5:6:7:8:9]", "nine IPv6 pieces"],
    ["[1:2:3:4:5:6:7]", "seven IPv6 pieces and no ::"],
    ["[::1::2]", "two :: in an IPv6 address"],
    ["[12345::]", "a five-digit IPv6 piece"],
    ["[1:::2]", "three colons in an IPv6 address"],
    ["[:1:2:3:4:5:6:7]", "a leading single colon"],
    ["[1:2:3:4:5:6:7:]", "a trailing single colon"],
    ["[g::1]", "a non-hex IPv6 piece"],
    ["[::1.2.3]", "a short IPv4 tail"],
    ["[::1.2.3.256]", "an IPv4 octet over 255"],
    ["[::1.2.3.04]", "an IPv4 octet with a leading zero"],
    ["[::1.2.3.4:5]", "a piece after the IPv4 tail"],
    ["[1:2:3:4:5:6:7:1.2.3.4]", "nine pieces counting the IPv4 tail"],
    ["[v1]", "an IPvFuture without a dot"],
    ["[v.x]", "an IPvFuture without a version"],
    ["[v1.]", "an IPvFuture without an address"],
    ["%4.example", "a truncated pct-encoding"],
    ["%zz.example", "a non-hex pct-encoding"],
    [":80", "a port without a host (RFC 9110 §4.2.1)"],
    ["a/b", "a slash"],
    ["a\xe9", "a non-ASCII byte"],
  ];
  for (const [host, what] of invalid) {
    test(`rejects Host: ${JSON.stringify(host)} (${what})`, () => {
      expect(parseAllWays(hostRequest(host)).error).toBe(ParseError.BAD_HOST);
    });
  }
});

describe("request-target form by method (RFC 9112 §3.2.1–3.2.4)", () => {
  const ok: Array<[string, number, string]> = [
    ["GET http://a.example/x?y", TargetForm.ABSOLUTE, "a.example"],
    ["GET HTTPS://a.example:8443", TargetForm.ABSOLUTE, "a.example:8443"],
    ["GET http://a.example?q", TargetForm.ABSOLUTE, "a.example"],
    ["GET http://[::1]:80/", TargetForm.ABSOLUTE, "[::1]:80"],
    ["OPTIONS http://a.example", TargetForm.ABSOLUTE, "a.example"],
    ["OPTIONS *", TargetForm.ASTERISK, ""],
    ["CONNECT a.example:443", TargetForm.AUTHORITY, "a.example:443"],
    ["CONNECT [2001:db8::1]:443", TargetForm.AUTHORITY, "[2001:db8::1]:443"],
    ["CONNECT 127.0.0.1:80", TargetForm.AUTHORITY, "127.0.0.1:80"],
  ];
  for (const [line, form, authority] of ok) {
    test(`accepts ${line}`, () => {
      const r = parseAllWays(`${line} HTTP/1.1\r\n${H}\r\n`);
      expect(r.error).toBeUndefined();
      expect([r.form, r.authority]).toEqual([form, authority]);
    });
  }

  test("absolute-form still needs Host on HTTP/1.1 (RFC 9112 §3.2)", () => {
    expect(parseAllWays("GET http://a.example/ HTTP/1.1\r\n\r\n").error).toBe(ParseError.MISSING_HOST);
  });

  const bad: Array<[string, number]> = [
    ["CONNECT /", ParseError.TARGET_FORM],
    ["CONNECT *", ParseError.TARGET_FORM],
    ["CONNECT http://a/", ParseError.TARGET_FORM],
    ["CONNECT a.example", ParseError.BAD_AUTHORITY],
    ["CONNECT a.example:", ParseError.BAD_AUTHORITY],
    ["CONNECT :443", ParseError.BAD_AUTHORITY],
    ["CONNECT a.example:44x", ParseError.BAD_AUTHORITY],
    ["CONNECT [::1:443", ParseError.BAD_AUTHORITY],
    ["CONNECT user@a.example:443", ParseError.TARGET_USERINFO],
    ["connect a.example:443", ParseError.TARGET_FORM],
    ["GET a.example:80", ParseError.TARGET_FORM],
    ["GET *", ParseError.TARGET_FORM],
    ["PRI *", ParseError.TARGET_FORM],
    ["OPTIONS *x", ParseError.BAD_TARGET],
    ["GET http://user@a.example/", ParseError.TARGET_USERINFO],
    ["GET http://user:pw@a.example/", ParseError.TARGET_USERINFO],
    ["GET http:///x", ParseError.BAD_AUTHORITY],
    ["GET http://", ParseError.BAD_AUTHORITY],
    ["GET http://:80/", ParseError.BAD_AUTHORITY],
    ["GET http://a.example:x/", ParseError.BAD_AUTHORITY],
    ["GET http://[::1/", ParseError.BAD_AUTHORITY],
    ["GET http://a,b/", ParseError.BAD_AUTHORITY],
    ["GET ftp://a.example/", ParseError.BAD_SCHEME],
    ["GET httpx://a.example/", ParseError.BAD_SCHEME],
    ["GET h-t.tp://a.example/", ParseError.BAD_SCHEME],
    ["GET 1http://a.example/", ParseError.BAD_TARGET],
    ["GET http:/a.example/", ParseError.BAD_TARGET],
    ["GET urn:a:b", ParseError.BAD_TARGET],
  ];
  for (const [line, code] of bad) {
    test(`rejects ${line}`, () => {
      expect(parseAllWays(`${line} HTTP/1.1\r\n${H}\r\n`).error).toBe(code);
    });
  }
});

/** A POST head with `fields` (each a whole field line without its CRLF) after Host. */
const withFields = (...fields: string[]): string => `POST / HTTP/1.1\r\n${H}${fields.map((f) => `${f}\r\n`).join("")}\r\n`;

describe("obs-fold is refused in every field, so no value is read before it is unfolded (RFC 9112 §5.2)", () => {
  const cases: Array<[string, string, number]> = [
    ["obs-fold in an ordinary field", withFields("Content-Type: text/plain;", " charset=utf-8"), ParseError.OBS_FOLD],
    ["obs-fold continued with HTAB", withFields("X-A: a", "\tb"), ParseError.OBS_FOLD],
    [
      "Connection: close hidden by an obs-fold (close then CRLF SP x)",
      withFields("Connection: close", " x"),
      ParseError.OBS_FOLD,
    ],
    [
      "Connection: upgrade hidden by an obs-fold",
      withFields("Upgrade: websocket", "Connection: upgrade", " x"),
      ParseError.OBS_FOLD,
    ],
    ["HTTP/1.0 keep-alive hidden by an obs-fold", "GET / HTTP/1.0\r\nConnection: keep-alive\r\n x\r\n\r\n", ParseError.OBS_FOLD],
    ["an obs-fold of whitespace alone after Connection: close", withFields("Connection: close", " \t"), ParseError.OBS_FOLD],
    [
      "Expect: 100-continue folded onto its own line",
      withFields("Content-Length: 5", "Expect:", " 100-continue"),
      ParseError.OBS_FOLD,
    ],
    ["an obs-fold in Cookie", withFields("Cookie: a=1;", " b=2"), ParseError.OBS_FOLD],
    ["an obs-fold in Upgrade", withFields("Upgrade: websocket,", " h2c"), ParseError.OBS_FOLD],
    ["an obs-fold line holding a bad byte (the fold comes first)", withFields("X-A: a", " b\x01c"), ParseError.OBS_FOLD],
    ["an obs-fold after an empty Transfer-Encoding", withFields("Transfer-Encoding:", " chunked"), ParseError.FOLD_IN_FRAMING],
    ["an obs-fold in a second Host", "GET / HTTP/1.1\r\nX: y\r\nHost:\r\n a\r\n\r\n", ParseError.FOLD_IN_FRAMING],
  ];
  for (const [name, raw, code] of cases) {
    test(`rejects ${name}`, () => {
      expect(parseAllWays(raw).error).toBe(code);
    });
  }
});

describe("the request-target is checked against its grammar (RFC 9112 §3.2, RFC 3986 §2–§3)", () => {
  const bad: Array<[string, number]> = [
    ["GET /<script>", ParseError.BAD_TARGET],
    ['GET /a"b', ParseError.BAD_TARGET],
    ...[..."{}|\\^`<>"].map((c): [string, number] => [`GET /a${c}b`, ParseError.BAD_TARGET]),
    ["GET /[a]", ParseError.BAD_TARGET],
    ["CONNECT /[a]", ParseError.BAD_TARGET],
    ["GET /a]", ParseError.BAD_TARGET],
    ["GET /?a=[b]", ParseError.BAD_TARGET],
    ["GET /%zz", ParseError.BAD_TARGET],
    ["GET /%4g", ParseError.BAD_TARGET],
    ["GET /a%", ParseError.BAD_TARGET],
    ["GET /a%4", ParseError.BAD_TARGET],
    ["GET /?a=<b>", ParseError.BAD_TARGET],
    ["GET /?a%", ParseError.BAD_TARGET],
    ["GET /?a=%zz", ParseError.BAD_TARGET],
    ["GET /a\x7fb", ParseError.BAD_TARGET],
    ["GET /a\x01b", ParseError.BAD_TARGET],
    ["GET /a\tb", ParseError.BAD_TARGET],
    ["GET /a\0b", ParseError.NUL],
    ["GET http://b/\\x", ParseError.BAD_TARGET],
    ["GET http://b/[x]", ParseError.BAD_TARGET],
    ["GET http://b?q=]", ParseError.BAD_TARGET],
    ["GET http://b/%zz", ParseError.BAD_TARGET],
    ["GET http://b/a%2", ParseError.BAD_TARGET],
    ["GET http://b{/", ParseError.BAD_TARGET],
    ["GET http://%zz/", ParseError.BAD_TARGET],
    ["GET http://[::1/]", ParseError.BAD_AUTHORITY],
    ["CONNECT a%zz.example:443", ParseError.BAD_TARGET],
    ["CONNECT a.example:443<", ParseError.BAD_TARGET],
    ["OPTIONS *%", ParseError.BAD_TARGET],
  ];
  for (const [line, code] of bad) {
    test(`rejects ${JSON.stringify(line)}`, () => {
      expect(parseAllWays(`${line} HTTP/1.1\r\n${H}\r\n`).error).toBe(code);
    });
  }

  const good = [
    "GET /a%2Fb%C3%a9",
    "GET /!$&'()*+,;=:@-._~/%7E",
    "GET /a/b?c=d&e=/f?g:h@i",
    "GET /?",
    "GET //a",
    "GET http://[::1]:80/a?b=%20",
    "GET http://%41.example/",
    "GET https://a.example?x=y/z",
    "CONNECT [::1]:443",
    "CONNECT %41.example:443",
  ];
  for (const line of good) {
    test(`accepts ${JSON.stringify(line)}`, () => {
      const r = parseAllWays(`${line} HTTP/1.1\r\n${H}\r\n`);
      expect(r.error).toBeUndefined();
      expect(r.target).toBe(line.slice(line.indexOf(" ") + 1));
    });
  }

  test("a bad target byte is refused as soon as it arrives, before the line ends", () => {
    for (const partial of ["GET /<", "GET /%z", "GET /a%4x", "GET /[", "GET http://b/["]) {
      const p = new RequestParser(defaultHeadLimits());
      const b = enc(partial);
      // A bracket in absolute-form is decided once the authority's end is known, with the line.
      expect(p.execute(b, 0, b.length)).toBe(partial.startsWith("GET http") ? 0 : -ParseError.BAD_TARGET);
    }
  });
});

describe("only the target's length is 414: method 501, version 400 (RFC 9112 §3, §2.3; RFC 9110 §15.5.15)", () => {
  const line64: HeadLimits = { ...defaultHeadLimits(), maxRequestLine: 64 };
  const cases: Array<[string, string, number, HeadLimits?]> = [
    [
      "a 70-byte method under a 64-byte line limit",
      `${"A".repeat(70)} / HTTP/1.1\r\n${H}\r\n`,
      ParseError.METHOD_TOO_LONG,
      line64,
    ],
    [
      "a 33-byte method under the default limit",
      `${"A".repeat(MAX_METHOD + 1)} / HTTP/1.1\r\n${H}\r\n`,
      ParseError.METHOD_TOO_LONG,
    ],
    ["a method without an end", "A".repeat(100), ParseError.METHOD_TOO_LONG, line64],
    ["an overlong version (HTTP/1.1111…)", `GET / HTTP/1.1${"1".repeat(80)}\r\n${H}\r\n`, ParseError.BAD_VERSION, line64],
    ["an overlong version without an end", `GET / HTTP/1.1${"1".repeat(80)}`, ParseError.BAD_VERSION, line64],
    ["a version with a two-digit major", `GET / HTTP/11.1\r\n${H}\r\n`, ParseError.BAD_VERSION],
    ["a version with a two-digit minor", `GET / HTTP/1.10\r\n${H}\r\n`, ParseError.BAD_VERSION],
    ["a version without its minor", `GET / HTTP/2\r\n${H}\r\n`, ParseError.BAD_VERSION],
    ["a well-formed HTTP/0.9", `GET / HTTP/0.9\r\n${H}\r\n`, ParseError.VERSION_NOT_SUPPORTED],
    ["a well-formed HTTP/9.9", `GET / HTTP/9.9\r\n${H}\r\n`, ParseError.VERSION_NOT_SUPPORTED],
    ["a target that fills a 64-byte line", `GET /${"a".repeat(60)} HTTP/1.1\r\n${H}\r\n`, ParseError.URI_TOO_LONG, line64],
    [
      "a target that leaves no room for the version in a 64-byte line",
      `GET /${"a".repeat(51)} HTTP/1.1\r\n${H}\r\n`,
      ParseError.URI_TOO_LONG,
      line64,
    ],
    [
      "a malformed version past a long target (the limit came first)",
      `GET /${"a".repeat(60)} HTTP/1.1x`,
      ParseError.URI_TOO_LONG,
      line64,
    ],
  ];
  for (const [name, raw, code, limits] of cases) {
    test(`rejects ${name}`, () => {
      expect(parseAllWays(raw, limits).error).toBe(code);
    });
  }

  test(`accepts a ${MAX_METHOD}-byte method and a line of exactly the limit`, () => {
    expect(parseAllWays(`${"A".repeat(MAX_METHOD)} / HTTP/1.1\r\n${H}\r\n`).method).toBe("A".repeat(MAX_METHOD));
    const exact = `GET /${"a".repeat(50)} HTTP/1.1`;
    expect(exact.length).toBe(64);
    expect(parseAllWays(`${exact}\r\n${H}\r\n`, line64).error).toBeUndefined();
  });

  test("the method is 501 at its first byte too many, the version 400 at its ninth byte", () => {
    const method = new RequestParser(line64);
    const m = enc("A".repeat(MAX_METHOD + 1));
    expect(method.execute(m, 0, m.length - 1)).toBe(0);
    expect(method.execute(m, 0, m.length)).toBe(-ParseError.METHOD_TOO_LONG);
    const version = new RequestParser(line64);
    const v = enc("GET / HTTP/1.11");
    expect(version.execute(v, 0, v.length - 1)).toBe(0);
    expect(version.execute(v, 0, v.length)).toBe(-ParseError.BAD_VERSION);
  });
});

describe("Transfer-Encoding is one list however many field lines carry it (RFC 9110 §5.3, RFC 9112 §6.1, §6.3)", () => {
  // [one field line, the same codings over several, the verdict: an error code, or "chunked"]
  const cases: Array<[string, string[], number | "chunked"]> = [
    ["gzip, chunked", ["gzip", "chunked"], ParseError.UNKNOWN_CODING],
    ["identity, chunked", ["identity", "chunked"], ParseError.UNKNOWN_CODING],
    ["gzip, deflate, chunked", ["gzip", "deflate, chunked"], ParseError.UNKNOWN_CODING],
    ["gzip;q=1, chunked", ["gzip;q=1", "chunked"], ParseError.UNKNOWN_CODING],
    ['gzip; a="x, y", chunked', ['gzip; a="x, y"', "chunked"], ParseError.UNKNOWN_CODING],
    ["chunked;x=1, chunked", ["chunked;x=1", "chunked"], ParseError.UNKNOWN_CODING],
    ["gzip", ["gzip", ""], ParseError.TE_NOT_CHUNKED],
    ["gzip, gzip", ["gzip", "gzip"], ParseError.TE_NOT_CHUNKED],
    ["chunked, gzip", ["chunked", "gzip"], ParseError.TE_NOT_CHUNKED],
    ["chunked, chunked", ["chunked", "chunked"], ParseError.TE_NOT_CHUNKED],
    ["gzip, chunked, gzip", ["gzip, chunked", "gzip"], ParseError.TE_NOT_CHUNKED],
    ["chunked;x=1", ["chunked;x=1", ""], ParseError.TE_NOT_CHUNKED],
    ["", ["", ""], ParseError.TE_NOT_CHUNKED],
    ["g@zip, chunked", ["g@zip", "chunked"], ParseError.BAD_TRANSFER_ENCODING],
    ["gzip chunked", ["gzip chunked", ""], ParseError.BAD_TRANSFER_ENCODING],
    ["gzip;q, chunked", ["gzip;q", "chunked"], ParseError.BAD_TRANSFER_ENCODING],
    ["gzip;=1, chunked", ["gzip;=1", "chunked"], ParseError.BAD_TRANSFER_ENCODING],
    ['gzip;q="1, chunked', ['gzip;q="1', "chunked"], ParseError.BAD_TRANSFER_ENCODING],
    [", chunked", ["", "chunked"], "chunked"],
    ["chunked, ", ["chunked", ""], "chunked"],
    ["Chunked", ["", "CHUNKED"], "chunked"],
  ];
  for (const [line, lines, verdict] of cases) {
    test(`Transfer-Encoding: ${JSON.stringify(line)} and ${JSON.stringify(lines)} on separate lines get the same verdict`, () => {
      const one = parseAllWays(withFields(`Transfer-Encoding: ${line}`));
      const several = parseAllWays(withFields(...lines.map((l) => `Transfer-Encoding: ${l}`)));
      for (const r of [one, several]) {
        if (verdict === "chunked") expect([r.error, r.chunked]).toEqual([undefined, true]);
        else expect(r.error).toBe(verdict);
      }
    });
  }
});

describe("Expect is one list however many field lines carry it (RFC 9110 §5.3, §10.1.1)", () => {
  // [one field line, the same over several, the verdict: 100-continue expected, none, or 417]
  const cases: Array<[string, string[], "continue" | "none" | number]> = [
    ["100-continue, 100-continue", ["100-continue", "100-continue"], "continue"],
    ["100-Continue", ["", "100-CONTINUE"], "continue"],
    [", 100-continue ,", ["", "100-continue"], "continue"],
    ["100-continue, foo", ["100-continue", "foo"], ParseError.EXPECTATION_FAILED],
    ["foo, 100-continue", ["foo", "100-continue"], ParseError.EXPECTATION_FAILED],
    ["100-continue;x=1", ["100-continue;x=1", ""], ParseError.EXPECTATION_FAILED],
    ["100-continue=1", ["100-continue=1", "100-continue"], ParseError.EXPECTATION_FAILED],
    ["100-continue 100-continue", ["100-continue 100-continue", ""], ParseError.EXPECTATION_FAILED],
    ["", ["", ""], "none"],
  ];
  for (const [line, lines, verdict] of cases) {
    test(`Expect: ${JSON.stringify(line)} and ${JSON.stringify(lines)} on separate lines get the same verdict`, () => {
      const one = parseAllWays(withFields("Content-Length: 5", `Expect: ${line}`));
      const several = parseAllWays(withFields("Content-Length: 5", ...lines.map((l) => `Expect: ${l}`)));
      for (const r of [one, several]) {
        if (typeof verdict === "number") expect(r.error).toBe(verdict);
        else expect([r.error, r.expectContinue]).toEqual([undefined, verdict === "continue"]);
      }
    });
  }
});

describe("an unmet expectation (417, a MAY: RFC 9110 §10.1.1) never hides a MUST-400 or a SHOULD-501, in either field order", () => {
  // [what else is wrong, its field lines (no Host line is added), the verdict]
  const cases: Array<[string, string[], number]> = [
    ["no Host on HTTP/1.1 (RFC 9112 §3.2)", ["Content-Length: 5"], ParseError.MISSING_HOST],
    ["two Host lines", ["Host: a", "Host: b"], ParseError.DUPLICATE_HOST],
    ["an invalid Host", ["Host: a b"], ParseError.BAD_HOST],
    [
      "Content-Length with Transfer-Encoding (smuggling, RFC 9112 §6.3)",
      [H.trim(), "Content-Length: 5", "Transfer-Encoding: chunked"],
      ParseError.CL_AND_TE,
    ],
    ["Content-Length twice", [H.trim(), "Content-Length: 5", "Content-Length: 5"], ParseError.DUPLICATE_CONTENT_LENGTH],
    ["a signed Content-Length", [H.trim(), "Content-Length: +5"], ParseError.BAD_CONTENT_LENGTH],
    ["a final coding other than chunked", [H.trim(), "Transfer-Encoding: gzip"], ParseError.TE_NOT_CHUNKED],
    ["a coding after chunked", [H.trim(), "Transfer-Encoding: chunked, gzip"], ParseError.TE_NOT_CHUNKED],
    ["a malformed Transfer-Encoding", [H.trim(), "Transfer-Encoding: g@zip, chunked"], ParseError.BAD_TRANSFER_ENCODING],
    ["an unknown coding before chunked (501)", [H.trim(), "Transfer-Encoding: gzip, chunked"], ParseError.UNKNOWN_CODING],
  ];
  for (const [what, fields, code] of cases) {
    test(`${what}: the same verdict with Expect: foo before or after it`, () => {
      const head = (lines: string[]): string => `POST / HTTP/1.1\r\n${lines.map((l) => `${l}\r\n`).join("")}\r\n`;
      expect(parseAllWays(head(["Expect: foo", ...fields])).error).toBe(code);
      expect(parseAllWays(head([...fields, "Expect: 100-continue, foo"])).error).toBe(code);
    });
  }
});

describe("Content-Length is exactly one 1*DIGIT value: a repeat is refused even when equal (RFC 9110 §8.6, RFC 9112 §6.3)", () => {
  const cases: Array<[string, string[], number]> = [
    ["Content-Length: 5 twice", ["Content-Length: 5", "Content-Length: 5"], ParseError.DUPLICATE_CONTENT_LENGTH],
    ["Content-Length: 5, 5", ["Content-Length: 5, 5"], ParseError.DUPLICATE_CONTENT_LENGTH],
    ["Content-Length: 5,5", ["Content-Length: 5,5"], ParseError.DUPLICATE_CONTENT_LENGTH],
    ["Content-Length: 5 ,5", ["Content-Length: 5 ,5"], ParseError.DUPLICATE_CONTENT_LENGTH],
    ["Content-Length: 5,,5", ["Content-Length: 5,,5"], ParseError.DUPLICATE_CONTENT_LENGTH],
    ["Content-Length: 5,", ["Content-Length: 5,"], ParseError.DUPLICATE_CONTENT_LENGTH],
    ["Content-Length: 5 then 5, 5", ["Content-Length: 5", "Content-Length: 5, 5"], ParseError.DUPLICATE_CONTENT_LENGTH],
    ["Content-Length: 0 twice", ["Content-Length: 0", "Content-Length: 0"], ParseError.DUPLICATE_CONTENT_LENGTH],
    ["Content-Length: ,5", ["Content-Length: ,5"], ParseError.BAD_CONTENT_LENGTH],
    ["Content-Length: 5 5", ["Content-Length: 5 5"], ParseError.BAD_CONTENT_LENGTH],
  ];
  for (const [name, fields, code] of cases) {
    test(`rejects ${name}`, () => {
      expect(parseAllWays(withFields(...fields)).error).toBe(code);
    });
  }

  test("rejects Content-Length: 5 twice on HTTP/1.0 too", () => {
    expect(parseAllWays("POST / HTTP/1.0\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n").error).toBe(
      ParseError.DUPLICATE_CONTENT_LENGTH,
    );
  });
});
