/** @module test/upgrade — upgrade requests (RFC 9110 §7.8): framing of their bodies, the raw stream after 101, and what is not an upgrade. */

import { describe, expect, test } from "bun:test";
import type { Application, Input } from "../src/index.ts";
import { hello, RawClient, serverPool } from "./helpers.ts";

const start = serverPool();
const text = (b: Uint8Array): string => Buffer.from(b).toString("latin1");

/** Echoes the request body, then, after 101, echoes `rounds` raw messages of 4 bytes. */
const switcher =
  (seen: string[], rounds = 2): Application =>
  async (env, sr) => {
    seen.push(`body=${text(await env["wsgi.input"].read())}`);
    seen.push(`terminated=${env["wsgi.input_terminated"]}`);
    const raw = env["bunwsgi.raw_input"] as Input;
    sr("101 Switching Protocols", [
      ["Upgrade", "echo"],
      ["Connection", "Upgrade"],
    ]);
    return (async function* () {
      for (let i = 0; i < rounds; i++) yield await raw.read(4);
    })();
  };

describe("upgrade requests", () => {
  test("101 starts the raw stream after the request's body: unframed both ways, closed when the app is done", async () => {
    const seen: string[] = [];
    const { port } = start(switcher(seen));
    const c = await RawClient.connect(port);
    c.send("GET /chat HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\nping");
    const r = await c.response({ head: true });
    expect(r.status).toBe(101);
    expect(r.header("transfer-encoding")).toBeUndefined();
    expect(r.header("content-length")).toBeUndefined();
    expect(await c.readRaw(4)).toBe("ping");
    c.send("pong");
    expect(await c.readRaw(4)).toBe("pong");
    await c.waitClosed();
    expect(seen).toEqual(["body=", "terminated=true"]);
  });

  test("the chunked body of an upgrade POST reaches wsgi.input decoded; raw bytes start after its last chunk", async () => {
    const seen: string[] = [];
    const { port } = start(switcher(seen, 1));
    const c = await RawClient.connect(port);
    c.send(
      "POST /up HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: echo\r\nTransfer-Encoding: chunked\r\n\r\n" +
        "3\r\nthi\r\n2;x=y\r\ns!\r\n0\r\n\r\nRAW!",
    );
    expect((await c.response({ head: true })).status).toBe(101);
    expect(await c.readRaw(4)).toBe("RAW!");
    await c.waitClosed();
    expect(seen).toEqual(["body=this!", "terminated=true"]);
  });

  test("a Content-Length body of an upgrade request is framed: bytes after it are raw, not body", async () => {
    const seen: string[] = [];
    const { port } = start(switcher(seen, 1));
    const c = await RawClient.connect(port);
    c.send("POST /up HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: echo\r\nContent-Length: 5\r\n\r\nhelloWXYZ");
    expect((await c.response({ head: true })).status).toBe(101);
    expect(await c.readRaw(4)).toBe("WXYZ");
    await c.waitClosed();
    expect(seen).toEqual(["body=hello", "terminated=true"]);
  });

  test("an upgrade request answered without 101 goes on as HTTP/1.1: keep-alive, and the pipelined request behind it is answered", async () => {
    let rawInput: unknown;
    const { port } = start((env, sr) => {
      if (env.PATH_INFO === "/up") rawInput = env["bunwsgi.raw_input"];
      sr("200 OK", []);
      return [String(env.PATH_INFO)];
    });
    const c = await RawClient.connect(port);
    c.send(
      "GET /up HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n" +
        "GET /next HTTP/1.1\r\nHost: a\r\n\r\n",
    );
    const first = await c.response();
    expect(first.body).toBe("/up");
    expect(first.header("connection")).toBeUndefined();
    expect((await c.response()).body).toBe("/next");
    expect(c.closed).toBe(false);
    // Not switched: the raw stream has ended, empty.
    expect(text(await (rawInput as Input).read())).toBe("");
    c.close();
  });

  test("Upgrade without the upgrade Connection option is an ordinary request: no raw stream, no 101, pipelining kept", async () => {
    const statuses: string[] = [];
    const { port } = start((env, sr) => {
      statuses.push(`${env.PATH_INFO} raw=${"bunwsgi.raw_input" in env}`);
      if (env.PATH_INFO === "/try101") {
        try {
          sr("101 Switching Protocols", [["Upgrade", "websocket"]]);
        } catch (e) {
          statuses.push((e as Error).name);
          sr("200 OK", []);
        }
        return ["no"];
      }
      return hello(env, sr);
    });
    const c = await RawClient.connect(port);
    c.send(
      "GET /try101 HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n" +
        "GET /x HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\n\r\n" +
        "GET /y HTTP/1.0\r\nHost: a\r\nConnection: upgrade, keep-alive\r\nUpgrade: websocket\r\n\r\n",
    );
    expect((await c.response()).body).toBe("no");
    expect((await c.response()).body).toBe("Hello, World!");
    expect((await c.response()).body).toBe("Hello, World!");
    c.close();
    expect(statuses).toEqual(["/try101 raw=false", "ContractError", "/x raw=false", "/y raw=false"]);
  });

  test("a raw stream whose client sends FIN ends for the app, which may still write", async () => {
    const { port } = start(async (env, sr) => {
      const raw = env["bunwsgi.raw_input"] as Input;
      const write = sr("101 Switching Protocols", [["Upgrade", "x"]]);
      const got = text(await raw.read());
      await write(`got ${got}`);
      return [];
    });
    const c = await RawClient.connect(port);
    c.send("GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: x\r\n\r\nabc");
    expect((await c.response({ head: true })).status).toBe(101);
    c.endWrite();
    expect(await c.readRaw(7)).toBe("got abc");
    await c.waitClosed();
  });
});
