/** @module process/upgrade — SIGUSR2, as nginx does it: the binary found at this one's path started as a new master on the same listening sockets, the pidfile moved to PIDFILE.oldbin, and taken back if the new master exits. */

import { existsSync, renameSync } from "node:fs";
import type { Subprocess } from "bun";
import type { LogLevel } from "../observe/log.ts";
import type { HeldSocket } from "./descriptors.ts";
import { selfPath, spawnHeir } from "./spawn.ts";

/** A master's binary upgrade: see the module comment. */
export class Upgrade {
  private heir: Subprocess | null = null;

  constructor(
    private readonly sockets: readonly HeldSocket[],
    private readonly pidfile: string | null,
    private readonly log: (msg: string, level?: LogLevel) => void,
  ) {}

  /** A new master runs: the sockets' files and the pidfile are its. */
  get handedOver(): boolean {
    return this.heir !== null && this.heir.exitCode === null && this.heir.signalCode === null;
  }

  get heirPid(): number | undefined {
    return this.heir?.pid;
  }

  /**
   * Start the new master. This one serves on until told to stop (SIGTERM); if the new one exits
   * first and this one is not stopping, the pidfile comes back and this one keeps serving.
   */
  start(stopping: () => boolean): void {
    if (this.heir !== null) {
      this.log(
        `SIGUSR2 ignored: the new master (pid ${this.heir.pid}) is running; stop this one with SIGTERM, or that one`,
        "WARNING",
      );
      return;
    }
    const pidfile = this.pidfile;
    let heir: Subprocess;
    try {
      heir = spawnHeir(this.sockets);
    } catch (e) {
      this.log(
        `SIGUSR2: cannot start a new master from ${selfPath()} (${(e as Error).message}): is the new binary in place and executable? This master keeps serving`,
        "ERROR",
      );
      return;
    }
    // Renamed once the new master runs: it writes PIDFILE itself once one of its workers serves.
    if (pidfile !== null && existsSync(pidfile)) renameSync(pidfile, `${pidfile}.oldbin`);
    this.heir = heir;
    this.log(
      `SIGUSR2: started a new master (pid ${heir.pid}) from ${selfPath()}; stop this one (pid ${process.pid}) with SIGTERM once it serves`,
    );
    void heir.exited.then((code) => {
      if (this.heir !== heir) return;
      this.heir = null;
      if (stopping()) return;
      if (pidfile !== null && existsSync(`${pidfile}.oldbin`)) renameSync(`${pidfile}.oldbin`, pidfile);
      this.log(`SIGUSR2: the new master (pid ${heir.pid}) exited (code ${code}); this one keeps serving`, "ERROR");
    });
  }
}
