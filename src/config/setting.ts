/** @module config/setting — what a setting is: its kind, value and source, and the shape of a settings-table row. */

/** How a setting's value is checked and converted. */
export type Kind =
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

/**
 * What a setting needs to have any effect (config/rules says what each one holds): one set in
 * the file or by a flag without it is an error rather than a value silently not used.
 */
export type Need =
  | "workers"
  | "max_requests"
  | "tcp_bind"
  | "unix_bind"
  | "unix_peer"
  | "proxy_bind"
  | "tls"
  | "client_auth"
  | "wsgi_app"
  | "access_log"
  | "error_log"
  | "min_body_rate"
  | "min_response_rate"
  | "forwarded_headers"
  | "trusted_peer"
  | "untrusted_peer";

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
  /**
   * Whether SIGHUP applies a change; the others (sockets, pidfile) need a restart. "workers": a
   * master's SIGHUP applies it, a lone process's cannot (TLS: each worker of a roll builds its
   * own TLS context over the socket it adopts, where a lone process would have to swap the
   * certificates of its listening socket, which Bun.listen cannot).
   */
  readonly reload: boolean | "workers";
  /** A value for the README's complete example config (TOML syntax). */
  readonly example: string;
  /** Why the complete example leaves this key commented out: it needs what other keys there rule out. */
  readonly exampleOff?: string;
  /** What must be configured for this setting to have any effect, if anything. */
  readonly needs?: readonly Need[];
}

export type Row = Omit<Setting, "flag" | "table" | "name">;
