/** @module process/metrics-page — the metrics page on metrics_bind: a small Bun.serve of its own (not the hot path) answering GET /metrics with what a lone server or a master collects. */

import { parseListener } from "../engine/listeners.ts";
import { ConfigError } from "../errors.ts";
import { exposition, type Samples } from "../observe/metrics.ts";

/** The Prometheus text format's media type (exposition format 0.0.4). */
export const METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

export interface MetricsPage {
  /** Where it is served: http://host:port/metrics (the real port when 0 was asked for). */
  readonly url: string;
  stop(): void;
}

/** Serve `collect()`'s samples at /metrics on `bind` (host:port); a bind that fails is a ConfigError. */
export function serveMetrics(bind: string, collect: () => Samples): MetricsPage {
  const a = parseListener(bind);
  let server: ReturnType<typeof Bun.serve>;
  try {
    server = Bun.serve({
      hostname: a.hostname,
      port: a.port,
      fetch(request) {
        if (new URL(request.url).pathname !== "/metrics") return new Response("metrics are at /metrics\n", { status: 404 });
        return new Response(exposition(collect()), { headers: { "Content-Type": METRICS_CONTENT_TYPE } });
      },
    });
  } catch (e) {
    throw new ConfigError(`metrics_bind ${bind}: cannot listen: ${(e as Error).message}`);
  }
  const host = a.hostname.includes(":") ? `[${a.hostname}]` : a.hostname;
  return {
    url: `http://${host}:${server.port}/metrics`,
    stop: () => void server.stop(true),
  };
}
