/** @module errors — the one error hierarchy: a base class, flat coded subclasses, and precomputed error responses. */

/**
 * Where an error carries the names of the bunwsgi classes it is an instance of. A registered
 * symbol is the same in every module graph: an app loaded by the CLI gets its own copy of this
 * module (and of these classes), and `instanceof` against a copy is false, so the classes
 * recognise each other's instances by this brand instead.
 */
const BRAND = Symbol.for("bunwsgi.error.brand");

type Branded = { readonly [BRAND]?: readonly string[] };

/** Base class of every error bunwsgi raises on purpose. `code` is stable and machine-readable. */
export class BunWSGIError extends Error {
  /** The class's name in the brand; set on every bunwsgi error class, never inherited by a user subclass. */
  static readonly brand: string = "BunWSGIError";
  declare readonly [BRAND]: readonly string[];
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
    // The class's own brand when it has one: a name that survives a build that renames classes.
    this.name = Object.hasOwn(new.target, "brand") ? (new.target as typeof BunWSGIError).brand : new.target.name;
    const brands: string[] = [];
    for (let c: unknown = new.target; typeof c === "function" && c !== Error; c = Object.getPrototypeOf(c)) {
      if (Object.hasOwn(c, "brand")) brands.push((c as typeof BunWSGIError).brand);
    }
    Object.defineProperty(this, BRAND, { value: Object.freeze(brands) });
  }
}

/**
 * `err instanceof HTTPError` holds for an HTTPError made by any copy of this module: every
 * bunwsgi class checks the brand (it inherits this from BunWSGIError), while a user subclass
 * without its own `brand` is checked the ordinary way, by its prototype chain.
 */
function hasBrand(this: typeof BunWSGIError, value: unknown): boolean {
  if (!Object.hasOwn(this, "brand")) return Function.prototype[Symbol.hasInstance].call(this, value);
  if (typeof value !== "object" || value === null) return false;
  const brands = (value as Branded)[BRAND];
  return Array.isArray(brands) && brands.includes(this.brand);
}
Object.defineProperty(BunWSGIError, Symbol.hasInstance, { value: hasBrand });

/** A client error found while reading a request: answered with `status` and a closed connection. */
export class HTTPError extends BunWSGIError {
  static override readonly brand: string = "HTTPError";
  readonly status: number;
  constructor(status: number, message: string) {
    super(`HTTP_${status}`, message);
    this.status = status;
  }
}

/** The application broke the WSGI contract (bad status, header, call order). Thrown synchronously. */
export class ContractError extends BunWSGIError {
  static override readonly brand: string = "ContractError";
  constructor(message: string) {
    super("WSGI_CONTRACT", message);
  }
}

/** A configuration or option value is wrong; the message names the key and what was expected. */
export class ConfigError extends BunWSGIError {
  static override readonly brand: string = "ConfigError";
  constructor(message: string) {
    super("CONFIG", message);
  }
}

/** The peer went away (or the server closed the connection) while the application was using it. */
export class ConnectionClosedError extends BunWSGIError {
  static override readonly brand: string = "ConnectionClosedError";
  constructor(message = "connection closed", code = "CONNECTION_CLOSED") {
    super(code, message);
  }
}

/**
 * The client ended or reset its connection before the whole request body arrived. Every
 * `wsgi.input` read that the bytes received cannot satisfy rejects with it: a short read would
 * look like the end of the body.
 */
export class ClientDisconnected extends ConnectionClosedError {
  static override readonly brand: string = "ClientDisconnected";
  /** Body bytes received, and the length declared (-1 for a chunked body). */
  readonly received: number;
  readonly expected: number;
  constructor(message: string, received: number, expected: number) {
    super(message, "CLIENT_DISCONNECTED");
    this.received = received;
    this.expected = expected;
  }
}

/**
 * What a thrown value says, for the error log: an Error's stack (or name and message), anything
 * else as a string. An app may throw anything, and a value that cannot be made a string (an
 * object without a prototype, one whose toString throws) is named as such: the logger's own
 * TypeError would be logged in its place, with the server's frames and not a word of the app's.
 */
export function thrownText(e: unknown): string {
  try {
    return e instanceof Error ? (e.stack ?? `${e.name}: ${e.message}`) : String(e);
  } catch {
    return `a thrown ${e === null ? "null" : typeof e} that cannot be made a string`;
  }
}
