/** @module engine/handlers — a listener's Bun socket handlers: a new socket to its server, each later event to the socket's connection (through the PROXY stage first, on a bind that has one), socket errors to the error log. */

import type { SocketHandler } from "bun";
import type { LogSink } from "../observe/log.ts";
import type { Connection, ServerSocket } from "./connection.ts";
import type { ProxyStage } from "./proxy-stage.ts";

/** What the handlers ask of their server. */
export interface HandlersHost {
  accept(socket: ServerSocket): void;
  readonly errorLog: LogSink;
  /** The listener's TLS options, when it serves TLS. */
  readonly tls?: object | undefined;
}

/** The handlers of `server`'s listener; `stage`: its PROXY protocol stage, or null. */
export function socketHandlers(server: HandlersHost, stage: ProxyStage | null): SocketHandler<Connection, "buffer"> {
  return {
    binaryType: "buffer",
    open(socket) {
      server.accept(socket);
    },
    // A bind with the PROXY protocol has its own data handler: other binds pay nothing for it.
    data:
      stage === null
        ? (socket, data) => socket.data.onData(data)
        : (socket, data) => {
            if (stage.size === 0 || !stage.read(socket.data, data)) socket.data.onData(data);
          },
    drain(socket) {
      socket.data.onDrain();
    },
    // With a handshake handler Bun calls open() as the TCP connection is accepted, not once its
    // handshake is done: the connection exists, and its handshake has a deadline, from then on.
    // Without one, a client that never finishes its handshake held a socket with no deadline.
    ...(server.tls !== undefined
      ? {
          handshake(socket: ServerSocket, success: boolean, error: Error | null) {
            socket.data?.onHandshake(success, error);
          },
        }
      : {}),
    end(socket) {
      socket.data.onEnd();
    },
    close(socket) {
      socket.data?.onClose();
    },
    error(socket, error) {
      const code = (error as { code?: string }).code;
      if (code !== "ECONNRESET" && code !== "EPIPE") {
        server.errorLog.write(`socket error from ${socket.remoteAddress}: ${error.message}\n`, "ERROR");
      }
    },
  };
}
