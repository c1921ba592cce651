/** @module config/limits — limits, timeouts and trusted proxies in a server's terms, and their defaults taken from the settings table. */

import { ConfigError } from "../errors.ts";
import type { Setting } from "./setting.ts";
import { settingByKey } from "./settings.ts";

/** Size limits in a server's terms; a request over one gets 400/413/414/431 and a closed connection. */
export interface Limits {
  /** Longest request line in bytes, CRLF excluded (414). */
  maxRequestLine: number;
  /** Largest header section in bytes after the request line (431). */
  maxHeaderBytes: number;
  /** Most header fields (431). */
  maxHeaders: number;
  /** Largest request body in bytes (413). */
  maxBodySize: number;
  /** Longest run of chunk extensions on one chunk-size line (400). */
  maxChunkExt: number;
  /** Largest trailer section of a chunked body in bytes (431). */
  maxTrailerBytes: number;
  /** Most trailer fields (431). */
  maxTrailers: number;
  /** Request-body bytes the process may hold for apps (reading pauses past it). */
  bufferedBytes: number;
  /** Slowest request body accepted, bytes/s after a grace (408); 0: off. */
  minBodyRate: number;
  /** Slowest response reading accepted, bytes/s after a grace (cut); 0: off. */
  minResponseRate: number;
}

/** Timeouts in seconds; 0 disables one. */
export interface Timeouts {
  /** A request head must be complete this long after its first byte (slowloris): 408. */
  header: number;
  /** An idle keep-alive connection is closed after this long. */
  keepAlive: number;
  /** A request body that stalls this long fails with 408. */
  body: number;
  /** A peer that accepts no response bytes for this long is disconnected. */
  write: number;
  /** Graceful-stop deadline used by signals and stop() without an argument. */
  shutdown: number;
  /** Before a graceful stop begins: readiness is 503 while the listeners still serve this long (0: none). */
  drainDelay: number;
  /**
   * During a graceful stop, idle keep-alive connections stay open this long (capped by the
   * stop's deadline): a request already on its way is answered with `Connection: close`
   * instead of meeting a closed socket.
   */
  stopIdle: number;
  /** An upgraded connection idle (no bytes either way) this long is closed. */
  upgraded: number;
  /** An app that has not finished its response this long: 503, or a cut after its head (0: off). */
  app: number;
  /** Seconds before the minimum rates apply. */
  minBodyRateGrace: number;
  minResponseRateGrace: number;
}

const defaultOf = (key: string): number => (settingByKey(key) as Setting).default as number;

/** The limits the table's defaults give: what a server made without options uses. */
export function defaultLimits(): Limits {
  return {
    maxRequestLine: defaultOf("limits.request_line"),
    maxHeaderBytes: defaultOf("limits.header_bytes"),
    maxHeaders: defaultOf("limits.headers"),
    maxBodySize: defaultOf("limits.body"),
    maxChunkExt: defaultOf("limits.chunk_ext"),
    maxTrailerBytes: defaultOf("limits.trailer_bytes"),
    maxTrailers: defaultOf("limits.trailers"),
    bufferedBytes: defaultOf("limits.buffered_bytes"),
    minBodyRate: defaultOf("limits.min_body_rate"),
    minResponseRate: defaultOf("limits.min_response_rate"),
  };
}

/**
 * Limits and timeouts a server is given (unset keys take the defaults), checked: every size an
 * integer of at least a byte (a minimum rate may be 0: off), every timeout seconds ≥ 0. A wrong
 * one is a ConfigError that names it.
 */
export function checkedLimits(limits: Partial<Limits>, timeouts: Partial<Timeouts>): { limits: Limits; timeouts: Timeouts } {
  const l = { ...defaultLimits(), ...limits };
  const t = { ...defaultTimeouts(), ...timeouts };
  for (const [k, v] of Object.entries(l)) {
    const least = k === "minBodyRate" || k === "minResponseRate" ? 0 : 1;
    if (!Number.isInteger(v) || v < least) {
      throw new ConfigError(`limits.${k} must be an integer of at least ${least}, got ${JSON.stringify(v)}`);
    }
  }
  for (const [k, v] of Object.entries(t)) {
    if (typeof v !== "number" || !(v >= 0)) {
      throw new ConfigError(`timeouts.${k} must be a number of seconds ≥ 0, got ${JSON.stringify(v)}`);
    }
  }
  return { limits: l, timeouts: t };
}

/** The request-head limits the table's defaults give, in the parser's terms. */
export const defaultHeadLimits = (): ReturnType<typeof headLimitsOf> => headLimitsOf(defaultLimits());

/** The body limits the table's defaults give, in the body decoder's terms. */
export const defaultBodyLimits = (): ReturnType<typeof bodyLimitsOf> => bodyLimitsOf(defaultLimits());

/** Limits in the parser's terms. */
export function headLimitsOf(l: Limits): { maxRequestLine: number; maxHeaderBytes: number; maxHeaders: number } {
  return { maxRequestLine: l.maxRequestLine, maxHeaderBytes: l.maxHeaderBytes, maxHeaders: l.maxHeaders };
}

/** Limits in the body decoder's terms. */
export function bodyLimitsOf(l: Limits): { maxBody: number; maxChunkExt: number; maxTrailerBytes: number; maxTrailers: number } {
  return { maxBody: l.maxBodySize, maxChunkExt: l.maxChunkExt, maxTrailerBytes: l.maxTrailerBytes, maxTrailers: l.maxTrailers };
}

/** The timeouts the table's defaults give. */
export function defaultTimeouts(): Timeouts {
  return {
    header: defaultOf("timeouts.header"),
    keepAlive: defaultOf("timeouts.keep_alive"),
    body: defaultOf("timeouts.body"),
    write: defaultOf("timeouts.write"),
    shutdown: defaultOf("timeouts.shutdown"),
    drainDelay: defaultOf("timeouts.drain_delay"),
    stopIdle: defaultOf("timeouts.stop_idle"),
    upgraded: defaultOf("timeouts.upgraded"),
    app: defaultOf("timeouts.app"),
    minBodyRateGrace: defaultOf("timeouts.min_body_rate_grace"),
    minResponseRateGrace: defaultOf("timeouts.min_response_rate_grace"),
  };
}

/** Trusted proxies in a server's terms (the forwarded_* and proxy_protocol_from settings). */
export interface Proxies {
  /** Peers whose forwarding fields are believed: IPs, CIDR ranges, "*". */
  forwardedAllowIps: readonly string[];
  /** Peers on unix: binds are trusted too. */
  forwardedAllowUnix: boolean;
  /** The forwarding fields read (lower-case names). */
  forwardedHeaders: readonly string[];
  /** From an untrusted peer, the forwarding fields are removed from what the app sees. */
  forwardedStripUntrusted: boolean;
  /** Peers that may send a PROXY protocol header. */
  proxyProtocolFrom: readonly string[];
}

const setting = (key: string): Setting["default"] => (settingByKey(key) as Setting).default;

/** The trusted proxies the table's defaults give. */
export function defaultProxies(): Proxies {
  return {
    forwardedAllowIps: setting("forwarded_allow_ips") as string[],
    forwardedAllowUnix: setting("forwarded_allow_unix") as boolean,
    forwardedHeaders: setting("forwarded_headers") as string[],
    forwardedStripUntrusted: setting("forwarded_strip_untrusted") as boolean,
    proxyProtocolFrom: setting("proxy_protocol_from") as string[],
  };
}
