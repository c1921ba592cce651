import { expect, test } from "bun:test";
import { cannedResponse } from "../src/http/response.ts";
import { BunWSGIError, ClientDisconnected, ConfigError, ConnectionClosedError, ContractError, HTTPError } from "../src/index.ts";

test("one base class with flat coded subclasses", () => {
  const e = new HTTPError(431, "too big");
  expect(e).toBeInstanceOf(BunWSGIError);
  expect([e.code, e.status, e.name]).toEqual(["HTTP_431", 431, "HTTPError"]);
  expect(new ContractError("x").code).toBe("WSGI_CONTRACT");
  expect(new ConfigError("x").code).toBe("CONFIG");
});

test("canned responses are built once and frame their body exactly", () => {
  const r = cannedResponse(505);
  expect(cannedResponse(505)).toBe(r);
  const text = new TextDecoder().decode(new Uint8Array([...r.head, ...r.tail]));
  expect(text).toBe(
    "HTTP/1.1 505 HTTP Version Not Supported\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 27\r\n\r\nHTTP Version Not Supported\n",
  );
  expect(r.length).toBe(text.length);
});

test("errors made by another copy of the module (another module graph) are instances of these classes", async () => {
  const graph = new Bun.ModuleGraph({});
  try {
    const other = (await graph.import(`${import.meta.dir}/../src/errors.ts`)) as typeof import("../src/errors.ts");
    expect(other.HTTPError).not.toBe(HTTPError);
    const e = new other.HTTPError(413, "too big");
    expect(e instanceof HTTPError).toBe(true);
    expect(e instanceof BunWSGIError).toBe(true);
    expect(e instanceof ContractError).toBe(false);
    const gone = new other.ClientDisconnected("gone", 1, 2);
    expect(gone instanceof ConnectionClosedError).toBe(true);
    expect(gone instanceof ClientDisconnected).toBe(true);
    expect(new ConnectionClosedError() instanceof other.ClientDisconnected).toBe(false);
    expect({ code: "HTTP_413" } instanceof HTTPError).toBe(false);
  } finally {
    graph.dispose();
  }
});

test("a user's subclass is checked by its prototype chain, not by the brand it inherits", () => {
  class RouteNotAllowed extends HTTPError {}
  expect(new RouteNotAllowed(405, "no") instanceof RouteNotAllowed).toBe(true);
  expect(new RouteNotAllowed(405, "no") instanceof HTTPError).toBe(true);
  expect(new HTTPError(405, "no") instanceof RouteNotAllowed).toBe(false);
});
