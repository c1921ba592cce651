/** @module config/settings — the settings table (its rows in config/rows-server and config/rows-tables): every setting's key, kind, default, limits and doc, and lookup by key and flag. The only place defaults live; config file, flags, --help, validation and the README reference are all made from it. */

import { SERVER_ROWS } from "./rows-server.ts";
import { TABLE_ROWS } from "./rows-tables.ts";
import type { Row, Setting } from "./setting.ts";

export const SECTIONS: Readonly<Record<string, string>> = {
  "": "Top level",
  tls: "[tls] — serve HTTPS",
  log: "[log] — access and error logs",
  health: "[health] — probes the server answers itself, before the app",
  limits: "[limits] — request size limits",
  timeouts: "[timeouts] — seconds; 0 turns one off",
};

const rows: readonly Row[] = [...SERVER_ROWS, ...TABLE_ROWS];

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

/**
 * When `name`, found inside a table, is a top-level setting or a section: where it belongs
 * ("" otherwise). TOML has no way back to the top level, so a top-level key written below a
 * [section] header is read as part of that section.
 */
export function misplacedHint(name: string): string {
  if (settingByKey(name)?.table === "") return `${JSON.stringify(name)} is a top-level setting: put it above the first [section]`;
  if (name !== "" && name in SECTIONS) return `${JSON.stringify(name)} is a section of its own: put its keys under [${name}]`;
  return "";
}
