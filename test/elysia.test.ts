/**
 * @module test/elysia — a real Elysia app, unchanged, on bunwsgi and on Bun.serve({ fetch: app.fetch })
 * in the same process: every request's status, header fields, framing and body compared over raw
 * sockets (validation errors, cookies, redirects, files, generator streams, thrown errors, 204/304).
 */

import { afterAll, describe, expect, test } from "bun:test";
import { Elysia, t } from "elysia";
import { RawClient, type Response as RawResponse, type Running, serveFetch } from "./helpers.ts";

const app = new Elysia()
  .get("/", () => "hi")
  .get("/json", () => ({ a: 1, b: [1, 2] }))
  .get("/id/:id", ({ params, query }) => ({ id: params.id, q: query }))
  .post("/body", ({ body }) => body, { body: t.Object({ name: t.String() }) })
  .post("/text", ({ body }) => `length ${String(body).length}`)
  .post("/form", ({ body }) => body)
  .get("/status", ({ set }) => {
    set.status = 418;
    set.headers["x-tea"] = "pot";
    return "short";
  })
  .get("/cookie", ({ cookie }) => {
    const [a, b] = [cookie.a, cookie.b];
    if (a === undefined || b === undefined) return "no cookie jar";
    a.value = "1";
    a.httpOnly = true;
    b.value = "2";
    return "cookies";
  })
  .get("/redirect", ({ redirect }) => redirect("/json"))
  .get("/file", () => Bun.file(`${import.meta.dir}/../package.json`))
  .get("/stream", async function* () {
    yield "a";
    await Bun.sleep(5);
    yield "b";
    yield { c: 1 };
  })
  .get("/error", () => {
    throw new Error("nope");
  })
  .get("/empty", ({ set }) => {
    set.status = 204;
  })
  .get("/not-modified", () => new Response(null, { status: 304, headers: { etag: '"x"' } }))
  .get("/custom", () => new Response("r", { headers: { "content-type": "text/x-custom" } }))
  .get("/bytes", () => new Uint8Array([1, 2, 3]))
  .onError(({ code }) => {
    if (code === "NOT_FOUND") return new Response("custom 404", { status: 404 });
  });

const ours: Running<never> = serveFetch(app) as Running<never>;
const theirs = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: (req) => app.fetch(req) });
afterAll(() => {
  (ours as Running).server.close();
  theirs.stop(true);
});

const HOST = "Host: example.com\r\n";
const REQUESTS: Array<[string, string]> = [
  ["text", `GET / HTTP/1.1\r\n${HOST}\r\n`],
  ["text, HEAD", `HEAD / HTTP/1.1\r\n${HOST}\r\n`],
  ["JSON", `GET /json HTTP/1.1\r\n${HOST}\r\n`],
  ["JSON, HEAD", `HEAD /json HTTP/1.1\r\n${HOST}\r\n`],
  ["path parameter and query", `GET /id/7?x=1&y=2 HTTP/1.1\r\n${HOST}\r\n`],
  [
    "validated JSON body",
    `POST /body HTTP/1.1\r\n${HOST}Content-Type: application/json\r\nContent-Length: 14\r\n\r\n{"name":"bob"}`,
  ],
  [
    "a body failing validation (422)",
    `POST /body HTTP/1.1\r\n${HOST}Content-Type: application/json\r\nContent-Length: 12\r\n\r\n{"name":123}`,
  ],
  [
    "chunked JSON body",
    `POST /body HTTP/1.1\r\n${HOST}Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n7\r\n{"name"\r\n7\r\n:"bob"}\r\n0\r\n\r\n`,
  ],
  ["text body", `POST /text HTTP/1.1\r\n${HOST}Content-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello`],
  [
    "urlencoded form",
    `POST /form HTTP/1.1\r\n${HOST}Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 7\r\n\r\na=1&b=2`,
  ],
  [
    "multipart form",
    `POST /form HTTP/1.1\r\n${HOST}Content-Type: multipart/form-data; boundary=X\r\nContent-Length: 56\r\n\r\n--X\r\nContent-Disposition: form-data; name="f"\r\n\r\nv\r\n--X--\r\n`,
  ],
  ["status and header set by the handler", `GET /status HTTP/1.1\r\n${HOST}\r\n`],
  ["two cookies", `GET /cookie HTTP/1.1\r\n${HOST}Cookie: a=0\r\n\r\n`],
  ["redirect", `GET /redirect HTTP/1.1\r\n${HOST}\r\n`],
  ["file", `GET /file HTTP/1.1\r\n${HOST}\r\n`],
  ["generator stream", `GET /stream HTTP/1.1\r\n${HOST}\r\n`],
  ["thrown error", `GET /error HTTP/1.1\r\n${HOST}\r\n`],
  ["204", `GET /empty HTTP/1.1\r\n${HOST}\r\n`],
  ["304", `GET /not-modified HTTP/1.1\r\n${HOST}\r\n`],
  ["custom Content-Type", `GET /custom HTTP/1.1\r\n${HOST}\r\n`],
  ["bytes", `GET /bytes HTTP/1.1\r\n${HOST}\r\n`],
  ["onError's 404", `GET /missing HTTP/1.1\r\n${HOST}\r\n`],
];

async function ask(port: number, request: string): Promise<RawResponse> {
  const c = await RawClient.connect(port);
  c.send(request);
  const r = await c.response({ head: request.startsWith("HEAD") });
  c.close();
  return r;
}

/** Header fields as "name: value", sorted; Date differs by the clock and Connection by policy. */
const fields = (r: RawResponse): string[] =>
  r.headers
    .map(([n, v]) => `${n.toLowerCase()}: ${v}`)
    .filter((f) => !f.startsWith("date:") && !f.startsWith("connection:"))
    .sort();

describe("an Elysia app answers on bunwsgi as on Bun.serve", () => {
  test.each(REQUESTS)("%s", async (_name, request) => {
    const [mine, bun] = [await ask(ours.port, request), await ask(theirs.port as number, request)];
    expect(mine.status).toBe(bun.status);
    expect(mine.body).toBe(bun.body);
    expect(fields(mine)).toEqual(fields(bun));
  });
});
