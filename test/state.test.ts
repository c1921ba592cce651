/** @module test/state — the connection state machine sans I/O: a stand-in socket records writes, pauses and ends; the test feeds bytes and ticks the clock by hand. */

import { describe, expect, test } from "bun:test";
import { Connection, type ServerSocket } from "../src/engine/connection.ts";
import { State } from "../src/engine/state.ts";
import { type Application, WSGIServer } from "../src/index.ts";

/** A socket that takes every write whole and records what the connection did to it. */
function standIn(app: Application, options: ConstructorParameters<typeof WSGIServer>[2] = {}) {
  const server = new WSGIServer("127.0.0.1:0", app, { log: null, errorLog: null, ...options });
  const events: string[] = [];
  let wire = "";
  const socket = {
    data: null as unknown as Connection,
    remoteAddress: "127.0.0.1",
    remotePort: 40000,
    write(buf: Uint8Array, offset = 0, length = buf.length - offset): number {
      wire += Buffer.from(buf.subarray(offset, offset + length)).toString("latin1");
      return length;
    },
    pause: () => events.push("pause"),
    resume: () => events.push("resume"),
    end: () => events.push("end"),
    shutdown: () => events.push("shutdown"),
    terminate: () => events.push("terminate"),
  } as unknown as ServerSocket;
  const conn = new Connection(socket, server);
  socket.data = conn;
  server.handle(socket, ["127.0.0.1", 40000]);
  return {
    conn,
    events,
    server,
    feed: (s: string) => conn.onData(Buffer.from(s, "latin1")),
    take: (): string => {
      const w = wire;
      wire = "";
      return w;
    },
  };
}

const hello: Application = (_env, sr) => {
  sr("200 OK", []);
  return ["hi"];
};

describe("the connection's states", () => {
  test("HEAD → answered → HEAD again on keep-alive; a partial head is held, not refused", () => {
    const s = standIn(hello);
    expect(s.conn.state).toBe(State.HEAD);
    s.feed("GET / HTTP/1.1\r\nHo");
    expect(s.take()).toBe("");
    expect(s.conn.idle).toBe(false);
    s.feed("st: a\r\n\r\n");
    expect(s.take()).toMatch(/^HTTP\/1\.1 200 OK\r\n[\s\S]*\r\n\r\nhi$/);
    expect(s.conn.state).toBe(State.HEAD);
    expect(s.conn.idle).toBe(true);
  });

  test("BODY while a body is coming; DISCARD for what the app left unread; then HEAD", () => {
    const s = standIn(hello);
    s.feed("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc");
    // The app answered without reading: the rest of the body is read and dropped.
    expect(s.conn.state).toBe(State.DISCARD);
    expect(s.take()).toContain("200 OK");
    s.feed("defghij");
    expect(s.conn.state).toBe(State.HEAD);
    s.feed("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    expect(s.take()).toContain("200 OK");
  });

  test("RAW after a 101 and the request's body: later bytes are the app's, not requests", async () => {
    let raw = "";
    const s = standIn(async (env, sr) => {
      sr("101 Switching Protocols", [["Upgrade", "x"]]);
      raw = Buffer.from(await (env["bunwsgi.raw_input"] as NonNullable<(typeof env)["bunwsgi.raw_input"]>).read(14)).toString();
      return [];
    });
    s.feed("GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: x\r\n\r\nGET / HTTP/1.1");
    expect(s.conn.state).toBe(State.RAW);
    await Bun.sleep(0);
    expect(raw).toBe("GET / HTTP/1.1");
    expect(s.take()).toStartWith("HTTP/1.1 101 Switching Protocols\r\n");
  });

  test("CLOSING after Connection: close, with the socket ended once output is out; CLOSED on close", () => {
    const s = standIn(hello);
    s.feed("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    expect(s.conn.state).toBe(State.CLOSING);
    // Nothing more can come from this client: an immediate close, no linger.
    expect(s.events).toContain("end");
    expect(s.events).not.toContain("shutdown");
    s.conn.onClose();
    expect(s.conn.state).toBe(State.CLOSED);
  });

  test("a refused head: 400 written, CLOSING, and bytes after it never parsed", () => {
    const s = standIn(hello);
    s.feed("GET / HTTP/1.1\r\nHost: a\rb\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n");
    const out = s.take();
    expect(out).toStartWith("HTTP/1.1 400 Bad Request\r\n");
    expect(out.match(/HTTP\/1\.1/g)?.length).toBe(1);
    expect(s.conn.state).toBe(State.CLOSING);
    expect(s.conn.failReason).toBe("bare_cr");
    // The client may still be sending: a half-close, reading on (RFC 9112 §9.6); its FIN ends it.
    expect(s.events).toContain("shutdown");
    expect(s.events).not.toContain("end");
    s.conn.onEnd();
    expect(s.events).toContain("end");
  });
});

describe("deadlines, driven by hand", () => {
  test("a head held past timeouts.header gets 408 at the first tick at or after it, not before", () => {
    const s = standIn(hello, { timeouts: { header: 5 } });
    s.feed("GET / HTTP/1.1\r\n");
    const start = s.conn.lastActive;
    s.conn.tick(start + 4.999);
    expect(s.take()).toBe("");
    // A hair past the deadline: start + 5 - start may round below 5 in floating point.
    s.conn.tick(start + 5.001);
    expect(s.take()).toStartWith("HTTP/1.1 408 Request Timeout\r\n");
    expect(s.conn.failReason).toBe("head_timeout");
  });

  test("an idle keep-alive connection ends at timeouts.keep_alive; a closing one is cut after its linger", () => {
    const s = standIn(hello, { timeouts: { keepAlive: 3 } });
    s.feed("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    s.take();
    const at = s.conn.lastActive;
    s.conn.tick(at + 2.9);
    expect(s.conn.state).toBe(State.HEAD);
    s.conn.tick(at + 3.001);
    expect(s.conn.state).toBe(State.CLOSING);
    expect(s.events).toContain("end");
    s.conn.tick(s.server.now + 100);
    expect(s.events).toContain("terminate");
  });

  test("a body slower than limits.min_body_rate gets 408 once its window is over, not before", () => {
    const s = standIn(
      async (env, sr) => {
        await env["wsgi.input"].read();
        sr("200 OK", []);
        return [];
      },
      { limits: { minBodyRate: 100 }, timeouts: { minBodyRateGrace: 2, body: 60 } },
    );
    s.feed("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\nx");
    const t0 = s.conn.lastActive;
    for (let i = 1; i <= 2; i++) s.conn.tick(t0 + i);
    expect(s.conn.state).toBe(State.BODY);
    s.conn.tick(t0 + 3.001);
    expect(s.conn.state).not.toBe(State.BODY);
    expect(s.conn.failReason).toBe("body_too_slow");
  });
});
