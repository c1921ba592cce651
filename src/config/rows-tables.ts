/** @module config/rows-tables — the settings table's rows for [log], [health], [limits] and [timeouts]. */

import { MAX_METHOD } from "../http/request-line.ts";
import type { Need, Row } from "./setting.ts";

const MiB = 1024 * 1024;

/** The timeouts that only apply with something else: a heartbeat needs workers, a rate's grace its rate. */
const TIMEOUT_NEEDS: Readonly<Record<string, readonly Need[]>> = {
  worker: ["workers"],
  min_body_rate_grace: ["min_body_rate"],
  min_response_rate_grace: ["min_response_rate"],
};

/** [log], [health], [limits] and [timeouts] rows, in the order --help and the README list them. */
export const TABLE_ROWS: readonly Row[] = [
  {
    key: "log.access",
    kind: "sinks",
    default: ["stderr"],
    metavar: "SINK",
    reload: true,
    example: '["/var/log/bunwsgi/access.log", "stdout"]',
    doc: 'Access log: `"stderr"`, `"stdout"`, `"none"` or a file path (appended to); one or a list.',
  },
  {
    key: "log.error",
    kind: "sinks",
    default: ["stderr"],
    metavar: "SINK",
    reload: true,
    example: '"stderr"',
    doc: "Error log (also environ `wsgi.errors`): the same choices as `log.access`.",
  },
  {
    key: "log.level",
    kind: "choice",
    default: "info",
    choices: ["debug", "info", "warning", "error"],
    metavar: "LEVEL",
    reload: true,
    example: '"info"',
    needs: ["error_log"],
    doc: "Least severe error-log line written: `debug` adds why each refused request was refused (the access record's `reason`, with the parser's message).",
  },
  {
    key: "log.format",
    kind: "format",
    default: "gevent",
    metavar: "FORMAT",
    reload: true,
    example: '"combined"',
    needs: ["access_log"],
    doc: "Access-log line: `gevent` (gevent.pywsgi's), `combined` (Apache/nginx), `json` (one object per line) or a template such as `{remote_addr} {method} {path} {status} {duration_ms}ms`.",
  },
  ...(
    [
      [
        "live_path",
        '"/livez"',
        "Liveness probe: a GET or HEAD of exactly this request-target (no query) is answered `200` by the server itself, before the app and `root_path`, whenever the process serves. Other methods get `405` with `Allow: GET, HEAD`; every answer is `Cache-Control: no-store`. Probes are not access-logged and not counted by `max_requests`. Unset: off, and the app sees the path.",
      ],
      [
        "ready_path",
        '"/readyz"',
        'Readiness probe, answered like `health.live_path`: `200` while serving, `503` from the moment a stop begins (SIGTERM, a master\'s stop) through `timeouts.drain_delay` and the graceful stop, so a balancer stops sending new requests first. With workers, each worker answers; while none serves, nothing answers and the probe times out (see "Behind a load balancer").',
      ],
    ] as const
  ).map(
    ([name, example, doc]): Row => ({
      key: `health.${name}`,
      kind: "urlpath",
      default: null,
      metavar: "PATH",
      reload: true,
      example,
      doc,
    }),
  ),
  {
    key: "limits.request_line",
    kind: "int",
    default: 8192,
    min: 64,
    max: MiB,
    metavar: "BYTES",
    reload: true,
    example: "8192",
    doc: `Longest request line; longer gets 414. Only the request-target can make it so: a method longer than ${MAX_METHOD} bytes gets 501 and a version other than \`HTTP/\` DIGIT \`.\` DIGIT 400, at their first wrong byte.`,
  },
  {
    key: "limits.header_bytes",
    kind: "int",
    default: 32768,
    min: 256,
    max: 16 * MiB,
    metavar: "BYTES",
    reload: true,
    example: "32768",
    doc: "Largest header section after the request line, each field line counted with its CRLF; larger gets 431.",
  },
  {
    key: "limits.headers",
    kind: "int",
    default: 100,
    min: 1,
    max: 10_000,
    metavar: "N",
    reload: true,
    example: "100",
    doc: "Most header fields; more gets 431.",
  },
  {
    key: "limits.body",
    kind: "int",
    default: 100 * MiB,
    min: 1,
    max: Number.MAX_SAFE_INTEGER,
    metavar: "BYTES",
    reload: true,
    example: String(100 * MiB),
    doc: "Largest request body, by Content-Length or chunked; larger gets 413.",
  },
  {
    key: "limits.buffered_bytes",
    kind: "int",
    default: 512 * MiB,
    min: MiB,
    max: Number.MAX_SAFE_INTEGER,
    metavar: "BYTES",
    reload: true,
    example: String(512 * MiB),
    doc: "Request-body bytes the whole process may hold for apps that have not read them (each body is also capped by `limits.body`, and connections by `spawn`). Past it, connections stop reading (backpressure) instead of allocating; a body left unread for `timeouts.body` that way gets 503.",
  },
  ...(
    [
      [
        "min_body_rate",
        "Slowest request body accepted, in bytes/s over the last `timeouts.min_body_rate_grace` seconds (Kestrel's MinRequestBodyDataRate); time the server is not reading (the app has not asked for more) does not count. Slower gets 408. 0: off.",
      ],
      [
        "min_response_rate",
        "Slowest reading of a response accepted, in bytes/s the client's kernel takes while output waits for it (Kestrel's MinResponseDataRate); a client that falls behind it by more than `timeouts.min_response_rate_grace` seconds' worth (at least 64 KiB) is cut off. 0: off.",
      ],
    ] as const
  ).map(
    ([name, doc]): Row => ({
      key: `limits.${name}`,
      kind: "int",
      default: 240,
      min: 0,
      max: 1_000_000_000,
      metavar: "BYTES_PER_S",
      reload: true,
      example: "240",
      doc,
    }),
  ),
  {
    key: "limits.chunk_ext",
    kind: "int",
    default: 4096,
    min: 16,
    max: MiB,
    metavar: "BYTES",
    reload: true,
    example: "4096",
    doc: "Longest run of chunk extensions on one chunk-size line of a chunked body (RFC 9112 §7.1.1); longer gets 400. A body's framing must also stay in proportion to its data: what its lines' extensions and leading zeros bring beyond what their chunks' data allows may add up to four of the longest lines, 4 × (256 + this) bytes; more gets 400 (`chunk_overhead`).",
  },
  {
    key: "limits.trailer_bytes",
    kind: "int",
    default: 16384,
    min: 64,
    max: 16 * MiB,
    metavar: "BYTES",
    reload: true,
    example: "16384",
    doc: "Largest trailer section of a chunked body (RFC 9112 §7.1.2), each field line counted with its CRLF as for `header_bytes`; larger gets 431.",
  },
  {
    key: "limits.trailers",
    kind: "int",
    default: 32,
    min: 1,
    max: 10_000,
    metavar: "N",
    reload: true,
    example: "32",
    doc: "Most trailer fields of a chunked body; more gets 431.",
  },
  ...(
    [
      [
        "header",
        20,
        "Whole request head must arrive in this time (slowloris), else 408 and close. It also bounds a TLS handshake and a PROXY protocol header (from the accept, then close) and the wait for a `spawn` slot (then 503).",
      ],
      [
        "keep_alive",
        75,
        "Idle keep-alive connection is closed after this. 75 (nginx's own default) outlasts the idle time of the proxies in front at their defaults (nginx upstream 60 s, AWS ALB 60 s, HAProxy about 15 s), which must close an idle connection first (see Idle connections between a proxy and bunwsgi). 0: never closed for being idle (not nginx's `keepalive_timeout 0`, which turns keep-alive off).",
      ],
      ["body", 60, "Request body may stall this long between reads, else 408 and close."],
      ["write", 60, "A client that accepts no response bytes this long is cut off."],
      [
        "shutdown",
        10,
        "Graceful stop (SIGTERM/SIGINT) waits this long for in-flight requests. 0: no wait, they are cut at once (not: no limit).",
      ],
      [
        "drain_delay",
        0,
        "On SIGTERM, before the graceful stop: `health.ready_path` answers `503` at once while the listeners keep accepting and serving this long (each response closing its connection), so a load balancer or Kubernetes stops routing here first (the preStop sleep, built in). A second SIGTERM ends it; SIGINT skips it. A service manager's stop timeout must cover `drain_delay` + `shutdown`.",
      ],
      [
        "stop_idle",
        2,
        "During a graceful stop, idle keep-alive connections stay open this long (at most `shutdown`): a request already on its way gets an answer with `Connection: close`, not a reset.",
      ],
      [
        "upgraded",
        300,
        "An upgraded connection (after 101) with no bytes either way this long is closed; the app may change it per request (`bunwsgi.set_timeout`).",
      ],
      [
        "app",
        0,
        "A request whose app has not finished its response this long gets 503 (or, once its head was sent, a cut connection), its result closed and an error-log line (uWSGI's harakiri); 0: no limit. The app may change it per request (`bunwsgi.set_timeout`).",
      ],
      [
        "worker",
        30,
        "With workers: a worker must report ready this long after it starts, and its event loop must answer the master's heartbeat within this long; else it is killed (SIGTERM, SIGKILL 3 s later) and replaced, and the error log names its pid, how long it was stuck and the last request it started. 0: no heartbeat.",
      ],
      ["min_body_rate_grace", 5, "Seconds a request body may start slowly before `limits.min_body_rate` applies."],
      [
        "min_response_rate_grace",
        5,
        "How far a client may fall behind `limits.min_response_rate`, in seconds of that rate, and never less than 64 KiB: a slow reader's kernel takes bytes in steps, 46.5 KiB on loopback.",
      ],
    ] as const
  ).map(
    ([name, value, doc]): Row => ({
      key: `timeouts.${name}`,
      kind: "seconds",
      default: value,
      min: 0,
      max: 86_400,
      metavar: "SECONDS",
      reload: true,
      example: String(value),
      needs: TIMEOUT_NEEDS[name],
      doc,
    }),
  ),
];
