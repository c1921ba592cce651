/**
 * @module test/linger — closing without losing the response (RFC 9112 §9.6): a connection that
 * closes while the client may still be sending (a body refused or left unread, a broken request,
 * pipelined requests) half-closes and reads on, so that the client's further bytes are not
 * answered with a reset that destroys the response it has not read yet.
 */

import { afterAll, describe, expect, test } from "bun:test";
import { connect, type Socket } from "node:net";
import type { Application } from "../src/index.ts";
import { serve, serveFetch } from "./helpers.ts";

/** Answers without reading the body: 404 for any path but /read, which reads it all first. */
const wsgiApp: Application = async (env, startResponse) => {
  if (env.PATH_INFO === "/read") await env["wsgi.input"].read();
  startResponse("404 Not Found", [["Content-Type", "text/plain"]]);
  return ["no such route"];
};

/** The servers started, closed after the file's tests. */
const running: Array<{ server: { close(): void } }> = [];
afterAll(() => {
  for (const r of running) r.server.close();
});

/**
 * A client that writes `first`, waits until the server has answered and closed (it does not read
 * meanwhile: its receive buffer holds the response, as curl's does while it is busy sending),
 * writes `then`, and only then reads: what it reads, and the socket error if any.
 */
async function sendWhileNotReading(port: number, first: Buffer, then: Buffer): Promise<{ text: string; error: string }> {
  const sock: Socket = connect(port, "127.0.0.1");
  let text = "";
  let error = "";
  sock.pause();
  sock.on("data", (d: Buffer) => {
    text += d.toString("latin1");
  });
  sock.on("error", (e: Error & { code?: string }) => {
    error = e.code ?? e.message;
  });
  await new Promise<void>((resolve) => sock.once("connect", () => resolve()));
  sock.write(first);
  await Bun.sleep(400);
  sock.write(then);
  await Bun.sleep(400);
  const ended = new Promise<void>((resolve) => sock.once("close", () => resolve()));
  sock.resume();
  await Promise.race([ended, Bun.sleep(3000)]);
  sock.destroy();
  return { text, error };
}

const body = (n: number): Buffer => Buffer.alloc(n, 0x61);

describe.each([
  ["WSGI", (limit: number) => serve(wsgiApp, { limits: { maxBodySize: limit } })],
  [
    "fetch",
    (limit: number) =>
      serveFetch(
        async (req) =>
          new URL(req.url).pathname === "/read" ? new Response(await req.text()) : new Response("no", { status: 404 }),
        {
          limits: { maxBodySize: limit },
        },
      ),
  ],
] as const)("%s", (_kind, start) => {
  test("a body over the limit: the 413 sent before the body reaches the client whole though it sends on (no reset)", async () => {
    const r = start(4 * 1024 * 1024);
    running.push(r);
    const head = Buffer.from("POST /read HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000\r\n\r\n");
    const { text, error } = await sendWhileNotReading(r.port, Buffer.concat([head, body(300_000)]), body(1_000_000));
    expect(error).toBe("");
    expect(text).toStartWith("HTTP/1.1 413 ");
    expect(text).toContain("\r\nConnection: close\r\n");
  });

  test("a malformed request followed by more bytes: the 400 reaches the client whole (no reset)", async () => {
    const r = start(1024 * 1024);
    running.push(r);
    const { text, error } = await sendWhileNotReading(
      r.port,
      Buffer.from("GET / HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n"),
      body(500_000),
    );
    expect(error).toBe("");
    expect(text).toStartWith("HTTP/1.1 400 ");
  });
});
