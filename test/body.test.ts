import { describe, expect, test } from "bun:test";
import { defaultBodyLimits } from "../src/config/limits.ts";
import { BodyDecoder, type BodyLimits } from "../src/http/body.ts";
import { BodyError } from "../src/http/codes.ts";

const enc = (s: string): Uint8Array => Uint8Array.from(s, (c) => c.charCodeAt(0));
const dec = (b: Uint8Array): string => String.fromCharCode(...b);

interface Outcome {
  data: string;
  consumed: number;
  done: boolean;
  error?: number;
  trailers: Array<[string, string]>;
}

/** Feed separate pieces (as separate socket reads), collecting data runs until done or error. */
function decode(pieces: Uint8Array[], start: (d: BodyDecoder) => void, limits?: BodyLimits): Outcome {
  const d = new BodyDecoder(limits ?? defaultBodyLimits());
  start(d);
  let data = "";
  let consumed = 0;
  for (const piece of pieces) {
    let pos = 0;
    while (pos < piece.length && !d.done) {
      const n = d.execute(piece, pos, piece.length);
      if (n < 0) return { data, consumed: -1, done: false, error: -n, trailers: [] };
      data += dec(piece.subarray(d.dataStart, d.dataEnd));
      pos += n;
      consumed += n;
    }
    if (d.done) break;
  }
  return { data, consumed, done: d.done, trailers: d.trailers };
}

/** Whole, byte by byte, and every two-piece split must agree. */
function allWays(raw: string, start: (d: BodyDecoder) => void, limits?: BodyLimits): Outcome {
  const bytes = enc(raw);
  const whole = decode([bytes], start, limits);
  const ones = decode(
    Array.from(bytes, (_, i) => bytes.subarray(i, i + 1)),
    start,
    limits,
  );
  expect(ones).toEqual(whole);
  for (let cut = 1; cut < bytes.length; cut++) {
    const split = decode([bytes.slice(0, cut), bytes.slice(cut)], start, limits);
    if (JSON.stringify(split) !== JSON.stringify(whole)) {
      throw new Error(`split at ${cut} gave ${JSON.stringify(split)}, whole gave ${JSON.stringify(whole)}`);
    }
  }
  return whole;
}

const chunked = (d: BodyDecoder): void => d.startChunked();

describe("decodes chunked bodies (whole, byte by byte, every split)", () => {
  test("one chunk and the last chunk", () => {
    const raw = "5\r\nhello\r\n0\r\n\r\n";
    expect(allWays(raw, chunked)).toEqual({ data: "hello", consumed: raw.length, done: true, trailers: [] });
  });

  test("several chunks with upper- and lowercase hex sizes", () => {
    expect(allWays("A\r\n0123456789\r\na\r\nabcdefghij\r\n0\r\n\r\n", chunked).data).toBe("0123456789abcdefghij");
  });

  test("chunk extensions, tokens and quoted strings, with BWS", () => {
    const raw = '5 ; a=b;c="q\\"x" ;flag\r\nhello\r\n0;last\r\n\r\n';
    expect(allWays(raw, chunked).data).toBe("hello");
  });

  test("trailer fields", () => {
    const r = allWays("3\r\nabc\r\n0\r\nX-Checksum: 12\r\nServer-Timing:  db;dur=5 \r\n\r\n", chunked);
    expect(r.trailers).toEqual([
      ["X-Checksum", "12"],
      ["Server-Timing", "db;dur=5"],
    ]);
  });

  test("a trailer section of exactly the limit, CRLFs counted and the final empty line not", () => {
    const limits: BodyLimits = { ...defaultBodyLimits(), maxTrailerBytes: 16 };
    expect(allWays("0\r\nA: 123\r\nB: 123\r\n\r\n", chunked, limits).trailers).toEqual([
      ["A", "123"],
      ["B", "123"],
    ]);
  });

  test("stops at the end of the body, leaving the next request's bytes", () => {
    const body = "2\r\nok\r\n0\r\n\r\n";
    const r = allWays(`${body}GET / HTTP/1.1\r\n`, chunked);
    expect(r.consumed).toBe(body.length);
    expect(r.data).toBe("ok");
  });

  test("leading zeros in a chunk size", () => {
    expect(allWays("0005\r\nhello\r\n000\r\n\r\n", chunked).data).toBe("hello");
  });

  test("16 and 40 leading zeros: chunk-size = 1*HEXDIG caps the value, not the digits (RFC 9112 §7.1)", () => {
    expect(allWays("0000000000000005\r\nhello\r\n0\r\n\r\n", chunked).data).toBe("hello");
    expect(allWays(`${"0".repeat(40)}5\r\nhello\r\n${"0".repeat(40)}\r\n\r\n`, chunked).data).toBe("hello");
  });

  test("BWS after the size before a chunk extension (RFC 9112 §7.1.1)", () => {
    expect(allWays("5 ;a=b\r\nhello\r\n0\t;x\r\n\r\n", chunked).data).toBe("hello");
  });

  test("framing in proportion to its data: 300 one-byte chunks, and a chunk line of every digit and extension byte allowed", () => {
    expect(allWays(`${"1\r\nx\r\n".repeat(300)}0\r\n\r\n`, chunked).data).toBe("x".repeat(300));
    const limits: BodyLimits = { ...defaultBodyLimits(), maxChunkExt: 16 };
    const longest = `${"0".repeat(255)}1;${"a".repeat(15)}\r\nx\r\n`;
    expect(allWays(`${longest}0\r\n\r\n`, chunked, limits).data).toBe("x");
    // The allowance is per chunk's data: the excess of small chunks is paid back by large ones.
    const big = `400\r\n${"y".repeat(1024)}\r\n`;
    expect(allWays(`${longest.repeat(3)}${big}${longest.repeat(3)}0\r\n\r\n`, chunked, limits).data.length).toBe(1030);
  });
});

describe("decodes a trailer line longer than a call takes arguments", () => {
  test("a trailer line of 2 MB under a trailer limit that allows it (limits.trailer_bytes goes to 16 MiB): decoded, not a RangeError from spreading 2 million arguments", () => {
    const limits: BodyLimits = { ...defaultBodyLimits(), maxTrailerBytes: 4 * 1024 * 1024 };
    const value = "v".repeat(2_000_000);
    const bytes = enc(`3\r\nabc\r\n0\r\nX-Big: ${value}\r\nY: 1\r\n\r\n`);
    // Whole and a few splits: every split of 2 MB would take hours.
    for (const cut of [0, 14, 1_000_000, bytes.length - 3]) {
      const pieces = cut === 0 ? [bytes] : [bytes.subarray(0, cut), bytes.subarray(cut)];
      const r = decode(pieces, chunked, limits);
      expect(r.done).toBe(true);
      expect(r.trailers.map(([name, v]) => [name, v.length])).toEqual([
        ["X-Big", value.length],
        ["Y", 1],
      ]);
    }
  });
});

describe("rejects malformed chunked bodies with a precise code (whole, byte by byte, every split)", () => {
  const tight: BodyLimits = { ...defaultBodyLimits(), maxBody: 8, maxChunkExt: 8, maxTrailerBytes: 16, maxTrailers: 1 };
  const cases: Array<[string, string, number, BodyLimits?]> = [
    ["chunk data not followed by CRLF", "5\r\nhelloX\r\n0\r\n\r\n", BodyError.BAD_CHUNK_END],
    ["chunk data followed by a bare LF", "5\r\nhello\n0\r\n\r\n", BodyError.BAD_CHUNK_END],
    ["a non-hex chunk size", "zz\r\nhello\r\n", BodyError.BAD_CHUNK_SIZE],
    ["an empty chunk size", "\r\nhello\r\n", BodyError.BAD_CHUNK_SIZE],
    ["a negative chunk size", "-1\r\n", BodyError.BAD_CHUNK_SIZE],
    ["a 0x-prefixed chunk size", "0x5\r\nhello\r\n", BodyError.BAD_CHUNK_SIZE],
    ["a bare LF after the chunk size", "5\nhello\r\n", BodyError.BAD_CHUNK_SIZE],
    ["a chunk size overflow", "fffffffffffffff\r\n", BodyError.CHUNK_SIZE_OVERFLOW],
    ["a chunk size of 2^53, past exact integers", "20000000000000\r\n", BodyError.CHUNK_SIZE_OVERFLOW],
    ["a chunk size of 2^53 after leading zeros", "0000020000000000000\r\n", BodyError.CHUNK_SIZE_OVERFLOW],
    ["a chunk size of 2^53 - 1 (exact, but over the body limit: 413)", "1fffffffffffff\r\n", BodyError.TOO_LARGE],
    ["a flood of leading zeros in a chunk size", `${"0".repeat(300)}5\r\nhello\r\n`, BodyError.CHUNK_SIZE_TOO_LONG],
    ["a space after the chunk size (smuggling: 5 SP CRLF)", "5 \r\nhello\r\n0\r\n\r\n", BodyError.WS_AFTER_CHUNK_SIZE],
    ["a tab after the chunk size", "5\t\r\nhello\r\n0\r\n\r\n", BodyError.WS_AFTER_CHUNK_SIZE],
    ["mixed whitespace after the chunk size", "5 \t \r\nhello\r\n0\r\n\r\n", BodyError.WS_AFTER_CHUNK_SIZE],
    ["whitespace after the last chunk's size", "5\r\nhello\r\n0 \r\n\r\n", BodyError.WS_AFTER_CHUNK_SIZE],
    ["whitespace after a chunk extension value", "5;a=b \r\nhello\r\n0\r\n\r\n", BodyError.BAD_CHUNK_EXT],
    ["whitespace after a chunk extension name", "5;a \r\nhello\r\n0\r\n\r\n", BodyError.BAD_CHUNK_EXT],
    ["whitespace after a quoted chunk extension", '5;a="b"\t\r\nhello\r\n0\r\n\r\n', BodyError.BAD_CHUNK_EXT],
    ["a bare CR after the chunk size", "5\rhello\r\n0\r\n\r\n", BodyError.BAD_CHUNK_SIZE],
    ["a bare LF in a chunk extension", "5;a\nhello\r\n0\r\n\r\n", BodyError.BAD_CHUNK_EXT],
    ["a bare LF after the last chunk", "0\n\r\n", BodyError.BAD_CHUNK_SIZE],
    ["a bare LF ending the trailer section", "0\r\n\n", BodyError.BAD_TRAILER],
    ["a bare CR ending the trailer section", "0\r\n\rX", BodyError.BAD_TRAILER],
    ["a NUL in the chunk size", "5\0\r\nhello\r\n", BodyError.BAD_CHUNK_SIZE],
    ["an obs-fold in a trailer", "0\r\nA: b\r\n c\r\n\r\n", BodyError.OBS_FOLD_IN_TRAILER],
    ["an obs-fold with HTAB in a trailer", "0\r\nA: b\r\n\tc\r\n\r\n", BodyError.OBS_FOLD_IN_TRAILER],
    ["whitespace before the first trailer", "0\r\n A: b\r\n\r\n", BodyError.OBS_FOLD_IN_TRAILER],
    ["whitespace before a trailer's colon", "0\r\nA : b\r\n\r\n", BodyError.BAD_TRAILER],
    ["a NUL in a trailer value", "0\r\nA: b\0\r\n\r\n", BodyError.BAD_TRAILER],
    ["an extension without a name", "5;=x\r\nhello\r\n0\r\n\r\n", BodyError.BAD_CHUNK_EXT],
    ["an extension with a bad character", "5;a@b\r\nhello\r\n0\r\n\r\n", BodyError.BAD_CHUNK_EXT],
    ["an unterminated quoted extension", '5;a="x\r\nhello\r\n', BodyError.BAD_CHUNK_EXT],
    ["an extension over the limit", "5;aaaaaaaaaaaaaa\r\nhello\r\n", BodyError.CHUNK_EXT_TOO_LONG, tight],
    [
      "chunk extensions that add up, one-byte chunk after chunk, past four of the longest chunk lines (RFC 9112 §7.1.1)",
      "1;aaaaaaa\r\nx\r\n".repeat(8) + `${"0".repeat(200)}1;aaaaaaa\r\nx\r\n`.repeat(6),
      BodyError.CHUNK_OVERHEAD,
      { ...tight, maxBody: 1000 },
    ],
    ["a trailer without a colon", "0\r\nBad Name: x\r\n\r\n", BodyError.BAD_TRAILER],
    ["a trailer with a bare LF", "0\r\nX: y\n\r\n", BodyError.BAD_TRAILER],
    ["a trailer with a CTL in its value", "0\r\nX: a\x01b\r\n\r\n", BodyError.BAD_TRAILER],
    ["a Content-Length trailer (re-framing after the body)", "0\r\nContent-Length: 5\r\n\r\n", BodyError.FORBIDDEN_TRAILER],
    ["a Transfer-Encoding trailer", "0\r\ntransfer-encoding: chunked\r\n\r\n", BodyError.FORBIDDEN_TRAILER],
    ["a Host trailer (re-routing after the body)", "0\r\nHOST: evil.example\r\n\r\n", BodyError.FORBIDDEN_TRAILER],
    ["a Connection trailer (found by the differential fuzzer)", "0\r\nConnection: close\r\n\r\n", BodyError.FORBIDDEN_TRAILER],
    ["a Trailer trailer", "0\r\nTrailer: X\r\n\r\n", BodyError.FORBIDDEN_TRAILER],
    ["too many trailers", "0\r\nA: 1\r\nB: 2\r\n\r\n", BodyError.TRAILERS_TOO_LARGE, tight],
    ["a trailer section over the limit", `0\r\nA: ${"x".repeat(20)}\r\n\r\n`, BodyError.TRAILERS_TOO_LARGE, tight],
    [
      "a trailer section over the limit in short lines",
      "0\r\nA: 1234567\r\nB: 1234567\r\n\r\n",
      BodyError.TRAILERS_TOO_LARGE,
      { ...tight, maxTrailers: 32 },
    ],
    [
      "a trailer section over the limit only once its CRLFs are counted (as the header limit counts them)",
      "0\r\nA: 12345\r\nB: 12\r\n\r\n",
      BodyError.TRAILERS_TOO_LARGE,
      { ...tight, maxTrailers: 32 },
    ],
    [
      "a trailer line whose CR passes the limit",
      "0\r\nA: 12345678901\r\n\r\n",
      BodyError.TRAILERS_TOO_LARGE,
      { ...tight, maxTrailerBytes: 14 },
    ],
    ["a body over the size limit (413)", "5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n", BodyError.TOO_LARGE, tight],
  ];
  for (const [name, raw, code, limits] of cases) {
    test(`rejects ${name}`, () => {
      expect(code).toBeGreaterThan(0);
      expect(allWays(raw, chunked, limits).error).toBe(code);
    });
  }
});

describe("decodes Content-Length bodies", () => {
  test("takes exactly Content-Length bytes however they arrive", () => {
    const r = allWays("helloGET /", (d) => d.startLength(5));
    expect(r).toEqual({ data: "hello", consumed: 5, done: true, trailers: [] });
  });

  test("a zero length is done at once", () => {
    const d = new BodyDecoder(defaultBodyLimits());
    d.startLength(0);
    expect(d.done).toBe(true);
    expect(d.execute(enc("x"), 0, 1)).toBe(0);
  });
});
