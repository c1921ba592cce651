/** @module process/backoff — each worker slot's failed starts: how long its next start waits (0.5 s, doubling, at most 30 s), the timers of starts that wait, and whether a recycle must wait too. */

import { now } from "./handle.ts";

/** Backoff for a worker that dies before it is ready: 0.5 s, doubling, at most this. */
const MAX_BACKOFF = 30;

/** The master's record of failed starts, by slot: see the module comment. */
export class SlotBackoff {
  private readonly failures = new Map<number, number>();
  /** When each slot's last start failed (now() seconds): a recycle waits out the same backoff. */
  private readonly failedAt = new Map<number, number>();
  private readonly pending = new Map<number, ReturnType<typeof setTimeout>>();

  /**
   * A start of `slot` failed; `counted`: it was counted already (a worker killed for a slow
   * start is counted as it is killed). Returns the seconds the slot's next start waits.
   */
  failed(slot: number, counted = false): number {
    const n = this.failures.get(slot) ?? 0;
    this.failures.set(slot, counted ? Math.max(n, 1) : n + 1);
    this.failedAt.set(slot, now());
    return this.delay(slot);
  }

  /** A worker of `slot` became ready: a later failure starts the backoff over. */
  succeeded(slot: number): void {
    this.failures.delete(slot);
  }

  /** Seconds a start of `slot` waits: 0 unless its last start failed. */
  delay(slot: number): number {
    const n = this.failures.get(slot) ?? 0;
    return n === 0 ? 0 : Math.min(MAX_BACKOFF, 0.5 * 2 ** (n - 1));
  }

  /** Seconds left of the slot's backoff, counted from its last failed start: 0 once it has passed. */
  remaining(slot: number): number {
    return Math.max(0, (this.failedAt.get(slot) ?? 0) + this.delay(slot) - now());
  }

  /** The slot's last start failed less than its backoff ago (a recycle waits too). */
  waiting(slot: number): boolean {
    return this.remaining(slot) > 0;
  }

  /** A start of `slot` is waiting out its backoff. */
  scheduled(slot: number): boolean {
    return this.pending.has(slot);
  }

  /** Call `start` once the slot's backoff has passed. */
  schedule(slot: number, start: () => void): void {
    this.pending.set(
      slot,
      setTimeout(() => {
        this.pending.delete(slot);
        start();
      }, this.remaining(slot) * 1000),
    );
  }

  /** Drop the waiting starts (a stop, or a new generation that starts every slot itself). */
  cancel(): void {
    for (const t of this.pending.values()) clearTimeout(t);
    this.pending.clear();
  }

  /** A new generation serves: its slots start with no failures. */
  reset(): void {
    this.cancel();
    this.failures.clear();
    this.failedAt.clear();
  }
}
