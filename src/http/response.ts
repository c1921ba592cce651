/** @module http/response — response heads: status and header checks (the app's contract), framing fields, and the cache of encoded heads. */

import { ContractError } from "../errors.ts";
import { isDigits, TCHAR } from "./bytes.ts";
import { CHUNKED, CONNECTION_CLOSE, CONNECTION_KEEP_ALIVE, CONNECTION_NONE, NO_LENGTH } from "./framing.ts";

/** A body chunk; strings go on the wire as UTF-8. */
export type Chunk = string | Uint8Array;
/** Response header fields in order: [name, value]. */
export type ResponseHeaders = Array<[name: string, value: string]>;

/** Reason phrases (RFC 9110 §15): for a bare "NNN" status and for the server's own responses. */
export const STANDARD_REASONS: Readonly<Record<number, string>> = {
  100: "Continue",
  101: "Switching Protocols",
  102: "Processing",
  103: "Early Hints",
  200: "OK",
  201: "Created",
  202: "Accepted",
  203: "Non-Authoritative Information",
  204: "No Content",
  205: "Reset Content",
  206: "Partial Content",
  207: "Multi-Status",
  208: "Already Reported",
  226: "IM Used",
  300: "Multiple Choices",
  301: "Moved Permanently",
  302: "Found",
  303: "See Other",
  304: "Not Modified",
  307: "Temporary Redirect",
  308: "Permanent Redirect",
  400: "Bad Request",
  401: "Unauthorized",
  402: "Payment Required",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  406: "Not Acceptable",
  407: "Proxy Authentication Required",
  408: "Request Timeout",
  409: "Conflict",
  410: "Gone",
  411: "Length Required",
  412: "Precondition Failed",
  413: "Content Too Large",
  414: "URI Too Long",
  415: "Unsupported Media Type",
  416: "Range Not Satisfiable",
  417: "Expectation Failed",
  421: "Misdirected Request",
  422: "Unprocessable Content",
  423: "Locked",
  424: "Failed Dependency",
  425: "Too Early",
  426: "Upgrade Required",
  428: "Precondition Required",
  429: "Too Many Requests",
  431: "Request Header Fields Too Large",
  451: "Unavailable For Legal Reasons",
  500: "Internal Server Error",
  501: "Not Implemented",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
  505: "HTTP Version Not Supported",
  506: "Variant Also Negotiates",
  507: "Insufficient Storage",
  508: "Loop Detected",
  511: "Network Authentication Required",
};

const isToken = (s: string): boolean => {
  if (s.length === 0) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 0x7f || TCHAR[c] !== 1) return false;
  }
  return true;
};

/** Why a header value is unacceptable, or null: CTLs (but HTAB), DEL, or beyond latin-1. */
function badValueChar(v: string): string | null {
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if (c > 0xff) return `character U+${c.toString(16).toUpperCase().padStart(4, "0")} above U+00FF`;
    if ((c < 0x20 && c !== 9) || c === 0x7f)
      return c === 13 ? "CR" : c === 10 ? "LF" : c === 0 ? "NUL" : `control character 0x${c.toString(16)}`;
  }
  return null;
}

/**
 * Whether the server, not the app, writes a field of a `code` response, so the app's is left off
 * the wire. Connection and its hop-by-hop kin (RFC 9112 §9.6, RFC 9110 §7.6.1) follow the
 * server's persistence decision (an app's "close" is taken as a wish to close); a 101's
 * Connection: Upgrade is the app's. A 1xx or 204 has no Content-Length to send (RFC 9110 §8.6).
 */
function serverOwned(lower: string, code: number): boolean {
  switch (lower.length) {
    case 10:
      return (lower === "connection" && code !== 101) || lower === "keep-alive";
    case 14:
      return lower === "content-length" && (code < 200 || code === 204);
    case 16:
      return lower === "proxy-connection";
  }
  return false;
}

/** Whether a Connection header value lists the "close" token. */
export function hasCloseToken(v: string): boolean {
  for (const t of v.split(",")) if (t.trim().toLowerCase() === "close") return true;
  return false;
}

/**
 * The framing and Connection fields the server adds (see http/framing). `upgrade`: the head has
 * an Upgrade field, whose sender MUST list "upgrade" in Connection (RFC 9110 §7.8), and the one
 * Connection field is the server's.
 */
function framingFields(length: number, connection: number, upgrade: boolean): string {
  let s = length >= 0 ? `Content-Length: ${length}\r\n` : length === CHUNKED ? "Transfer-Encoding: chunked\r\n" : "";
  if (connection === CONNECTION_CLOSE) s += upgrade ? "Connection: close, Upgrade\r\n" : "Connection: close\r\n";
  else if (connection === CONNECTION_KEEP_ALIVE)
    s += upgrade ? "Connection: keep-alive, Upgrade\r\n" : "Connection: keep-alive\r\n";
  else if (upgrade) s += "Connection: Upgrade\r\n";
  return s;
}

/**
 * A status and header list that passed startResponse(), what checking them found, and their
 * encoded head. Most applications send a few heads over and over, built from the same literals:
 * a repeat is recognised by comparing strings (often the very same string objects) instead of
 * validating and encoding it again. Shared by all connections; JavaScript runs one at a time.
 */
export class ResponseHead {
  status = "";
  readonly names: string[] = [];
  readonly values: string[] = [];
  code = 0;
  /** The status line's text: a bare "NNN" gets its standard reason phrase. */
  fullStatus = "";
  declared = -1;
  hasDate = false;
  hasClose = false;
  /** An Upgrade field on a status other than 101 (whose Connection is the app's): the server's Connection lists "upgrade". */
  advertises = false;
  /** Some of the app's fields are the server's to write (serverOwned): the head leaves them out. */
  omits = false;
  /** The whole encoded head for one protocol, framing, Connection field and Date line. */
  private bytes: Uint8Array | null = null;
  private protocol = "";
  private length = NO_LENGTH;
  private connection = CONNECTION_NONE;
  private date: Uint8Array | null = null;
  /** The last combination that missed: a head is encoded only when one repeats, as a unique one may never come back. */
  private missProtocol = "";
  private missLength = NO_LENGTH;
  private missConnection = -1;
  private missDate: Uint8Array | null = null;

  /** Become the head of a checked status and header list (in place: no allocation). */
  set(
    status: string,
    headers: ResponseHeaders,
    code: number,
    declared: number,
    date: boolean,
    close: boolean,
    omits: boolean,
    upgrade: boolean,
  ): this {
    this.status = status;
    const n = headers.length;
    this.names.length = this.values.length = n;
    for (let i = 0; i < n; i++) {
      const h = headers[i] as readonly [string, string];
      this.names[i] = h[0];
      this.values[i] = h[1];
    }
    this.code = code;
    // A code without a known reason keeps its SP: status-line = HTTP-version SP status-code SP
    // [ reason-phrase ] (RFC 9112 §4).
    this.fullStatus = status.length === 3 ? `${status} ${STANDARD_REASONS[code] ?? ""}` : status;
    this.declared = declared;
    this.hasDate = date;
    this.hasClose = close;
    this.omits = omits;
    this.advertises = upgrade && code !== 101;
    this.bytes = this.date = this.missDate = null;
    this.missConnection = -1;
    return this;
  }

  /** Whether `headers` holds, right now, the same pairs this head was made from. */
  matches(headers: unknown): boolean {
    const names = this.names;
    if (!Array.isArray(headers) || headers.length !== names.length) return false;
    for (let i = 0; i < names.length; i++) {
      const h: unknown = headers[i];
      if (!Array.isArray(h) || h.length !== 2 || h[0] !== names[i] || h[1] !== this.values[i]) return false;
    }
    return true;
  }

  /** The status line and fields, Date and the blank line excepted. */
  text(protocol: string, length: number, connection: number): string {
    let s = `${protocol} ${this.fullStatus}\r\n`;
    const omits = this.omits;
    for (let i = 0; i < this.names.length; i++) {
      const name = this.names[i] as string;
      if (omits && serverOwned(name.toLowerCase(), this.code)) continue;
      s += `${name}: ${this.values[i]}\r\n`;
    }
    return s + framingFields(length, connection, this.advertises);
  }

  /** The encoded head for this combination, or null the first time it is asked for. */
  encoded(protocol: string, length: number, connection: number, date: Uint8Array | null): Uint8Array | null {
    if (
      this.bytes !== null &&
      length === this.length &&
      connection === this.connection &&
      date === this.date &&
      protocol === this.protocol
    ) {
      return this.bytes;
    }
    if (
      length !== this.missLength ||
      connection !== this.missConnection ||
      date !== this.missDate ||
      protocol !== this.missProtocol
    ) {
      this.missProtocol = protocol;
      this.missLength = length;
      this.missConnection = connection;
      this.missDate = date;
      return null;
    }
    const s = this.text(protocol, length, connection);
    const dateLength = date === null ? 0 : date.length;
    const bytes = Buffer.alloc(s.length + dateLength + 2);
    bytes.write(s, 0, "latin1");
    if (date !== null) bytes.set(date, s.length);
    bytes[bytes.length - 2] = 13;
    bytes[bytes.length - 1] = 10;
    this.bytes = bytes;
    this.protocol = protocol;
    this.length = length;
    this.connection = connection;
    this.date = date;
    return bytes;
  }
}

/** Heads seen at least twice; a full cache replaces its oldest. */
const HEAD_CACHE_SIZE = 4;
const heads: ResponseHead[] = [];
let nextHead = 0;
/**
 * The last head seen only once. A list unique to its response (an ETag, a Content-Length the
 * app computed) then costs no allocation, and never pushes a repeated head out of the cache.
 */
let candidate = new ResponseHead();

export function findHead(status: string, headers: ResponseHeaders): ResponseHead | null {
  for (let i = 0; i < heads.length; i++) {
    const h = heads[i] as ResponseHead;
    if (h.status === status && h.matches(headers)) return h;
  }
  // code 0: a fresh candidate, which no status may match (not even "").
  if (candidate.code === 0 || candidate.status !== status || !candidate.matches(headers)) return null;
  const seenTwice = candidate;
  candidate = new ResponseHead();
  if (heads.length < HEAD_CACHE_SIZE) heads.push(seenTwice);
  else {
    heads[nextHead] = seenTwice;
    nextHead = (nextHead + 1) % HEAD_CACHE_SIZE;
  }
  return seenTwice;
}

/** Validate a status and header list (ContractError when wrong); the result is the new candidate. */
export function checkHead(status: string, headers: ResponseHeaders): ResponseHead {
  const code = parseStatus(status);
  if (!Array.isArray(headers)) throw new ContractError("headers must be an array of [name, value] pairs");
  let declared = -1;
  let date = false;
  let close = false;
  let omits = false;
  let upgrade = false;
  for (let i = 0; i < headers.length; i++) {
    const h: unknown = headers[i];
    if (!Array.isArray(h) || h.length !== 2 || typeof h[0] !== "string" || typeof h[1] !== "string") {
      throw new ContractError("each header must be a [name, value] pair of strings");
    }
    const name = h[0];
    const value = h[1];
    if (!isToken(name)) throw new ContractError(`invalid header name ${JSON.stringify(name)}: not an RFC 9110 token`);
    const bad = badValueChar(value);
    if (bad !== null) throw new ContractError(`invalid value for header ${name}: contains ${bad}`);
    switch (name.length) {
      case 4:
        if (name.toLowerCase() === "date") date = true;
        break;
      case 7:
        if (name.toLowerCase() === "upgrade") upgrade = true;
        break;
      case 10:
      case 16: {
        const lower = name.toLowerCase();
        if (serverOwned(lower, code)) omits = true;
        if (lower === "connection" && hasCloseToken(value)) close = true;
        break;
      }
      case 14:
        if (name.toLowerCase() === "content-length") {
          if (serverOwned("content-length", code)) omits = true;
          if (!isDigits(value)) throw new ContractError(`invalid Content-Length ${JSON.stringify(value)}`);
          // Content-Length is a singleton: one field line, or the client sees two values (even
          // equal ones make "2, 2", which is no 1*DIGIT: RFC 9110 §5.3, §8.6).
          if (declared !== -1) throw new ContractError("Content-Length given twice: a response has one (RFC 9110 §8.6)");
          declared = Number(value);
        }
        break;
      case 17:
        if (name.toLowerCase() === "transfer-encoding") {
          throw new ContractError("Transfer-Encoding is hop-by-hop and set by the server (PEP 3333)");
        }
        break;
    }
  }
  return candidate.set(status, headers, code, declared, date, close, omits, upgrade);
}

/** "NNN" or "NNN reason-phrase" (RFC 9112 §4); returns the code or throws. */
export function parseStatus(status: string): number {
  if (status.length < 3) badStatus(status);
  let code = 0;
  for (let i = 0; i < 3; i++) {
    const c = status.charCodeAt(i) - 48;
    if (c < 0 || c > 9) badStatus(status);
    code = code * 10 + c;
  }
  if (code < 100 || code > 599) badStatus(status);
  if (status.length > 3) {
    if (status.charCodeAt(3) !== 32) badStatus(status);
    if (badValueChar(status) !== null) badStatus(status);
  }
  return code;
}

function badStatus(status: string): never {
  throw new ContractError(`invalid status ${JSON.stringify(status)}: expected "NNN Reason" with NNN in 100–599`);
}

/**
 * An error response split around the Date line, so it is built once and only the cached
 * Date bytes are spliced in (RFC 9110 §6.6.1 wants Date on 4xx from a server with a clock).
 */
export interface CannedResponse {
  readonly status: number;
  readonly head: Uint8Array;
  readonly tail: Uint8Array;
  /** Bytes on the wire, Date line excluded. */
  readonly length: number;
  /** Bytes of the body alone. */
  readonly bodyLength: number;
}

const latin1 = (s: string): Uint8Array => {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
};

const canned = new Map<number, CannedResponse>();

/** The precomputed `Connection: close` response for a server-generated status. */
export function cannedResponse(status: number): CannedResponse {
  let r = canned.get(status);
  if (r === undefined) {
    const reason = STANDARD_REASONS[status] ?? "Error";
    const body = `${reason}\n`;
    const head = latin1(`HTTP/1.1 ${status} ${reason}\r\n`);
    const tail = latin1(
      `Connection: close\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
    );
    r = { status, head, tail, length: head.length + tail.length, bodyLength: body.length };
    canned.set(status, r);
  }
  return r;
}
