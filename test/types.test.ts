/*
 * Type-level checks of the application contract, run by `tsc --noEmit` (npm test): each
 * `@ts-expect-error` line must fail to type-check, or tsc reports the directive as unused.
 */
import { expect, test } from "bun:test";
import type { Application, Body, Chunk } from "../src/index.ts";

const bytes = new TextEncoder().encode("bytes");

/** Bodies an application may return. */
export const accepted: Body[] = [
  ["text"],
  [bytes],
  ["mixed", bytes],
  ["frozen"] as const,
  new Set<Chunk>(["a set"]),
  (function* () {
    yield "a generator";
  })(),
  (async function* () {
    yield bytes;
  })(),
  { [Symbol.iterator]: () => ["custom iterable"][Symbol.iterator]() },
];

// @ts-expect-error a bare string is an Iterable<string>, but not a body
export const bareString: Body = "text";

// @ts-expect-error a String object is no better
export const stringObject: Body = new String("text");

// @ts-expect-error bytes must be inside a list: a Uint8Array iterates numbers
export const bareBytes: Body = bytes;

// @ts-expect-error an app returning a string is refused where it is written
export const returnsText: Application = () => "text";

// @ts-expect-error also from an async app
export const resolvesText: Application = async () => "text";

export const returnsList: Application = (_env, startResponse) => {
  startResponse("200 OK", []);
  return ["text"];
};

test("the type-level cases above are also real values", () => {
  expect(accepted).toHaveLength(8);
  expect(returnsList({} as never, () => async () => {})).toEqual(["text"]);
});
