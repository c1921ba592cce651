import { describe, expect, test } from "bun:test";
import { ClientDisconnected, ConnectionClosedError, ContractError, HTTPError, Input } from "../src/index.ts";
import { exchange, RawClient, serve } from "./helpers.ts";

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

test("a failed body satisfies reads from what arrived, and rejects every read it cannot satisfy (never a short read)", async () => {
  const input = new Input(null);
  input.push(enc("ok-then"));
  input.fail(new HTTPError(413, "request body too large"));
  expect(dec(await input.read(3))).toBe("ok-");
  expect(input.read(10)).rejects.toBeInstanceOf(HTTPError);
  expect(input.readline()).rejects.toBeInstanceOf(HTTPError);
  expect(input.read()).rejects.toBeInstanceOf(HTTPError);
});

test("a body that ended whole stays readable when the connection fails afterwards", async () => {
  const input = new Input(null);
  input.push(enc("all of it"));
  input.finish();
  input.fail(new ConnectionClosedError());
  expect(dec(await input.read(100))).toBe("all of it");
  expect(dec(await input.read())).toBe("");
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

  test("a truncated body rejects read(), read(n) and readline() with ClientDisconnected, never a short read", async () => {
    const cut = (): Input => new Input(null, 10);
    const all = cut();
    const whole = all.read();
    all.push(enc("abc"));
    all.fail(new ClientDisconnected("gone", 3, 10));
    expect(whole).rejects.toBeInstanceOf(ClientDisconnected);

    const sized = cut();
    const part = sized.read(10);
    sized.push(enc("abc"));
    sized.fail(new ClientDisconnected("gone", 3, 10));
    expect(part).rejects.toBeInstanceOf(ClientDisconnected);

    const small = cut();
    const four = small.read(4);
    small.push(enc("abc"));
    small.fail(new ClientDisconnected("gone", 3, 10));
    expect(four).rejects.toBeInstanceOf(ClientDisconnected);

    const lines = cut();
    lines.push(enc("ab\ncd"));
    lines.fail(new ClientDisconnected("gone", 5, 10));
    expect(dec(await lines.readline())).toBe("ab\n");
    expect(lines.readline()).rejects.toBeInstanceOf(ClientDisconnected);
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

  test("a read while a whole-body read is pending is refused; the pending one gets every byte, and the read after it finds the end", async () => {
    const input = new Input(null, 6);
    const a = input.read(6);
    await expect(input.read(6)).rejects.toBeInstanceOf(ContractError);
    input.push(enc("abcdef"));
    input.finish();
    expect(dec(await a)).toBe("abcdef");
    expect((await input.read(6)).length).toBe(0);
  });
});

describe("memory held per body byte: small pieces, and small views of large reads", () => {
  test("1-byte chunks of one read (a chunked body of 1-byte chunks) are kept together, not as a view each: a reader gets them as one", async () => {
    const input = new Input(null);
    const read = new Uint8Array(64 * 1024).fill(120);
    // "1\r\nx\r\n": one data byte in every six of the read.
    for (let i = 0; i < 1000; i++) input.push(read.subarray(i * 6 + 3, i * 6 + 4));
    const got = await input.readSome(4096);
    expect(got.length).toBe(1000);
    expect(got.buffer).not.toBe(read.buffer);
  });

  test("a view that is a small part of its read is copied: 600 bytes do not hold the 512 KiB read they came in; a large view is still kept, not copied", async () => {
    const input = new Input(null);
    const read = new Uint8Array(512 * 1024);
    input.push(read.subarray(1000, 1600));
    const small = await input.readSome(1000);
    expect(small.length).toBe(600);
    expect(small.buffer.byteLength).toBeLessThan(64 * 1024);
    input.push(read.subarray(0, 300 * 1024));
    expect((await input.readSome(512 * 1024)).buffer).toBe(read.buffer);
  });

  test("pieces of every size, read as they come in reads of every size, arrive whole and in order", async () => {
    const input = new Input(null);
    const source = Uint8Array.from({ length: 200_000 }, (_, i) => (i * 7 + (i >> 8)) & 0xff);
    const read = new Uint8Array(source.length + 1024);
    read.set(source, 512);
    let seed = 12345;
    const next = (n: number): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const out: number[] = [];
    let pos = 0;
    while (pos < source.length) {
      const n = Math.min(source.length - pos, 1 + (next(4) === 0 ? next(3000) : next(40)));
      input.push(read.subarray(512 + pos, 512 + pos + n), next(2) === 0);
      pos += n;
      if (next(3) === 0) for (const b of await input.readSome(1 + next(700))) out.push(b);
    }
    input.finish();
    for (const b of await input.read()) out.push(b);
    expect(Uint8Array.from(out)).toEqual(source);
  });
});

describe("looking for a line's end (readline, line iteration) over a body that has none yet", () => {
  /** Run `f`, counting the bytes every Uint8Array/Buffer indexOf looks at. */
  async function bytesSearched(f: () => Promise<void>): Promise<number> {
    const u8 = Uint8Array.prototype.indexOf;
    const buf = Buffer.prototype.indexOf;
    let searched = 0;
    const count = (original: typeof u8) =>
      function (this: Uint8Array, value: number, from = 0): number {
        const at = original.call(this, value, from);
        searched += (at < 0 ? this.length : at + 1) - from;
        return at;
      };
    Uint8Array.prototype.indexOf = count(u8);
    Buffer.prototype.indexOf = count(u8) as unknown as typeof buf;
    try {
      await f();
    } finally {
      Uint8Array.prototype.indexOf = u8;
      Buffer.prototype.indexOf = buf;
    }
    return searched;
  }
  const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

  test("a 2 MiB line arriving 1 KiB at a time, the reader waking for each: each byte is searched about once (it was searched once per piece after it: 2 GiB)", async () => {
    const input = new Input(null);
    let line: Uint8Array = new Uint8Array(0);
    const searched = await bytesSearched(async () => {
      const reading = input.readline();
      for (let i = 0; i < 2048; i++) {
        input.push(new Uint8Array(1024).fill(120));
        await turn();
      }
      input.push(enc("\nnext"));
      input.finish();
      line = await reading;
    });
    expect(line.length).toBe(2048 * 1024 + 1);
    expect(searched).toBeLessThan(3 * 2048 * 1024);
    expect(dec(await input.read())).toBe("next");
  });

  test("pieces of 1 byte gathered into one growing buffer: its bytes are not searched again as it grows", async () => {
    const input = new Input(null);
    const read = new Uint8Array(20_000).fill(120);
    let line: Uint8Array = new Uint8Array(0);
    const searched = await bytesSearched(async () => {
      const reading = input.readline();
      for (let i = 0; i < 5000; i++) {
        input.push(read.subarray(i * 4, i * 4 + 1));
        await turn();
      }
      input.push(enc("\n"));
      line = await reading;
    });
    expect(line.length).toBe(5001);
    expect(searched).toBeLessThan(3 * 5001);
  });

  test("readline(10) again and again over 1 MiB without an LF: each call searches what it takes, not the whole buffer", async () => {
    const input = new Input(null);
    for (let i = 0; i < 16; i++) input.push(new Uint8Array(64 * 1024).fill(120));
    input.push(enc("\ntail\n"));
    input.finish();
    let got = 0;
    const searched = await bytesSearched(async () => {
      for (let i = 0; i < 1000; i++) got += (await input.readline(10)).length;
    });
    expect(got).toBe(10_000);
    expect(searched).toBeLessThan(3 * 1024 * 1024);
    expect(dec(await input.readline(2 * 1024 * 1024)).length).toBe(1024 * 1024 - 10_000 + 1);
    expect(dec(await input.readline())).toBe("tail\n");
  });

  test("lines of every length in pieces of every size, read with and without a size: the same lines as one pass over the bytes", async () => {
    let seed = 99;
    const next = (n: number): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const text = Array.from({ length: 400 }, (_, i) => `${"ab".repeat(next(i % 7 === 0 ? 3000 : 30))}${i}\n`).join("");
    const bytes = enc(text);
    const input = new Input(null);
    let pos = 0;
    const got: string[] = [];
    const reading = (async () => {
      for (;;) {
        const line = next(4) === 0 ? await input.readline(1 + next(50)) : await input.readline();
        if (line.length === 0) return;
        got.push(dec(line));
      }
    })();
    while (pos < bytes.length) {
      const n = Math.min(bytes.length - pos, 1 + (next(3) === 0 ? next(2000) : next(20)));
      input.push(bytes.subarray(pos, pos + n), next(2) === 0);
      pos += n;
      if (next(2) === 0) await turn();
    }
    input.finish();
    await reading;
    expect(got.join("")).toBe(text);
  });
});

describe("a size of null, as an app ported from Python passes None", () => {
  test("read(null) and readline(null) read as with no size, never an empty read that looks like the end of the body", async () => {
    const r = serve(async (env, sr) => {
      const input = env["wsgi.input"];
      const line = await input.readline(null);
      const rest = await input.read(null);
      sr("200 OK", []);
      return [line, "|", rest];
    });
    const res = await exchange(
      r.port,
      "POST / HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Length: 11\r\n\r\nhello\nworld",
    );
    r.server.close();
    expect(res.body).toBe("hello\n|world");
  });

  test("a size that is no number (NaN, a string) rejects with a ContractError, not a read of another length", async () => {
    const input = new Input(null);
    input.push(enc("hello"));
    input.finish();
    await expect(input.read(Number.NaN)).rejects.toBeInstanceOf(ContractError);
    await expect(input.readline("3" as unknown as number)).rejects.toBeInstanceOf(ContractError);
    expect(dec(await input.read())).toBe("hello");
  });
});

describe("two reads of the body at once", () => {
  test("Promise.all([read(3), read()]): the second is refused with a ContractError, the first gets its 3 bytes, and the rest is still there (before, the first came back empty, a short read that looks like the end)", async () => {
    const r = serve(async (env, sr) => {
      const input = env["wsgi.input"];
      const [first, second] = await Promise.allSettled([input.read(3), input.read()]);
      const rest = await input.read();
      sr("200 OK", []);
      const refused = second.status === "rejected" && second.reason instanceof ContractError ? "refused" : "taken";
      return [first.status === "fulfilled" ? first.value : "failed", "|", refused, "|", rest];
    });
    const c = await RawClient.connect(r.port);
    // The head first, the body after: both reads wait for it.
    c.send("POST / HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Length: 11\r\n\r\n");
    await Bun.sleep(50);
    c.send("hello world");
    const res = await c.response();
    r.server.close();
    expect(res.body).toBe("hel|refused|lo world");
  });

  test("a readline pending refuses a read, and sequential reads of every kind still take the bytes in order", async () => {
    const input = new Input(null);
    const line = input.readline();
    await expect(input.read(2)).rejects.toBeInstanceOf(ContractError);
    await expect(input.readSome(2)).rejects.toBeInstanceOf(ContractError);
    await expect(input.readlines()).rejects.toBeInstanceOf(ContractError);
    input.push(enc("ab\ncd\nef"));
    input.finish();
    expect(dec(await line)).toBe("ab\n");
    expect(dec(await input.read(1))).toBe("c");
    expect(dec(await input.readSome(10))).toBe("d\nef");
  });
});
