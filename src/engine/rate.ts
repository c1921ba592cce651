/** @module engine/rate — a transfer rate over a sliding window, for the minimum body and response rates (Kestrel's MinRequestBodyDataRate and MinResponseDataRate). */

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
