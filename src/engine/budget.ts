/** @module engine/budget — the process-wide budget of buffered request-body bytes (limits.buffered_bytes): past it, connections stop reading instead of allocating more. */

/** A connection paused by the budget, resumed when bytes are freed. */
export interface BudgetWaiter {
  budgetFreed(): void;
}

/** Paused connections resume once use falls below this share of the limit (hysteresis: not one read at a time). */
const RESUME_AT = 0.75;

class Budget {
  /** Bytes of request bodies the process may hold for apps that have not read them. */
  limit = Number.POSITIVE_INFINITY;
  used = 0;
  private readonly waiting = new Set<BudgetWaiter>();

  get exhausted(): boolean {
    return this.used >= this.limit;
  }

  /** Whether `n` more bytes fit. */
  fits(n: number): boolean {
    return this.used + n <= this.limit;
  }

  take(n: number): void {
    this.used += n;
  }

  give(n: number): void {
    this.used -= n;
    if (this.waiting.size > 0 && this.used < this.limit * RESUME_AT) {
      const waiting = [...this.waiting];
      this.waiting.clear();
      for (const w of waiting) w.budgetFreed();
    }
  }

  wait(w: BudgetWaiter): void {
    this.waiting.add(w);
  }

  forget(w: BudgetWaiter): void {
    this.waiting.delete(w);
  }
}

export const budget = new Budget();
