/** @module fetch/request — the Request a fetch app receives: its URL from the target and Host, its headers as received, its body as a stream fed by the connection (read whole straight from it by arrayBuffer/bytes/text/json), and a signal made when first read. */

import { copyOf, type Input } from "../engine/input.ts";
import { TargetForm } from "../http/request-line.ts";
import type { FetchExchange } from "./exchange.ts";

/** Largest chunk a body stream hands out at once: a received chunk, or this much of one. */
const MAX_BODY_CHUNK = 256 * 1024;

/**
 * The request a fetch app gets: a real Request (instanceof, clone, text/json/formData all work)
 * whose `signal` is made when the app first reads it, since most apps never do and an
 * AbortController per request costs as much as the rest of the Request. The signal aborts when
 * the client goes away before the response is done.
 */
export class IncomingRequest extends Request {
  #origin: FetchExchange | null = null;
  #controller: AbortController | null = null;
  #gone = false;
  /** The connection's body and the stream made over it, while the Request still holds that stream. */
  #input: Input | null = null;
  #stream: ReadableStream<Uint8Array> | null = null;

  /** The exchange that received `request`, or null for a request this server did not make. */
  static originOf(request: Request): FetchExchange | null {
    return request instanceof IncomingRequest ? request.#origin : null;
  }

  /** Link a request to the exchange answering it. */
  static received(request: IncomingRequest, origin: FetchExchange): void {
    request.#origin = origin;
  }

  /** The client went away before the response was done: abort the signal (now, or when it is made). */
  static clientGone(request: IncomingRequest): void {
    request.#gone = true;
    request.#controller?.abort(new DOMException("the client closed the connection", "AbortError"));
  }

  /** Give `request` its body: `stream` (its `body`), made by bodyStream over `input`. */
  static withBody(request: IncomingRequest, input: Input, stream: ReadableStream<Uint8Array>): void {
    request.#input = input;
    request.#stream = stream;
  }

  /**
   * The whole body read straight from the connection, for arrayBuffer(), bytes(), text() and
   * json(): null when the Request no longer holds the stream made over it untouched (cloned,
   * locked, read from or cancelled: `bodyUsed`; a Request without a body), and the native method
   * is to answer.
   * The stream is locked while the body is read, so a second reader fails as it would on the
   * stream, then cancelled, so the body counts as used (`bodyUsed`, and a later read rejects
   * with the native TypeError). Why: the stream way hands every received chunk through a pull,
   * a promise and Bun's list of chunks, then copies them into one buffer; Input.read() copies
   * each received chunk once into a buffer of the body's length (measured: a Hono 1 MiB echo,
   * 0.88 of the CPU per request).
   */
  static async wholeBody(request: IncomingRequest): Promise<Uint8Array | null> {
    const stream = request.#stream;
    const input = request.#input;
    if (stream === null || input === null || stream.locked || request.bodyUsed || request.body !== stream) return null;
    request.#stream = request.#input = null;
    const reader = stream.getReader();
    try {
      return await input.read();
    } finally {
      await reader.cancel();
    }
  }

  static signalOf(request: IncomingRequest): AbortSignal {
    if (request.#controller === null) {
      const c = new AbortController();
      request.#controller = c;
      if (request.#gone) c.abort(new DOMException("the client closed the connection", "AbortError"));
    }
    return request.#controller.signal;
  }
}

/** UTF-8 decode (Fetch: BOM removed, malformed bytes replaced), as Body.text() does. */
const UTF8 = new TextDecoder();

/**
 * The body as an ArrayBuffer of its own. A view into a larger buffer (a small body read with its
 * head) is copied out (engine/input's copyOf, a buffer of its exact length): the buffer of a
 * Buffer's slice() is the whole received read.
 */
function ownBuffer(b: Uint8Array): ArrayBuffer {
  if (b.byteOffset === 0 && b.byteLength === b.buffer.byteLength && b.buffer instanceof ArrayBuffer) return b.buffer;
  return copyOf(b).buffer as ArrayBuffer;
}

/** Body methods read through IncomingRequest.wholeBody, each falling back to Request's own. */
const WHOLE_BODY_READS: Record<"arrayBuffer" | "bytes" | "text" | "json", (b: Uint8Array) => unknown> = {
  arrayBuffer: ownBuffer,
  bytes: (b) => new Uint8Array(ownBuffer(b)),
  text: (b) => UTF8.decode(b),
  // An empty body fails as Request's own json() fails on one it does not hold.
  json: (b) => {
    if (b.length === 0) throw new SyntaxError("Unexpected end of JSON input");
    return JSON.parse(UTF8.decode(b));
  },
};
for (const [name, convert] of Object.entries(WHOLE_BODY_READS)) {
  const native = Request.prototype[name as keyof typeof WHOLE_BODY_READS] as (this: Request) => Promise<unknown>;
  // Methods on the prototype: Request declares them properties, which a class cannot override with methods.
  Object.defineProperty(IncomingRequest.prototype, name, {
    async value(this: IncomingRequest): Promise<unknown> {
      const body = await IncomingRequest.wholeBody(this);
      return body === null ? native.call(this) : convert(body);
    },
    configurable: true,
    writable: true,
  });
}

/**
 * blob() read through IncomingRequest.wholeBody too, typed by the request's Content-Type as
 * Bun's Request.blob() types a body it holds (its canonical form: "application/json" is
 * "application/json;charset=utf-8"; a multipart boundary as sent), which is the body's MIME type
 * the Fetch standard asks for. Request's own gives a stream body no type (so does Bun.serve's
 * request, though its clone() gives the type).
 */
const nativeBlob = Request.prototype.blob as (this: Request) => Promise<Blob>;
Object.defineProperty(IncomingRequest.prototype, "blob", {
  async value(this: IncomingRequest): Promise<Blob> {
    const body = await IncomingRequest.wholeBody(this);
    if (body === null) return nativeBlob.call(this);
    const type = this.headers.get("content-type");
    // The body's own ArrayBuffer: a view would be typed as possibly shared memory, which a Blob cannot hold.
    const bytes = ownBuffer(body);
    // A Blob made with this type would have it lower-cased (the File API), boundary and all.
    return type === null ? new Blob([bytes]) : new Response(bytes, { headers: { "content-type": type } }).blob();
  },
  configurable: true,
  writable: true,
});

// A getter on the prototype: Request declares `signal` a property, which a class cannot override with an accessor.
Object.defineProperty(IncomingRequest.prototype, "signal", {
  get(this: IncomingRequest): AbortSignal {
    return IncomingRequest.signalOf(this);
  },
  configurable: true,
  enumerable: true,
});

/**
 * The request's URL: the scheme of the listener, the authority from the target when it is in
 * absolute form (RFC 9112 §3.2.2: it replaces Host) or from Host, else the server's own.
 * `target` and `host` have passed the parser's grammar checks.
 */
export function requestURL(form: number, target: string, scheme: string, host: string): string {
  if (form === TargetForm.ABSOLUTE) return target;
  // OPTIONS * names no resource: its URL is the origin's root with the "*" as the path.
  return form === TargetForm.ASTERISK ? `${scheme}://${host}/*` : `${scheme}://${host}${target}`;
}

/**
 * The request body as a ReadableStream that takes the connection's decoded bytes as they
 * arrive (views, not copies). highWaterMark 0: nothing is read before the app asks, so an app
 * that never reads never triggers 100 Continue, and reading is paced by the app (the
 * connection pauses its socket past its own mark).
 */
export function bodyStream(input: Input): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        const chunk = await input.readSome(MAX_BODY_CHUNK);
        if (chunk.length === 0) controller.close();
        else controller.enqueue(chunk);
      },
    },
    { highWaterMark: 0 },
  );
}
