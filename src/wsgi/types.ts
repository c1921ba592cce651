/** @module wsgi/types — the WSGI-style application contract (PEP 3333 translated to TypeScript). */

import type { Input } from "../engine/input.ts";
import type { Chunk, ResponseHeaders } from "../http/response.ts";
import type { ErrorStream } from "../observe/log.ts";
import type { FileLike, FileWrapper } from "./file.ts";

export type { Chunk, ResponseHeaders };
/** Sends a chunk; settles when it has been handed to the socket (backpressure). */
export type Write = (data: Chunk) => Promise<void>;
/** PEP 3333 start_response. Misuse throws synchronously. */
export type StartResponse = (status: string, headers: ResponseHeaders, excInfo?: unknown) => Write;
/**
 * An Array is sized (Content-Length); any other iterable is streamed. A bare string is not a
 * body (it is an iterable of one-character strings, so it would be sent a character per chunk):
 * `length?: never` keeps it out of the sync iterables while arrays are listed on their own.
 */
export type Body = readonly Chunk[] | (Iterable<Chunk> & { readonly length?: never }) | AsyncIterable<Chunk>;
/** The application: called once per request. */
export type Application = (environ: Environ, startResponse: StartResponse) => Body | Promise<Body>;

/**
 * Change a deadline of the current request: "app" (seconds from its start until its response is
 * done, 0 for none: a long stream turns it off) or "upgraded" (idle seconds after a 101).
 */
export type SetTimeout = (kind: "app" | "upgraded", seconds: number) => void;

/** The request environment: CGI keys as strings, `wsgi.*` keys, and bunwsgi extensions. */
export interface Environ {
  REQUEST_METHOD: string;
  SCRIPT_NAME: string;
  PATH_INFO: string;
  QUERY_STRING: string;
  SERVER_NAME: string;
  SERVER_PORT: string;
  SERVER_PROTOCOL: string;
  REMOTE_ADDR: string;
  REMOTE_PORT: string;
  GATEWAY_INTERFACE: string;
  REQUEST_URI: string;
  CONTENT_TYPE?: string;
  CONTENT_LENGTH?: string;
  "wsgi.version": [number, number];
  "wsgi.url_scheme": string;
  "wsgi.input": Input;
  "wsgi.errors": ErrorStream;
  "wsgi.multithread": boolean;
  "wsgi.multiprocess": boolean;
  "wsgi.run_once": boolean;
  "wsgi.input_terminated": boolean;
  /** PEP 3333's optional file wrapper: return `environ["wsgi.file_wrapper"](pathOrBunFileOrFd, blockSize?)` to send a file sized, in large reads. */
  "wsgi.file_wrapper": (file: FileLike, blockSize?: number) => FileWrapper;
  /** Header fields as received: order and duplicates kept, values without surrounding whitespace. */
  "bunwsgi.headers": Array<[string, string]>;
  /** Trailer fields of a chunked request body, present once the body has been read to its end. */
  "bunwsgi.trailers"?: Array<[string, string]>;
  /** An upgrade request's raw byte stream, which starts after a 101 and the request's body. */
  "bunwsgi.raw_input"?: Input;
  /** Change this request's deadlines (timeouts.app, timeouts.upgraded). */
  "bunwsgi.set_timeout": SetTimeout;
  [key: string]: unknown;
}
