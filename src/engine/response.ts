/** @module engine/response — one response on a connection: its checked head, the framing http/framing decides, body chunks, the end, and server-made error responses. */

import { ContractError } from "../errors.ts";
import { bodiless, bodyFraming, CHUNKED, connectionField, persists, RESET_CONTENT } from "../http/framing.ts";
import { clientCloses } from "../http/request.ts";
import {
  type Chunk,
  cannedResponse,
  checkHead,
  findHead,
  type ResponseHead,
  type ResponseHeaders,
  STANDARD_REASONS,
} from "../http/response.ts";
import { clock } from "../observe/clock.ts";
import type { ConnectionPort } from "./exchange.ts";
import type { Output } from "./output.ts";

/** Runs up to this long are measured by a loop here: cheaper than a native call. */
const SHORT_STRING = 64;

/** Bytes of a chunk on the wire (a string goes out as UTF-8). */
export function chunkLength(c: Chunk): number {
  if (typeof c !== "string") return c.length;
  if (c.length <= SHORT_STRING) {
    let i = 0;
    while (i < c.length && c.charCodeAt(i) < 0x80) i++;
    if (i === c.length) return i;
  }
  return Buffer.byteLength(c, "utf8");
}

/** The last chunk size line made: a stream's chunks are mostly of one size, so one string serves them all. */
let lastLen = -1;
let lastLine = "";

/** A chunk's size line, CRLF included (RFC 9112 §7.1). */
function sizeLine(len: number): string {
  if (len !== lastLen) {
    lastLen = len;
    lastLine = `${len.toString(16)}\r\n`;
  }
  return lastLine;
}

/**
 * Writes one response at a time on its connection, through the connection's output buffer.
 * The app side (WSGI's startResponse and write, later fetch's Response) decides what to send;
 * this decides how it is framed, and keeps what the access log reports.
 */
export class ResponseWriter {
  private readonly conn: ConnectionPort;
  private readonly out: Output;
  /** The status line's text ("200 OK"), its code, and the app's header list. */
  status: string | null = null;
  code: number | null = null;
  headers: ResponseHeaders | null = null;
  /** Bytes sent, status line and headers included; 0 when nothing was sent. */
  length = 0;
  /** Body bytes sent, framing excluded. */
  bodySent = 0;
  headersSent = false;
  /** The connection closes after this response. */
  closeConnection = false;
  /** Total length of a body known in advance (an Array result), or -1. */
  sized = -1;
  /**
   * The Content-Length the head carries, the app's or the server's (from `sized`), or -1: a body
   * that ends short of it closes the connection. A file that shrank while it was sent ends short
   * of the size it had when its head was written.
   */
  promised = -1;
  /** The app sent more than its Content-Length: the rest of its body is to be dropped. */
  overflowed = false;
  /** What checking the status and headers found. */
  private head: ResponseHead | null = null;
  private chunked = false;
  private isHead = false;

  constructor(conn: ConnectionPort) {
    this.conn = conn;
    this.out = conn.out;
  }

  reset(): void {
    this.status = null;
    this.code = null;
    this.headers = null;
    this.head = null;
    this.length = 0;
    this.bodySent = 0;
    this.headersSent = false;
    this.closeConnection = false;
    this.sized = -1;
    this.promised = -1;
    this.overflowed = false;
    this.chunked = false;
    this.isHead = false;
  }

  /** The app's own Content-Length, or -1. */
  get declared(): number {
    return this.head === null ? -1 : this.head.declared;
  }

  /**
   * Check and keep a status and header list (ContractError when wrong: nothing of it is kept
   * or sent). `upgrade`: the request is an upgrade request, the only kind 101 may answer.
   */
  accept(status: string, headers: ResponseHeaders, upgrade: boolean): number {
    if (typeof status !== "string") throw new ContractError("status must be a string like '200 OK'");
    const head = findHead(status, headers) ?? checkHead(status, headers);
    const code = head.code;
    // A 304's Content-Length may say the 200's length (RFC 9110 §8.6); a 204 has none to say.
    if (code === 204 && head.declared > 0) {
      throw new ContractError("a 204 response must not have a non-zero Content-Length");
    }
    if (code === RESET_CONTENT && head.declared > 0) {
      throw new ContractError("a 205 response must not have content (RFC 9110 §15.3.6)");
    }
    if (code < 200 && code !== 101) {
      throw new ContractError(`${code} is an interim status: the response needs a final status, 200 to 599 (RFC 9110 §15.2)`);
    }
    if (code === 101 && !upgrade) {
      throw new ContractError("101 Switching Protocols answers only an Upgrade request (RFC 9110 §15.2.2)");
    }
    this.status = head.fullStatus;
    this.code = code;
    this.headers = headers;
    this.head = head;
    return code;
  }

  /** Refuse body data on a status that has none (101's bytes are the new protocol's). */
  checkBody(): void {
    const code = this.code as number;
    if ((bodiless(code) && code !== 101) || code === RESET_CONTENT)
      throw new ContractError(`a ${code} response cannot have a body`);
  }

  /** Write the status line and headers, framing and persistence decided by http/framing. */
  writeHead(protocol: string, method: string): void {
    const status = this.status as string;
    const headers = this.headers as ResponseHeaders;
    let head = this.head;
    // A hook (or the app, on its own list) may have changed the status or the headers since
    // they were accepted: what is sent is checked the same way (ContractError: a 500).
    if (head === null || head.fullStatus !== status || !head.matches(headers)) {
      head = findHead(status, headers) ?? checkHead(status, headers);
      this.head = head;
    }
    const conn = this.conn;
    const out = this.out;
    const p = conn.parser;
    const code = this.code as number;
    const http10 = p.versionMinor === 0;
    this.isHead = method === "HEAD";
    const length = bodyFraming(code, this.isHead, http10, head.declared, this.sized);
    this.chunked = length === CHUNKED;
    this.promised = head.declared >= 0 ? head.declared : Math.max(length, -1);
    // An unsized body is the app's stream, still running: it may yet read its request's body.
    const persist = persists(
      clientCloses(p),
      this.closeConnection || head.hasClose,
      conn.mustClose(this.sized < 0),
      code,
      length,
    );
    this.closeConnection = !persist;
    const connection = connectionField(persist, http10, code);
    const date = head.hasDate ? null : clock.dateHeader();
    this.headersSent = true;
    const bytes = head.encoded(protocol, length, connection, date);
    if (bytes !== null) {
      out.writeBytes(bytes);
      this.length += bytes.length;
      return;
    }
    const text = head.text(protocol, length, connection);
    out.writeLatin1(text);
    this.length += text.length + 2;
    if (date !== null) {
      out.writeBytes(date);
      this.length += date.length;
    }
    out.writeLatin1("\r\n");
  }

  /**
   * Write body data (nothing for HEAD). Returns false when the data went past the app's
   * Content-Length: what fits is sent, the rest dropped, and the connection will close.
   */
  writeBody(data: Chunk, len: number): boolean {
    if (this.isHead) return true;
    const out = this.out;
    const declared = this.declared;
    let fits = true;
    if (declared >= 0) {
      const room = declared - this.bodySent;
      if (len > room) {
        fits = false;
        this.overflowed = true;
        this.closeConnection = true;
        if (room <= 0) return false;
        const bytes = typeof data === "string" ? Buffer.from(data, "utf8") : data;
        data = bytes.subarray(0, room);
        len = room;
      }
    }
    this.bodySent += len;
    this.length += len;
    if (!this.chunked) {
      if (typeof data === "string") out.writeUtf8(data);
      // Parts of a declared length before the last say MSG_MORE (Output.writeAround).
      else out.writeBytes(data, this.bodySent < declared);
      return fits;
    }
    const size = sizeLine(len);
    this.length += size.length + 2;
    if (typeof data !== "string" && out.writeChunk(size, data)) return fits;
    out.writeLatin1(size);
    if (typeof data === "string") out.writeUtf8(data);
    else out.writeBytes(data);
    out.writeLatin1("\r\n");
    return fits;
  }

  /**
   * The body is complete: end chunked framing. Returns how many bytes short of the head's
   * Content-Length it ended (then the connection closes: the client must not wait for them).
   */
  end(): number {
    let short = 0;
    const code = this.code as number;
    if (this.chunked) {
      this.out.writeLatin1("0\r\n\r\n");
      this.length += 5;
    } else if (this.promised > this.bodySent && !this.isHead && !bodiless(code)) {
      short = this.promised - this.bodySent;
      this.closeConnection = true;
    }
    // After 101 the connection is the app's, and ends with its body.
    if (code === 101) this.closeConnection = true;
    this.out.commit();
    return short;
  }

  /** A server-made error response (RFC 9110 §6.6.1: with Date); the connection closes after it. */
  error(status: number): void {
    const c = cannedResponse(status);
    const out = this.out;
    const date = clock.dateHeader();
    out.writeBytes(c.head);
    out.writeBytes(date);
    out.writeBytes(c.tail);
    out.commit();
    this.status = `${status} ${STANDARD_REASONS[status] ?? "Error"}`;
    this.code = status;
    this.length = c.length + date.length;
    this.bodySent = c.bodyLength;
    this.headersSent = true;
    this.closeConnection = true;
  }
}
