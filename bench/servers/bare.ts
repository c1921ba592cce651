/**
 * @module bench/servers/bare — the floor: a bare Bun.listen loop with only the HTTP the bench
 * scenarios need (no validation, no limits, no WSGI). Not a server to use: it shows what
 * Bun.listen and the kernel cost before any server code runs.
 */

import type { Socket } from "bun";

const enc = new TextEncoder();
const HELLO = enc.encode("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, World!");
const HELLO_CLOSE = enc.encode(
  "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\nConnection: close\r\n\r\nHello, World!",
);
const STREAM_HEAD = enc.encode("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 1048576\r\n\r\n");
const CHUNK = new Uint8Array(64 * 1024).fill(120);
const END_OF_HEAD = Buffer.from("\r\n\r\n");
const CONTENT_LENGTH = Buffer.from("Content-Length: ");
const CONNECTION_CLOSE = Buffer.from("Connection: close");

interface State {
  held: Buffer | null;
  body: Uint8Array[];
  need: number;
  out: Uint8Array[];
  closing: boolean;
}

function flush(s: Socket<State>): void {
  const st = s.data;
  while (st.out.length > 0) {
    const b = st.out[0] as Uint8Array;
    const n = s.write(b);
    if (n < 0) return;
    if (n < b.length) {
      st.out[0] = b.subarray(n);
      return;
    }
    st.out.shift();
  }
  if (st.closing) s.end();
}

/** Queue the small responses gathered so far, in one piece, ahead of a large one. */
function queueSmall(st: State, small: Uint8Array[]): void {
  if (small.length > 0) st.out.push(small.length === 1 ? (small[0] as Uint8Array) : Buffer.concat(small));
  small.length = 0;
}

function echo(st: State, small: Uint8Array[]): void {
  queueSmall(st, small);
  const body = st.body.length === 1 ? (st.body[0] as Uint8Array) : Buffer.concat(st.body);
  st.body = [];
  st.out.push(
    enc.encode(`HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: ${body.length}\r\n\r\n`),
    body,
  );
}

const listener = Bun.listen<State>({
  hostname: "127.0.0.1",
  port: Number(process.argv[2] ?? 0),
  socket: {
    binaryType: "buffer",
    open(s) {
      s.data = { held: null, body: [], need: 0, out: [], closing: false };
    },
    data(s, data) {
      const st = s.data;
      const buf = st.held === null ? data : Buffer.concat([st.held, data]);
      st.held = null;
      const small: Uint8Array[] = [];
      let pos = 0;
      while (pos < buf.length) {
        if (st.need > 0) {
          const n = Math.min(st.need, buf.length - pos);
          st.body.push(buf.subarray(pos, pos + n));
          st.need -= n;
          pos += n;
          if (st.need === 0) echo(st, small);
          continue;
        }
        const end = buf.indexOf(END_OF_HEAD, pos);
        if (end < 0) {
          st.held = buf.subarray(pos);
          break;
        }
        const head = buf.subarray(pos, end);
        pos = end + 4;
        if (head[0] === 80 /* P */) {
          const at = head.indexOf(CONTENT_LENGTH);
          st.need = at < 0 ? 0 : Number.parseInt(head.toString("latin1", at + CONTENT_LENGTH.length, at + 30), 10);
          if (st.need === 0) echo(st, small);
        } else if (head[5] === 115 /* "/s"tream */) {
          queueSmall(st, small);
          st.out.push(STREAM_HEAD);
          for (let i = 0; i < 16; i++) st.out.push(CHUNK);
        } else if (head.indexOf(CONNECTION_CLOSE) >= 0) {
          small.push(HELLO_CLOSE);
          st.closing = true;
          break;
        } else {
          small.push(HELLO);
        }
      }
      // Pipelined responses leave in one write.
      queueSmall(st, small);
      flush(s);
    },
    drain(s) {
      flush(s);
    },
  },
});
console.log(`ready ${listener.port}`);
process.on("SIGTERM", () => process.exit(0));
