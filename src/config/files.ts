/** @module config/files — what resolving a config asks of the system: whether a path is a file, a folder, readable, and a group's id. */

import { accessSync, constants, readFileSync, statSync } from "node:fs";

/** Whether `p` is a regular file (following links). */
export const isFile = (p: string): boolean => {
  try {
    return statSync(p).isFile();
  } catch {
    return false;
  }
};
/** Whether `p` is a folder (following links). */
export const isDirectory = (p: string): boolean => {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
};
/** Whether this process may read `p`. */
export const isReadable = (p: string): boolean => {
  try {
    accessSync(p, constants.R_OK);
    return true;
  } catch {
    return false;
  }
};

/**
 * A group's id from its name (or number): the system's group database through getent (which
 * also asks LDAP and the like), else /etc/group; null when there is no such group.
 */
export function groupId(group: string): number | null {
  if (/^\d+$/.test(group)) return Number(group);
  const fromLine = (line: string): number | null => {
    const [name, , gid] = line.split(":");
    return name === group && gid !== undefined && /^\d+$/.test(gid) ? Number(gid) : null;
  };
  try {
    const p = Bun.spawnSync(["getent", "group", group], { stdout: "pipe", stderr: "ignore" });
    if (p.exitCode === 0) return fromLine(p.stdout.toString().trim());
    if (p.exitCode === 2) return null;
  } catch {
    // No getent on this system: read the file.
  }
  try {
    for (const line of readFileSync("/etc/group", "utf8").split("\n")) {
      const gid = fromLine(line);
      if (gid !== null) return gid;
    }
  } catch {
    // No /etc/group either.
  }
  return null;
}
