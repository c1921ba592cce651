/** @module observe/access — access-log records and formats: gevent's line, combined, json and {field} templates. */

import { ConfigError } from "../errors.ts";
import { clock } from "./clock.ts";

/** What an access-log format reads from a finished request; WSGIHandler provides it. */
export interface AccessRecord {
  readonly clientAddress: ClientAddress;
  readonly requestline: string | null;
  readonly command: string;
  readonly path: string;
  readonly requestVersion: string;
  readonly code: number | null;
  /** Bytes sent, status line and headers included. */
  readonly responseLength: number;
  /** Body bytes sent. */
  readonly bodyLength: number;
  readonly timeStart: number;
  readonly timeFinish: number;
  readonly headers: ReadonlyArray<readonly [string, string]>;
  /**
   * Why the server refused or cut the request ("bare_cr", "bad_host", "head_timeout",
   * "client_disconnected", …: the parser's and body decoder's code names), or null.
   */
  readonly reason: string | null;
}

/** Turns a finished request into one access-log line (without the newline). */
export type AccessFormatter = (r: AccessRecord) => string;

const HEX = "0123456789abcdef";
const utf8 = new TextEncoder();

/**
 * Escape for a quoted log field the way Apache and nginx do: `"` and `\` backslashed, control
 * bytes and bytes above 0x7e as \xHH, so a client cannot forge or break log lines.
 */
export function escapeLogField(s: string): string {
  let i = 0;
  for (; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x22 || c === 0x5c) break;
  }
  if (i === s.length) return s;
  let out = s.slice(0, i);
  for (; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x22 || c === 0x5c) out += `\\${s[i]}`;
    else if (c < 0x20 || c > 0x7e) {
      // Latin-1 text (header bytes) is one byte per char; anything wider is written as UTF-8 bytes.
      for (const b of c > 0xff ? utf8.encode(String.fromCharCode(c)) : [c]) {
        out += `\\x${HEX[b >> 4]}${HEX[b & 15]}`;
      }
    } else out += s[i];
  }
  return out;
}

function requestHeader(r: AccessRecord, lower: string): string | null {
  const h = r.headers;
  for (let i = 0; i < h.length; i++) {
    const pair = h[i] as readonly [string, string];
    if (pair[0].length === lower.length && pair[0].toLowerCase() === lower) return pair[1];
  }
  return null;
}

/** A peer as logs show it: [host, port] for TCP; a unix socket's path (its peer has no address). */
export type ClientAddress = [string, number] | string;

/** The peer's host (or socket path), "-" when unknown. */
export const clientHost = (a: ClientAddress): string => (typeof a === "string" ? a || "-" : a[0]);

/** The peer for messages: "host:port", or the socket path. */
export const clientLabel = (a: ClientAddress): string => (typeof a === "string" ? a || "unix socket" : `${a[0]}:${a[1]}`);

const remoteAddr = (r: AccessRecord): string => clientHost(r.clientAddress);
const dash = (s: string | null): string => (s === null || s === "" ? "-" : s);
const duration = (r: AccessRecord): number => (r.timeFinish > 0 ? r.timeFinish - r.timeStart : 0);
const targetPath = (r: AccessRecord): string => {
  const q = r.path.indexOf("?");
  return q < 0 ? r.path : r.path.slice(0, q);
};

/** Named fields a template format may use, as `{name}`; `{header:NAME}` reads any request header. */
export const LOG_FIELDS: Readonly<Record<string, { doc: string; get: (r: AccessRecord) => string }>> = {
  remote_addr: { doc: "client address (empty for a unix socket)", get: remoteAddr },
  remote_port: { doc: "client port", get: (r) => (typeof r.clientAddress === "string" ? "-" : String(r.clientAddress[1])) },
  time: { doc: "local time, gevent style (2026-11-24 10:00:00)", get: () => clock.localTimestamp() },
  time_clf: { doc: "local time, Apache style (24/Nov/2026:10:00:00 +0000)", get: () => clock.clf() },
  time_iso: { doc: "UTC time, ISO 8601 with milliseconds", get: () => new Date().toISOString() },
  request: { doc: "the request line", get: (r) => escapeLogField(r.requestline ?? "") },
  method: { doc: "request method", get: (r) => dash(r.command) },
  target: { doc: "request target as sent (path and query)", get: (r) => escapeLogField(dash(r.path)) },
  path: { doc: "request target without the query", get: (r) => escapeLogField(dash(targetPath(r))) },
  query: {
    doc: "query string, without the ?",
    get: (r) => {
      const q = r.path.indexOf("?");
      return q < 0 ? "" : escapeLogField(r.path.slice(q + 1));
    },
  },
  protocol: { doc: "HTTP version of the request", get: (r) => dash(r.requestVersion) },
  status: { doc: "response status code", get: (r) => (r.code === null ? "000" : String(r.code)) },
  length: { doc: "bytes sent, headers included (gevent)", get: (r) => String(r.responseLength) },
  body_length: { doc: "body bytes sent (Apache %B)", get: (r) => String(r.bodyLength) },
  duration: { doc: "seconds taken, 6 decimals", get: (r) => duration(r).toFixed(6) },
  duration_ms: { doc: "milliseconds taken, 3 decimals", get: (r) => (duration(r) * 1000).toFixed(3) },
  referer: { doc: "Referer header or -", get: (r) => escapeLogField(dash(requestHeader(r, "referer"))) },
  user_agent: { doc: "User-Agent header or -", get: (r) => escapeLogField(dash(requestHeader(r, "user-agent"))) },
  pid: { doc: "server process id (with workers: the worker's)", get: () => String(process.pid) },
  reason: { doc: "why the server refused or cut the request (bare_cr, head_timeout, …) or -", get: (r) => dash(r.reason) },
};

/** gevent's line: `ADDR - - [YYYY-MM-DD HH:MM:SS] "REQUEST LINE" STATUS LENGTH SECONDS`. */
export const geventLine: AccessFormatter = (r) => {
  const length = r.responseLength > 0 ? String(r.responseLength) : "-";
  const delta = r.timeFinish > 0 ? (r.timeFinish - r.timeStart).toFixed(6) : "-";
  return `${clientHost(r.clientAddress)} - - [${clock.localTimestamp()}] "${r.requestline ?? ""}" ${r.code ?? "000"} ${length} ${delta}`;
};

/** Apache/nginx "combined": `%h - - [%t] "%r" %>s %b "%{Referer}i" "%{User-Agent}i"`. */
const combined: AccessFormatter = (r) =>
  `${remoteAddr(r)} - - [${clock.clf()}] "${escapeLogField(r.requestline ?? "")}" ${r.code ?? "000"} ${
    r.bodyLength > 0 ? r.bodyLength : "-"
  } "${escapeLogField(dash(requestHeader(r, "referer")))}" "${escapeLogField(dash(requestHeader(r, "user-agent")))}"`;

const utf8Strict = new TextDecoder("utf-8", { fatal: true });

/**
 * A header's value, its bytes held one per Latin-1 character, as the text a JSON reader should
 * see: UTF-8 read as UTF-8 (JSON.stringify wrote each byte of "é" as a character of its own,
 * "Ã©"); a value that is not UTF-8 keeps its bytes above 0x7f as \xHH, as the other formats do.
 */
function headerText(v: string | null): string | null {
  if (v === null || !/[\u0080-\u00ff]/.test(v)) return v;
  const bytes = Buffer.from(v, "latin1");
  try {
    return utf8Strict.decode(bytes);
  } catch {
    let out = "";
    for (const b of bytes) out += b > 0x7f ? `\\x${HEX[b >> 4]}${HEX[b & 15]}` : String.fromCharCode(b);
    return out;
  }
}

/** One JSON object per line; JSON.stringify escapes quotes, controls and lone surrogates. */
const json: AccessFormatter = (r) =>
  JSON.stringify({
    time: new Date().toISOString(),
    remote_addr: typeof r.clientAddress === "string" ? r.clientAddress : r.clientAddress[0],
    remote_port: typeof r.clientAddress === "string" ? null : r.clientAddress[1],
    request: r.requestline,
    method: r.command || null,
    target: r.path || null,
    protocol: r.requestVersion || null,
    status: r.code,
    length: r.responseLength,
    body_length: r.bodyLength,
    duration: Math.round(duration(r) * 1e6) / 1e6,
    referer: headerText(requestHeader(r, "referer")),
    user_agent: headerText(requestHeader(r, "user-agent")),
    reason: r.reason,
    // Which process served it: with workers, several write the same log.
    pid: process.pid,
  });

/**
 * Compile an access-log format: "gevent" (null: the handler's own formatRequest line),
 * "combined", "json", or a template with `{field}` names from LOG_FIELDS and `{header:NAME}`.
 * A template is split once here so a request only joins strings. An unknown field throws.
 */
export function compileLogFormat(format: string): AccessFormatter | null {
  if (format === "gevent") return null;
  if (format === "combined") return combined;
  if (format === "json") return json;
  if (!format.includes("{")) {
    throw new ConfigError(
      `log format ${JSON.stringify(format)}: expected "gevent", "combined", "json" or a template with {fields}`,
    );
  }
  const literals: string[] = [];
  const getters: Array<(r: AccessRecord) => string> = [];
  let at = 0;
  for (;;) {
    const open = format.indexOf("{", at);
    if (open < 0) break;
    const close = format.indexOf("}", open);
    if (close < 0) throw new ConfigError(`log format: "{" at offset ${open} is never closed`);
    const name = format.slice(open + 1, close);
    literals.push(format.slice(at, open));
    if (name.startsWith("header:") && name.length > 7) {
      const header = name.slice(7).toLowerCase();
      getters.push((r) => escapeLogField(dash(requestHeader(r, header))));
    } else {
      const field = LOG_FIELDS[name];
      if (field === undefined) {
        throw new ConfigError(
          `log format: unknown field {${name}}; fields are ${Object.keys(LOG_FIELDS).join(", ")}, header:NAME`,
        );
      }
      getters.push(field.get);
    }
    at = close + 1;
  }
  const last = format.slice(at);
  return (r) => {
    let out = "";
    for (let i = 0; i < getters.length; i++) out += (literals[i] as string) + (getters[i] as (r: AccessRecord) => string)(r);
    return out + last;
  };
}
