/** @module test/file — environ["wsgi.file_wrapper"] (PEP 3333): a file sent sized from its size in large reads, HEAD without reading it, the app's Content-Length kept, a descriptor closed on every path, a missing file a 500. */

import { afterAll, describe, expect, test } from "bun:test";
import { closeSync, fstatSync, mkdtempSync, openSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Application, FileWrapper } from "../src/index.ts";
import { RawClient, serverPool, waitFor } from "./helpers.ts";

const start = serverPool();
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

  test("it is an async iterable of blockSize reads, for middleware that iterates results", async () => {
    const sizes: number[] = [];
    for await (const block of new FileWrapper(path, 400_000)) sizes.push(block.length);
    expect(sizes).toEqual([400_000, 400_000, 400_000, 300_000]);
    expect(() => new FileWrapper(path, 0)).toThrow("blockSize must be a positive integer");
    const fd = openSync(dir, "r");
    try {
      expect(() => new FileWrapper(fd)).toThrow("is not a regular file");
    } finally {
      closeSync(fd);
    }
  });
});
