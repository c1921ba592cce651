/** @module examples/hello — the bundled example application: a greeting, an echo, and a stream. */

import type { Application } from "bunwsgi";

const app: Application = async (environ, startResponse) => {
  const path = environ.PATH_INFO;
  if (path === "/echo") {
    const body = await environ["wsgi.input"].read();
    startResponse("200 OK", [["Content-Type", environ.CONTENT_TYPE ?? "application/octet-stream"]]);
    return [body];
  }
  if (path === "/stream") {
    startResponse("200 OK", [["Content-Type", "text/plain; charset=utf-8"]]);
    return (function* () {
      for (let i = 1; i <= 5; i++) yield `line ${i}\n`;
    })();
  }
  startResponse("200 OK", [["Content-Type", "text/plain; charset=utf-8"]]);
  return [`Hello, World!\nYou asked for ${path} with ${environ.REQUEST_METHOD}.\n`];
};

export default app;
