/** @module engine/pool — the `spawn` limit: connections served at once, shared by every server given the same Pool, with waiting connections and idle eviction. */

import { ConfigError } from "../errors.ts";
import type { Connection } from "./connection.ts";

/** What a Pool needs of a server that shares it. */
export interface PoolMember {
  /** The served connection idle the longest, or null when none is idle. */
  longestIdle(): Connection | null;
  /** The pool freed a slot for a connection that was waiting. */
  admitWaiting(conn: Connection): void;
}

/**
 * Seconds a connection must have been idle before it is closed for one waiting for a slot: a
 * proxy reuses the connection freed last at once, and one it left idle a second is one it is
 * not using (the race of closing it is then the keep-alive deadline's, as rare).
 */
export const EVICT_IDLE = 1;

/** A connection limit, shared by every server given the same Pool as `spawn`. */
export class Pool {
  /** Connections served at once; Infinity for no limit. */
  size: number;
  /** Connections being served. */
  active = 0;
  private readonly waiting: Connection[] = [];
  private readonly owners = new Map<Connection, PoolMember>();
  /** Servers sharing this limit: where an idle connection may be closed to make room. */
  private readonly servers = new Set<PoolMember>();
  /** Set for when the connection idle longest turns EVICT_IDLE while connections wait; null when none is. */
  private evictTimer: ReturnType<typeof setTimeout> | null = null;
  private readonly evictLaterBound = (): void => this.evictLater();

  constructor(size: number = Number.POSITIVE_INFINITY) {
    this.size = Pool.check(size);
  }

  private static check(size: number): number {
    if (size !== Number.POSITIVE_INFINITY && (!Number.isInteger(size) || size < 1)) {
      throw new ConfigError(`spawn must be a positive integer or "default", got ${JSON.stringify(size)}`);
    }
    return size;
  }

  full(): boolean {
    return this.active >= this.size;
  }

  /** Connections are waiting for a slot: a connection that finishes a response should give its slot up. */
  get crowded(): boolean {
    return this.waiting.length > 0;
  }

  attach(server: PoolMember): void {
    this.servers.add(server);
  }

  detach(server: PoolMember): void {
    this.servers.delete(server);
  }

  /**
   * At capacity, a connection idle between keep-alive requests holds a slot that a new client
   * needs (a proxy's upstream keepalive pool holds many): close the one idle longest, over all
   * servers sharing the limit, once it has been idle EVICT_IDLE seconds at `now` (performance.now()
   * seconds). One that went idle a moment ago is the one its proxy reuses next (nginx's and
   * HAProxy's pools hand out the connection freed last): closed then, it meets the request the
   * proxy is sending on it, which nothing answers (a 502 at the proxy). True when one was closed.
   */
  evictIdle(now: number): boolean {
    let oldest: Connection | null = null;
    for (const server of this.servers) {
      const c = server.longestIdle();
      if (c !== null && (oldest === null || c.lastActive < oldest.lastActive)) oldest = c;
    }
    if (oldest === null) return false;
    const age = now - oldest.lastActive;
    if (age < EVICT_IDLE) {
      // Again as it turns EVICT_IDLE, unless a slot frees first; not at the next tick, up to a
      // second later (a probe with a 1 s timeout waits behind it). Unref'd: a stop never waits for it.
      this.evictTimer ??= setTimeout(this.evictLaterBound, (EVICT_IDLE - age) * 1000 + 1);
      this.evictTimer.unref();
      return false;
    }
    oldest.closeIfIdle();
    // Still idle: its next request is waiting, unread (Connection.requestWaiting).
    return !oldest.idle;
  }

  /**
   * Connections are waiting and idle ones may have aged past EVICT_IDLE since they were parked
   * (the timer evictIdle sets, and the server's tick): close as many of those, idle longest
   * first, as there are waiting.
   */
  evictForWaiting(now: number): void {
    for (let n = this.waiting.length; n > 0 && this.evictIdle(now); n--);
  }

  private evictLater(): void {
    this.evictTimer = null;
    if (this.crowded) this.evictForWaiting(performance.now() / 1000);
  }

  /** Park a connection, unread, until a slot frees. */
  wait(server: PoolMember, conn: Connection): void {
    this.waiting.push(conn);
    this.owners.set(conn, server);
  }

  /** Forget a parked connection (it closed while waiting); true if it was parked. */
  forget(conn: Connection): boolean {
    if (!this.owners.delete(conn)) return false;
    this.waiting.splice(this.waiting.indexOf(conn), 1);
    return true;
  }

  /** Take every parked connection of one server (it is stopping). */
  take(server: PoolMember): Connection[] {
    const out: Connection[] = [];
    for (let i = this.waiting.length - 1; i >= 0; i--) {
      const c = this.waiting[i] as Connection;
      if (this.owners.get(c) === server) {
        out.push(c);
        this.waiting.splice(i, 1);
        this.owners.delete(c);
      }
    }
    return out;
  }

  /**
   * Take the parked connections of one server that were accepted before `since` (performance.now()
   * seconds; a parked connection reads nothing, so its lastActive is its accept): they waited
   * for a slot too long. Parked in arrival order, so the first that is not stops the walk.
   */
  expired(server: PoolMember, since: number): Connection[] {
    const out: Connection[] = [];
    for (let i = 0; i < this.waiting.length; i++) {
      const c = this.waiting[i] as Connection;
      if (c.lastActive >= since) break;
      if (this.owners.get(c) !== server) continue;
      out.push(c);
      this.waiting.splice(i--, 1);
      this.owners.delete(c);
    }
    return out;
  }

  /** Change the limit (a reload); parked connections are admitted if it grew. */
  resize(size: number): void {
    this.size = Pool.check(size);
    this.admitWaiting();
  }

  /** A served connection closed: admit parked ones while there is room. */
  release(): void {
    this.active--;
    this.admitWaiting();
  }

  private admitWaiting(): void {
    while (this.active < this.size && this.waiting.length > 0) {
      const next = this.waiting.shift() as Connection;
      const server = this.owners.get(next) as PoolMember;
      this.owners.delete(next);
      server.admitWaiting(next);
    }
  }
}
