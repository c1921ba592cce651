/** @module engine/counters — the process's serving counters behind its metrics: plain number fields and arrays the engine bumps where it already has the facts, read into samples (observe/metrics) once a second or per scrape. */

import { BODY_REASONS, PARSE_REASONS, PROXY_REASONS } from "../http/codes.ts";
import { Histogram, type Samples, series } from "../observe/metrics.ts";
import { HANDSHAKE_FAILURES } from "./tls.ts";

/** Methods with a label of their own; any other is "other", a request refused before the app "none". */
const METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "CONNECT", "TRACE"] as const;
const METHOD_LABELS: readonly string[] = [...METHODS, "other", "none"];
const OTHER = METHODS.length;
const NONE = OTHER + 1;
/** Status classes by hundreds; index 0 is a request that sent no status. */
const CLASS_LABELS = ["none", "1xx", "2xx", "3xx", "4xx", "5xx"];

/** Deadlines by kind (engine/deadlines, engine/proxy-stage): indexes of `timeouts`. */
export const Timeout = {
  HEAD: 0,
  KEEP_ALIVE: 1,
  BODY: 2,
  BODY_RATE: 3,
  BODY_BUDGET: 4,
  WRITE: 5,
  RESPONSE_RATE: 6,
  UPGRADED: 7,
  APP: 8,
  LINGER: 9,
  PROXY_HEADER: 10,
  HANDSHAKE: 11,
  SPAWN_WAIT: 12,
} as const;
const TIMEOUT_LABELS = Object.keys(Timeout).map((k) => k.toLowerCase());

/** Request duration bounds, in seconds (Prometheus clients' defaults, with a finer start for fast responses). */
const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/**
 * Reasons the engine itself gives (engine/connection, engine/deadlines, engine/request-body,
 * engine/intake), besides the parser's and body decoder's code names: listed so each series is
 * on the page, at 0, before the first of its kind.
 */
const ENGINE_REASONS = [
  "body_too_large",
  "head_timeout",
  "body_timeout",
  "body_too_slow",
  "buffered_bytes",
  "client_disconnected",
  "app_timeout",
  "connect_not_supported",
  "spawn_wait",
  "descriptor_limit",
  "shutdown",
];

const zeros = (n: number): number[] => new Array<number>(n).fill(0);

class Counters {
  /**
   * Whether requests are recorded (metrics_bind is set): the one branch a request pays when
   * metrics are off. Connection and byte counts are single additions, kept either way.
   */
  on = false;
  accepted = 0;
  closed = 0;
  bytesIn = 0;
  bytesOut = 0;
  /** Requests handed to an app, and those of them answered: the difference is in flight. */
  begun = 0;
  ended = 0;
  /** Method × status class, METHOD_LABELS.length × CLASS_LABELS.length. */
  readonly requests = zeros(METHOD_LABELS.length * CLASS_LABELS.length);
  readonly duration = new Histogram(DURATION_BUCKETS);
  /** By reason: a string key, but only refused or cut requests pay for the lookup. */
  readonly rejected = new Map<string, number>();
  readonly timeouts = zeros(TIMEOUT_LABELS.length);
  /** By ProxyError code. */
  readonly proxyRefused = zeros(PROXY_REASONS.length);
  /** Failed TLS handshakes, by HANDSHAKE_FAILURES index. */
  readonly handshakeFailures = zeros(HANDSHAKE_FAILURES.length);

  constructor() {
    for (const r of [...PARSE_REASONS, ...BODY_REASONS, ...ENGINE_REASONS]) if (r !== undefined) this.rejected.set(r, 0);
  }

  /** A deadline of this kind ({@link Timeout}) fired. */
  timedOut(kind: number): void {
    this.timeouts[kind] = (this.timeouts[kind] as number) + 1;
  }

  /** A connection was closed unread, its request (if it sent one) refused for `reason` without an access record. */
  closedUnread(reason: string): void {
    this.rejected.set(reason, (this.rejected.get(reason) ?? 0) + 1);
  }

  /** A connection was closed for its PROXY header ({@link ProxyError} code). */
  proxyRefusal(code: number): void {
    this.proxyRefused[code] = (this.proxyRefused[code] as number) + 1;
  }

  /** A TLS handshake failed ({@link HANDSHAKE_FAILURES} index). */
  handshakeFailed(reason: number): void {
    this.handshakeFailures[reason] = (this.handshakeFailures[reason] as number) + 1;
  }

  /**
   * A request's access record is complete: `method` null when it was refused before reaching
   * the app, `code` null when no status was sent, `reason` "" unless the server refused or cut it.
   */
  requestEnded(method: string | null, code: number | null, seconds: number, reason: string): void {
    let m = NONE;
    if (method !== null) {
      this.ended++;
      // Common methods are interned by the parser: these compare identities.
      m = 0;
      while (m < OTHER && METHODS[m] !== method) m++;
    }
    const c = code !== null && code >= 100 && code < 600 ? Math.floor(code / 100) : 0;
    const i = m * CLASS_LABELS.length + c;
    this.requests[i] = (this.requests[i] as number) + 1;
    this.duration.observe(Math.max(0, seconds));
    if (reason !== "") this.rejected.set(reason, (this.rejected.get(reason) ?? 0) + 1);
  }

  /** Every series of these counters, added to `out`; a method and status class pair appears once seen. */
  write(out: Samples): void {
    for (let m = 0; m < METHOD_LABELS.length; m++) {
      for (let c = 0; c < CLASS_LABELS.length; c++) {
        const n = this.requests[m * CLASS_LABELS.length + c] as number;
        if (n === 0) continue;
        out[series("bunwsgi_requests_total", { method: METHOD_LABELS[m] as string, status_class: CLASS_LABELS[c] as string })] =
          n;
      }
    }
    this.duration.write(out, "bunwsgi_request_duration_seconds");
    out.bunwsgi_requests_in_flight = this.begun - this.ended;
    for (const [reason, n] of this.rejected) out[series("bunwsgi_requests_rejected_total", { reason })] = n;
    out.bunwsgi_connections_accepted_total = this.accepted;
    out.bunwsgi_connections_closed_total = this.closed;
    out.bunwsgi_connections_open = this.accepted - this.closed;
    for (let i = 1; i < PROXY_REASONS.length; i++) {
      out[series("bunwsgi_proxy_rejected_total", { reason: PROXY_REASONS[i] as string })] = this.proxyRefused[i] as number;
    }
    for (let i = 0; i < HANDSHAKE_FAILURES.length; i++) {
      out[series("bunwsgi_tls_handshake_failures_total", { reason: HANDSHAKE_FAILURES[i] as string })] = this.handshakeFailures[
        i
      ] as number;
    }
    out.bunwsgi_received_bytes_total = this.bytesIn;
    out.bunwsgi_sent_bytes_total = this.bytesOut;
    for (let i = 0; i < TIMEOUT_LABELS.length; i++) {
      out[series("bunwsgi_timeouts_total", { kind: TIMEOUT_LABELS[i] as string })] = this.timeouts[i] as number;
    }
  }
}

/** The process's counters: one set, whatever the number of binds (like engine/budget). */
export const counters = new Counters();
