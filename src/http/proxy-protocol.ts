/** @module http/proxy-protocol — the PROXY protocol header (HAProxy's spec, v1 text and v2 binary) read incrementally off a connection's first bytes: the client's addresses and v2's TLVs, or a negative code from http/codes. */

import { formatIP, isIPv4, parseIP } from "./address.ts";
import { ascii } from "./bytes.ts";
import { ProxyError } from "./codes.ts";

/** Which versions a bind accepts; "auto" tells them apart by their signatures (spec §2). */
export type ProxyMode = "v1" | "v2" | "auto";

/** v1's signature (spec §2.1): "PROXY" and a space. */
const V1_SIG = ascii("PROXY ");
/** v2's 12-byte signature (spec §2.2): "\r\n\r\n\0\r\nQUIT\n", which no HTTP request starts with. */
const V2_SIG = Uint8Array.of(0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a);
/** The protocols a v1 line names after its signature (spec §2.1). */
const V1_PROTOCOLS = ["TCP4 ", "TCP6 ", "UNKNOWN"].map(ascii);

/**
 * Whether buf[start…end] begins as a PROXY header does, for a bind that reads none: v1's
 * signature and protocol, or v2's signature as far as it goes past its NUL byte (where an HTTP
 * parser stops). Such bytes mean a proxy sends headers to a bind not set to read them.
 */
export function startsLikeProxyHeader(buf: Uint8Array, start: number, end: number): boolean {
  const at = (sig: Uint8Array, from: number): boolean => {
    if (end - from < sig.length) return false;
    for (let i = 0; i < sig.length; i++) if (buf[from + i] !== sig[i]) return false;
    return true;
  };
  if (at(V1_SIG, start)) return V1_PROTOCOLS.some((p) => at(p, start + V1_SIG.length));
  const n = Math.min(V2_SIG.length, end - start);
  // Through the NUL byte at least: "\r\n\r\n" alone is two empty lines an HTTP parser skips.
  return n >= 5 && at(V2_SIG.subarray(0, n), start);
}

/** Spec §2.1: a v1 line is at most 107 bytes, CRLF included. */
const V1_MAX = 107;
/** v2's fixed part: signature, version and command, family, length (spec §2.2). */
const V2_HEAD = 16;
/**
 * The most bytes after v2's fixed part accepted: the UNIX address block (216) and TLVs such as
 * HAProxy's SSL, authority, unique-id and AWS's VPC endpoint ids fit well within it; the spec's
 * 65535 would let one trusted peer make every connection hold 64 KiB.
 */
export const MAX_V2_LENGTH = 4096;

/** PP2_TYPE_* and PP2_SUBTYPE_SSL_* TLV types (spec §2.2.7–2.2.8) that are kept. */
const TLV_ALPN = 0x01;
const TLV_AUTHORITY = 0x02;
const TLV_SSL = 0x20;
const SSL_VERSION = 0x21;
const SSL_CN = 0x22;
const SSL_CIPHER = 0x23;
/** PP2_CLIENT_SSL: the client connected over TLS (spec §2.2.7). */
export const PP2_CLIENT_SSL = 0x01;

/** What a v2 PP2_TYPE_SSL TLV says about the client's TLS connection to the proxy. */
export interface ProxySSL {
  /** PP2_CLIENT_* bits: SSL (0x01), CERT_CONN (0x02), CERT_SESS (0x04). */
  client: number;
  /** 0 when the client presented a certificate that verified. */
  verify: number;
  version: string | null;
  cipher: string | null;
  /** The client certificate's Common Name. */
  cn: string | null;
}

/** A complete PROXY header. */
export interface ProxyHeader {
  version: 1 | 2;
  /**
   * Whether the header names the client: false for v2 LOCAL (a proxy's own health check), v1
   * UNKNOWN and v2's UNSPEC family, where the connection's own endpoints stand (spec §2.1, §2.2).
   */
  proxied: boolean;
  family: "TCP4" | "TCP6" | "UNIX" | "UNSPEC";
  /** The client's address (text) and port; for UNIX, its socket path and 0. */
  source: string;
  sourcePort: number;
  destination: string;
  destinationPort: number;
  /** v2 TLVs: the client's SNI (PP2_TYPE_AUTHORITY), ALPN protocol and TLS facts, or null. */
  authority: string | null;
  alpn: string | null;
  ssl: ProxySSL | null;
}

const utf8 = new TextDecoder();

/**
 * Reads one PROXY header off the start of a connection, from bytes in any split: execute() takes
 * the next bytes and returns how many of them completed the header (the rest are the first
 * request's), 0 when it took them all and needs more, or a negative ProxyError code. The header
 * is copied as it arrives (at most 107 bytes for v1, 16 + MAX_V2_LENGTH for v2), never more.
 */
export class ProxyParser {
  private readonly mode: ProxyMode;
  private buf = new Uint8Array(V2_HEAD);
  private len = 0;
  /** 0 while the signature is being matched, then the version. */
  private version: 0 | 1 | 2 = 0;
  /** v2: the whole header's length, known once its fixed part is in. */
  private total = 0;
  header: ProxyHeader | null = null;

  constructor(mode: ProxyMode) {
    this.mode = mode;
  }

  execute(data: Uint8Array, pos: number, end: number): number {
    let i = pos;
    while (i < end) {
      if (this.version === 0) {
        const b = data[i] as number;
        const at = this.len;
        const v1 = this.mode !== "v2" && b === V1_SIG[at];
        const v2 = this.mode !== "v1" && b === V2_SIG[at];
        if (!v1 && !v2) {
          // A header of the other version (the signatures differ in their first byte) is told
          // apart from no header at all, for the operator.
          const other = this.mode === "v1" ? V2_SIG : this.mode === "v2" ? V1_SIG : null;
          const wrong = other !== null && at === 0 && b === other[0];
          return -(wrong ? ProxyError.PROXY_WRONG_VERSION : ProxyError.PROXY_MISSING);
        }
        this.buf[this.len++] = b;
        i++;
        if (v1 && this.len === V1_SIG.length) {
          this.version = 1;
          const grown = new Uint8Array(V1_MAX);
          grown.set(this.buf.subarray(0, this.len));
          this.buf = grown;
        } else if (v2 && this.len === V2_SIG.length) this.version = 2;
        continue;
      }
      if (this.version === 1) {
        const b = data[i++] as number;
        if (this.len === V1_MAX) return -ProxyError.PROXY_V1_TOO_LONG;
        this.buf[this.len++] = b;
        if (b !== 0x0a) continue;
        const code = this.parseV1();
        return code < 0 ? code : i - pos;
      }
      // v2: the fixed part, then as many bytes as its length says.
      const want = (this.total > 0 ? this.total : V2_HEAD) - this.len;
      const n = Math.min(want, end - i);
      this.buf.set(data.subarray(i, i + n), this.len);
      this.len += n;
      i += n;
      if (this.total === 0 && this.len === V2_HEAD) {
        const length = ((this.buf[14] as number) << 8) | (this.buf[15] as number);
        if (length > MAX_V2_LENGTH) return -ProxyError.PROXY_V2_TOO_LONG;
        this.total = V2_HEAD + length;
        const grown = new Uint8Array(this.total);
        grown.set(this.buf);
        this.buf = grown;
      }
      if (this.total > 0 && this.len === this.total) {
        const code = this.parseV2();
        return code < 0 ? code : i - pos;
      }
    }
    return 0;
  }

  /** Spec §2.1: "PROXY" SP ( "TCP4" / "TCP6" ) SP src SP dst SP sport SP dport CRLF, or "PROXY UNKNOWN" [anything] CRLF. */
  private parseV1(): number {
    const n = this.len;
    if (this.buf[n - 2] !== 0x0d) return -ProxyError.PROXY_V1_MALFORMED;
    const line = latin1(this.buf, 0, n - 2);
    const parts = line.split(" ");
    const proto = parts[1];
    if (proto === "UNKNOWN") {
      // The receiver must ignore what follows UNKNOWN and use the connection's endpoints.
      this.header = emptyHeader(1);
      return 0;
    }
    if ((proto !== "TCP4" && proto !== "TCP6") || parts.length !== 6) return -ProxyError.PROXY_V1_MALFORMED;
    const src = parseIP(parts[2] as string);
    const dst = parseIP(parts[3] as string);
    const v4 = proto === "TCP4";
    // TCP6 takes IPv6 text only: a dotted quad there is the wrong family.
    const familyOk = (text: string, b: Uint8Array | null): boolean =>
      b !== null && (v4 ? isIPv4(b) && !text.includes(":") : text.includes(":"));
    if (!familyOk(parts[2] as string, src) || !familyOk(parts[3] as string, dst)) return -ProxyError.PROXY_V1_BAD_ADDRESS;
    const sport = v1Port(parts[4] as string);
    const dport = v1Port(parts[5] as string);
    if (sport < 0 || dport < 0) return -ProxyError.PROXY_V1_BAD_PORT;
    this.header = {
      ...emptyHeader(1),
      proxied: true,
      family: proto,
      source: formatIP(src as Uint8Array),
      sourcePort: sport,
      destination: formatIP(dst as Uint8Array),
      destinationPort: dport,
    };
    return 0;
  }

  /** Spec §2.2: version and command, family and transport, then the address block and TLVs. */
  private parseV2(): number {
    const b = this.buf;
    const verCmd = b[12] as number;
    if (verCmd >> 4 !== 2) return -ProxyError.PROXY_V2_BAD_VERSION;
    const command = verCmd & 0x0f;
    if (command > 1) return -ProxyError.PROXY_V2_BAD_COMMAND;
    const famByte = b[13] as number;
    const family = famByte >> 4;
    const transport = famByte & 0x0f;
    if (family > 3 || transport > 2) return -ProxyError.PROXY_V2_BAD_FAMILY;
    const header = emptyHeader(2);
    this.header = header;
    // LOCAL: the proxy's own connection (a health check); its address block is ignored (§2.2).
    if (command === 0) return 0;
    // AF_UNSPEC with PROXY: the receiver must ignore the address block (§2.2), whatever its
    // length, so there are no TLVs to read after a block of unknown layout.
    if (family === 0) return 0;
    // Only a stream carries HTTP: DGRAM here is a proxy misconfigured.
    if (transport !== 1) return -ProxyError.PROXY_V2_BAD_FAMILY;
    const need = family === 1 ? 12 : family === 2 ? 36 : 216;
    if (this.total - V2_HEAD < need) return -ProxyError.PROXY_V2_SHORT_ADDRESS;
    const a = V2_HEAD;
    header.proxied = true;
    if (family === 3) {
      // sockaddr_un paths: 108 bytes each, NUL-terminated.
      header.family = "UNIX";
      header.source = cString(b, a, a + 108);
      header.destination = cString(b, a + 108, a + 216);
    } else {
      const size = family === 1 ? 4 : 16;
      const addr = (at: number): string => {
        const ip = new Uint8Array(16);
        if (size === 4) {
          ip[10] = 0xff;
          ip[11] = 0xff;
          ip.set(b.subarray(at, at + 4), 12);
        } else ip.set(b.subarray(at, at + 16));
        return formatIP(ip);
      };
      header.family = family === 1 ? "TCP4" : "TCP6";
      header.source = addr(a);
      header.destination = addr(a + size);
      header.sourcePort = ((b[a + 2 * size] as number) << 8) | (b[a + 2 * size + 1] as number);
      header.destinationPort = ((b[a + 2 * size + 2] as number) << 8) | (b[a + 2 * size + 3] as number);
    }
    return this.readTLVs(a + need);
  }

  /** Type-length-value records to the header's end (spec §2.2.7): the known ones kept, the rest skipped. */
  private readTLVs(from: number): number {
    const b = this.buf;
    const header = this.header as ProxyHeader;
    let i = from;
    while (i < this.total) {
      if (i + 3 > this.total) return -ProxyError.PROXY_V2_BAD_TLV;
      const type = b[i] as number;
      const len = ((b[i + 1] as number) << 8) | (b[i + 2] as number);
      const v = i + 3;
      if (v + len > this.total) return -ProxyError.PROXY_V2_BAD_TLV;
      if (type === TLV_AUTHORITY) header.authority = utf8.decode(b.subarray(v, v + len));
      else if (type === TLV_ALPN) header.alpn = latin1(b, v, v + len);
      else if (type === TLV_SSL) {
        const ssl = readSSL(b, v, v + len);
        if (ssl === null) return -ProxyError.PROXY_V2_BAD_TLV;
        header.ssl = ssl;
      }
      i = v + len;
    }
    return 0;
  }
}

/** PP2_TYPE_SSL (spec §2.2.7): client bits, verify result, then sub-TLVs; null when they overrun it. */
function readSSL(b: Uint8Array, s: number, e: number): ProxySSL | null {
  if (e - s < 5) return null;
  const ssl: ProxySSL = {
    client: b[s] as number,
    verify:
      (((b[s + 1] as number) << 24) | ((b[s + 2] as number) << 16) | ((b[s + 3] as number) << 8) | (b[s + 4] as number)) >>> 0,
    version: null,
    cipher: null,
    cn: null,
  };
  let i = s + 5;
  while (i < e) {
    if (i + 3 > e) return null;
    const type = b[i] as number;
    const len = ((b[i + 1] as number) << 8) | (b[i + 2] as number);
    const v = i + 3;
    if (v + len > e) return null;
    if (type === SSL_VERSION) ssl.version = latin1(b, v, v + len);
    else if (type === SSL_CIPHER) ssl.cipher = latin1(b, v, v + len);
    else if (type === SSL_CN) ssl.cn = utf8.decode(b.subarray(v, v + len));
    i = v + len;
  }
  return ssl;
}

function emptyHeader(version: 1 | 2): ProxyHeader {
  return {
    version,
    proxied: false,
    family: "UNSPEC",
    source: "",
    sourcePort: 0,
    destination: "",
    destinationPort: 0,
    authority: null,
    alpn: null,
    ssl: null,
  };
}

/** A v1 port: decimal 0 to 65535 (spec §2.1), or -1. */
function v1Port(s: string): number {
  if (!/^\d{1,5}$/.test(s)) return -1;
  const n = Number(s);
  return n <= 65535 ? n : -1;
}

/** b[s, e) as latin-1 text (the bytes may be a plain Uint8Array, not a Buffer). */
function latin1(b: Uint8Array, s: number, e: number): string {
  let out = "";
  for (let i = s; i < e; i++) out += String.fromCharCode(b[i] as number);
  return out;
}

/** A NUL-terminated string in b[s, e). */
function cString(b: Uint8Array, s: number, e: number): string {
  let z = s;
  while (z < e && b[z] !== 0) z++;
  return utf8.decode(b.subarray(s, z));
}
