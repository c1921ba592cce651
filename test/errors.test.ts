import { expect, test } from "bun:test";
import { cannedResponse } from "../src/errors.ts";
import { BunWSGIError, ConfigError, ContractError, HTTPError } from "../src/index.ts";

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
