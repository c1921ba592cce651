/** @module process/metrics-page — the metrics page on metrics_bind: a small Bun.serve of its own (not the hot path) answering GET /metrics with what a lone server or a master collects (a master: its workers' sums, its own figures, its workers and restarts). */

import { parseListener } from "../engine/listeners.ts";
import { ConfigError } from "../errors.ts";
import type { LogLevel } from "../observe/log.ts";
import { Aggregate, addSamples, exposition, ProcessStats, type Samples, series } from "../observe/metrics.ts";
import type { WorkerHandle } from "./handle.ts";

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

/**
 * The metrics page, bound before the server announces anything (a port that is taken is a
 * start that fails, exit 2). After a binary upgrade (`heir`) the old master holds metrics_bind
 * until it stops, and it is told to stop only once this one serves: the page opens once the
 * port is free, tried each second. `log` says where it is served, or why not yet.
 */
export function openMetrics(
  bind: string,
  collect: () => Samples,
  heir: boolean,
  log: (msg: string, level: LogLevel) => void,
): MetricsPage {
  try {
    const page = serveMetrics(bind, collect);
    log(`metrics on ${page.url}`, "INFO");
    return page;
  } catch (e) {
    if (!heir) throw e;
    log(`${(e as Error).message}: the previous master's until it stops; the metrics page opens once it is free`, "WARNING");
  }
  let page: MetricsPage | null = null;
  const timer = setInterval(() => {
    try {
      page = serveMetrics(bind, collect);
    } catch {
      return;
    }
    clearInterval(timer);
    log(`metrics on ${page.url}`, "INFO");
  }, 1000);
  timer.unref();
  return {
    get url() {
      return page?.url ?? `${bind} (waiting for the port)`;
    },
    stop() {
      clearInterval(timer);
      page?.stop();
    },
  };
}

/** Why a worker was replaced: bunwsgi_worker_restarts_total's reasons. */
export type RestartReason = "exited" | "start_failed" | "start_timeout" | "hung" | "max_requests" | "reload";

/** The master's metrics page: its workers' last snapshots summed, the master's own figures, its workers and restarts. */
export class MasterMetrics {
  readonly workers = new Aggregate();
  readonly restarts: Record<RestartReason, number> = {
    exited: 0,
    start_failed: 0,
    start_timeout: 0,
    hung: 0,
    max_requests: 0,
    reload: 0,
  };
  private readonly stats = new ProcessStats();
  page: MetricsPage | null = null;

  samples(workers: Iterable<WorkerHandle>): Samples {
    const out: Samples = {};
    this.workers.write(out);
    const own: Samples = {};
    this.stats.write(own);
    addSamples(out, own);
    const states = { starting: 0, serving: 0, stopping: 0 };
    for (const w of workers) states[w.state]++;
    for (const [state, n] of Object.entries(states)) out[series("bunwsgi_workers", { state })] = n;
    for (const [reason, n] of Object.entries(this.restarts)) out[series("bunwsgi_worker_restarts_total", { reason })] = n;
    return out;
  }
}
