/** @module engine/served — the connections a server is serving: a slot list, the once-a-second walk of their deadlines, idle lookups for a graceful stop and for eviction, and the cut connections whose responses are still ending. */

import type { Connection } from "./connection.ts";

const RESOLVED: Promise<void> = Promise.resolve();

export class Served {
  /**
   * Open served connections, each at its `slot` (swap-remove on close). Not a Set: a Set's
   * churn of one entry per connection kept JSC doing full collections under
   * `Connection: close` load (about a tenth of the server's CPU in GC).
   */
  private readonly list: Connection[] = [];
  /** Connections that closed while their response was in progress, until it ends; with who waits for that. */
  private readonly orphans = new Map<Connection, (() => void) | null>();
  /** Resolves drained(): set only while a stop waits. */
  private resolveDrained: (() => void) | null = null;

  get count(): number {
    return this.list.length;
  }

  add(conn: Connection): void {
    conn.slot = this.list.length;
    this.list.push(conn);
  }

  /** A socket closed: forget it (false if it was not being served), keeping its response in progress as an orphan. */
  remove(conn: Connection): boolean {
    if (conn.responding) this.orphans.set(conn, null);
    const slot = conn.slot;
    if (slot < 0) return false;
    conn.slot = -1;
    const last = this.list.pop() as Connection;
    if (last !== conn) {
      this.list[slot] = last;
      last.slot = slot;
    }
    if (this.list.length === 0) this.resolveDrained?.();
    return true;
  }

  /** The timer's walk: every connection's deadlines at `now`. */
  tick(now: number): void {
    // Backwards: a connection that closes in its tick swaps in one already visited.
    const list = this.list;
    for (let i = list.length - 1; i >= 0; i--) (list[i] as Connection).tick(now);
  }

  /** The connection idle the longest, or null when none is idle. */
  longestIdle(): Connection | null {
    let oldest: Connection | null = null;
    for (const c of this.list) if (c.idle && (oldest === null || c.lastActive < oldest.lastActive)) oldest = c;
    return oldest;
  }

  closeIdle(): void {
    // Copies: closing a connection removes it from the list.
    for (const c of [...this.list]) c.closeIfIdle();
  }

  /** Cut every connection, `reason` naming why for the requests in flight. */
  terminateAll(reason: string): void {
    for (const c of [...this.list]) c.terminate(reason);
  }

  /** Settles once no connection is left, or after `seconds`. */
  drained(seconds: number): Promise<void> {
    if (this.list.length === 0) return RESOLVED;
    return new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.resolveDrained = null;
        resolve();
      };
      const timer = setTimeout(done, seconds * 1000);
      this.resolveDrained = done;
    });
  }

  /** A cut connection's response has ended. */
  orphanSettled(conn: Connection): void {
    const waiter = this.orphans.get(conn);
    this.orphans.delete(conn);
    waiter?.();
  }

  /**
   * Give responses whose connections were cut `grace` seconds to end their results and log
   * their requests; a request still not ended then (an app awaiting something that never
   * settles) is logged as abandoned, so no request goes unlogged.
   */
  async settleOrphans(grace: number): Promise<void> {
    if (this.orphans.size === 0) return;
    const all = Promise.all([...this.orphans.keys()].map((c) => new Promise<void>((resolve) => this.orphans.set(c, resolve))));
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([all, new Promise<void>((resolve) => (timer = setTimeout(resolve, grace * 1000)))]);
    clearTimeout(timer);
    for (const c of this.orphans.keys()) c.exchange.abandon(grace);
    this.orphans.clear();
  }
}
