import { expect, test } from "bun:test";
import { ConnectionClosedError, HTTPError, Input } from "../src/index.ts";

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const dec = (b: Uint8Array): string => new TextDecoder().decode(b);

test("read(n) waits for n bytes across pushes; read() takes the rest at the end", async () => {
  const input = new Input(null);
  const first = input.read(5);
  input.push(enc("he"));
  input.push(enc("llo wor"));
  expect(dec(await first)).toBe("hello");
  const rest = input.read();
  input.push(enc("ld"));
  input.finish();
  expect(dec(await rest)).toBe(" world");
  expect((await input.read()).length).toBe(0);
});

test("readline honours size; readlines honours hint", async () => {
  const input = new Input(null);
  input.push(enc("alpha\nbeta\ngamma\ndelta"));
  input.finish();
  expect(dec(await input.readline(3))).toBe("alp");
  expect(dec(await input.readline())).toBe("ha\n");
  expect((await input.readlines(3)).map(dec)).toEqual(["beta\n"]);
  expect((await input.readlines()).map(dec)).toEqual(["gamma\n", "delta"]);
});

test("a failed body rejects reads with its error once buffered data is gone", async () => {
  const input = new Input(null);
  input.push(enc("ok"));
  input.fail(new HTTPError(413, "request body too large"));
  expect(dec(await input.read(10))).toBe("ok");
  expect(input.read(1)).rejects.toBeInstanceOf(HTTPError);
  expect(input.read()).rejects.toBeInstanceOf(HTTPError);
});

test("the owner hears of the first read (100-continue) and of consumption (flow control)", async () => {
  const events: string[] = [];
  const input = new Input({
    inputWanted: () => events.push("wanted"),
    inputConsumed: (n) => events.push(`left ${n}`),
    inputStarved: () => events.push("starved"),
  });
  input.push(enc("abcdef"));
  await input.read(2);
  await input.read(2);
  expect(events).toEqual(["wanted", "left 4", "left 2"]);
  input.fail(new ConnectionClosedError());
});
