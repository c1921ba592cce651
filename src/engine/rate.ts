/** @module engine/rate — a transfer rate over a sliding window, for the minimum body and response rates (Kestrel's MinRequestBodyDataRate and MinResponseDataRate), and the time a transfer stood still for reasons not the peer's, which those rates leave out. */

/**
 * Samples of (time, bytes so far), taken once a second while a transfer is measured; the rate
 * is the bytes moved over the last `window` seconds. A window is only kept for a transfer slow
 * enough to still be going at a tick, so the common request never allocates one.
 */
export class RateWindow {
  /** Flat pairs: time in seconds, total bytes at that time. */
  private samples: number[] = [];

  /** Forget the samples: the measure restarts (a pause that is not the peer's doing, a new transfer). */
  reset(): void {
    this.samples.length = 0;
  }

  /**
   * Record `total` bytes at `now`; true when, over at least `window` seconds of samples, fewer
   * than `rate` bytes a second moved. Samples older than the window are dropped, but one is
   * kept at or before its start so the window is always measured whole.
   */
  tooSlow(now: number, total: number, rate: number, window: number): boolean {
    const s = this.samples;
    s.push(now, total);
    while (s.length > 4 && (s[2] as number) <= now - window) s.splice(0, 2);
    const t0 = s[0] as number;
    if (rate <= 0 || now - t0 < window) return false;
    return total - (s[1] as number) < rate * (now - t0);
  }
}

/**
 * Seconds (performance.now()) spent in a state that is not the peer's doing, in all: reading held
 * for the app or the budget (Flow), an output queue standing empty (Output). A rate measured on
 * `now - total(now)` leaves that time out, however short and whether or not a tick fell in it.
 */
export class HeldTime {
  private sum = 0;
  /** When the current stretch began; -1 when none is running. */
  private since = -1;

  /** A stretch begins at `now` (nothing if one is running). */
  begin(now: number): void {
    if (this.since < 0) this.since = now;
  }

  /** The running stretch, if any, ends at `now`. */
  end(now: number): void {
    if (this.since < 0) return;
    this.sum += now - this.since;
    this.since = -1;
  }

  /** Seconds in all up to `now`, the running stretch included. */
  total(now: number): number {
    return this.sum + (this.since >= 0 ? Math.max(0, now - this.since) : 0);
  }
}
