/** @module http/forwarded — who the client is behind trusted proxies: X-Forwarded-For/-Proto/-Host/-Port and RFC 7239 Forwarded parsed, and the chain walked from the right to the first untrusted hop. */

import { type AddressSet, parseIP } from "./address.ts";
import { isHostValue } from "./authority.ts";
import { ascii } from "./bytes.ts";

/** The forwarding fields, in the order of their bits in a {@link Honour} mask. */
export const FORWARDING_FIELDS = [
  "x-forwarded-for",
  "x-forwarded-proto",
  "x-forwarded-host",
  "x-forwarded-port",
  "forwarded",
] as const;
export type ForwardingField = (typeof FORWARDING_FIELDS)[number];

/** Which forwarding fields are believed from a trusted peer: one bit per {@link FORWARDING_FIELDS} entry. */
export const Honour = { FOR: 1, PROTO: 2, HOST: 4, PORT: 8, FORWARDED: 16 } as const;

/** The bits of a list of field names (lower case, as in FORWARDING_FIELDS). */
export function honourMask(names: readonly string[]): number {
  let mask = 0;
  for (const n of names) {
    const i = (FORWARDING_FIELDS as readonly string[]).indexOf(n.toLowerCase());
    if (i >= 0) mask |= 1 << i;
  }
  return mask;
}

/** The environ keys of the forwarding fields (what a strip removes). */
export const FORWARDING_ENV_KEYS = FORWARDING_FIELDS.map((n) => `HTTP_${n.toUpperCase().replaceAll("-", "_")}`);

/** A forwarding field's index in FORWARDING_FIELDS, or -1; `name` as received. */
export function forwardingIndex(name: string): number {
  const n = name.length;
  // Only these lengths can be one: most fields are passed over on their length alone.
  if (n !== 9 && n !== 15 && n !== 16 && n !== 17) return -1;
  const l = name.toLowerCase();
  for (let i = 0; i < FORWARDING_FIELDS.length; i++) if (FORWARDING_FIELDS[i] === l) return i;
  return -1;
}

/**
 * The honoured forwarding fields' values among `headers` (field lines as received; several lines
 * of one field joined with ", " as RFC 9110 §5.3 allows), indexed like FORWARDING_FIELDS; null
 * when none of them is present.
 */
export function forwardingValues(headers: ReadonlyArray<readonly [string, string]>, honour: number): Array<string | null> | null {
  let out: Array<string | null> | null = null;
  for (let n = 0; n < headers.length; n++) {
    const pair = headers[n] as readonly [string, string];
    const i = forwardingIndex(pair[0]);
    if (i < 0 || ((honour >> i) & 1) === 0) continue;
    out ??= [null, null, null, null, null];
    const prev = out[i];
    out[i] = prev === null || prev === undefined ? pair[1] : `${prev}, ${pair[1]}`;
  }
  return out;
}

/** Who the client is, as the trusted proxies tell it. */
export interface Forwarded {
  /** The client's address (an IP, or RFC 7239's "unknown" or obfuscated identifier), or null: the peer is the client. */
  addr: string | null;
  /** The client's port, "" when not told. */
  port: string;
  /** The scheme the client used, or null when not told. */
  scheme: "http" | "https" | null;
  /** The Host the client sent (uri-host [":" port]), or null when not told. */
  host: string | null;
  /** The port the client connected to (X-Forwarded-Port), or null when not told. */
  hostPort: string | null;
  /** Values ignored as malformed, for a debug line; "" when all were good. */
  problem: string;
}

/** One hop of a chain: its node text, and the address and port in it when it has them. */
interface Hop {
  node: string;
  ip: string | null;
  port: string;
}

/**
 * A node: an IPv4 address, "[IPv6]" or a bare IPv6 address (X-Forwarded-For's usual form), each
 * with an optional ":port"; also RFC 7239 §6's "unknown" and obfuscated identifiers ("_hidden",
 * with an optional obfuscated port), which are nodes but never a trusted one. null: malformed.
 */
function parseNode(text: string): Hop | null {
  let host = text;
  let port = "";
  if (text.startsWith("[")) {
    const close = text.indexOf("]");
    if (close < 0) return null;
    host = text.slice(1, close);
    const rest = text.slice(close + 1);
    if (rest !== "") {
      if (!rest.startsWith(":")) return null;
      port = rest.slice(1);
    }
    if (!host.includes(":")) return null;
  } else if (text.indexOf(":") === text.lastIndexOf(":") && text.includes(":")) {
    const colon = text.indexOf(":");
    host = text.slice(0, colon);
    port = text.slice(colon + 1);
  }
  if (port !== "" && !isPort(port) && !OBFUSCATED.test(port)) return null;
  if (host === "unknown" || OBFUSCATED.test(host)) return { node: host, ip: null, port };
  return parseIP(host) === null ? null : { node: host, ip: host, port };
}

/** obfnode and obfport (RFC 7239 §6.3): "_" followed by ALPHA / DIGIT / "." / "_" / "-". */
const OBFUSCATED = /^_[A-Za-z0-9._-]+$/;

const isPort = (s: string): boolean => /^\d{1,5}$/.test(s) && Number(s) <= 65535;

/** A comma-separated list's items, trimmed (RFC 9110 §5.6.1 list syntax); empty items dropped. */
function listItems(value: string): string[] {
  const out: string[] = [];
  for (const item of value.split(",")) {
    const t = item.trim();
    if (t !== "") out.push(t);
  }
  return out;
}

/** One forwarded-element of RFC 7239 §4: its parameters by lower-case name. */
type Element = Map<string, string>;

/**
 * Forwarded's elements (RFC 7239 §4: 1#forwarded-element, each forwarded-pair *( ";" forwarded-pair ),
 * a value a token or a quoted-string, each parameter at most once per element), or null when
 * the value does not follow that grammar. Whitespace around ";" and "," is allowed.
 */
export function parseForwarded(value: string): Element[] | null {
  const elements: Element[] = [];
  let el: Element = new Map();
  let i = 0;
  const n = value.length;
  const skipSpace = (): void => {
    while (i < n && (value.charCodeAt(i) === 32 || value.charCodeAt(i) === 9)) i++;
  };
  for (;;) {
    skipSpace();
    if (i < n && value[i] !== "," && value[i] !== ";") {
      const nameStart = i;
      while (i < n && TCHAR.test(value[i] as string)) i++;
      if (i === nameStart || value[i] !== "=") return null;
      const name = value.slice(nameStart, i).toLowerCase();
      i++;
      let v: string;
      if (value[i] === '"') {
        // quoted-string = DQUOTE *( qdtext / quoted-pair ) DQUOTE (RFC 9110 §5.6.4)
        v = "";
        i++;
        for (;;) {
          if (i >= n) return null;
          const c = value[i] as string;
          if (c === '"') break;
          if (c === "\\") {
            if (i + 1 >= n) return null;
            v += value[i + 1];
            i += 2;
          } else {
            v += c;
            i++;
          }
        }
        i++;
      } else {
        const start = i;
        while (i < n && TCHAR.test(value[i] as string)) i++;
        if (i === start) return null;
        v = value.slice(start, i);
      }
      if (el.has(name)) return null;
      el.set(name, v);
      skipSpace();
    }
    if (i >= n) break;
    const sep = value[i];
    i++;
    if (sep === ",") {
      if (el.size > 0) elements.push(el);
      el = new Map();
    } else if (sep !== ";") return null;
  }
  if (el.size > 0) elements.push(el);
  return elements.length > 0 ? elements : null;
}

const TCHAR = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]$/;

/**
 * Walk a chain of hops from the right, the nearest first: a hop the trusted ranges hold is
 * another proxy, so the walk goes on past it; the first hop they do not hold is the client,
 * and nothing to its left (which that client could have written) is read. Every hop trusted:
 * the leftmost is the client. A malformed hop ends the walk at the trusted hop before it.
 * Returns the client's index, and whether a malformed hop was met.
 */
function walk(hops: ReadonlyArray<Hop | null>, trusted: AddressSet): { at: number; malformed: boolean } {
  // An empty list ("", ",") names no hop at all: malformed, and no client to read.
  if (hops.length === 0) return { at: -1, malformed: true };
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = hops[i];
    if (hop === null || hop === undefined) return { at: i + 1 < hops.length ? i + 1 : -1, malformed: true };
    const ip = hop.ip === null ? null : parseIP(hop.ip);
    if (ip === null || !trusted.has(ip)) return { at: i, malformed: false };
  }
  return { at: 0, malformed: false };
}

/** The item of a per-hop list (X-Forwarded-Proto, -Host, -Port) at the client's hop, counted from the right; a shorter list gives its leftmost. */
function atHop(value: string | null, fromRight: number): string | null {
  if (value === null) return null;
  const items = listItems(value);
  if (items.length === 0) return null;
  return items[Math.max(0, items.length - 1 - fromRight)] as string;
}

const schemeOf = (s: string | null): "http" | "https" | null => {
  const l = s?.toLowerCase();
  return l === "http" || l === "https" ? l : null;
};

const hostOk = (h: string): boolean => h !== "" && isHostValue(ascii(h), 0, h.length);

/**
 * Who the client is, from the honoured forwarding fields of a request whose peer is trusted
 * (`values` from forwardingValues). Forwarded (RFC 7239), when honoured and well-formed, is
 * read alone: its element at the client's hop gives the scheme (proto) and Host (host) the
 * client used (§5.2–5.4). Otherwise X-Forwarded-For is walked, and X-Forwarded-Proto, -Host
 * and -Port are read at the same hop. A malformed value is left out and named in `problem`.
 */
export function resolveForwarded(values: ReadonlyArray<string | null>, trusted: AddressSet): Forwarded {
  const out: Forwarded = { addr: null, port: "", scheme: null, host: null, hostPort: null, problem: "" };
  const problems: string[] = [];
  const forwarded = values[4] ?? null;
  if (forwarded !== null) {
    const elements = parseForwarded(forwarded);
    if (elements === null) problems.push(`Forwarded ${JSON.stringify(forwarded)}`);
    else {
      const hops = elements.map((e) => {
        const f = e.get("for");
        // An element without "for" hides its client like "unknown" does (RFC 7239 §5.2).
        return f === undefined ? { node: "", ip: null, port: "" } : parseNode(f);
      });
      const { at, malformed } = walk(hops, trusted);
      if (malformed) problems.push(`Forwarded "for" in ${JSON.stringify(forwarded)}`);
      if (at >= 0) {
        const el = elements[at] as Element;
        const hop = hops[at];
        if (hop !== null && hop !== undefined && hop.node !== "") {
          out.addr = hop.node;
          out.port = hop.port;
        }
        const proto = el.get("proto");
        out.scheme = schemeOf(proto ?? null);
        if (proto !== undefined && out.scheme === null) problems.push(`Forwarded proto=${JSON.stringify(proto)}`);
        const host = el.get("host");
        if (host !== undefined && hostOk(host)) out.host = host;
        else if (host !== undefined) problems.push(`Forwarded host=${JSON.stringify(host)}`);
      }
      out.problem = problems.join("; ");
      return out;
    }
  }
  let fromRight = 0;
  const xff = values[0] ?? null;
  if (xff !== null) {
    const items = listItems(xff);
    const hops = items.map(parseNode);
    const { at, malformed } = walk(hops, trusted);
    if (malformed) problems.push(`X-Forwarded-For ${JSON.stringify(xff)}`);
    if (at >= 0) {
      const hop = hops[at] as Hop;
      out.addr = hop.node;
      out.port = hop.port;
      fromRight = items.length - 1 - at;
    }
  }
  const proto = atHop(values[1] ?? null, fromRight);
  out.scheme = schemeOf(proto);
  if (proto !== null && out.scheme === null) problems.push(`X-Forwarded-Proto ${JSON.stringify(proto)}`);
  const host = atHop(values[2] ?? null, fromRight);
  if (host !== null && hostOk(host)) out.host = host;
  else if (host !== null) problems.push(`X-Forwarded-Host ${JSON.stringify(host)}`);
  const port = atHop(values[3] ?? null, fromRight);
  if (port !== null && isPort(port)) out.hostPort = port;
  else if (port !== null) problems.push(`X-Forwarded-Port ${JSON.stringify(port)}`);
  out.problem = problems.join("; ");
  return out;
}

/**
 * The authority the client asked for, for HTTP_HOST and the request URL: the forwarded Host (or
 * the request's own `host`), with the forwarded port replacing its port; a port that is the
 * scheme's default is left out (RFC 9110 §4.2), as a browser leaves it out of Host.
 */
export function forwardedAuthority(f: Forwarded, host: string, scheme: string): string {
  const h = f.host ?? host;
  const colon = h.indexOf(":", h.lastIndexOf("]") + 1);
  const name = colon < 0 ? h : h.slice(0, colon);
  const port = f.hostPort ?? (colon < 0 ? "" : h.slice(colon + 1));
  if (port === "" || (scheme === "https" ? port === "443" : port === "80")) return name;
  return `${name}:${port}`;
}
