/** @module http/address — IP addresses as bytes: IPv4 and IPv6 text parsed and formatted, CIDR ranges, and the set of trusted proxies matched on bytes. */

/**
 * An address as 16 bytes: IPv6 as is, IPv4 as its IPv4-mapped IPv6 address (::ffff:a.b.c.d,
 * RFC 4291 §2.5.5.2), so one range check serves both families and a dual-stack socket's
 * "::ffff:127.0.0.1" is the same peer as "127.0.0.1".
 */
export type IPBytes = Uint8Array;

const MAPPED_PREFIX = 96;

/** Dotted-quad IPv4 text in s[from, to) into out[at…at+4); false when it is not one. */
function ipv4Into(s: string, from: number, to: number, out: Uint8Array, at: number): boolean {
  let part = 0;
  let value = 0;
  let digits = 0;
  for (let i = from; i <= to; i++) {
    const c = i < to ? s.charCodeAt(i) : 46;
    if (c === 46) {
      // Leading zeros are refused: "010" is octal to inet_aton and decimal elsewhere.
      if (digits === 0 || part > 3 || (digits > 1 && s.charCodeAt(i - digits) === 48)) return false;
      out[at + part++] = value;
      value = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57 && digits < 3) {
      value = value * 10 + (c - 48);
      digits++;
      if (value > 255) return false;
    } else return false;
  }
  return part === 4;
}

/** IPv6 text (RFC 4291 §2.2, with a trailing dotted quad allowed) in s[from, to) into out; false when it is not one. */
function ipv6Into(s: string, from: number, to: number, out: Uint8Array): boolean {
  const groups: number[] = [];
  let gap = -1;
  let i = from;
  if (to - from < 2) return false;
  if (s.charCodeAt(i) === 58) {
    if (s.charCodeAt(i + 1) !== 58) return false;
    gap = 0;
    i += 2;
    if (i === to) return fill(groups, gap, out);
  }
  while (i < to) {
    let j = i;
    let value = 0;
    while (j < to && j - i < 5) {
      const h = hexDigit(s.charCodeAt(j));
      if (h < 0) break;
      value = value * 16 + h;
      j++;
    }
    if (j < to && s.charCodeAt(j) === 46) {
      // The last 32 bits as a dotted quad ("::ffff:192.0.2.1").
      if (groups.length > 6 || !ipv4Into(s, i, to, out, 12)) return false;
      groups.push(((out[12] as number) << 8) | (out[13] as number), ((out[14] as number) << 8) | (out[15] as number));
      return fill(groups, gap, out);
    }
    if (j === i || j - i > 4) return false;
    groups.push(value);
    if (groups.length > 8) return false;
    if (j === to) break;
    if (s.charCodeAt(j) !== 58) return false;
    j++;
    if (j < to && s.charCodeAt(j) === 58) {
      if (gap >= 0) return false;
      gap = groups.length;
      j++;
    } else if (j === to) return false;
    i = j;
  }
  return fill(groups, gap, out);
}

function fill(groups: number[], gap: number, out: Uint8Array): boolean {
  if (gap < 0 ? groups.length !== 8 : groups.length > 7) return false;
  const zeros = 8 - groups.length;
  let g = 0;
  for (let k = 0; k < 8; k++) {
    const v = gap >= 0 && k >= gap && k < gap + zeros ? 0 : (groups[g++] as number);
    out[2 * k] = v >> 8;
    out[2 * k + 1] = v & 0xff;
  }
  return true;
}

const hexDigit = (c: number): number => {
  if (c >= 48 && c <= 57) return c - 48;
  const l = c | 0x20;
  return l >= 97 && l <= 102 ? l - 87 : -1;
};

/** An IPv4 or IPv6 address in text as bytes (IPv4 mapped), or null: no brackets, port or zone. */
export function parseIP(s: string): IPBytes | null {
  const out = new Uint8Array(16);
  if (s.includes(":")) return ipv6Into(s, 0, s.length, out) ? out : null;
  out[10] = 0xff;
  out[11] = 0xff;
  return ipv4Into(s, 0, s.length, out, 12) ? out : null;
}

/** Whether `b` is an IPv4 address (stored IPv4-mapped). */
export function isIPv4(b: IPBytes): boolean {
  for (let i = 0; i < 10; i++) if (b[i] !== 0) return false;
  return b[10] === 0xff && b[11] === 0xff;
}

/** The text of an address: dotted quad for IPv4, RFC 5952's canonical form for IPv6. */
export function formatIP(b: IPBytes): string {
  if (isIPv4(b)) return `${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  const groups: number[] = [];
  for (let k = 0; k < 8; k++) groups.push(((b[2 * k] as number) << 8) | (b[2 * k + 1] as number));
  // RFC 5952 §4.2: the longest run of two or more zero groups, the first if tied, becomes "::".
  let best = -1;
  let bestLen = 1;
  for (let k = 0; k < 8; ) {
    if (groups[k] !== 0) {
      k++;
      continue;
    }
    let e = k;
    while (e < 8 && groups[e] === 0) e++;
    if (e - k > bestLen) {
      best = k;
      bestLen = e - k;
    }
    k = e;
  }
  const hex = (from: number, to: number): string =>
    groups
      .slice(from, to)
      .map((g) => g.toString(16))
      .join(":");
  return best < 0 ? hex(0, 8) : `${hex(0, best)}::${hex(best + bestLen, 8)}`;
}

/** A range of addresses: the first `bits` bits of `bytes`. */
interface Range {
  readonly bytes: IPBytes;
  readonly bits: number;
}

/** "10.0.0.0/8", "2001:db8::/32" or a single address; an error message when it is none of them. */
export function parseRange(entry: string): Range | string {
  const slash = entry.indexOf("/");
  const text = slash < 0 ? entry : entry.slice(0, slash);
  const bytes = parseIP(text);
  if (bytes === null) return `${JSON.stringify(entry)} is not an IP address or CIDR range`;
  const v4 = !text.includes(":");
  const width = v4 ? 32 : 128;
  let bits = 128;
  if (slash >= 0) {
    const p = entry.slice(slash + 1);
    if (!/^\d{1,3}$/.test(p) || Number(p) > width) return `${JSON.stringify(entry)}: the prefix length must be 0 to ${width}`;
    bits = (v4 ? MAPPED_PREFIX : 0) + Number(p);
    for (let i = bits; i < 128; i++) {
      if (((bytes[i >> 3] as number) >> (7 - (i & 7))) & 1) {
        return `${JSON.stringify(entry)} has bits set after its /${p} prefix (the range is ${formatIP(masked(bytes, bits))}/${p})`;
      }
    }
  }
  return { bytes, bits };
}

function masked(b: IPBytes, bits: number): IPBytes {
  const out = new Uint8Array(16);
  for (let i = 0; i < bits; i++) {
    if (((b[i >> 3] as number) >> (7 - (i & 7))) & 1) out[i >> 3] = (out[i >> 3] as number) | (0x80 >> (i & 7));
  }
  return out;
}

function inRange(ip: IPBytes, r: Range): boolean {
  const whole = r.bits >> 3;
  for (let i = 0; i < whole; i++) if (ip[i] !== r.bytes[i]) return false;
  const rest = r.bits & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return ((ip[whole] as number) & mask) === ((r.bytes[whole] as number) & mask);
}

/**
 * The addresses trusted as proxies: IPs and CIDR ranges of both families, and "*". "*" trusts
 * any immediate peer, but not the hops a peer reports: those must match a listed range, so a
 * chain is never believed further than the operator said (see http/forwarded).
 */
export class AddressSet {
  /** "*" was listed: every peer is trusted. */
  readonly any: boolean;
  private readonly ranges: readonly Range[];

  private constructor(any: boolean, ranges: readonly Range[]) {
    this.any = any;
    this.ranges = ranges;
  }

  /** The set of `entries`, or the message of the first that is not an address, range or "*". */
  static parse(entries: readonly string[]): AddressSet | string {
    const ranges: Range[] = [];
    let any = false;
    for (const e of entries) {
      if (e === "*") {
        any = true;
        continue;
      }
      const r = parseRange(e.trim());
      if (typeof r === "string") return r;
      ranges.push(r);
    }
    return new AddressSet(any, ranges);
  }

  /** Whether the listed ranges hold `ip` ("*" aside). */
  has(ip: IPBytes): boolean {
    const ranges = this.ranges;
    for (let i = 0; i < ranges.length; i++) if (inRange(ip, ranges[i] as Range)) return true;
    return false;
  }

  /** Whether a peer at address `text` (as a socket reports it) is trusted: "*", or a listed range holds it. */
  trustsPeer(text: string): boolean {
    if (this.any) return true;
    const ip = parseIP(text);
    return ip !== null && this.has(ip);
  }
}
