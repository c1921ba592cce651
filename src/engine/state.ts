/** @module engine/state — the named states of a connection: what its incoming bytes are. */

/**
 * Named and never renumbered (llhttp's way): logs and tests may show them. A request in
 * progress at the app is the connection's separate `responding`.
 */
export const State = {
  /** Request heads (held, unparsed, while a response is in progress: pipelining). */
  HEAD: 0,
  /** The current request's body. */
  BODY: 1,
  /** An answered request's unread body, read and dropped to keep the connection. */
  DISCARD: 2,
  /** An upgraded connection's bytes, after its 101 and its request's body. */
  RAW: 3,
  /** Nothing more is read; the socket ends once output drains, and is cut after a linger. */
  CLOSING: 4,
  CLOSED: 5,
} as const;
export type StateValue = (typeof State)[keyof typeof State];
