/** @module fetch/response — sends the Response a fetch app returned: status and headers checked like a WSGI app's, a body known at once sized, a Blob or file read in large slices, a stream streamed with backpressure, and the stream cancelled on every early end. */

import { bodyBlocks, closeBody, type FileBody, openBlob } from "../engine/blob.ts";
import type { ConnectionPort } from "../engine/exchange.ts";
import { fileSpan } from "../engine/ranges.ts";
import { chunkLength, type ResponseWriter } from "../engine/response.ts";
import { sendfileUsable, sendSpan } from "../engine/sendfile.ts";
import { ContractError } from "../errors.ts";
import { bodiless, RESET_CONTENT } from "../http/framing.ts";
import { hasCloseToken, type ResponseHeaders } from "../http/response.ts";

/** Status strings by code ("200"): with no reason phrase, the writer adds the standard one. */
const CODES: readonly string[] = Array.from({ length: 600 }, (_, code) => String(code));
const statusOf = (code: number, text: string): string => (text !== "" ? `${code} ${text}` : (CODES[code] as string));

/** Bun.serve's default Content-Type for a body given as a string, which apps rely on (Hono's c.text() leaves it to the server). */
const TEXT_PLAIN = "text/plain;charset=utf-8";
/** …and for one given as bytes. */
const OCTET_STREAM = "application/octet-stream";
/** A Blob or file is read in slices of this size: a slice of a file is one read into one buffer. */
export const BLOB_SLICE = 512 * 1024;

const NativeResponse = globalThis.Response;
const BODY = Symbol("bunwsgi.body");

/**
 * globalThis.Response while a fetch server runs: Bun's Response, which also keeps what its body
 * was made from. A string or bytes can then be sent as they are, sized and with Bun.serve's
 * default Content-Type, without the ReadableStream and promises that reading `body` costs (the
 * way @hono/node-server's lightweight Response works). Everything else is Bun's own: methods,
 * statics, and `instanceof Response`, which holds for every Response, made here or not.
 */
class TrackedResponse extends NativeResponse {
  [BODY]: unknown;

  constructor(body?: ConstructorParameters<typeof Response>[0], init?: ResponseInit) {
    super(body, init);
    this[BODY] = body;
  }

  static override [Symbol.hasInstance](value: unknown): boolean {
    return value instanceof NativeResponse;
  }
}
Object.defineProperty(TrackedResponse, "name", { value: "Response" });

/** Make `new Response(…)` keep its body's source (idempotent). */
export function trackResponses(): void {
  if (globalThis.Response !== TrackedResponse) globalThis.Response = TrackedResponse as typeof Response;
}

type Chunk = Uint8Array | string;
type Step = { done: boolean; value?: unknown };
/** What the sender uses of a body stream's default reader. */
interface Reader {
  read(): Promise<Step>;
  cancel(reason?: unknown): Promise<void>;
}

/** What the sender needs of its exchange. */
export interface SendHost {
  readonly connection: ConnectionPort;
  readonly response: ResponseWriter;
  /** "HEAD", "GET", …: HEAD gets the head alone. */
  readonly command: string;
  /** The request's header fields (Range, If-Range). */
  readonly headers: ReadonlyArray<readonly [string, string]>;
  readonly protocol: string;
  /** The body is complete: the head if nothing was sent, the end of its framing, its length checked. */
  endBody(): void;
}

/** Sends one Response after another for one connection. */
export class ResponseSender {
  private readonly host: SendHost;
  /** The body stream being read, until it ends or is cancelled. */
  private reader: Reader | null = null;
  /** The body is being sent, until it ends or is abandoned. */
  private active = false;

  constructor(host: SendHost) {
    this.host = host;
  }

  /** Send `res`; a promise when its body has to be waited for. */
  send(res: unknown): void | Promise<void> {
    if (!(res instanceof NativeResponse))
      throw new ContractError(`the fetch handler must return a Response, got ${describe(res)}`);
    if (res.bodyUsed) throw new ContractError("the fetch handler returned a Response whose body was already read");
    const host = this.host;
    const response = host.response;
    const headers = fieldsOf(res.headers);
    const source = BODY in res ? (res as TrackedResponse)[BODY] : res.body;
    // Bun.serve's default type for a string or bytes body, added before the head is checked, so
    // a repeated head is found in the cache.
    if (typeof source === "string") defaultType(headers, TEXT_PLAIN);
    else if (source instanceof ArrayBuffer || ArrayBuffer.isView(source)) defaultType(headers, OCTET_STREAM);
    const code = response.accept(statusOf(res.status, res.statusText), headers, false);
    if (headers.closes) response.closeConnection = true;
    const headOnly = host.command === "HEAD" || bodiless(code);
    this.active = true;
    if (code === RESET_CONTENT) {
      // RFC 9110 §15.3.6: no content in a 205, whatever the Response holds (Bun.serve drops it too).
      void res.body?.cancel().catch(() => {});
      response.sized = 0;
      return this.end();
    }
    if (source === null || source === undefined) {
      // A HEAD answer without a body says nothing of the GET's length (RFC 9110 §9.3.2).
      response.sized = host.command === "HEAD" ? -1 : 0;
      return this.end();
    }
    if (typeof source === "string") return this.sendWhole(source, chunkLength(source), headOnly);
    if (source instanceof ArrayBuffer || ArrayBuffer.isView(source)) {
      const bytes = source instanceof Uint8Array ? source : toBytes(source as ArrayBuffer | ArrayBufferView);
      return this.sendWhole(bytes, bytes.length, headOnly);
    }
    if (source instanceof Blob) return this.sendBlob(openBlob(source), headOnly);
    // A stream, FormData, URLSearchParams, an async iterable, or a Response made before tracking: read its body.
    const reader: Reader = (res.body as ReadableStream<Chunk>).getReader();
    this.reader = reader;
    if (headOnly) {
      this.abandon();
      return this.end();
    }
    return this.next(reader.read(), true);
  }

  private sendWhole(chunk: Chunk, len: number, headOnly: boolean): void {
    this.host.response.sized = len;
    if (!headOnly) this.write(chunk, len);
    this.end();
  }

  /**
   * A Blob or Bun.file(): what it is found now (engine/blob: a file opened, or bytes in memory;
   * a missing file throws, a 500 naming it), sized from its size, its preconditions and Range
   * answered (engine/ranges), by sendfile(2) on a plain socket or else read in slices; a file
   * the response opened is closed however the response ends.
   */
  private async sendBlob(body: FileBody, headOnly: boolean): Promise<void> {
    try {
      const host = this.host;
      const response = host.response;
      const span = fileSpan(response, host.headers, host.command, body.size, body.mtimeMs);
      response.sized = span.length;
      if (headOnly || span.length === 0) return this.end();
      const out = host.connection.out;
      if (body.fd >= 0 && sendfileUsable(out)) {
        if (!response.headersSent) response.writeHead(host.protocol, host.command);
        // A head that promises another length (the app's Content-Length) goes by the read path, which cuts what overflows.
        if (response.promised === span.length) {
          await sendSpan(out, response, body, span, () => !this.active);
          if (this.active) this.end();
          return;
        }
      }
      for await (const bytes of bodyBlocks(body, span, BLOB_SLICE)) {
        if (!this.active || !this.write(bytes, bytes.length)) return;
        if (out.backpressured) await out.waitDrain();
        if (!this.active) return;
      }
      this.end();
    } finally {
      closeBody(body);
    }
  }

  /**
   * Take a read of the body stream. The first decides the framing: a body whose second read
   * ends at once (Bun hands a Blob or a Response made before tracking over whole) is sized;
   * anything else streams, each chunk written as it comes and the next read only once the
   * socket has taken the last.
   */
  private async next(pending: Promise<Step>, first: boolean): Promise<void> {
    const out = this.host.connection.out;
    for (;;) {
      const peeked = Bun.peek(pending);
      const step = peeked instanceof Promise ? await pending : (peeked as Step);
      if (!this.active) return;
      if (step.done) break;
      const chunk = checkChunk(step.value);
      const len = chunkLength(chunk);
      pending = (this.reader as Reader).read();
      if (first) {
        first = false;
        const after = Bun.peek(pending);
        if (!(after instanceof Promise) && (after as Step).done) {
          this.host.response.sized = len;
          this.write(chunk, len);
          break;
        }
      }
      if (!this.write(chunk, len)) return;
      if (out.backpressured) await out.waitDrain();
      if (!this.active) return;
    }
    if (first) this.host.response.sized = 0;
    this.end();
  }

  /** Write a chunk; false when the body must stop (past the app's Content-Length, connection gone). */
  private write(chunk: Chunk, len: number): boolean {
    if (len === 0) return true;
    const host = this.host;
    const response = host.response;
    if (!response.headersSent) response.writeHead(host.protocol, host.command);
    const fits = response.writeBody(chunk, len);
    host.connection.out.commit();
    if (!fits || host.connection.closed) {
      this.abandon();
      return false;
    }
    return true;
  }

  private end(): void {
    this.reader = null;
    this.active = false;
    this.host.endBody();
  }

  /** Stop sending (the client went away, the time is up, the body overflowed, HEAD): the app's stream is cancelled. */
  abandon(): void {
    this.active = false;
    const reader = this.reader;
    this.reader = null;
    // Its rejection, if any, is the app's business: the response no longer reads it.
    if (reader !== null) reader.cancel().catch(() => {});
  }
}

/** A Response's header fields, less the hop-by-hop ones the server decides (RFC 9112 §6.1, §9.6): a close asked for is kept as a flag. */
function fieldsOf(fields: Headers): ResponseHeaders & { closes?: boolean } {
  const out: ResponseHeaders & { closes?: boolean } = [];
  // Headers yields lowercase names, and each Set-Cookie on its own.
  for (const pair of fields) {
    const name = pair[0];
    if (name === "transfer-encoding" || name === "keep-alive") continue;
    if (name === "connection") {
      if (hasCloseToken(pair[1])) out.closes = true;
      continue;
    }
    out.push(pair);
  }
  return out;
}

/** The Content-Type a body's kind implies (Bun.serve's defaults), when the app set none (names are lowercase from Headers). */
function defaultType(headers: ResponseHeaders, type: string): void {
  for (let i = 0; i < headers.length; i++) if ((headers[i] as [string, string])[0] === "content-type") return;
  headers.push(["content-type", type]);
}

function checkChunk(value: unknown): Chunk {
  if (value instanceof Uint8Array || typeof value === "string") return value;
  if (value instanceof ArrayBuffer || ArrayBuffer.isView(value)) return toBytes(value);
  throw new ContractError(`a Response body stream must yield bytes or strings, got ${describe(value)}`);
}

function toBytes(v: ArrayBuffer | ArrayBufferView): Uint8Array {
  return v instanceof ArrayBuffer ? new Uint8Array(v) : new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
}

function describe(v: unknown): string {
  if (v === null) return "null";
  if (typeof v !== "object") return typeof v;
  return (v as object).constructor?.name ?? "an object";
}
