/** @module test/file — environ["wsgi.file_wrapper"] (PEP 3333) and a fetch app's Blob: a file sent sized from its size in large reads, byte for byte from 0 B to 100 MiB, HEAD without reading it, the app's Content-Length kept, a descriptor closed on every path and sent from where it stands, validators only for a whole file, a missing file a 500, a file that shrinks while it is sent cut short (never a hang), one removed or replaced sent whole as opened. */

import { afterAll, describe, expect, test } from "bun:test";
import {
  closeSync,
  fstatSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readSync,
  renameSync,
  rmSync,
  statSync,
  truncateSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileRef } from "../src/engine/blob.ts";
import { sendfileStats } from "../src/engine/sendfile.ts";
import { type Application, type FileLike, FileWrapper } from "../src/index.ts";
import { RawClient, type Running, serveFetch, serverPool, waitFor, writeDeterministicFile } from "./helpers.ts";

const start = serverPool();
/** test/sendfile.test.ts runs this file again with BUNWSGI_SENDFILE=off: every test holds on both paths. */
const bySendfile = process.env.BUNWSGI_SENDFILE !== "off";
const dir = mkdtempSync(join(tmpdir(), "bunwsgi-file-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const SIZE = 1_500_000;
const path = join(dir, "data.bin");
const content = Buffer.alloc(SIZE);
for (let i = 0; i < SIZE; i++) content[i] = (i * 7) & 0xff;
writeFileSync(path, content);

/** Serves `make(environ)`'s file, with `headers`. */
const fileApp =
  (make: (env: Parameters<Application>[0]) => FileWrapper, headers: Array<[string, string]> = []): Application =>
  (env, sr) => {
    const wrapper = make(env);
    sr("200 OK", [["Content-Type", "application/octet-stream"], ...headers]);
    return wrapper;
  };

const isClosed = (fd: number): boolean => {
  try {
    fstatSync(fd);
    return false;
  } catch {
    return true;
  }
};

describe("wsgi.file_wrapper", () => {
  test("a path is sent whole, with Content-Length from its size", async () => {
    const r = start(fileApp((env) => env["wsgi.file_wrapper"](path)));
    const res = await fetch(`http://127.0.0.1:${r.port}/`);
    expect(res.headers.get("content-length")).toBe(String(SIZE));
    expect(Buffer.from(await res.arrayBuffer()).equals(content)).toBe(true);
    await waitFor(() => r.access.length === 1);
    expect(r.access[0]).toContain(`" 200 `);
  });

  test("on a plain socket the body goes by sendfile, or by reads with BUNWSGI_SENDFILE=off", async () => {
    const r = start(fileApp((env) => env["wsgi.file_wrapper"](path)));
    const before = { ...sendfileStats };
    const res = await fetch(`http://127.0.0.1:${r.port}/`);
    expect(Buffer.from(await res.arrayBuffer()).equals(content)).toBe(true);
    expect(sendfileStats.direct - before.direct + (sendfileStats.read - before.read)).toBe(bySendfile ? SIZE : 0);
  });

  test("HEAD gets the Content-Length and the file is never read", async () => {
    let reads = 0;
    class Counting extends Blob {
      override slice(...args: Parameters<Blob["slice"]>): Blob {
        reads++;
        return super.slice(...args);
      }
      override bytes(): Promise<Uint8Array<ArrayBuffer>> {
        reads++;
        return super.bytes();
      }
    }
    const blob = new Counting([content]);
    const r = start(fileApp((env) => env["wsgi.file_wrapper"](blob)));
    const c = await RawClient.connect(r.port);
    c.send("HEAD / HTTP/1.1\r\nHost: x\r\n\r\n");
    const head = await c.response({ head: true });
    expect(head.header("content-length")).toBe(String(SIZE));
    expect(reads).toBe(0);
    c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    const get = await c.response();
    expect(get.body.length).toBe(SIZE);
    expect(reads).toBeGreaterThan(0);
    c.close();
  });

  test("an open descriptor is sent and closed after the response", async () => {
    const fds: number[] = [];
    const r = start(
      fileApp(() => {
        const fd = openSync(path, "r");
        fds.push(fd);
        return new FileWrapper(fd, 64 * 1024);
      }),
    );
    const res = await fetch(`http://127.0.0.1:${r.port}/`);
    expect(Buffer.from(await res.arrayBuffer()).equals(content)).toBe(true);
    await waitFor(() => fds.length === 1 && isClosed(fds[0] as number));
  });

  test("a descriptor is closed when the client goes away mid-file", async () => {
    const bigPath = join(dir, "big.bin");
    writeFileSync(bigPath, Buffer.alloc(32 * 1024 * 1024, 1));
    const fds: number[] = [];
    const r = start(
      fileApp(() => {
        const fd = openSync(bigPath, "r");
        fds.push(fd);
        return new FileWrapper(fd);
      }),
    );
    const c = await RawClient.connect(r.port);
    c.pauseReading();
    c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    await waitFor(() => fds.length === 1);
    await Bun.sleep(100);
    c.abort();
    await waitFor(() => isClosed(fds[0] as number));
  });

  test("the app's own Content-Length stands; a missing file is a 500 naming it", async () => {
    const r = start((env, sr) => {
      if (env.PATH_INFO === "/missing") {
        const w = env["wsgi.file_wrapper"](join(dir, "nope.bin"));
        sr("200 OK", []);
        return w;
      }
      const w = env["wsgi.file_wrapper"](path);
      sr("200 OK", [["Content-Length", "10"]]);
      return w;
    });
    const c = await RawClient.connect(r.port);
    c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    const first = await c.response();
    expect(first.header("content-length")).toBe("10");
    expect(Buffer.from(first.body, "latin1").equals(content.subarray(0, 10))).toBe(true);
    c.close();
    const missing = await fetch(`http://127.0.0.1:${r.port}/missing`);
    expect(missing.status).toBe(500);
    expect(r.errors.join("")).toContain("nope.bin");
  });

  test("it is an async iterable of blockSize reads, for middleware that iterates results, closed when that ends", async () => {
    const sizes: number[] = [];
    for await (const block of new FileWrapper(path, 400_000)) sizes.push(block.length);
    expect(sizes).toEqual([400_000, 400_000, 400_000, 300_000]);
    const fd = openSync(path, "r");
    for await (const block of new FileWrapper(fd, 400_000)) {
      expect(block.length).toBe(400_000);
      break;
    }
    expect(isClosed(fd)).toBe(true);
    expect(() => new FileWrapper(path, 0)).toThrow("blockSize must be a positive integer");
    const dirFd = openSync(dir, "r");
    try {
      expect(() => new FileWrapper(dirFd)).toThrow("is not a regular file");
    } finally {
      closeSync(dirFd);
    }
  });
});

describe("what a file body is: a descriptor from where it stands, validators only for a whole file, a missing Bun.file a 500", () => {
  /** Where the app's descriptors stand before the response: 10 bytes read, as an app that looked at a header would. */
  const AT = 10;
  const missing = join(dir, "missing.bin");
  /** Descriptors the apps opened and left to this test (Bun.file(fd) does not close its descriptor). */
  const kept: number[] = [];
  afterAll(() => {
    for (const fd of kept) closeSync(fd);
  });
  const positioned = (keep: boolean): number => {
    const fd = openSync(path, "r");
    readSync(fd, Buffer.alloc(AT));
    if (keep) kept.push(fd);
    return fd;
  };
  /** What each path serves, shared by both kinds; /fd is the kind's own descriptor form. */
  const bodies: Record<string, () => Blob> = {
    "/bunfd": () => Bun.file(positioned(true)),
    "/blob": () => new Blob([content]),
    "/file": () => new File([content], "data.bin"),
    "/slice": () => Bun.file(path).slice(10, 20),
    // Sliced before Bun has stat'ed the file: Bun sizes it as asked, past the file's end.
    "/past": () => Bun.file(path).slice(100, 100 + SIZE),
    "/whole": () => Bun.file(path),
    "/missing": () => Bun.file(missing),
  };
  const kinds: Array<[string, () => Running<Running["server"] | ReturnType<typeof serveFetch>["server"]>]> = [
    [
      "wsgi.file_wrapper",
      () =>
        start((env, sr) => {
          const file: FileLike = env.PATH_INFO === "/fd" ? positioned(false) : (bodies[env.PATH_INFO] as () => Blob)();
          const w = env["wsgi.file_wrapper"](file);
          sr("200 OK", [["Content-Type", "application/octet-stream"]]);
          return w;
        }),
    ],
    [
      "a fetch app's Response",
      () => {
        const r = serveFetch((req) => {
          const p = new URL(req.url).pathname;
          return new Response((bodies[p === "/fd" ? "/bunfd" : p] as () => Blob)());
        });
        afterAll(() => r.server.close());
        return r;
      },
    ],
  ];

  test("Bun's inspection names a file Blob's descriptor and a slice's offset (engine/blob reads them there)", () => {
    const fd = openSync(path, "r");
    try {
      expect(fileRef(Bun.file(path))).toEqual({ path, fd: -1, offset: 0 });
      expect(fileRef(Bun.file(path).slice(3, 7).slice(2, 3))).toEqual({ path, fd: -1, offset: 5 });
      expect(fileRef(Bun.file(fd))).toEqual({ path: null, fd, offset: 0 });
      expect(fileRef(Bun.file(fd).slice(4, 9))).toEqual({ path: null, fd, offset: 4 });
      expect(fileRef(Bun.file(join(dir, 'odd ("fd: 3")\n  offset: 7\n\n}')))?.offset).toBe(0);
      expect(fileRef(new Blob([content]))).toBeNull();
      expect(fileRef(new Blob([content]).slice(1, 5))).toBeNull();
      expect(fileRef(new File([content], path))).toBeNull();
    } finally {
      closeSync(fd);
    }
  });

  for (const [kind, serve] of kinds) {
    const r = serve();
    const get = async (target: string, fields = "") => {
      const c = await RawClient.connect(r.port);
      c.send(`GET ${target} HTTP/1.1\r\nHost: x\r\n${fields}\r\n`);
      const res = await c.response();
      c.close();
      return { ...res, bytes: Buffer.from(res.body, "latin1") };
    };

    for (const target of kind === "wsgi.file_wrapper" ? ["/fd", "/bunfd"] : ["/fd"]) {
      test(`${kind}, a descriptor 10 bytes in (${target}): its bytes from there to the end, ranges within them, no validators, on either send path`, async () => {
        const before = { ...sendfileStats };
        const all = await get(target);
        expect(all.status).toBe(200);
        expect(all.header("content-length")).toBe(String(SIZE - AT));
        expect(all.bytes.equals(content.subarray(AT))).toBe(true);
        expect(sendfileStats.direct - before.direct + (sendfileStats.read - before.read)).toBe(bySendfile ? SIZE - AT : 0);
        expect(all.header("etag")).toBeUndefined();
        expect(all.header("last-modified")).toBeUndefined();
        // Across the read path's 512 KiB block boundary.
        const part = await get(target, "Range: bytes=524280-524299\r\n");
        expect(part.status).toBe(206);
        expect(part.header("content-range")).toBe(`bytes 524280-524299/${SIZE - AT}`);
        expect(part.bytes.equals(content.subarray(AT + 524280, AT + 524300))).toBe(true);
      });
    }

    test(`${kind}: a Bun.file(fd) is read at offsets, and its descriptor stays where the app left it`, async () => {
      const n = kept.length;
      expect((await get(kind === "wsgi.file_wrapper" ? "/bunfd" : "/fd")).bytes.equals(content.subarray(AT))).toBe(true);
      const next = Buffer.alloc(5);
      readSync(kept[n] as number, next);
      expect(next.equals(content.subarray(AT, AT + 5))).toBe(true);
    });

    test(`${kind}: a Blob in memory or a File has no ETag or Last-Modified, so If-Range never holds; its ranges are served`, async () => {
      for (const target of ["/blob", "/file"]) {
        const res = await get(target);
        expect(res.bytes.equals(content)).toBe(true);
        expect([target, res.header("etag"), res.header("last-modified")]).toEqual([target, undefined, undefined]);
        expect(res.header("accept-ranges")).toBe("bytes");
        const part = await get(target, "Range: bytes=5-9\r\n");
        expect(part.status).toBe(206);
        expect(part.bytes.equals(content.subarray(5, 10))).toBe(true);
        const guarded = await get(target, 'Range: bytes=5-9\r\nIf-Range: "4189374bc6a-10001"\r\n');
        expect(guarded.status).toBe(200);
        expect(guarded.bytes.equals(content)).toBe(true);
      }
    });

    test(`${kind}: a slice of a file is its bytes at its offset, without validators; the whole file has them`, async () => {
      const slice = await get("/slice");
      expect(slice.header("content-length")).toBe("10");
      expect(slice.bytes.equals(content.subarray(10, 20))).toBe(true);
      expect(slice.header("etag")).toBeUndefined();
      expect(slice.header("last-modified")).toBeUndefined();
      const past = await get("/past");
      expect(past.header("content-length")).toBe(String(SIZE - 100));
      expect(past.bytes.equals(content.subarray(100))).toBe(true);
      expect(past.header("etag")).toBeUndefined();
      const whole = await get("/whole");
      expect(whole.bytes.equals(content)).toBe(true);
      expect(whole.header("etag")).toBeDefined();
      expect(whole.header("last-modified")).toBe(new Date(Math.floor(statSync(path).mtimeMs / 1000) * 1000).toUTCString());
    });

    test(`${kind}: Bun.file of a missing file is a 500 naming it, not an empty 200`, async () => {
      const res = await get("/missing");
      expect(res.status).toBe(500);
      expect(res.header("etag")).toBeUndefined();
      await waitFor(() => r.errors.join("").includes(missing));
    });
  }
});

const KiB = 1024;
const MiB = 1024 * KiB;

describe("wsgi.file_wrapper: every size, byte for byte", () => {
  const SIZES = [0, 1, 64 * KiB - 1, 64 * KiB, 64 * KiB + 1, 100 * MiB];
  const files = new Map(SIZES.map((size) => [size, { path: join(dir, `size-${size}.bin`), hash: "" }]));
  const r = start((env, sr) => {
    const f = files.get(Number(env.PATH_INFO.slice(1)));
    sr("200 OK", [["Content-Type", "application/octet-stream"]]);
    return env["wsgi.file_wrapper"]((f as { path: string }).path);
  });

  test.each(SIZES)(
    "%d bytes: Content-Length is the size, the body hashes to the file's, HEAD says the size",
    async (size) => {
      const file = files.get(size) as { path: string; hash: string };
      file.hash = writeDeterministicFile(file.path, size, 2463534242);
      const res = await fetch(`http://127.0.0.1:${r.port}/${size}`);
      expect(res.status).toBe(200);
      expect(res.headers.get("content-length")).toBe(String(size));
      // Hashed as it streams in: a 100 MiB body is never held whole on this side.
      const hash = new Bun.CryptoHasher("sha256");
      let received = 0;
      for await (const chunk of res.body as ReadableStream<Uint8Array>) {
        hash.update(chunk);
        received += chunk.length;
      }
      expect(received).toBe(size);
      expect(hash.digest("hex")).toBe(file.hash);
      const head = await fetch(`http://127.0.0.1:${r.port}/${size}`, { method: "HEAD" });
      expect(head.headers.get("content-length")).toBe(String(size));
      rmSync(file.path);
    },
    30_000,
  );
});

/** Open descriptors of this process (the servers run in it): sockets and files alike. */
const openFds = (): number => readdirSync("/proc/self/fd").length;

describe("a file that changes while it is sent", () => {
  const BIG = 32 * MiB;
  const CUT = MiB;
  const original = Buffer.alloc(BIG);
  for (let i = 0; i < BIG; i += 4) original.writeUInt32LE((i * 2654435761) >>> 0, i);
  const kinds: Array<[string, (file: string) => Running<Running["server"] | ReturnType<typeof serveFetch>["server"]>]> = [
    ["wsgi.file_wrapper(path)", (file) => start(fileApp((env) => env["wsgi.file_wrapper"](file)))],
    ["wsgi.file_wrapper(descriptor)", (file) => start(fileApp(() => new FileWrapper(openSync(file, "r"))))],
    ["a fetch app's Bun.file(path)", (file) => serveFetch(() => new Response(Bun.file(file)))],
  ];

  /**
   * Start sending `file` to a client that does not read, so that the server has read part of it and waits
   * for the socket; `change` it; read again. What the client got, and whether the server closed within 3 s.
   */
  async function changeWhileSending(
    serve: (file: string) => Running<Running["server"] | ReturnType<typeof serveFetch>["server"]>,
    file: string,
    change: () => void,
  ): Promise<{ length: number; body: Buffer; closed: boolean; errors: string }> {
    writeFileSync(file, original);
    const r = serve(file);
    const c = await RawClient.connect(r.port);
    try {
      c.pauseReading();
      c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
      await Bun.sleep(200);
      change();
      c.resumeReading();
      let closed = true;
      await c.waitClosed(3000).catch(() => {
        closed = false;
      });
      const raw = c.take();
      const headEnd = raw.indexOf("\r\n\r\n");
      const length = Number(/content-length: (\d+)/i.exec(raw.slice(0, headEnd))?.[1]);
      return { length, body: Buffer.from(raw.slice(headEnd + 4), "latin1"), closed, errors: r.errors.join("") };
    } finally {
      c.close();
      r.server.close();
    }
  }

  for (const [kind, serve] of kinds) {
    test(`${kind} truncated mid-send: the connection is cut short of its Content-Length, and what came is the file's`, async () => {
      const file = join(dir, "shrinks.bin");
      const got = await changeWhileSending(serve, file, () => truncateSync(file, CUT));
      expect(got.length).toBe(BIG);
      expect(got.closed).toBe(true);
      expect(got.body.length).toBeLessThan(BIG);
      // sendfile(2) queues the file's pages, not copies: what the kernel held past the new end
      // when the file shrank goes out as the file system left it (zeros on ext4; Bun.serve's
      // sendfile does the same). The file's bytes up to its new size are exact on both paths.
      const exact = bySendfile ? Math.min(got.body.length, CUT) : got.body.length;
      expect(got.body.subarray(0, exact).equals(original.subarray(0, exact))).toBe(true);
      expect(got.errors).toContain(`of its Content-Length of ${BIG}; connection closed`);
    });
  }

  for (const [kind, serve] of kinds) {
    test(`${kind} removed mid-send: the file as opened is sent whole, and the connection stays open`, async () => {
      const file = join(dir, "removed.bin");
      const got = await changeWhileSending(serve, file, () => unlinkSync(file));
      expect(got.length).toBe(BIG);
      expect(got.body.equals(original)).toBe(true);
      expect(got.closed).toBe(false);
    });

    test(`${kind} replaced by a rename mid-send (a deploy): the old file's bytes, whole, never spliced with the new one's`, async () => {
      const file = join(dir, "replaced.bin");
      const next = join(dir, "replaced.next");
      const got = await changeWhileSending(serve, file, () => {
        writeFileSync(next, Buffer.alloc(BIG, 0x5a));
        renameSync(next, file);
      });
      expect(got.length).toBe(BIG);
      expect(got.body.equals(original)).toBe(true);
      expect(got.closed).toBe(false);
    });
  }

  test("a client gone mid-file (path or Bun.file): the server's socket and every file it opened are closed", async () => {
    const file = join(dir, "gone.bin");
    writeFileSync(file, original);
    for (const [, serve] of kinds) {
      const r = serve(file);
      const before = openFds();
      const c = await RawClient.connect(r.port);
      c.pauseReading();
      c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
      await waitFor(() => openFds() > before + 1);
      await Bun.sleep(100);
      c.abort();
      await waitFor(() => openFds() <= before);
      r.server.close();
    }
  });
});
