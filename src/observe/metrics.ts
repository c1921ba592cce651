/** @module observe/metrics — the Prometheus text exposition (format 0.0.4) of bunwsgi's metric families: samples as plain records, histograms, their sum over processes (a master's page over its workers), and the process's own RSS, CPU and event-loop lag. */

export type MetricType = "counter" | "gauge" | "histogram";

export interface Family {
  readonly name: string;
  readonly type: MetricType;
  readonly help: string;
}

/** Every family bunwsgi exports, in page order; the README's "Metrics" section describes each. */
export const FAMILIES: readonly Family[] = [
  {
    name: "bunwsgi_requests_total",
    type: "counter",
    help: "Requests answered (one per access-log line), by method (none: refused before it reached the app) and status class (none: no status was sent).",
  },
  {
    name: "bunwsgi_request_duration_seconds",
    type: "histogram",
    help: "Seconds from a request's bytes arriving to its response ending.",
  },
  { name: "bunwsgi_requests_in_flight", type: "gauge", help: "Requests handed to the application and not yet answered." },
  {
    name: "bunwsgi_requests_rejected_total",
    type: "counter",
    help: "Requests the server refused or cut, by reason (the access log's reason: parser and body decoder codes, timeouts, disconnects).",
  },
  { name: "bunwsgi_connections_accepted_total", type: "counter", help: "Connections accepted." },
  { name: "bunwsgi_connections_closed_total", type: "counter", help: "Connections closed." },
  {
    name: "bunwsgi_connections_open",
    type: "gauge",
    help: "Connections open (served, waiting for a slot, or reading a PROXY header).",
  },
  {
    name: "bunwsgi_proxy_rejected_total",
    type: "counter",
    help: "Connections closed because of their PROXY protocol header, by reason.",
  },
  {
    name: "bunwsgi_tls_handshake_failures_total",
    type: "counter",
    help: "TLS handshakes that failed, by reason (plain_http, protocol_version, no_shared_cipher, no_application_protocol, client_certificate, closed, other).",
  },
  { name: "bunwsgi_received_bytes_total", type: "counter", help: "Bytes read from client connections." },
  { name: "bunwsgi_sent_bytes_total", type: "counter", help: "Bytes the kernel accepted for client connections." },
  { name: "bunwsgi_timeouts_total", type: "counter", help: "Deadlines that fired, by kind." },
  {
    name: "bunwsgi_event_loop_lag_seconds",
    type: "histogram",
    help: "How late a timer due every 0.5 s ran: the time the event loop was busy elsewhere.",
  },
  { name: "process_resident_memory_bytes", type: "gauge", help: "Resident memory size in bytes." },
  { name: "process_cpu_seconds_total", type: "counter", help: "User and system CPU time spent in seconds." },
  { name: "bunwsgi_workers", type: "gauge", help: "Worker processes, by state (starting, serving, stopping)." },
  {
    name: "bunwsgi_worker_restarts_total",
    type: "counter",
    help: "Workers replaced, by reason (exited, start_failed, start_timeout, hung, max_requests, reload).",
  },
];

/** Series (a name and its labels, as exposition text) → value. A plain record, so it crosses the IPC channel as JSON. */
export type Samples = Record<string, number>;

/** Each series name (a histogram's _bucket, _sum and _count too) → its family. */
const FAMILY_OF = new Map<string, Family>();
for (const f of FAMILIES) {
  FAMILY_OF.set(f.name, f);
  if (f.type === "histogram") for (const s of ["_bucket", "_sum", "_count"]) FAMILY_OF.set(f.name + s, f);
}

const escapeLabel = (v: string): string => v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");

/** A series key: `name` or `name{a="x",b="y"}`. */
export function series(name: string, labels: Readonly<Record<string, string>> = {}): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabel(v)}"`);
  return parts.length === 0 ? name : `${name}{${parts.join(",")}}`;
}

const familyOf = (key: string): Family | undefined => {
  const brace = key.indexOf("{");
  return FAMILY_OF.get(brace < 0 ? key : key.slice(0, brace));
};

/**
 * The page: each family's HELP and TYPE once, then its series in the order they were added. A
 * series of no known family is left out: a worker of a newer binary (during a SIGUSR2 upgrade)
 * may send one its older master cannot describe.
 */
export function exposition(samples: Samples): string {
  const lines = new Map<Family, string[]>();
  for (const [key, value] of Object.entries(samples)) {
    const f = familyOf(key);
    if (f === undefined) continue;
    let out = lines.get(f);
    if (out === undefined) {
      out = [];
      lines.set(f, out);
    }
    out.push(`${key} ${value}`);
  }
  let page = "";
  for (const f of FAMILIES) {
    const out = lines.get(f);
    if (out === undefined) continue;
    page += `# HELP ${f.name} ${f.help}\n# TYPE ${f.name} ${f.type}\n${out.join("\n")}\n`;
  }
  return page;
}

/** Add `from` into `into`, series by series. */
export function addSamples(into: Samples, from: Samples): void {
  for (const [k, v] of Object.entries(from)) into[k] = (into[k] ?? 0) + v;
}

/** A histogram of fixed buckets: per-bucket counts (made cumulative only when written), sum and count. */
export class Histogram {
  readonly counts: number[];
  sum = 0;
  count = 0;

  constructor(readonly bounds: readonly number[]) {
    this.counts = new Array<number>(bounds.length).fill(0);
  }

  observe(v: number): void {
    const b = this.bounds;
    let i = 0;
    while (i < b.length && v > (b[i] as number)) i++;
    if (i < b.length) (this.counts as number[])[i] = (this.counts[i] as number) + 1;
    this.count++;
    this.sum += v;
  }

  write(out: Samples, name: string): void {
    let cumulative = 0;
    for (let i = 0; i < this.bounds.length; i++) {
      cumulative += this.counts[i] as number;
      out[series(`${name}_bucket`, { le: String(this.bounds[i]) })] = cumulative;
    }
    out[series(`${name}_bucket`, { le: "+Inf" })] = this.count;
    out[`${name}_sum`] = this.sum;
    out[`${name}_count`] = this.count;
  }
}

/**
 * The sum over processes that report their samples (workers, each snapshot replacing its last),
 * plus the counters of processes that exited, so a counter never goes backwards when a worker is
 * replaced. An exited process's gauges (its memory, its requests in flight) are dropped.
 */
export class Aggregate {
  private readonly live = new Map<number, Samples>();
  private readonly gone: Samples = {};

  update(id: number, samples: Samples): void {
    this.live.set(id, samples);
  }

  exited(id: number): void {
    const last = this.live.get(id);
    if (last === undefined) return;
    this.live.delete(id);
    for (const [k, v] of Object.entries(last)) if (familyOf(k)?.type !== "gauge") this.gone[k] = (this.gone[k] ?? 0) + v;
  }

  /** Everything added into `out`. */
  write(out: Samples): void {
    addSamples(out, this.gone);
    for (const s of this.live.values()) addSamples(out, s);
  }
}

/** Bounds of the event-loop lag histogram, in seconds. */
const LAG_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
const LAG_EVERY_MS = 500;

/** The process's own figures: resident memory, CPU time, and (once started) event-loop lag measured by a timer. */
export class ProcessStats {
  private readonly lag = new Histogram(LAG_BUCKETS);
  private timer: ReturnType<typeof setInterval> | null = null;

  /** Measure the event loop's lag: a timer due every 0.5 s notes how late it runs. */
  startLag(): void {
    if (this.timer !== null) return;
    let due = performance.now() + LAG_EVERY_MS;
    this.timer = setInterval(() => {
      const now = performance.now();
      this.lag.observe(Math.max(0, now - due) / 1000);
      due = now + LAG_EVERY_MS;
    }, LAG_EVERY_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  write(out: Samples): void {
    if (this.timer !== null) this.lag.write(out, "bunwsgi_event_loop_lag_seconds");
    out.process_resident_memory_bytes = process.memoryUsage().rss;
    const cpu = process.cpuUsage();
    out.process_cpu_seconds_total = (cpu.user + cpu.system) / 1e6;
  }
}
