import { describe, expect, test } from "bun:test";
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

describe("a body of known length read to the end", () => {
  test("arrives in one buffer of its length, whatever was buffered before the read", async () => {
    const input = new Input(null, 11);
    input.push(enc("hel"));
    const all = input.read();
    input.push(enc("lo "));
    input.push(enc("world"));
    input.finish();
    const body = await all;
    expect(dec(body)).toBe("hello world");
    expect(body.length).toBe(11);
    expect(body.byteLength).toBe(body.buffer.byteLength);
    expect((await input.read()).length).toBe(0);
  });

  test("keeps a copy of transient bytes, never a view of memory that is reused", async () => {
    const input = new Input(null, 8);
    const scratch = enc("abcd");
    input.push(scratch, true);
    scratch.fill(120);
    const all = input.read();
    const next = enc("efgh");
    input.push(next, true);
    next.fill(121);
    input.finish();
    expect(dec(await all)).toBe("abcdefgh");
  });

  test("read(n) with n at least the rest is the same read; a shorter one leaves the rest", async () => {
    const input = new Input(null, 6);
    const first = input.read(2);
    input.push(enc("abc"));
    expect(dec(await first)).toBe("ab");
    const rest = input.read(100);
    input.push(enc("def"));
    input.finish();
    expect(dec(await rest)).toBe("cdef");
  });

  test("read() fails with the body's error even after some bytes; read(n) returns them first", async () => {
    const all = new Input(null, 10);
    const whole = all.read();
    all.push(enc("abc"));
    all.fail(new ConnectionClosedError("peer closed before the request body was complete"));
    expect(whole).rejects.toBeInstanceOf(ConnectionClosedError);

    const sized = new Input(null, 10);
    const part = sized.read(10);
    sized.push(enc("abc"));
    sized.fail(new ConnectionClosedError());
    expect(dec(await part)).toBe("abc");
    expect(sized.read(1)).rejects.toBeInstanceOf(ConnectionClosedError);
  });

  test("push says whether every byte went into the read's buffer, so no view of it is kept", async () => {
    const input = new Input(null, 8);
    expect(input.push(enc("ab"))).toBe(false);
    const all = input.read();
    expect(input.push(enc("cde"))).toBe(true);
    expect(input.push(enc("fgh"))).toBe(true);
    input.finish();
    expect(dec(await all)).toBe("abcdefgh");
    const unsized = new Input(null);
    const some = unsized.read();
    expect(unsized.push(enc("x"))).toBe(false);
    unsized.finish();
    expect(dec(await some)).toBe("x");
  });

  test("bytes beyond a pending read stay buffered for the next one, in order", async () => {
    const input = new Input(null, 6);
    const a = input.read(6);
    const b = input.read(6);
    input.push(enc("abcdef"));
    input.finish();
    expect(dec(await a)).toBe("abcdef");
    expect((await b).length).toBe(0);
  });
});
