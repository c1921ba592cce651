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
/** What of a stream's first chunks at hand is gathered to size it; past this it streams, chunked. */
export const SIZED_STREAM_LIMIT = 4 * 1024 * 1024;

const NativeResponse = globalThis.Response;
const BODY = Symbol("bunwsgi.body");
/**
 * The source of a body Bun holds whole, in memory, that is neither a string, bytes nor a Blob
 * (Response.json's text, a FormData's or URLSearchParams' serialization, a clone of one):
 * `res.blob()` hands it over at once, so it is sized.
 */
const HELD = Symbol("bunwsgi.held");
/** A stream's flag that it was read from (Bun's, as Node's streams have it). */
const DISTURBED = Symbol.for("nodejs.stream.disturbed");
/**
 * The Response whose `body` a stream was first handed out as: `new Response(r.body, r)` (what
 * Hono's middleware does to change headers) has r's body, and is sized as r would be, as long as
 * nobody has read from the stream.
 */
const ORIGINS = new WeakMap<ReadableStream, Response>();

/**
 * globalThis.Response while a fetch server runs: Bun's Response, which also keeps what its body
 * was made from. A string or bytes can then be sent as they are, sized and with Bun.serve's
 * default Content-Type, without the ReadableStream and promises that reading `body` costs (the
 * way @hono/node-server's lightweight Response works). Its statics and clone() give tracked
 * Responses too, and the stream its `body` gives is remembered as its own, so that a Response
 * wrapped around it is sized (Bun.serve sizes every body it holds whole). Everything else is
 * Bun's own: methods, and `instanceof Response`, which holds for every Response, made here or not.
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

  /** Bun's Response.json (its serialization, checks and Content-Type), tracked: its body is held. */
  static override json(...args: Parameters<typeof Response.json>): Response {
    return tracked(NativeResponse.json(...args), HELD);
  }

  /**
   * Bun's clone, tracked: the same source, but for a stream's, which the clone tees. A stream
   * that is another Response's body, unread, is that body for both: the tee hands both all of it.
   */
  override clone(): Response {
    const own = this[BODY];
    const source = own instanceof ReadableStream ? unwrap(this, own) : own;
    if (source !== own) this[BODY] = source;
    const copy = super.clone() as Response;
    const same =
      source === null ||
      source === undefined ||
      typeof source === "string" ||
      source instanceof ArrayBuffer ||
      ArrayBuffer.isView(source) ||
      source instanceof Blob ||
      source instanceof Wrapped ||
      isHeld(source);
    return tracked(copy, same ? source : copy.body);
  }
}
Object.defineProperty(TrackedResponse, "name", { value: "Response" });

/** The source of the Response a stream was first handed out by, which a Response made around the stream sends. */
class Wrapped {
  readonly source: unknown;
  constructor(source: unknown) {
    this.source = source;
  }
}

/**
 * `stream`, the body of `res`, as the source of the tracked Response that first handed it out,
 * when that holds its body whole and nobody has read from the stream (Bun.serve sends such a
 * stream as the Blob it came from); else `stream` itself.
 */
function unwrap(res: Response, stream: ReadableStream): unknown {
  const origin = ORIGINS.get(stream);
  if (origin === undefined || origin === res || !(BODY in origin)) return stream;
  const inner = (origin as TrackedResponse)[BODY];
  if (inner === null || inner === undefined || inner instanceof ReadableStream) return stream;
  if (stream.locked || (stream as unknown as Record<symbol, unknown>)[DISTURBED] === true) return stream;
  return inner instanceof Wrapped ? inner : new Wrapped(inner);
}

/** A Response made by Bun (a static, a clone) as a TrackedResponse of `source`. */
function tracked(res: Response, source: unknown): Response {
  Object.setPrototypeOf(res, TrackedResponse.prototype);
  (res as TrackedResponse)[BODY] = source;
  return res;
}

/** Bodies Bun serializes whole when the Response is made. */
const isHeld = (source: unknown): boolean => source === HELD || source instanceof FormData || source instanceof URLSearchParams;

// A getter on the prototype: Response declares `body` a property, which a class cannot override with an accessor.
const nativeBody = Object.getOwnPropertyDescriptor(NativeResponse.prototype, "body")?.get as (
  this: Response,
) => ReadableStream | null;
Object.defineProperty(TrackedResponse.prototype, "body", {
  get(this: Response): ReadableStream | null {
    const stream = nativeBody.call(this);
    // The first Response to hand a stream out is its source: `new Response(s)` hands out `s` too.
    if (stream !== null && !ORIGINS.has(stream)) ORIGINS.set(stream, this);
    return stream;
  },
  configurable: true,
  enumerable: true,
});

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
  /** The request line, for the error log. */
  readonly requestline: string | null;
  logError(msg: string): void;
}

/** Sends one Response after another for one connection. */
export class ResponseSender {
  private readonly host: SendHost;
  /** The body stream being read, until it ends or is cancelled. */
  private reader: Reader | null = null;
  /** The body is being sent, until it ends or is abandoned. */
  private active = false;
  /** The response has no body to send: HEAD, or a status without content. */
  private headOnly = false;

  constructor(host: SendHost) {
    this.host = host;
  }

  /** Send `res`; a promise when its body has to be waited for. */
  send(res: unknown): void | Promise<void> {
    if (!(res instanceof NativeResponse))
      throw new ContractError(`the fetch handler must return a Response, got ${describe(res)}`);
    if (res.bodyUsed) throw new ContractError("the fetch handler returned a Response whose body was already read");
    const headers = fieldsOf(res.headers);
    const status = res.status;
    const source = BODY in res ? (res as TrackedResponse)[BODY] : res.body;
    // Bun.serve's default type for a string or bytes body, added before the head is checked, so
    // a repeated head is found in the cache; none for an empty body, nor where no content
    // belongs (204, 205, 304: RFC 9110 §8.3, a type describes content).
    if (typeof source === "string") {
      if (source !== "" && hasContent(status)) defaultType(headers, TEXT_PLAIN);
      return this.sendWhole(res, status, headers, source, chunkLength(source));
    }
    if (source instanceof ArrayBuffer || ArrayBuffer.isView(source)) {
      const bytes = source instanceof Uint8Array ? source : toBytes(source as ArrayBuffer | ArrayBufferView);
      if (bytes.length !== 0 && hasContent(status)) defaultType(headers, OCTET_STREAM);
      return this.sendWhole(res, status, headers, bytes, bytes.length);
    }
    if (source === null || source === undefined) {
      this.trueLength(headers, status, 0);
      if (this.start(res, status, headers) === RESET_CONTENT) return this.resetContent(res);
      // A HEAD answer without a body says nothing of the GET's length (RFC 9110 §9.3.2).
      this.host.response.sized = this.host.command === "HEAD" ? -1 : 0;
      return this.end();
    }
    return this.sendOther(res, status, headers, source);
  }

  /**
   * A body that is not a string or bytes: a Blob or file; a body Bun holds whole (Response.json,
   * FormData, URLSearchParams, a clone or a stream of one), sized from the Blob Bun hands over
   * at once; a stream, whose chunks at hand decide its framing. A stream first handed out as
   * another tracked Response's body, and not read from since, is that Response's body (Bun.serve
   * sends it as the Blob it came from), with the type Bun.serve gives it: the Blob's, else
   * application/octet-stream.
   */
  private sendOther(res: Response, status: number, headers: FieldList, given: unknown): void | Promise<void> {
    let source = given instanceof ReadableStream ? unwrap(res, given) : given;
    const wrapped = source instanceof Wrapped;
    if (wrapped) source = (source as Wrapped).source;
    const content = hasContent(status);
    if (source instanceof Blob) {
      if (content) defaultType(headers, blobType(source));
      this.trueLength(headers, status, source.size);
      if (this.start(res, status, headers) === RESET_CONTENT) return this.resetContent(res);
      return this.sendBlob(openBlob(source), this.headOnly);
    }
    if (wrapped && (typeof source === "string" || source instanceof ArrayBuffer || ArrayBuffer.isView(source))) {
      const bytes = typeof source === "string" ? source : toBytes(source as ArrayBuffer | ArrayBufferView);
      const len = chunkLength(bytes);
      if (content && len !== 0) defaultType(headers, OCTET_STREAM);
      return this.sendWhole(res, status, headers, bytes, len);
    }
    if (wrapped || isHeld(source)) {
      // Response.json's body is text without a type of its own; a FormData's or URLSearchParams' has its type.
      const typed = source !== HELD;
      const pending = res.blob();
      const blob = Bun.peek(pending);
      return blob instanceof Promise
        ? pending.then((b) => this.sendHeld(res, status, headers, b, typed))
        : this.sendHeld(res, status, headers, blob as Blob, typed);
    }
    // A stream, an async iterable, or a Response made before tracking: read its body.
    if (this.start(res, status, headers) === RESET_CONTENT) return this.resetContent(res);
    const reader: Reader = (res.body as ReadableStream<Chunk>).getReader();
    this.reader = reader;
    return this.next(reader.read(), true);
  }

  /**
   * A body Bun held whole, handed over as `blob`: its bytes sized; if the Response has no type,
   * the Blob's when the body has one of its own (`typed`), else application/octet-stream.
   */
  private sendHeld(res: Response, status: number, headers: FieldList, blob: Blob, typed: boolean): void | Promise<void> {
    if (blob.size !== 0 && hasContent(status)) defaultType(headers, typed && blob.type !== "" ? blob.type : OCTET_STREAM);
    const pending = blob.bytes();
    const bytes = Bun.peek(pending);
    if (bytes instanceof Promise) return pending.then((b) => this.sendWhole(res, status, headers, b, b.length));
    return this.sendWhole(res, status, headers, bytes as Uint8Array, (bytes as Uint8Array).length);
  }

  /**
   * A body whose length is known (`len`) is sent under it, not under the app's Content-Length,
   * as Bun.serve sends it: a Response rebuilt around new content with an old one's headers
   * (`new Response(changed, upstream)`, a middleware's rewrite) keeps a stale one, and honouring
   * it would cut, or leave the client waiting for, a body the server holds whole. A status
   * without content keeps the app's (a 304's may give the 200's length), and so does HEAD of an
   * empty body: the app may be saying the GET's length (RFC 9110 §9.3.2).
   */
  private trueLength(headers: FieldList, status: number, len: number): void {
    if (headers.hasLength !== true || !hasContent(status) || (len === 0 && this.host.command === "HEAD")) return;
    const value = String(len);
    for (let i = headers.length - 1; i >= 0; i--) {
      const field = headers[i] as [string, string];
      if (field[0] === "content-length" && field[1] !== value) headers.splice(i, 1);
    }
  }

  /** The head is decided: the status and fields checked, the framing's facts known. Returns the status code. */
  private start(res: Response, status: number, headers: FieldList): number {
    const host = this.host;
    const response = host.response;
    const code = response.accept(statusOf(status, res.statusText), headers, false);
    if (headers.closes) response.closeConnection = true;
    this.headOnly = host.command === "HEAD" || bodiless(code);
    this.active = true;
    return code;
  }

  /** RFC 9110 §15.3.6: no content in a 205, whatever the Response holds (Bun.serve drops it too). */
  private resetContent(res: Response): void {
    if (!res.bodyUsed) void res.body?.cancel().catch(() => {});
    this.host.response.sized = 0;
    this.end();
  }

  private sendWhole(res: Response, status: number, headers: FieldList, chunk: Chunk, len: number): void {
    this.trueLength(headers, status, len);
    if (this.start(res, status, headers) === RESET_CONTENT) {
      this.resetContent(res);
      return;
    }
    this.host.response.sized = len;
    if (!this.headOnly) this.write(chunk, len);
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
   * Take a read of the body stream. Until the head is decided, what the stream holds at once
   * is gathered (after waiting for its first read, on GET): a stream that ends within it is
   * sized, as Bun.serve sizes it, and HEAD learns the length GET would have; one that makes us
   * wait streams, chunked, each chunk written as it comes and the next read only once the
   * socket has taken the last. What is gathered is bounded (SIZED_STREAM_LIMIT), for a stream
   * may hold more at once than a response should keep.
   */
  private async next(pending: Promise<Step>, first: boolean): Promise<void> {
    const out = this.host.connection.out;
    if (first) {
      const headOnly = this.headOnly;
      const held: Chunk[] = [];
      let total = 0;
      let peeked = Bun.peek(pending);
      if (peeked instanceof Promise && !headOnly) {
        peeked = await pending;
        if (!this.active) return;
      }
      while (!(peeked instanceof Promise)) {
        const step = peeked as Step;
        if (step.done) {
          this.reader = null;
          const response = this.host.response;
          response.sized = total;
          // The head is not out yet: writeHead checks the fields again once one is dropped.
          this.trueLength(response.headers as FieldList, response.code as number, total);
          if (!headOnly) for (const chunk of held) if (!this.write(chunk, chunkLength(chunk))) return;
          return this.end();
        }
        const chunk = checkChunk(step.value);
        held.push(chunk);
        total += chunkLength(chunk);
        pending = (this.reader as Reader).read();
        peeked = Bun.peek(pending);
        // Past the limit, gather no more; a stream that ends here is still sized.
        if (total > SIZED_STREAM_LIMIT && !(peeked instanceof Promise) && !(peeked as Step).done) break;
      }
      if (headOnly) {
        // Its length is not known without waiting for the app: the head says nothing of it.
        this.abandon();
        return this.end();
      }
      for (const chunk of held) if (!this.write(chunk, chunkLength(chunk))) return;
      if (out.backpressured) await out.waitDrain();
      if (!this.active) return;
    }
    for (;;) {
      const peeked = Bun.peek(pending);
      const step = peeked instanceof Promise ? await pending : (peeked as Step);
      if (!this.active) return;
      if (step.done) break;
      const chunk = checkChunk(step.value);
      const len = chunkLength(chunk);
      pending = (this.reader as Reader).read();
      if (!this.write(chunk, len)) return;
      if (out.backpressured) await out.waitDrain();
      if (!this.active) return;
    }
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
    if (!fits) {
      host.logError(
        `${host.requestline}: the Response's body ran past its Content-Length of ${response.declared}; response cut, connection closed`,
      );
    }
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

/** A Response's fields, with what the sender needs to know of them found as they were copied. */
type FieldList = ResponseHeaders & { closes?: boolean; hasLength?: boolean };

/** A status whose response carries content (RFC 9110 §15.2, §15.3.5, §15.3.6, §15.4.5): only then has a body a type. */
const hasContent = (status: number): boolean => status >= 200 && status !== 204 && status !== 205 && status !== 304;

/** Image formats Bun.serve recognizes by their first bytes in a Blob without a type (its MimeType.sniff). */
const SNIFFED: ReadonlyArray<readonly [readonly number[], string]> = [
  [[0x42, 0x4d], "image/bmp"],
  [[0xff, 0xd8, 0xff], "image/jpeg"],
  [[0x49, 0x49, 0x2a, 0x00], "image/tiff"],
  [[0x4d, 0x4d, 0x00, 0x2a], "image/tiff"],
  [[0x47, 0x49, 0x46, 0x38, 0x39, 0x61], "image/gif"],
  [[0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], "image/png"],
];

/**
 * The type Bun.serve sends a Blob's body under when the Response has none: the Blob's own; none
 * for an empty one; for one in memory without a type, an image format its first bytes name,
 * else application/octet-stream (RFC 9110 §8.3's "unknown"; Bun.serve says text/plain of a
 * Blob it saw made from ASCII strings, which JavaScript cannot see).
 */
function blobType(blob: Blob): string | null {
  if (blob.type !== "") return blob.type;
  if (blob.size < 2) return blob.size === 0 ? null : OCTET_STREAM;
  const head = Bun.peek(blob.slice(0, 8).bytes());
  if (head instanceof Uint8Array) {
    for (const [magic, type] of SNIFFED) {
      if (head.length >= magic.length && magic.every((b, i) => head[i] === b)) return type;
    }
  }
  return OCTET_STREAM;
}

/** A Response's header fields, less the hop-by-hop ones the server decides (RFC 9112 §6.1, §9.6): a close asked for is kept as a flag. */
function fieldsOf(fields: Headers): FieldList {
  const out: FieldList = [];
  // Headers yields lowercase names, and each Set-Cookie on its own.
  for (const pair of fields) {
    const name = pair[0];
    if (name === "transfer-encoding" || name === "keep-alive") continue;
    if (name === "connection") {
      if (hasCloseToken(pair[1])) out.closes = true;
      continue;
    }
    // Found here so that a Response without one (most) costs no second look (trueLength).
    if (name === "content-length") out.hasLength = true;
    out.push(pair);
  }
  return out;
}

/** The Content-Type a body's kind implies (Bun.serve's defaults), when the app set none (names are lowercase from Headers). */
function defaultType(headers: ResponseHeaders, type: string | null): void {
  if (type === null) return;
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
