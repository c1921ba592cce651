/** @module test/sendfile — file bodies by sendfile(2) on plain sockets (engine/sendfile): byte-exact at 100 MiB to a client that reads slowly then fast with few bytes read into memory, descriptors closed when the client goes, the connection kept for the next request, HEAD and ranges, TLS by the read path, and the file tests passing again with BUNWSGI_SENDFILE=off. */

import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, openSync, readdirSync, readSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sendfileStats } from "../src/engine/sendfile.ts";
import { type Application, FileWrapper, WSGIHandler } from "../src/index.ts";
import {
  makeCertificates,
  pacedReader,
  RawClient,
  serve,
  serveFetch,
  serverPool,
  waitFor,
  writeDeterministicFile,
} from "./helpers.ts";

const start = serverPool();
const dir = mkdtempSync(join(tmpdir(), "bunwsgi-sendfile-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const MiB = 1024 * 1024;

const fileApp =
  (make: (env: Parameters<Application>[0]) => FileWrapper): Application =>
  (env, sr) => {
    const wrapper = make(env);
    sr("200 OK", [["Content-Type", "application/octet-stream"]]);
    return wrapper;
  };

const openFds = (): number => readdirSync("/proc/self/fd").length;

const SMALL = 1_500_000;
const small = join(dir, "small.bin");
const smallHash = writeDeterministicFile(small, SMALL, 88172645);
const smallBytes = Buffer.from(await Bun.file(small).bytes());

describe("sendfile on a plain socket", () => {
  test("100 MiB to a client that reads slowly then fast: byte-exact, and only a byte per full socket read into memory", async () => {
    const big = join(dir, "big.bin");
    const hash = writeDeterministicFile(big, 100 * MiB, 88172645);
    const r = start(fileApp((env) => env["wsgi.file_wrapper"](big)));
    const before = { ...sendfileStats };
    const cpu = process.cpuUsage();
    const hasher = new Bun.CryptoHasher("sha256");
    let head = "";
    let body = 0;
    let done: () => void = () => {};
    const finished = new Promise<void>((resolve) => {
      done = resolve;
    });
    const socket = await Bun.connect({
      hostname: "127.0.0.1",
      port: r.port,
      socket: {
        data(_s, d) {
          let bytes = d;
          if (!head.endsWith("\r\n\r\n")) {
            const end = d.indexOf("\r\n\r\n");
            head += d.subarray(0, end < 0 ? d.length : end + 4).toString("latin1");
            if (end < 0) return;
            bytes = d.subarray(end + 4);
          }
          hasher.update(bytes);
          body += bytes.length;
          if (body >= 100 * MiB) done();
        },
        close: () => done(),
      },
    });
    socket.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    // Slowly: read for a moment every 50 ms, ten times, then as fast as the loop goes.
    for (let i = 0; i < 10; i++) {
      socket.pause();
      await Bun.sleep(50);
      socket.resume();
      await Bun.sleep(1);
    }
    await finished;
    socket.end();
    const used = process.cpuUsage(cpu);
    expect(head).toContain(`Content-Length: ${100 * MiB}`);
    expect(body).toBe(100 * MiB);
    expect(hasher.digest("hex")).toBe(hash);
    const direct = sendfileStats.direct - before.direct;
    const read = sendfileStats.read - before.read;
    console.log(
      `100 MiB: ${(direct / MiB).toFixed(1)} MiB by sendfile, ${(read / MiB).toFixed(2)} MiB read into buffers; process CPU (client and server) ${((used.user + used.system) / 1000).toFixed(0)} ms`,
    );
    expect(direct + read).toBe(100 * MiB);
    // One byte through Bun each time the socket is full (to get its drain), not a block.
    expect(read).toBeLessThan(64 * 1024);
  }, 60_000);

  test("a client gone mid-sendfile: the app's descriptor and every file the server opened are closed", async () => {
    const big = join(dir, "gone.bin");
    writeDeterministicFile(big, 32 * MiB, 88172645);
    const fds: number[] = [];
    for (const make of [
      (env: Parameters<Application>[0]) => env["wsgi.file_wrapper"](big),
      () => {
        const fd = openSync(big, "r");
        fds.push(fd);
        return new FileWrapper(fd);
      },
    ]) {
      const r = start(fileApp(make));
      const before = openFds();
      const sent = sendfileStats.direct;
      const c = await RawClient.connect(r.port);
      c.pauseReading();
      c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
      await waitFor(() => sendfileStats.direct > sent);
      await Bun.sleep(100);
      c.abort();
      await waitFor(() => openFds() <= before);
    }
    expect(fds.length).toBe(1);
  });

  test("the connection stays open for the next request, answered after the file", async () => {
    const r = start((env, sr) => {
      if (env.PATH_INFO === "/file") return fileApp((e) => e["wsgi.file_wrapper"](small))(env, sr);
      sr("200 OK", [["Content-Type", "text/plain"]]);
      return ["next"];
    });
    const sent = sendfileStats.direct;
    const c = await RawClient.connect(r.port);
    c.send("GET /file HTTP/1.1\r\nHost: x\r\n\r\n");
    const first = await c.response();
    expect(Buffer.from(first.body, "latin1").equals(smallBytes)).toBe(true);
    expect(sendfileStats.direct).toBeGreaterThan(sent);
    c.send("GET /other HTTP/1.1\r\nHost: x\r\n\r\nGET /file HTTP/1.1\r\nHost: x\r\nRange: bytes=10-19\r\n\r\n");
    expect((await c.response()).body).toBe("next");
    const part = await c.response();
    expect(part.status).toBe(206);
    expect(Buffer.from(part.body, "latin1").equals(smallBytes.subarray(10, 20))).toBe(true);
    c.close();
  });

  test("HEAD sends the head alone, and a range of a fetch app's Bun.file goes by sendfile", async () => {
    const r = serveFetch(() => new Response(Bun.file(small)));
    try {
      const c = await RawClient.connect(r.port);
      c.send("HEAD / HTTP/1.1\r\nHost: x\r\n\r\n");
      const head = await c.response({ head: true });
      expect(head.header("content-length")).toBe(String(SMALL));
      const sent = sendfileStats.direct;
      c.send("GET / HTTP/1.1\r\nHost: x\r\nRange: bytes=1000-\r\n\r\n");
      const part = await c.response();
      expect(part.status).toBe(206);
      expect(Buffer.from(part.body, "latin1").equals(smallBytes.subarray(1000))).toBe(true);
      expect(sendfileStats.direct - sent).toBe(SMALL - 1000);
      c.close();
    } finally {
      r.server.close();
    }
  });

  test("a finalizeHeaders hook that throws before sendfile: a 500, and the app's descriptor closed", async () => {
    class Failing extends WSGIHandler {
      override finalizeHeaders(): void {
        throw new Error("hook failed");
      }
    }
    const fds: number[] = [];
    const r = start(
      fileApp(() => {
        const fd = openSync(small, "r");
        fds.push(fd);
        return new FileWrapper(fd);
      }),
      { handlerClass: Failing },
    );
    const res = await fetch(`http://127.0.0.1:${r.port}/`);
    expect(res.status).toBe(500);
    await waitFor(() => {
      try {
        readSync(fds[0] as number, Buffer.alloc(1));
        return false;
      } catch {
        return true;
      }
    });
    expect(r.errors.join("")).toContain("hook failed");
  });

  test("a unix socket (small buffers: full within the first read callback) gets the bytes in order, mostly by sendfile", async () => {
    const sock = join(dir, "s.sock");
    const r = serve(
      fileApp((env) => env["wsgi.file_wrapper"](small)),
      {},
      `unix:${sock}`,
    );
    const before = { ...sendfileStats };
    const curl = Bun.spawn(["curl", "-sS", "--unix-socket", sock, "http://x/"], { stdout: "pipe" });
    const got = Buffer.from(await new Response(curl.stdout).arrayBuffer());
    expect(got.equals(smallBytes)).toBe(true);
    const direct = sendfileStats.direct - before.direct;
    expect(direct + sendfileStats.read - before.read).toBe(SMALL);
    expect(direct).toBeGreaterThan(SMALL / 2);
    r.server.close();
  });

  test("over TLS a file goes by the read path, byte-exact", async () => {
    const certs = mkdtempSync(join(tmpdir(), "bunwsgi-sendfile-tls-"));
    try {
      await makeCertificates(certs);
      const r = start(
        fileApp((env) => env["wsgi.file_wrapper"](small)),
        {
          tls: { cert: Bun.file(join(certs, "srv.pem")), key: Bun.file(join(certs, "srv.key")) },
        },
      );
      const sent = sendfileStats.direct;
      const res = await fetch(`https://127.0.0.1:${r.port}/`, { tls: { ca: await Bun.file(join(certs, "ca.pem")).text() } });
      const got = Buffer.from(await res.arrayBuffer());
      expect(new Bun.CryptoHasher("sha256").update(got).digest("hex")).toBe(smallHash);
      expect(sendfileStats.direct).toBe(sent);
    } finally {
      rmSync(certs, { recursive: true, force: true });
    }
  });
});

describe("sendfile's bytes are the response's progress (timeouts.write, limits.min_response_rate)", () => {
  const big = join(dir, "paced.bin");
  writeDeterministicFile(big, 32 * MiB, 88172645);

  test("a steady reader at ~160 KiB/s is never cut by a 1 s write timeout", async () => {
    const r = start(
      fileApp((env) => env["wsgi.file_wrapper"](big)),
      { timeouts: { write: 1, minResponseRateGrace: 1 }, limits: { minResponseRate: 1000 } },
    );
    const sent = sendfileStats.direct;
    const got = await pacedReader(r.port, "/", 16384, 0.1, 4);
    expect(got.closed).toBe(false);
    expect(got.got).toBeGreaterThan(400_000);
    expect(sendfileStats.direct).toBeGreaterThan(sent);
    expect(r.errors.join("")).toBe("");
  }, 10_000);

  test("a reader slower than limits.min_response_rate is cut once its grace is over", async () => {
    const r = start(
      fileApp((env) => env["wsgi.file_wrapper"](big)),
      { timeouts: { write: 30, minResponseRateGrace: 1 }, limits: { minResponseRate: 100_000 } },
    );
    await pacedReader(r.port, "/", 1024, 0.2, 4);
    expect(r.errors.join("")).toContain("reading the response slower than 100000 bytes/s");
  }, 10_000);

  test("a reader that stops reading is cut after timeouts.write, and the app's descriptor closed", async () => {
    const fds: number[] = [];
    const r = start(
      fileApp(() => {
        const fd = openSync(big, "r");
        fds.push(fd);
        return new FileWrapper(fd);
      }),
      { timeouts: { write: 1 }, limits: { minResponseRate: 0 } },
    );
    const before = openFds();
    const c = await RawClient.connect(r.port);
    c.pauseReading();
    c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    await waitFor(() => r.errors.join("").includes("no response bytes accepted for 1s"), 6000);
    c.close();
    await waitFor(() => openFds() <= before);
    expect(fds.length).toBe(1);
  });
});

test("with BUNWSGI_SENDFILE=off the file and range tests pass by the read path", async () => {
  const run = Bun.spawn([process.execPath, "test", "test/file.test.ts", "test/range.test.ts"], {
    cwd: join(import.meta.dir, ".."),
    env: { ...process.env, BUNWSGI_SENDFILE: "off" },
    stdout: "pipe",
    stderr: "pipe",
  });
  const [out, code] = await Promise.all([new Response(run.stderr).text(), run.exited]);
  if (code !== 0) console.log(out);
  expect(code).toBe(0);
  expect(out).toContain(" 0 fail");
}, 120_000);
