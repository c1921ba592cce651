/** @module engine/fd-room — room under the process's descriptor limit (RLIMIT_NOFILE) for accepted sockets: near it a new socket is answered 503 or closed at once, so that accept(2) never meets EMFILE. */

import { readdirSync } from "node:fs";
import { libc } from "./libc.ts";
import { Throttle } from "./throttle.ts";

/**
 * What to do with a socket just accepted. At the limit accept(2) fails with EMFILE and leaves
 * the connection queued: the listening socket stays readable, and Bun's accept loop retried it
 * at 100 % CPU, logging nothing, until some descriptor was freed. Refusing below the limit keeps
 * accept(2) succeeding, so the queue empties and each client gets an answer.
 */
export const Room = {
  /** Serve it. */
  SERVE: 0,
  /** Answer 503 and close it: few descriptors are left. */
  REFUSE: 1,
  /** Close it at once: a refusal's linger would hold one of the last descriptors. */
  CLOSE: 2,
} as const;
export type RoomVerdict = (typeof Room)[keyof typeof Room];

/**
 * Descriptors kept free of client sockets for everything else the process opens (a file
 * response's file, a log reopened, the app's own), at most this many or a quarter of the
 * room: below it new sockets are refused.
 */
const REFUSE_RESERVE = 64;
/** The last few descriptors, at most this many or a sixteenth of the room: below it new sockets are closed at once. */
const CLOSE_RESERVE = 16;
/** Seconds between counts of the process's descriptors while near the limit. */
const RECOUNT = 0.25;
/** Descriptors assumed open besides sockets where they cannot be counted (no /proc). */
const UNCOUNTED_OTHERS = 32;

/** Descriptors this process has open (/proc/self/fd, less the listing's own), or -1 where it cannot tell. */
function openDescriptors(): number {
  try {
    return readdirSync("/proc/self/fd").length - 1;
  } catch {
    return -1;
  }
}

/** The process's descriptor room, shared by every server in it (like engine/budget). */
class FdRoom {
  /** The descriptor limit; NaN until read, Infinity when unknown or unlimited (nothing is checked). */
  limit = Number.NaN;
  /** Descriptors open besides client sockets, at the last count. */
  private others = 0;
  private countedAt = Number.NEGATIVE_INFINITY;
  private counted = true;
  /** Open sockets up to which no count is needed: far enough below the reserve that what else opened since cannot reach it. */
  private quick = 0;
  /** The warning's schedule, counting the sockets refused or closed since the last one. */
  private readonly warned = new Throttle();

  /**
   * The verdict for a socket just accepted, `open` client sockets now open in the process (it
   * included), at `now` (performance.now() seconds).
   */
  check(open: number, now: number): RoomVerdict {
    return open <= this.quick ? Room.SERVE : this.near(open, now);
  }

  private near(open: number, now: number): RoomVerdict {
    if (Number.isNaN(this.limit) || (this.counted && now - this.countedAt >= RECOUNT)) {
      // The limit is read again with each count: an operator may raise it while the process runs (prlimit).
      const max = libc()?.maxDescriptors() ?? -1;
      this.limit = max > 0 ? max : Number.POSITIVE_INFINITY;
      const n = openDescriptors();
      if (n >= 0) this.others = Math.max(0, n - open);
      else {
        // No /proc: an estimate from now on, and no more attempts to count.
        this.counted = false;
        this.others = UNCOUNTED_OTHERS;
      }
      this.countedAt = now;
    }
    if (this.limit === Number.POSITIVE_INFINITY) {
      this.quick = Number.POSITIVE_INFINITY;
      return Room.SERVE;
    }
    const room = this.limit - this.others;
    const refuseBelow = Math.min(REFUSE_RESERVE, Math.floor(room / 4));
    this.quick = room - Math.max(2 * refuseBelow, Math.floor(room / 4));
    const free = room - open;
    if (free >= refuseBelow) return Room.SERVE;
    return free < Math.min(CLOSE_RESERVE, Math.floor(room / 16)) ? Room.CLOSE : Room.REFUSE;
  }

  /**
   * A socket was turned away at `now`: the warning to log, or null: at most one every
   * WARN_EVERY seconds (engine/throttle), with how many were turned away since the last.
   */
  warning(open: number, now: number): string | null {
    const n = this.warned.due(now);
    if (n === 0) return null;
    return (
      `descriptor limit: ${open} client connections open, ${this.others} other descriptors, limit ${this.limit} (RLIMIT_NOFILE); ` +
      `${n} new connection${n === 1 ? "" : "s"} refused with 503 or closed since the last warning. ` +
      "Raise the limit (ulimit -n, systemd LimitNOFILE=)"
    );
  }
}

/** The process's descriptor room. */
export const fdRoom = new FdRoom();
