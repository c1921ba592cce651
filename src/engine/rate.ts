/** @module engine/rate — the minimum body rate over a sliding window (Kestrel's MinRequestBodyDataRate), the minimum response rate as an allowance a reader may fall behind by (Kestrel's MinResponseDataRate), and the time a transfer stood still for reasons not the peer's, which both leave out. */

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
 * The least a reader may fall behind a minimum rate, in bytes: what a reader's kernel hands back
 * to the sender at once. A receiver whose window is full reopens it only once it has room for a
 * segment (RFC 9293 §3.8.6.2.2, receiver-side silly window avoidance), and loopback's segments
 * are 64 KiB: a client on the same host reading 1 KiB/s (a proxy with its buffering off in front
 * of a slow client) frees the sender's room in steps of 46.5 KiB every 46 s (35.7 KiB on a unix
 * socket), measured here with the default receive buffer. Judged over a window of seconds, such
 * a reader looked stopped between steps and was cut at 4× the rate.
 */
export const READER_STEP = 64 * 1024;

/**
 * A transfer that must move at least `rate` bytes a second, judged as an account: each second
 * measured owes `rate` bytes, each byte moved pays one, and the reader is cut once it owes more
 * than its allowance (max(rate × grace, READER_STEP)). Bytes moved beyond what is owed are not
 * banked, so an early burst does not excuse a later trickle. A reader that stops entirely is the
 * write deadline's (`timeouts.write`); this one cuts the one that trickles. O(1) per connection,
 * sampled once a tick while bytes wait for the reader.
 */
export class RateAccount {
  /** Bytes owed (0 or less); NaN until the first sample opens the account. */
  private balance = Number.NaN;
  private lastTime = 0;
  private lastTotal = 0;

  /** Close the account: the next sample opens a new one owing nothing (the reader took all it was offered). */
  reset(): void {
    this.balance = Number.NaN;
  }

  /** Record `total` bytes moved by `now`; true when the reader owes more than `allowance` bytes at `rate`. */
  tooSlow(now: number, total: number, rate: number, allowance: number): boolean {
    this.balance = Number.isNaN(this.balance)
      ? 0
      : Math.min(0, this.balance + (total - this.lastTotal) - rate * (now - this.lastTime));
    this.lastTime = now;
    this.lastTotal = total;
    return rate > 0 && this.balance < -allowance;
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
