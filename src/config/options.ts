/** @module config/options — a resolved configuration in a server's terms: limits, timeouts, TLS, trusted proxies and the other WSGIServer options. */

import type { TLSOptions } from "bun";
import type { UnixSocketPerms } from "../engine/listeners.ts";
import { ConfigError } from "../errors.ts";
import { LEVEL_NUMBERS, type LogLevel } from "../observe/log.ts";
import type { WSGIServerOptions } from "../wsgi/server.ts";
import { groupId } from "./files.ts";
import type { Limits, Timeouts } from "./limits.ts";
import type { Config } from "./resolve.ts";

/** TLS options for Bun.listen, from the files' text the config holds (Config.tlsFile), read now if it holds none: a bad path fails at start, not at the first handshake. */
export function tlsOptions(c: Config): TLSOptions | undefined {
  const cert = c.str("tls.cert");
  const key = c.str("tls.key");
  if (cert === null || key === null) return undefined;
  const mode = c.str("tls.client_auth");
  const ca = c.str("tls.ca");
  const passphrase = c.str("tls.passphrase");
  const ciphers = c.str("tls.ciphers");
  return {
    cert: c.tlsFile("tls.cert"),
    key: c.tlsFile("tls.key"),
    ...(ca !== null ? { ca: c.tlsFile("tls.ca") } : {}),
    ...(passphrase !== null ? { passphrase } : {}),
    ...(ciphers !== null ? { ciphers } : {}),
    requestCert: mode !== "none",
    rejectUnauthorized: mode === "require",
  };
}

/** The limits and timeouts of a config in WSGIServer's terms. */
export function limitsOf(c: Config): { limits: Limits; timeouts: Timeouts } {
  const n = (key: string): number => c.num(key) as number;
  return {
    limits: {
      maxRequestLine: n("limits.request_line"),
      maxHeaderBytes: n("limits.header_bytes"),
      maxHeaders: n("limits.headers"),
      maxBodySize: n("limits.body"),
      maxChunkExt: n("limits.chunk_ext"),
      maxTrailerBytes: n("limits.trailer_bytes"),
      maxTrailers: n("limits.trailers"),
      bufferedBytes: n("limits.buffered_bytes"),
      minBodyRate: n("limits.min_body_rate"),
      minResponseRate: n("limits.min_response_rate"),
    },
    timeouts: {
      header: n("timeouts.header"),
      keepAlive: n("timeouts.keep_alive"),
      body: n("timeouts.body"),
      write: n("timeouts.write"),
      shutdown: n("timeouts.shutdown"),
      drainDelay: n("timeouts.drain_delay"),
      stopIdle: n("timeouts.stop_idle"),
      upgraded: n("timeouts.upgraded"),
      app: n("timeouts.app"),
      minBodyRateGrace: n("timeouts.min_body_rate_grace"),
      minResponseRateGrace: n("timeouts.min_response_rate_grace"),
    },
  };
}

/** The permissions a config gives unix socket files; a group unknown on this host is a ConfigError. */
export function unixPerms(c: Config): UnixSocketPerms {
  const mode = c.str("unix_socket_mode");
  const group = c.str("unix_socket_group");
  const gid = group === null ? null : groupId(group);
  if (group !== null && gid === null) throw new ConfigError(`unix_socket_group: no group ${JSON.stringify(group)} on this host`);
  return { mode: mode === null ? null : Number.parseInt(mode, 8), gid };
}

/** WSGIServer options from a config, except the logs, spawn pool and application the caller owns. */
export function serverOptions(c: Config): WSGIServerOptions {
  const { limits, timeouts } = limitsOf(c);
  const tls = tlsOptions(c);
  return {
    // Not passed on: config/host's backlogProblem judged it once, for check and the start alike (a warning with its place).
    backlog: null,
    unixSocketPerms: unixPerms(c),
    environ: c.environ(),
    logFormat: c.str("log.format") ?? "gevent",
    logLevel: LEVEL_NUMBERS[(c.str("log.level") ?? "info").toUpperCase() as LogLevel],
    rootPath: c.str("root_path") ?? "",
    proxies: {
      forwardedAllowIps: c.list("forwarded_allow_ips"),
      forwardedAllowUnix: c.bool("forwarded_allow_unix"),
      forwardedHeaders: c.list("forwarded_headers"),
      forwardedStripUntrusted: c.bool("forwarded_strip_untrusted"),
      proxyProtocolFrom: c.list("proxy_protocol_from"),
    },
    limits,
    timeouts,
    // "" is the urlpath kind's "none": a probe path of "" is off.
    health: { live: c.str("health.live_path") || null, ready: c.str("health.ready_path") || null },
    ...(tls !== undefined ? { tls } : {}),
  };
}
