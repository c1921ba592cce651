/** @module engine/throttle — a warning that a flood of its cause must not turn into a flood of lines: written at most once every WARN_EVERY seconds, with how many times its cause recurred meanwhile. */

/** Seconds between two warnings of one kind. */
export const WARN_EVERY = 10;

/** One kind of warning's schedule. */
export class Throttle {
  private warnedAt = Number.NEGATIVE_INFINITY;
  private since = 0;

  /**
   * The cause happened at `now` (seconds): how many times it has since the last warning, this
   * one included, when a warning is due now; 0 when it is not (the count goes on).
   */
  due(now: number): number {
    this.since++;
    if (now - this.warnedAt < WARN_EVERY) return 0;
    const n = this.since;
    this.since = 0;
    this.warnedAt = now;
    return n;
  }
}

/** " (N in all since the last such warning)" for a warning that stands for more than one occurrence, else "". */
export function recurred(n: number): string {
  return n > 1 ? ` (${n} in all since the last such warning)` : "";
}
