/**
 * @module test/fuzz/gen — fast-check generators: valid HTTP/1.1 request sequences (random
 * methods, target forms, hosts, fields, Content-Length and chunked bodies, pipelined), what
 * each must parse to, and mutations of their bytes (bit flips, inserted CR/LF/NUL/SP/HTAB and
 * separators, deletions, truncation, duplicated, reordered and added framing fields, huge
 * numbers). Everything is a pure function of fast-check's seed.
 */

import fc from "fast-check";

export interface Chunk {
  data: string;
  zeros: number;
  upper: boolean;
  ext: string;
}

export type Body =
  | { kind: "none" }
  | { kind: "length"; data: string }
  | { kind: "chunked"; chunks: Chunk[]; lastExt: string; trailers: Array<[string, string]> };

/** One valid request, as generated. */
export interface Req {
  leadingCRLF: boolean;
  method: string;
  target: string;
  version: "1.0" | "1.1";
  /** Field lines as sent: name, the value with its surrounding OWS as sent. */
  fields: Array<[string, string]>;
  body: Body;
}

/** A fuzz case: the bytes (latin1), where to cut them, and the requests they came from. */
export interface Case {
  reqs: Req[];
  mutations: Mutation[];
  bytes: Uint8Array;
  cuts: number[];
}

const ALPHA = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
const DIGIT = "0123456789";
const TCHARS = `!#$%&'*+-.^_\`|~${DIGIT}${ALPHA}`;
/** pchar less pct-encoded (RFC 3986 §3.3), and "/"; pct-encodings are added by pathText. */
const PATH_CHARS = `${ALPHA}${DIGIT}-._~!$&'()*+,;=:@/`;
/** field-vchar (RFC 9110 §5.5) with obs-text, and SP / HTAB inside a value. */
const VALUE_CHARS = Array.from({ length: 256 }, (_, i) => String.fromCharCode(i))
  .filter((c) => {
    const b = c.charCodeAt(0);
    return (b > 0x20 && b !== 0x7f) || b === 0x20 || b === 0x09;
  })
  .join("");
/** Names the generator keeps for the fields whose framing it controls. */
const RESERVED = new Set(["host", "content-length", "transfer-encoding", "connection", "upgrade", "expect", "te", "trailer"]);

const chars = (set: string, minLength: number, maxLength: number): fc.Arbitrary<string> =>
  fc.string({ unit: fc.constantFrom(...set), minLength, maxLength });

export const token = (maxLength = 12): fc.Arbitrary<string> => chars(TCHARS, 1, maxLength);

const KNOWN_METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE"];
export const method: fc.Arbitrary<string> = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom(...KNOWN_METHODS) },
  { weight: 1, arbitrary: fc.constant("CONNECT") },
  { weight: 1, arbitrary: token(8) },
);

const port = fc.oneof(
  fc.constant(""),
  fc.constant(":"),
  fc.nat(65535).map((n) => `:${n}`),
);

/** uri-host (RFC 3986 §3.2.2): reg-names, IPv4, IPv6 of every shape, IPvFuture, pct-encoding. */
export const uriHost: fc.Arbitrary<string> = fc.oneof(
  fc.domain(),
  fc.ipV4(),
  fc.ipV6().map((a) => `[${a}]`),
  fc.constantFrom("[v1.x]", "[V7f.a:b!$]", "%41.example", "a_b.example", "xn--bcher-kva.example", "A.EXAMPLE", "localhost"),
);

const hostValue = fc.tuple(uriHost, port).map(([h, p]) => h + p);

/** pct-encoded = "%" HEXDIG HEXDIG (RFC 3986 §2.1), in either case. */
const pctEncoded = fc
  .tuple(fc.constantFrom(..."0123456789abcdefABCDEF"), fc.constantFrom(..."0123456789abcdefABCDEF"))
  .map(([h, l]) => `%${h}${l}`);
/** Up to maxLength of `set`'s bytes and pct-encodings: a path's or a query's text. */
const pathText = (set: string, maxLength: number): fc.Arbitrary<string> =>
  fc
    .array(fc.oneof({ weight: 8, arbitrary: fc.constantFrom(...set) }, { weight: 1, arbitrary: pctEncoded }), { maxLength })
    .map((parts) => parts.join(""));

const path = fc
  .tuple(pathText(PATH_CHARS, 24), fc.option(pathText(`${PATH_CHARS}?`, 16), { nil: undefined }))
  .map(([p, q]) => `/${p}${q === undefined ? "" : `?${q}`}`);

const absolute = fc
  .tuple(fc.mixedCase(fc.constantFrom("http", "https")), uriHost, port, fc.oneof(fc.constant(""), path))
  .map(([scheme, host, p, rest]) => `${scheme}://${host}${p}${rest}`);

const authority = fc.tuple(uriHost, fc.nat(65535)).map(([h, p]) => `${h}:${p}`);

const target = (m: string): fc.Arbitrary<string> => {
  if (m === "CONNECT") return authority;
  if (m === "OPTIONS") return fc.oneof(fc.constant("*"), path, absolute);
  return fc.oneof({ weight: 4, arbitrary: path }, { weight: 1, arbitrary: absolute });
};

const ows = fc.constantFrom("", "", " ", "\t", "  ");
const fieldValue = fc
  .tuple(ows, chars(VALUE_CHARS, 0, 30), ows)
  .map(([a, v, b]) => `${a}${v.replace(/^[ \t]+|[ \t]+$/g, "")}${b}`);
const fieldName = token(16).filter((n) => !RESERVED.has(n.toLowerCase()));
const field = fc.tuple(fieldName, fieldValue);

/** quoted-string (RFC 9110 §5.6.4) with a quoted-pair now and then. */
const quoted = chars(`${ALPHA}${DIGIT} !#=;\t\\"\x80\xff`, 0, 8).map((s) => `"${s.replace(/[\\"]/g, "\\$&")}"`);
const bws = fc.constantFrom("", "", "", " ", "\t");
const chunkExt = fc
  .array(fc.tuple(bws, bws, token(6), fc.option(fc.tuple(bws, bws, fc.oneof(token(6), quoted)), { nil: undefined })), {
    maxLength: 2,
  })
  .map((exts) =>
    exts.map(([b1, b2, name, val]) => `${b1};${b2}${name}${val === undefined ? "" : `${val[0]}=${val[1]}${val[2]}`}`).join(""),
  );

const bodyData = (maxLength: number): fc.Arbitrary<string> =>
  fc.string({ unit: fc.integer({ min: 0, max: 255 }).map((b) => String.fromCharCode(b)), minLength: 0, maxLength });

const chunk: fc.Arbitrary<Chunk> = fc.record({
  data: bodyData(40).filter((d) => d.length > 0),
  zeros: fc.oneof({ weight: 6, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 40 }) }),
  upper: fc.boolean(),
  ext: fc.oneof({ weight: 3, arbitrary: fc.constant("") }, { weight: 1, arbitrary: chunkExt }),
});

const body = (version: string): fc.Arbitrary<Body> =>
  fc.oneof(
    { weight: 3, arbitrary: fc.constant<Body>({ kind: "none" }) },
    { weight: 2, arbitrary: bodyData(60).map<Body>((data) => ({ kind: "length", data })) },
    {
      weight: version === "1.1" ? 2 : 0,
      arbitrary: fc
        .record({
          chunks: fc.array(chunk, { maxLength: 4 }),
          lastExt: fc.oneof({ weight: 3, arbitrary: fc.constant("") }, { weight: 1, arbitrary: chunkExt }),
          trailers: fc.array(field, { maxLength: 2 }),
        })
        .map<Body>((b) => ({ kind: "chunked", ...b })),
    },
  );

export const request: fc.Arbitrary<Req> = fc
  .tuple(method, fc.constantFrom<"1.0" | "1.1">("1.1", "1.1", "1.1", "1.0"))
  .chain(([m, version]) =>
    fc.record({
      leadingCRLF: fc.oneof({ weight: 9, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
      method: fc.constant(m),
      target: target(m),
      version: fc.constant(version),
      host: version === "1.1" ? hostValue : fc.option(hostValue, { nil: undefined }),
      hostAt: fc.nat(),
      fields: fc.array(field, { maxLength: 5 }),
      connection: fc.option(fc.constantFrom("close", "keep-alive", "Keep-Alive, foo"), { nil: undefined }),
      expect: version === "1.1" ? fc.option(fc.constant("100-continue"), { nil: undefined }) : fc.constant(undefined),
      body: m === "CONNECT" ? fc.constant<Body>({ kind: "none" }) : body(version),
    }),
  )
  .map((r): Req => {
    const fields = [...r.fields];
    if (r.host !== undefined) fields.splice(r.hostAt % (fields.length + 1), 0, ["Host", r.host]);
    if (r.connection !== undefined) fields.push(["Connection", r.connection]);
    if (r.expect !== undefined) fields.push(["Expect", r.expect]);
    if (r.body.kind === "length") fields.push(["Content-Length", ` ${r.body.data.length}`]);
    if (r.body.kind === "chunked") fields.push(["Transfer-Encoding", "chunked"]);
    return { leadingCRLF: r.leadingCRLF, method: r.method, target: r.target, version: r.version, fields, body: r.body };
  });

/** The wire bytes of one request, as a latin1 string. */
export function serialize(r: Req): string {
  let s = `${r.leadingCRLF ? "\r\n" : ""}${r.method} ${r.target} HTTP/${r.version}\r\n`;
  for (const [n, v] of r.fields) s += `${n}:${v}\r\n`;
  s += "\r\n";
  const b = r.body;
  if (b.kind === "length") s += b.data;
  if (b.kind === "chunked") {
    for (const c of b.chunks) {
      const hex = c.data.length.toString(16);
      s += `${"0".repeat(c.zeros)}${c.upper ? hex.toUpperCase() : hex}${c.ext}\r\n${c.data}\r\n`;
    }
    s += `0${b.lastExt}\r\n`;
    for (const [n, v] of b.trailers) s += `${n}:${v}\r\n`;
    s += "\r\n";
  }
  return s;
}

/** A field value as a recipient sees it: without its surrounding OWS (RFC 9110 §5.5). */
export const trimOWS = (v: string): string => v.replace(/^[ \t]+|[ \t]+$/g, "");

export type Mutation =
  | { op: "flip"; at: number; bit: number }
  | { op: "insert"; at: number; bytes: string }
  | { op: "delete"; at: number; length: number }
  | { op: "truncate"; at: number }
  | { op: "dupLine"; at: number }
  | { op: "swapLines"; at: number; other: number }
  | { op: "addField"; at: number; line: string }
  | { op: "number"; at: number; digits: string };

const INSERTS = ["\r", "\n", "\0", " ", "\t", ",", ":", ";", '"', "\r\n", " \r\n", "\r\n ", "\r\n\r\n", "0", "f", "-", "+"];
const MORE_INSERTS = ["\\", "@", "[", "]", "%", "/", "*", "=", "\x7f", "\x80", "\xff", "\x0b", "\x0c", "#", "?"];
const FRAMING_LINES = [
  "Content-Length: 0",
  "Content-Length: 5",
  "Content-Length: 5, 5",
  "Content-Length: 18446744073709551616",
  "Transfer-Encoding: chunked",
  "Transfer-Encoding: gzip",
  "Transfer-Encoding: chunked, identity",
  "Transfer-Encoding: \tchunked",
  "Transfer-Encoding : chunked",
  "Host: a.example",
  "Host: [::1]:80",
  "Connection: close",
  "Connection: upgrade",
  "Upgrade: h2c",
  "Expect: 100-continue",
  " folded",
];
const NUMBERS = [
  "99999999999999999999",
  "9007199254740991",
  "9007199254740992",
  "18446744073709551616",
  "ffffffffffffffff",
  "1fffffffffffff",
  "0000000000000000000000000000000000000001",
  "-1",
  "1e3",
  "0x10",
  "",
  "1 2",
];

const at = fc.nat({ max: 1 << 20 });
export const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ op: fc.constant("flip" as const), at, bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ op: fc.constant("insert" as const), at, bytes: fc.constantFrom(...INSERTS, ...MORE_INSERTS) }),
  fc.record({ op: fc.constant("delete" as const), at, length: fc.integer({ min: 1, max: 4 }) }),
  fc.record({ op: fc.constant("truncate" as const), at }),
  fc.record({ op: fc.constant("dupLine" as const), at }),
  fc.record({ op: fc.constant("swapLines" as const), at, other: at }),
  fc.record({ op: fc.constant("addField" as const), at, line: fc.constantFrom(...FRAMING_LINES) }),
  fc.record({ op: fc.constant("number" as const), at, digits: fc.constantFrom(...NUMBERS) }),
);

/** Lines with their CRLF (the last one may have none). */
const splitLines = (s: string): string[] => s.match(/[^\n]*\n|[^\n]+$/g) ?? [];

export function mutate(s: string, m: Mutation): string {
  if (s.length === 0) return s;
  const i = m.at % s.length;
  switch (m.op) {
    case "flip":
      return s.slice(0, i) + String.fromCharCode(s.charCodeAt(i) ^ (1 << m.bit)) + s.slice(i + 1);
    case "insert":
      return s.slice(0, i) + m.bytes + s.slice(i);
    case "delete":
      return s.slice(0, i) + s.slice(i + m.length);
    case "truncate":
      return s.slice(0, i);
    case "dupLine": {
      const lines = splitLines(s);
      const k = m.at % lines.length;
      lines.splice(k, 0, lines[k] as string);
      return lines.join("");
    }
    case "swapLines": {
      const lines = splitLines(s);
      const a = m.at % lines.length;
      const b = m.other % lines.length;
      [lines[a], lines[b]] = [lines[b] as string, lines[a] as string];
      return lines.join("");
    }
    case "addField": {
      const lines = splitLines(s);
      lines.splice(1 + (m.at % lines.length), 0, `${m.line}\r\n`);
      return lines.join("");
    }
    case "number": {
      // The run of hex digits at or after i becomes another number.
      let a = i;
      while (a < s.length && !/[0-9a-fA-F]/.test(s.charAt(a))) a++;
      let b = a;
      while (b < s.length && /[0-9a-fA-F]/.test(s.charAt(b))) b++;
      return s.slice(0, a) + m.digits + s.slice(b);
    }
  }
}

export const latin1Bytes = (s: string): Uint8Array => Uint8Array.from(s, (c) => c.charCodeAt(0) & 0xff);

/** Valid pipelined requests; none after a CONNECT (what follows it is a tunnel). */
export const requests: fc.Arbitrary<Req[]> = fc.array(request, { minLength: 1, maxLength: 3 }).map((rs) => {
  const c = rs.findIndex((r) => r.method === "CONNECT");
  return c < 0 ? rs : rs.slice(0, c + 1);
});

function build(reqs: Req[], mutations: Mutation[], cutsAt: number[]): Case {
  let s = reqs.map(serialize).join("");
  for (const m of mutations) s = mutate(s, m);
  const bytes = latin1Bytes(s);
  const cuts = bytes.length > 1 ? cutsAt.map((c) => 1 + (c % (bytes.length - 1))) : [];
  return { reqs, mutations, bytes, cuts };
}

const cutsArb = fc.array(at, { maxLength: 6 });

/** Valid request sequences, unmutated. */
export const validCase: fc.Arbitrary<Case> = fc.tuple(requests, cutsArb).map(([reqs, cuts]) => build(reqs, [], cuts));

/** Valid request sequences with one to four mutations. */
export const mutatedCase: fc.Arbitrary<Case> = fc
  .tuple(requests, fc.array(mutation, { minLength: 1, maxLength: 4 }), cutsArb)
  .map(([reqs, ms, cuts]) => build(reqs, ms, cuts));

/** Either, mostly mutated: the mix every property runs on. */
export const anyCase: fc.Arbitrary<Case> = fc.oneof({ weight: 1, arbitrary: validCase }, { weight: 3, arbitrary: mutatedCase });
