/** @module http/framing — pure decisions on a response's body framing and on whether its connection persists (RFC 9112 §6.3, §9.3), in the manner of h11's _body_framing and _keep_alive. */

/** Framing the server adds: a Content-Length value (>= 0), or one of these. */
export const NO_LENGTH = -1;
export const CHUNKED = -2;
/** No length can be given (an unsized HTTP/1.0 body): the end of the body is the connection's close. */
export const CLOSE_DELIMITED = -3;

/** The Connection field the server adds. */
export const CONNECTION_NONE = 0;
export const CONNECTION_CLOSE = 1;
export const CONNECTION_KEEP_ALIVE = 2;

/** A status that never has a body (RFC 9110 §15.2, §15.3.5, §15.4.5). */
export const bodiless = (code: number): boolean => code < 200 || code === 204 || code === 304;

/** A status whose content is empty though framed: 205 (RFC 9110 §15.3.6: a server MUST NOT generate content). */
export const RESET_CONTENT = 205;

/**
 * How the server frames a response body. `declared`: the app's own Content-Length (-1 if none);
 * `sized`: the total of a body known in advance (-1 if streamed). An app's Content-Length stands;
 * a known total becomes one; HEAD and bodiless statuses get none; an unknown length is chunked on
 * HTTP/1.1 and close-delimited on HTTP/1.0 (RFC 9112 §6.3).
 */
export function bodyFraming(code: number, isHead: boolean, http10: boolean, declared: number, sized: number): number {
  if (bodiless(code) || declared >= 0) return NO_LENGTH;
  if (code === RESET_CONTENT) return 0;
  if (sized >= 0) return sized;
  // No body follows a HEAD response; its length is unknown without running a GET.
  if (isHead) return NO_LENGTH;
  return http10 ? CLOSE_DELIMITED : CHUNKED;
}

/**
 * Whether the connection persists after this response (RFC 9112 §9.3): not when the client or
 * the app closes it, not when the engine must (stopping, body unread or broken, peer gone), not
 * after an interim status the server cannot follow (a 1xx other than 101: the app sent no
 * final response), and not after a close-delimited body.
 */
export function persists(
  clientCloses: boolean,
  appCloses: boolean,
  engineCloses: boolean,
  code: number,
  framing: number,
): boolean {
  if (clientCloses || appCloses || engineCloses || framing === CLOSE_DELIMITED) return false;
  return code >= 200 || code === 101;
}

/**
 * The Connection field to add: `close` when the connection ends, `keep-alive` to an HTTP/1.0
 * client that keeps it; none on 101, whose Connection field is the app's (RFC 9110 §7.8). The
 * app's own Connection field on any other status is left off the wire (http/response), so this
 * is the one the client reads.
 */
export function connectionField(persist: boolean, http10: boolean, code: number): number {
  if (code === 101) return CONNECTION_NONE;
  if (!persist) return CONNECTION_CLOSE;
  return http10 ? CONNECTION_KEEP_ALIVE : CONNECTION_NONE;
}
