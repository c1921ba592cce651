/** @module bench/servers/relay — a TCP relay for the load-balancer bench: wrk's connections forwarded to a server, each one opened, in `v2` mode, with a PROXY protocol v2 header naming a made-up client, as HAProxy's send-proxy-v2 does. Usage: bun relay.ts LISTEN_PORT TARGET_PORT none|v2 */

import type { Socket } from "bun";

const [listenPort, targetPort, mode] = process.argv.slice(2);
if (listenPort === undefined || targetPort === undefined || (mode !== "none" && mode !== "v2")) {
  console.error("usage: bun relay.ts LISTEN_PORT TARGET_PORT none|v2");
  process.exit(2);
}

/** PROXY v2, PROXY command, TCP over IPv4: 203.0.113.(n % 250 + 1):(40000 + n) → 127.0.0.1:target. */
function proxyV2(n: number): Buffer {
  const h = Buffer.alloc(28);
  Buffer.from("\r\n\r\n\0\r\nQUIT\n", "latin1").copy(h, 0);
  h[12] = 0x21;
  h[13] = 0x11;
  h.writeUInt16BE(12, 14);
  h.set([203, 0, 113, (n % 250) + 1], 16);
  h.set([127, 0, 0, 1], 20);
  h.writeUInt16BE(40000 + (n % 20000), 24);
  h.writeUInt16BE(Number(targetPort), 26);
  return h;
}

/** One side's bytes the other side's socket has not taken yet; reading pauses meanwhile. */
interface Side {
  peer: Socket<Side> | null;
  pending: Buffer[];
  /** Bytes from wrk that arrived before the server connection opened. */
  early: Buffer[];
}

function send(to: Socket<Side>, from: Socket<Side>, data: Buffer): void {
  const side = to.data;
  if (side.pending.length > 0) {
    side.pending.push(data);
    return;
  }
  const n = to.write(data);
  if (n < data.length) {
    side.pending.push(data.subarray(n));
    from.pause();
  }
}

function drain(s: Socket<Side>): void {
  const side = s.data;
  while (side.pending.length > 0) {
    const data = side.pending[0] as Buffer;
    const n = s.write(data);
    if (n < data.length) {
      side.pending[0] = data.subarray(n);
      return;
    }
    side.pending.shift();
  }
  side.peer?.resume();
}

let accepted = 0;
Bun.listen<Side>({
  hostname: "127.0.0.1",
  port: Number(listenPort),
  socket: {
    binaryType: "buffer",
    open(client) {
      client.data = { peer: null, pending: [], early: [] };
      const n = accepted++;
      void Bun.connect<Side>({
        hostname: "127.0.0.1",
        port: Number(targetPort),
        socket: {
          binaryType: "buffer",
          open(server) {
            server.data = { peer: client, pending: [], early: [] };
            client.data.peer = server;
            if (mode === "v2") server.write(proxyV2(n));
            for (const b of client.data.early) send(server, client, b);
            client.data.early = [];
          },
          data(server, data) {
            send(client, server, data);
          },
          drain,
          close() {
            client.end();
          },
          error() {},
        },
      }).catch(() => client.end());
    },
    data(client, data) {
      const server = client.data.peer;
      if (server === null) client.data.early.push(Buffer.from(data));
      else send(server, client, data);
    },
    drain,
    close(client) {
      client.data.peer?.end();
    },
    error() {},
  },
});
console.log(`relay ${listenPort} → ${targetPort} (${mode})`);
