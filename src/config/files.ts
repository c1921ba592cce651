/** @module config/files — what resolving a config asks of the system: whether a path is a file, what is wrong with one to read or to write, and a group's id. */

import { accessSync, constants, existsSync, readFileSync, statSync } from "node:fs";
import { dirname } from "node:path";

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
const isReadable = (p: string): boolean => {
  try {
    accessSync(p, constants.R_OK);
    return true;
  } catch {
    return false;
  }
};

/**
 * What is wrong with `p` as a `what` ("file", "module") to read, or null: it is missing, a
 * folder or something else that is not a regular file, or unreadable.
 */
export function readProblem(p: string, what = "file"): string | null {
  if (isDirectory(p)) return `${p} is a directory, not a ${what}`;
  if (!isFile(p)) return existsSync(p) ? `${p} is not a regular file` : `${what} ${p} not found`;
  return isReadable(p) ? null : `${what} ${p} is not readable`;
}

/** Whether this user may create files in `folder` (write and search permission on it). */
export const canCreateIn = (folder: string): boolean => access(folder, constants.W_OK | constants.X_OK);

const access = (p: string, mode: number): boolean => {
  try {
    accessSync(p, mode);
    return true;
  } catch {
    return false;
  }
};

/**
 * What is wrong with `p` as a file to write (a log, the pidfile), or null: a folder in its place,
 * no folder for it, or this user may not write it (or, when it is not there yet, create it).
 */
export function writeProblem(p: string): string | null {
  if (isDirectory(p)) return `${p} is a directory, not a file`;
  const user = `this user (uid ${process.getuid?.()})`;
  if (existsSync(p)) return access(p, constants.W_OK) ? null : `${p} is not writable by ${user}`;
  const folder = dirname(p);
  if (!isDirectory(folder)) return `folder ${folder} does not exist`;
  return canCreateIn(folder) ? null : `${user} cannot create files in ${folder}`;
}

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
