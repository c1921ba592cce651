/** @module fetch/request — the Request a fetch app receives: its URL from the target and Host, its headers as received, its body as a stream fed by the connection, and a signal made when first read. */

import type { Input } from "../engine/input.ts";
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

  static signalOf(request: IncomingRequest): AbortSignal {
    if (request.#controller === null) {
      const c = new AbortController();
      request.#controller = c;
      if (request.#gone) c.abort(new DOMException("the client closed the connection", "AbortError"));
    }
    return request.#controller.signal;
  }
}

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
