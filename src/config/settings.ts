/** @module config/settings — the settings table: every setting's key, kind, default, limits and doc. The only place defaults live; config file, flags, --help, validation and the README reference are all made from it. */

/** How a setting's value is checked and converted. */
type Kind =
  | "app"
  | "string"
  | "path"
  | "file"
  | "int"
  | "seconds"
  | "choice"
  | "binds"
  | "sinks"
  | "table"
  | "format"
  | "mode"
  | "group"
  | "urlpath"
  | "workers"
  | "bool"
  | "addresses"
  | "fields"
  | "endpoint";

export type EnvironTable = Record<string, string | number | boolean>;
export type Value = string | number | boolean | string[] | EnvironTable | null;
export type Source = "default" | "file" | "flag";

export interface Setting {
  /** Dotted key: "bind", "tls.client_auth". The part before the dot is the TOML table. */
  readonly key: string;
  /** The CLI flag, derived from the key: "--tls-client-auth". */
  readonly flag: string;
  /** The TOML table ("" at top level) and the key within it, derived from the key. */
  readonly table: string;
  readonly name: string;
  readonly kind: Kind;
  readonly default: Value;
  readonly doc: string;
  /** What --help shows after the flag. */
  readonly metavar: string;
  readonly min?: number;
  readonly max?: number;
  readonly choices?: readonly string[];
  /** Whether SIGHUP applies a change; the others (sockets, TLS, pidfile) need a restart. */
  readonly reload: boolean;
  /** A value for the README's complete example config (TOML syntax). */
  readonly example: string;
}

type Row = Omit<Setting, "flag" | "table" | "name">;

const MiB = 1024 * 1024;
export const SECTIONS: Readonly<Record<string, string>> = {
  "": "Top level",
  tls: "[tls] — serve HTTPS",
  log: "[log] — access and error logs",
  health: "[health] — probes the server answers itself, before the app",
  limits: "[limits] — request size limits",
  timeouts: "[timeouts] — seconds; 0 turns one off",
};

const rows: Row[] = [
  {
    key: "app",
    kind: "app",
    default: null,
    metavar: "MODULE[:EXPORT]",
    reload: true,
    example: '"app.ts"',
    doc: "Application module (TypeScript or JavaScript) and export: the default export, or the named one after `:`. Also the positional APP argument.",
  },
  {
    key: "app_kind",
    kind: "choice",
    default: "auto",
    choices: ["auto", "wsgi", "fetch"],
    metavar: "KIND",
    reload: false,
    example: '"auto"',
    doc: "What the app export is: `wsgi` (a function (environ, startResponse)); `fetch` (a Web-standard fetch app: an object with a `fetch(request, server)` method, such as a Hono or Elysia app or `export default { fetch }`, or a bare function (request, server) → Response); `auto` decides by shape: an object with a fetch method is a fetch app, a function a WSGI app. `bunwsgi check` prints what it decided and why.",
  },
  {
    key: "bind",
    kind: "binds",
    default: ["127.0.0.1:8000"],
    metavar: "ADDR",
    reload: false,
    example: '["0.0.0.0:8000", "[::]:8000", "unix:/run/bunwsgi/bunwsgi.sock"]',
    doc: 'Where to listen: `host:port`, `[v6]:port`, `unix:/path` or `fd://N` (an inherited listening socket); one or a list. Repeat the flag for several. A bind\'s options follow its address after a space, as in HAProxy\'s and nginx\'s `listen`: `"0.0.0.0:8000 proxy_protocol=v2"`; in the file a bind may also be a table, `{ address = "0.0.0.0:8000", proxy_protocol = "v2" }` (or a `[[bind]]` section each). `proxy_protocol` = `off` (the default), `v1`, `v2` or `auto` (either): every connection must start with a PROXY protocol header (HAProxy `send-proxy`/`send-proxy-v2`, AWS NLB), from a peer in `proxy_protocol_from`; not on a TLS bind (see "Behind a load balancer").',
  },
  {
    key: "unix_socket_mode",
    kind: "mode",
    default: null,
    metavar: "MODE",
    reload: false,
    example: '"0660"',
    doc: 'Permissions of every `unix:` socket file, in octal, set as it is bound (a client needs write permission to connect): `"0660"` lets the owner and `unix_socket_group` in. Unset: the process umask decides.',
  },
  {
    key: "unix_socket_group",
    kind: "group",
    default: null,
    metavar: "GROUP",
    reload: false,
    example: '"www-data"',
    doc: "Group (name or number) given to every `unix:` socket file, such as the web server's (`www-data` for Debian's nginx). bunwsgi's user must be root or a member of it.",
  },
  {
    key: "backlog",
    kind: "int",
    default: null,
    min: 1,
    max: 65535,
    metavar: "N",
    reload: false,
    example: "512",
    doc: "Listen backlog. Bun.listen's is fixed at 512: another value is reported at start, not silently dropped.",
  },
  {
    key: "spawn",
    kind: "int",
    default: null,
    min: 1,
    max: 10_000_000,
    metavar: "N",
    reload: true,
    example: "10000",
    doc: "Most connections served at once, over all binds; more wait, unread, until one closes. Unset: no limit.",
  },
  {
    key: "pidfile",
    kind: "path",
    default: null,
    metavar: "FILE",
    reload: false,
    example: '"/run/bunwsgi/bunwsgi.pid"',
    doc: "Write the process id here once listening; removed at exit. Refuses to start if it names a live process.",
  },
  {
    key: "workers",
    kind: "workers",
    default: 0,
    min: 0,
    max: 1024,
    metavar: "COUNT",
    reload: true,
    example: "2",
    doc: "Worker processes. 0: this process serves, alone (no master). N: a master binds every listener once and supervises N workers of the same binary that serve them (replaced when they exit or hang, rolled on SIGHUP). `auto`: one per CPU this process may use (its affinity mask, as `taskset` and container limits set it).",
  },
  {
    key: "reuse_port",
    kind: "bool",
    default: true,
    metavar: "BOOL",
    reload: false,
    example: "false",
    doc: "With workers: each worker listens on its own socket per TCP bind (SO_REUSEPORT), and the kernel spreads new connections over them by address and port, so a burst of keep-alive connections cannot all land on the worker that woke first. A worker that is down or hung holds up the connections sent to its socket until its replacement (at most `timeouts.worker` and a start) and SIGTTOU resets those queued on the removed worker's socket unless `net.ipv4.tcp_migrate_req = 1`. `false`: one socket every worker accepts from. Unix and `fd://` binds are always shared; a lone process (`workers = 0`) binds without SO_REUSEPORT.",
  },
  {
    key: "max_requests",
    kind: "int",
    default: 0,
    min: 0,
    max: 1_000_000_000,
    metavar: "N",
    reload: true,
    example: "100000",
    doc: "With workers: a worker that has served this many requests is replaced; its replacement is ready before it stops accepting. 0: never. Counted once a second, so a worker may serve a second's worth more.",
  },
  {
    key: "max_requests_jitter",
    kind: "int",
    default: 0,
    min: 0,
    max: 1_000_000_000,
    metavar: "N",
    reload: true,
    example: "1000",
    doc: "Each worker's `max_requests` is raised by a random 0 to N, so workers started together are not all replaced at once.",
  },
  {
    key: "root_path",
    kind: "urlpath",
    default: null,
    metavar: "PATH",
    reload: true,
    example: '"/app"',
    doc: "The path prefix the app is mounted under behind a proxy (gunicorn's `SCRIPT_NAME`, uvicorn's `--root-path`): a request under it gets `SCRIPT_NAME` = the prefix and `PATH_INFO` = the rest; other paths pass whole.",
  },
  {
    key: "environ",
    kind: "table",
    default: {},
    metavar: "KEY=VALUE",
    reload: true,
    example: '{ APP_ENV = "production" }',
    doc: "Extra keys added to every request's environ. Repeat the flag for several.",
  },
  {
    key: "forwarded_allow_ips",
    kind: "addresses",
    default: ["127.0.0.1", "::1"],
    metavar: "ADDR",
    reload: true,
    example: '["127.0.0.1", "::1", "10.0.0.0/8"]',
    doc: 'Proxies whose forwarding fields (`forwarded_headers`) are believed: IPs and CIDR ranges of both families, or `"*"` (any peer; the hops it reports are still walked past only when listed). From such a peer, `REMOTE_ADDR`/`REMOTE_PORT`, `wsgi.url_scheme`/`HTTPS` and the host come from those fields, walking the chain from the right to the first hop not listed; from any other peer they are ignored. `[]` trusts none.',
  },
  {
    key: "forwarded_allow_unix",
    kind: "bool",
    default: false,
    metavar: "BOOL",
    reload: true,
    example: "false",
    doc: "Believe the forwarding fields of peers on `unix:` binds (such as nginx on the same host): a unix socket's peer has no address to match, so this is said here, not assumed.",
  },
  {
    key: "forwarded_headers",
    kind: "fields",
    default: ["x-forwarded-for", "x-forwarded-proto"],
    choices: ["x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-forwarded-port", "forwarded"],
    metavar: "FIELD",
    reload: true,
    example: '["x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"]',
    doc: "Which forwarding fields are read from a trusted peer: `x-forwarded-for`, `x-forwarded-proto`, `x-forwarded-host`, `x-forwarded-port`, `forwarded` (RFC 7239; when listed and present it is read alone). List only fields your proxy sets or clears: one it passes on unchanged is the client's to write.",
  },
  {
    key: "forwarded_strip_untrusted",
    kind: "bool",
    default: false,
    metavar: "BOOL",
    reload: true,
    example: "true",
    doc: "From a peer that is not trusted, remove the five forwarding fields from the environ (`HTTP_X_FORWARDED_*`, `HTTP_FORWARDED`) and from a fetch app's Request headers, so an app that reads them cannot be fooled (`bunwsgi.headers` keeps the fields as received).",
  },
  {
    key: "proxy_protocol_from",
    kind: "addresses",
    default: ["127.0.0.1", "::1"],
    metavar: "ADDR",
    reload: true,
    example: '["10.0.0.0/8"]',
    doc: 'Peers that may send a PROXY protocol header on a bind with `proxy_protocol` on: IPs, CIDR ranges or `"*"`; any other peer on such a bind is closed at once. On a `unix:` bind the socket file\'s permissions decide who may connect, and so who may send one.',
  },
  {
    key: "metrics_bind",
    kind: "endpoint",
    default: null,
    metavar: "HOST:PORT",
    reload: false,
    example: '"127.0.0.1:9101"',
    doc: 'Serve Prometheus metrics (text format 0.0.4) at `/metrics` on this address of its own, never on a `bind`: `"127.0.0.1:9101"`, `"[::1]:9101"`. With workers the master serves one page summed over them. Unset: no metrics, and no cost for them (see "Metrics").',
  },
  {
    key: "tls.cert",
    kind: "file",
    default: null,
    metavar: "FILE",
    reload: false,
    example: '"/etc/bunwsgi/server.pem"',
    doc: "Server certificate chain (PEM). With `tls.key`, every bind serves HTTPS.",
  },
  {
    key: "tls.key",
    kind: "file",
    default: null,
    metavar: "FILE",
    reload: false,
    example: '"/etc/bunwsgi/server.key"',
    doc: "Private key (PEM) for `tls.cert`.",
  },
  {
    key: "tls.ca",
    kind: "file",
    default: null,
    metavar: "FILE",
    reload: false,
    example: '"/etc/bunwsgi/clients-ca.pem"',
    doc: "CA certificates (PEM) that client certificates must chain to; needed by `client_auth`.",
  },
  {
    key: "tls.passphrase",
    kind: "string",
    default: null,
    metavar: "TEXT",
    reload: false,
    example: '"change-me"',
    doc: "Passphrase of an encrypted `tls.key`.",
  },
  {
    key: "tls.ciphers",
    kind: "string",
    default: null,
    metavar: "LIST",
    reload: false,
    example: '"ECDHE+AESGCM:ECDHE+CHACHA20"',
    doc: "OpenSSL cipher list for TLS 1.2 (TLS 1.3 suites are not affected).",
  },
  {
    key: "tls.client_auth",
    kind: "choice",
    default: "none",
    choices: ["none", "request", "require"],
    metavar: "MODE",
    reload: false,
    example: '"none"',
    doc: "Client certificates: `none`; `request` (asked for, optional); `require` (a client without one that verifies against `tls.ca` is refused). A verified certificate's subject is environ `SSL_CLIENT_S_DN`.",
  },
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
    doc: "Least severe error-log line written: `debug` adds why each refused request was refused (the access record's `reason`, with the parser's message).",
  },
  {
    key: "log.format",
    kind: "format",
    default: "gevent",
    metavar: "FORMAT",
    reload: true,
    example: '"combined"',
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
    doc: "Longest request line; longer gets 414.",
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
    doc: "Largest header section; larger gets 431.",
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
        "Slowest reading of a response accepted, in bytes/s the client's kernel takes over the last `timeouts.min_response_rate_grace` seconds while output waits for it (Kestrel's MinResponseDataRate); slower is cut off. 0: off.",
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
    doc: "Longest run of chunk extensions on one chunk-size line of a chunked body (RFC 9112 §7.1.1); longer gets 400.",
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
    doc: "Largest trailer section of a chunked body (RFC 9112 §7.1.2); larger gets 431.",
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
      ["header", 20, "Whole request head must arrive in this time (slowloris), else 408 and close."],
      ["keep_alive", 15, "Idle keep-alive connection is closed after this."],
      ["body", 60, "Request body may stall this long between reads, else 408 and close."],
      ["write", 60, "A client that accepts no response bytes this long is cut off."],
      ["shutdown", 10, "Graceful stop (SIGTERM/SIGINT) waits this long for in-flight requests."],
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
      ["min_response_rate_grace", 5, "Seconds a client may read a response slowly before `limits.min_response_rate` applies."],
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
      doc,
    }),
  ),
];

/** The settings table: one row per setting, driving the config file, flags, --help, validation and the README. */
export const SETTINGS: readonly Setting[] = rows.map((r) => ({
  ...r,
  ...splitKey(r.key),
  flag: `--${r.key.replace(/[._]/g, "-")}`,
}));

/** "tls.client_auth" → table "tls", name "client_auth"; a top-level key has table "". */
export function splitKey(key: string): { table: string; name: string } {
  const dot = key.indexOf(".");
  return dot < 0 ? { table: "", name: key } : { table: key.slice(0, dot), name: key.slice(dot + 1) };
}

const BY_KEY = new Map(SETTINGS.map((s) => [s.key, s]));
const BY_FLAG = new Map(SETTINGS.map((s) => [s.flag, s]));

/** The config file read when none is named. */
export const DEFAULT_CONFIG_FILE = "bunwsgi.toml";

/** The setting with this key or flag, if any. */
export const settingByKey = (key: string): Setting | undefined => BY_KEY.get(key);
export const settingByFlag = (flag: string): Setting | undefined => BY_FLAG.get(flag);
