/** @module errors — the one error hierarchy: a base class, flat coded subclasses, and precomputed error responses. */

/** Base class of every error bunwsgi raises on purpose. `code` is stable and machine-readable. */
export class BunWSGIError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
    this.name = new.target.name;
  }
}

/** A client error found while reading a request: answered with `status` and a closed connection. */
export class HTTPError extends BunWSGIError {
  readonly status: number;
  constructor(status: number, message: string) {
    super(`HTTP_${status}`, message);
    this.status = status;
  }
}

/** The application broke the WSGI contract (bad status, header, call order). Thrown synchronously. */
export class ContractError extends BunWSGIError {
  constructor(message: string) {
    super("WSGI_CONTRACT", message);
  }
}

/** A configuration or option value is wrong; the message names the key and what was expected. */
export class ConfigError extends BunWSGIError {
  constructor(message: string) {
    super("CONFIG", message);
  }
}

/** The peer went away (or the server closed the connection) while the application was using it. */
export class ConnectionClosedError extends BunWSGIError {
  constructor(message = "connection closed") {
    super("CONNECTION_CLOSED", message);
  }
}

/** Reason phrases for the statuses the server itself produces (RFC 9110 §15). */
export const REASONS: Readonly<Record<number, string>> = {
  100: "Continue",
  400: "Bad Request",
  408: "Request Timeout",
  413: "Content Too Large",
  414: "URI Too Long",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  501: "Not Implemented",
  503: "Service Unavailable",
  505: "HTTP Version Not Supported",
};

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
    const reason = REASONS[status] ?? "Error";
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
