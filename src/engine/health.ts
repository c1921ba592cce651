/** @module engine/health — liveness and readiness probes answered by the server itself, before the app: exact-path match on the request-target's bytes, canned responses with the cached Date line. */

import { ConfigError } from "../errors.ts";
import type { RequestParser } from "../http/parser.ts";
import { clientCloses } from "../http/request.ts";
import { TargetForm } from "../http/request-line.ts";
import { clock } from "../observe/clock.ts";

/** The probe paths (null: that probe is off; both null: no probes, and no Health object at all). */
export interface HealthPaths {
  live: string | null;
  ready: string | null;
}

/** What a probe needs of its connection: the parsed request, the output, a close, and the server's state. */
export interface ProbeConnection {
  readonly parser: RequestParser;
  readonly out: { writeBytes(b: Uint8Array): void; commit(): void };
  readonly host: { readonly stopping: boolean; readonly draining: boolean; readonly replaced: boolean };
  mustClose(): boolean;
  endAfterFlush(): void;
}

const latin1 = (s: string): Uint8Array => {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
};

/** A response split around the Date line, as http/response's canned errors are. */
interface Canned {
  readonly head: Uint8Array;
  readonly tail: Uint8Array;
}

/** The four answers, as indexes into STATUS, BODY and RESPONSES. */
const LIVE = 0;
const READY = 1;
const NOT_READY = 2;
const NOT_ALLOWED = 3;
const STATUS = ["200 OK", "200 OK", "503 Service Unavailable", "405 Method Not Allowed"] as const;
const BODY = ["ok\n", "ready\n", "not ready\n", "method not allowed\n"] as const;
/** The Connection field a response carries, by index: none (HTTP/1.1 keep-alive), close, keep-alive (to HTTP/1.0). */
const CONNECTION = ["", "Connection: close\r\n", "Connection: keep-alive\r\n"] as const;

/** Every combination is made once, at start: 4 answers × GET/HEAD × 3 Connection fields. */
function canned(answer: number, head: boolean, connection: number): Canned {
  const body = BODY[answer] as string;
  const allow = answer === NOT_ALLOWED ? "Allow: GET, HEAD\r\n" : "";
  return {
    head: latin1(`HTTP/1.1 ${STATUS[answer] as string}\r\n`),
    tail: latin1(
      `Cache-Control: no-store\r\n${allow}Content-Type: text/plain; charset=utf-8\r\nContent-Length: ${body.length}\r\n${CONNECTION[connection]}\r\n${head ? "" : body}`,
    ),
  };
}
const RESPONSES: readonly Canned[] = Array.from({ length: 24 }, (_, i) =>
  canned(Math.floor(i / 6), Math.floor(i / 3) % 2 === 1, i % 3),
);

/** A probe path must be a plain absolute path: matched byte for byte against the request-target. */
export function checkProbePath(key: string, path: string): string {
  if (!/^\/[!$&'()*+,\-./0-9:;=@A-Z_a-z~%]*$/.test(path)) {
    throw new ConfigError(`${key} must be a path such as "/healthz" (no query), got ${JSON.stringify(path)}`);
  }
  return path;
}

/**
 * The probes of a server. Liveness says the process serves (200 while it answers at all);
 * readiness is 200 until a drain or graceful stop begins, then 503, so a balancer stops sending
 * new requests while the listeners still serve. A probe is not an app request: it is not logged,
 * not counted for max_requests, and never reaches the app.
 */
export class Health {
  private readonly live: Uint8Array | null;
  private readonly ready: Uint8Array | null;

  constructor(paths: HealthPaths) {
    this.live = paths.live === null ? null : latin1(checkProbePath("health.live_path", paths.live));
    this.ready = paths.ready === null ? null : latin1(checkProbePath("health.ready_path", paths.ready));
    if (this.live !== null && this.ready !== null && paths.live === paths.ready) {
      throw new ConfigError("health.live_path and health.ready_path must differ");
    }
  }

  /** The probes these paths ask for, or null when both are off (the engine then checks nothing). */
  static of(paths: HealthPaths | null | undefined): Health | null {
    return paths === null || paths === undefined || (paths.live === null && paths.ready === null) ? null : new Health(paths);
  }

  /**
   * Answer the request whose head is at buf[start…] if it is a probe; false leaves it to the
   * app. A probe with a body is answered and the connection closed: its body is not read.
   */
  answer(conn: ProbeConnection, buf: Uint8Array, start: number): boolean {
    const p = conn.parser;
    if (p.targetForm !== TargetForm.ORIGIN) return false;
    const s = start + p.targetStart;
    const len = p.targetEnd - p.targetStart;
    let answer: number;
    if (this.ready !== null && matches(this.ready, buf, s, len)) {
      // A replaced worker's stop is not the service's: the others serve the same sockets.
      answer = (conn.host.stopping && !conn.host.replaced) || conn.host.draining ? NOT_READY : READY;
    } else if (this.live !== null && matches(this.live, buf, s, len)) answer = LIVE;
    else return false;
    const method = p.method;
    const head = method === "HEAD";
    if (!head && method !== "GET") answer = NOT_ALLOWED;
    const hasBody = p.contentLength > 0 || p.chunked;
    const persist = !hasBody && !clientCloses(p) && !conn.mustClose();
    const connection = !persist ? 1 : p.versionMinor === 0 ? 2 : 0;
    const r = RESPONSES[answer * 6 + (head ? 3 : 0) + connection] as Canned;
    const out = conn.out;
    out.writeBytes(r.head);
    out.writeBytes(clock.dateHeader());
    out.writeBytes(r.tail);
    out.commit();
    if (!persist) conn.endAfterFlush();
    return true;
  }
}

function matches(path: Uint8Array, buf: Uint8Array, s: number, len: number): boolean {
  if (path.length !== len) return false;
  for (let i = 0; i < len; i++) if (buf[s + i] !== path[i]) return false;
  return true;
}
