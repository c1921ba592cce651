/** @module test/deadline-rates — the minimum body and response rates count the client's time only: pauses that are the app's doing, seen by no tick, are left out (engine/deadlines on a real Flow and Output over stand-in sockets, ticked by hand). */

import { describe, expect, test } from "bun:test";
import type { Socket } from "bun";
import { defaultLimits, defaultTimeouts } from "../src/config/limits.ts";
import { Deadlines, type DeadlineTarget } from "../src/engine/deadlines.ts";
import { Flow, Pause } from "../src/engine/flow.ts";
import { Output, type OutputOwner } from "../src/engine/output.ts";
import { State } from "../src/engine/state.ts";

const seconds = (): number => performance.now() / 1000;

/** A socket that takes writes only while `accepting`, and whose pause/resume do nothing: the deadlines see what a real one would report. */
class StandInSocket {
  accepting = false;
  readonly fd = -1;
  write(_b: Uint8Array, _offset?: number, len?: number): number {
    return this.accepting ? (len ?? _b.length) : 0;
  }
  getTLSVersion(): null {
    return null;
  }
  pause(): void {}
  resume(): void {}
}

/** A connection as the deadlines see it, with a real Flow and Output, and what the deadlines did to it. */
function connection(state: number) {
  const socket = new StandInSocket();
  const flow = new Flow(socket as unknown as Socket<unknown>);
  const owner: OutputOwner = {
    batching: false,
    host: { now: 0 },
    flow,
    outputFailed() {},
    outputDrained() {},
  };
  const out = new Output(socket as unknown as Socket<unknown>, owner);
  const body = { decoder: { received: 0 } };
  const done = { failed: "", terminated: false };
  const target = {
    state,
    responding: true,
    intake: { held: { size: 0 } },
    body,
    out,
    flow,
    exchange: { logInfo() {}, clientLabel: () => "client" },
    refuseSlowHead() {},
    failBody(_err: Error, reason: string) {
      done.failed = reason;
    },
    appTimedOut: () => false,
    endAfterFlush() {},
    terminate() {
      done.terminated = true;
    },
  } as unknown as DeadlineTarget;
  return { socket, flow, out, body, done, target, deadlines: new Deadlines(seconds()) };
}

const timeouts = { ...defaultTimeouts(), body: 0, write: 0, app: 0, minBodyRateGrace: 1, minResponseRateGrace: 1 };

describe("limits.min_body_rate counts only the time the client could send", () => {
  // 100 bytes a cycle of ~1 s: 100 B/s over the wall clock, ~250 B/s over the time reading was not held.
  const limits = { ...defaultLimits(), minBodyRate: 150 };

  async function run(appPauses: boolean): Promise<string> {
    const c = connection(State.BODY);
    for (let cycle = 0; cycle < 5 && c.done.failed === ""; cycle++) {
      if (appPauses) {
        // The app stops reading (its unread input is over the high-water mark) and reads again
        // 600 ms later: a hold that begins and ends between two ticks.
        c.flow.pause(Pause.INPUT);
        await Bun.sleep(600);
        c.flow.resume(Pause.INPUT);
      } else {
        await Bun.sleep(600);
      }
      c.body.decoder.received += 100;
      await Bun.sleep(400);
      c.deadlines.check(c.target, seconds(), timeouts, limits);
    }
    return c.done.failed;
  }

  test("holds for the app between ticks are not the client's: a body fast enough while it may send is not cut", async () => {
    expect(await run(true)).toBe("");
  }, 10_000);

  test("the same bytes with no holds are too slow: 408, reason body_too_slow", async () => {
    expect(await run(false)).toBe("body_too_slow");
  }, 10_000);
});

describe("limits.min_response_rate counts only the time bytes waited for the client", () => {
  // 100 kB a cycle of ~1 s, queued ~0.4 s of it: 100 kB/s over the wall clock, ~250 kB/s while
  // bytes waited. Against 150 kB/s with a 1 s grace, the slow one owes 42.5 kB more each cycle
  // and is cut once it owes over 150 kB, at the fifth tick.
  const limits = { ...defaultLimits(), minResponseRate: 150_000 };

  async function run(appIdles: boolean): Promise<boolean> {
    const c = connection(State.HEAD);
    const part = "x".repeat(100_000);
    for (let cycle = 0; cycle < 8 && !c.done.terminated; cycle++) {
      c.out.writeLatin1(part);
      c.out.commit();
      expect(c.out.queued).toBe(100_000);
      c.deadlines.check(c.target, seconds(), timeouts, limits);
      await Bun.sleep(350);
      if (appIdles) {
        // The client takes it all; the app writes its next part 600 ms later. No tick sees the empty queue.
        c.socket.accepting = true;
        c.out.onDrain();
        c.socket.accepting = false;
        expect(c.out.queued).toBe(0);
        await Bun.sleep(600);
      } else {
        await Bun.sleep(600);
        c.socket.accepting = true;
        c.out.onDrain();
        c.socket.accepting = false;
      }
    }
    return c.done.terminated;
  }

  test("an empty queue between ticks is the app's time: a client that takes all it is offered is not cut", async () => {
    expect(await run(true)).toBe(false);
  }, 15_000);

  test("the same bytes taken only as the next part comes are too slow: cut", async () => {
    expect(await run(false)).toBe(true);
  }, 15_000);
});
