/** @module engine/flow — why a connection is not reading (output backed up, input unread, pipelined bytes held, the process's budget spent): the socket reads again only when no reason is left. */

import type { Socket } from "bun";
import { type BudgetWaiter, budget } from "./budget.ts";
import { HeldTime } from "./rate.ts";

/** Reasons to stop reading, as bits. */
export const Pause = {
  /** Queued output is over its high-water mark. */
  OUTPUT: 1,
  /** Unread request-body bytes are over theirs: the app has not asked for more. */
  INPUT: 2,
  /** Pipelined bytes held while a response is in progress are over theirs. */
  PIPELINE: 4,
  /** The process's budget of buffered request-body bytes is spent (engine/budget). */
  BUDGET: 8,
} as const;

/** The pauses that are the server's or the app's doing, not the client's: the body's rate does not count them. */
const NOT_PEERS = Pause.INPUT | Pause.BUDGET;

export class Flow implements BudgetWaiter {
  private readonly socket: Socket<unknown>;
  private paused = 0;
  /** Time reading was held for NOT_PEERS reasons. */
  private readonly held = new HeldTime();
  /** The socket closed: it is never resumed again. */
  private closed = false;

  constructor(socket: Socket<unknown>) {
    this.socket = socket;
  }

  pause(reason: number): void {
    if (this.paused === 0) this.socket.pause();
    if ((reason & NOT_PEERS) !== 0 && (this.paused & NOT_PEERS) === 0) this.held.begin(performance.now() / 1000);
    this.paused |= reason;
  }

  resume(reason: number): void {
    if ((this.paused & reason) === 0) return;
    const held = (this.paused & NOT_PEERS) !== 0;
    this.paused &= ~reason;
    if (held && (this.paused & NOT_PEERS) === 0) this.held.end(performance.now() / 1000);
    if (this.paused === 0 && !this.closed) this.socket.resume();
  }

  /**
   * Seconds up to `now` that reading was held by the app (its unread input) or the server (the
   * budget), in all: time the client could not send in, which the body's rate must not count. A
   * hold that begins and ends between two ticks of the deadlines is counted too.
   */
  heldSeconds(now: number): number {
    return this.held.total(now);
  }

  pausedFor(reason: number): boolean {
    return (this.paused & reason) !== 0;
  }

  /** The process's buffered bytes are at limits.buffered_bytes: read nothing more until some are freed. */
  waitForBudget(): void {
    this.pause(Pause.BUDGET);
    budget.wait(this);
  }

  /** BudgetWaiter: bytes were freed. */
  budgetFreed(): void {
    this.resume(Pause.BUDGET);
  }

  /**
   * The response ended before its body: the rest is read and dropped (DISCARD), so neither the
   * app's unread input nor the budget may hold reading any more. Held, the rest was never read,
   * and the connection sat until the body deadline closed it, its next request unanswered.
   */
  discarding(): void {
    budget.forget(this);
    this.resume(Pause.INPUT | Pause.BUDGET);
  }

  /** The connection lingers after its last response: read, whatever held reading, and let what comes be dropped. */
  dropAll(): void {
    if ((this.paused & NOT_PEERS) !== 0) this.held.end(performance.now() / 1000);
    budget.forget(this);
    if (this.paused !== 0 && !this.closed) this.socket.resume();
    this.paused = 0;
  }

  /** The socket closed. */
  close(): void {
    this.closed = true;
    budget.forget(this);
  }
}
