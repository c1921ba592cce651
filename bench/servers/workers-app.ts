/** @module bench/servers/workers-app — the workers scenarios' WSGI app for the bunwsgi CLI (single process, workers = 1, workers = 2): hello, and /cpu, the CPU-bound route. */

import type { Application } from "../../src/index.ts";
import { cpuBody } from "./cpu-work.ts";

const HELLO = "Hello, World!";

const app: Application = (environ, startResponse) => {
  if (environ.PATH_INFO === "/cpu") {
    startResponse("200 OK", [["Content-Type", "text/plain"]]);
    return [cpuBody()];
  }
  startResponse("200 OK", [["Content-Type", "text/plain"]]);
  return [HELLO];
};

export default app;
