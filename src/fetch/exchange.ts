/** @module fetch/exchange — a fetch app on one connection: each parsed request becomes a Request, the app's Response goes out through the engine's response writer, and errors, deadlines and a vanished client end it as they do for WSGI apps. */

import { AppExchange } from "../engine/app-exchange.ts";
import type { ServerSocket } from "../engine/connection.ts";
import { proxyTlsFacts } from "../engine/peer.ts";
import { tlsFacts } from "../engine/tls.ts";
import { targetAuthority } from "../http/authority.ts";
import { isDigits } from "../http/bytes.ts";
import { FIELD_SLOTS, FieldKind } from "../http/fields.ts";
import { type Forwarded, forwardedAuthority, forwardingIndex } from "../http/forwarded.ts";
import type { RequestParser } from "../http/parser.ts";
import { HTTP_1X, RequestDecoder } from "../http/request.ts";
import { TargetForm } from "../http/request-line.ts";
import type { ClientAddress } from "../observe/access.ts";
import { clientLabel, geventLine } from "../observe/access.ts";
import { NullLog } from "../observe/log.ts";
import { bodyStream, IncomingRequest, requestURL } from "./request.ts";
import { ResponseSender, type SendHost } from "./response.ts";
import type { FetchServer } from "./server.ts";

/** Request init fields beyond the DOM typings: a streamed body needs `duplex: "half"`. */
interface StreamInit extends RequestInit {
  duplex?: "half";
}

export class FetchExchange extends AppExchange implements SendHost {
  readonly server: FetchServer;
  readonly protocol = "HTTP/1.1";
  /** The request being answered; null between requests. */
  request: IncomingRequest | null = null;
  private readonly decoder = new RequestDecoder();
  /**
   * The Headers made for the last request's fields, given again while a client repeats them
   * (a Request copies its init's Headers, which costs less than parsing pairs anew).
   */
  private lastHeaders: Headers | null = null;
  /** The connection's TLS facts, read once. */
  private tls: Readonly<Record<string, string>> | null = null;
  private readonly sender: ResponseSender;
  /** The peer is a trusted proxy: its requests' forwarding fields are read (decided once per connection). */
  private readonly trusted: boolean;
  /** The peer is not trusted, and its requests' forwarding fields are left out of their headers. */
  private readonly strip: boolean;
  /** The URL scheme of this connection's requests: the listener's, or https when a PROXY header's SSL TLV says so. */
  private readonly scheme: string;
  /** What the last request's forwarding fields said, kept while a client repeats its fields. */
  private lastForwarded: Forwarded | null = null;
  private readonly sendBound = (res: Response): void | Promise<void> => this.respond(res);
  private readonly doneBound = (): void => this.finishRequest();
  private readonly failedBound = (e: unknown): void => this.failed(e);

  constructor(socket: ServerSocket, address: ClientAddress, server: FetchServer) {
    super(socket, address);
    this.server = server;
    this.sender = new ResponseSender(this);
    const proxy = this.connection.proxy;
    this.trusted = server.proxies.trusts(address, proxy);
    this.strip = !this.trusted && server.proxies.strip;
    this.scheme = proxy !== null && proxyTlsFacts(proxy.header) !== null ? "https" : server.scheme;
  }

  protected get host(): FetchServer {
    return this.server;
  }

  /** Exchange: answer the request whose head the connection parsed at buf[start…]. */
  begin(buf: Buffer, start: number): void | Promise<void> {
    this.resetRequest();
    const conn = this.connection;
    const p = conn.parser;
    this.startTiming(false);
    const line = this.decoder.requestLine(p, buf, start);
    this.requestline = line;
    this.command = p.method;
    this.path = this.decoder.target(p, buf, start, line);
    this.requestVersion = HTTP_1X[p.versionMinor] as string;
    this.headers = this.decoder.fields(p, buf, start);
    const request = this.makeRequest(p);
    if (request === null) return;
    this.request = request;
    this.server.pending++;
    let r: void | Promise<void>;
    try {
      const res = this.server.handler(request, this.server.serve);
      r = res instanceof Promise ? res.then(this.sendBound) : this.sender.send(res);
    } catch (e) {
      this.failed(e);
      return;
    }
    if (r === undefined) this.finishRequest();
    else return r.then(this.doneBound, this.failedBound);
  }

  /** Send the app's response, unless the request is over already (its time ran out, or its client went away). */
  private respond(res: Response): void | Promise<void> {
    if (!this.expired && !this.connection.closed) return this.sender.send(res);
    // Nobody will read it: let its stream's producer know.
    if (res instanceof Response && !res.bodyUsed) res.body?.cancel().catch(() => {});
  }

  /** The Request for the parsed head; null (answered 400) when its URL is not one. */
  private makeRequest(p: RequestParser): IncomingRequest | null {
    let scheme = this.scheme;
    let authority = this.authority(p);
    const repeated = this.decoder.fieldsRepeated;
    if (this.trusted) {
      // Only when the fields change: a keep-alive client repeating them gets the same answer.
      if (!repeated || this.lastHeaders === null) this.lastForwarded = this.forwarded();
      const f = this.lastForwarded;
      if (f !== null) {
        if (f.addr !== null) this.clientAddress = [f.addr, isDigits(f.port) ? Number(f.port) : 0];
        if (f.scheme !== null) scheme = f.scheme;
        if (f.host !== null || f.hostPort !== null) authority = forwardedAuthority(f, authority, scheme);
      }
    }
    const url = requestURL(p.targetForm, this.path, scheme, authority);
    let headers = this.lastHeaders;
    if (headers === null || !repeated) {
      headers = new Headers(this.strip ? this.headers.filter((h) => forwardingIndex(h[0]) < 0) : this.headers);
      this.lastHeaders = headers;
    }
    if (p.targetForm === TargetForm.ABSOLUTE) {
      // RFC 9112 §3.2.2: the target's authority, not the Host field received, names the host, as
      // the URL says (and HTTP_HOST for a WSGI app). A copy: the cached fields stay as received.
      headers = new Headers(headers);
      headers.set("host", targetAuthority(this.path));
    }
    const init: StreamInit = { headers };
    if (this.command !== "GET") init.method = this.command;
    let body: ReadableStream<Uint8Array> | null = null;
    // GET and HEAD carry no body a Request may hold (what was sent is read and dropped after the response).
    if ((p.chunked || p.contentLength > 0) && this.command !== "GET" && this.command !== "HEAD") {
      body = bodyStream(this.connection.input);
      init.body = body;
      init.duplex = "half";
    }
    try {
      const request = new IncomingRequest(url, init);
      if (request.method !== this.command) {
        // Bun's Request holds the methods it knows, upper-cased, and makes any other one GET:
        // the app would route, and check access, on a method the client never sent (methods
        // are case-sensitive, RFC 9110 §9.1; an unrecognised one gets 501).
        this.logError(
          `${this.requestline} from ${this.clientLabel()}: method ${JSON.stringify(this.command)} cannot reach a fetch app (its Request would say ${request.method}); answered 501`,
        );
        this.sendError(501);
        this.finishRequest();
        return null;
      }
      IncomingRequest.received(request, this);
      if (body !== null) IncomingRequest.withBody(request, this.connection.input, body);
      return request;
    } catch (e) {
      // The parser's grammar is RFC 9112's; the URL parser may still refuse what it allows.
      this.logInfo(`${this.requestline} from ${this.clientLabel()}: not a URL (${(e as Error).message}); answered 400`);
      this.sendError(400);
      this.finishRequest();
      return null;
    }
  }

  /** The Host field's value (checked by the parser), else the server's own authority. */
  private authority(p: RequestParser): string {
    const f = p.fields;
    for (let n = 0; n < p.fieldCount; n++) {
      if (f[n * FIELD_SLOTS + 4] === FieldKind.HOST) {
        const value = (this.headers[n] as [string, string])[1];
        if (value !== "") return value;
      }
    }
    return this.server.authority;
  }

  /** What a trusted proxy's forwarding fields say of this request's client (engine/peer); malformed values get a debug line. */
  private forwarded(): Forwarded | null {
    const server = this.server;
    const f = server.proxies.forwarded(this.headers);
    if (f !== null && f.problem !== "" && server.logLevel <= 10) {
      server.errorLog.write(`ignored forwarding fields from ${clientLabel(this.peerAddress)}: ${f.problem}\n`, "DEBUG");
    }
    return f;
  }

  private failed(e: unknown): void {
    this.answerError(e);
    this.sender.abandon();
    this.finishRequest();
  }

  /** SendHost: the body is complete. */
  endBody(): void {
    const response = this.response;
    if (this.connection.closed) return;
    if (!response.headersSent) {
      if (response.sized < 0 && this.command !== "HEAD") response.sized = 0;
      response.writeHead(this.protocol, this.command);
    }
    // Fewer bytes than declared: the client must not wait for the rest of a body that will not come.
    if (response.end() > 0) {
      this.logError(
        `${this.requestline}: the Response sent ${response.bodySent} bytes of its Content-Length of ${response.promised}; connection closed`,
      );
    }
  }

  /** Exchange: the client went away (or the time is up, or the server stops): abort the signal, cancel the body. */
  lost(): void {
    const request = this.request;
    if (request !== null) IncomingRequest.clientGone(request);
    this.sender.abandon();
  }

  /**
   * The client sent FIN before the response was done: abort the signal, as Bun.serve does, since
   * a client that gives up (curl's --max-time, an aborted fetch, a closed tab) closes with a FIN,
   * not a reset, and an app waiting on the signal should stop for it. The response is still
   * sent, and its body not cancelled: a client that only half-closed reads it (RFC 9112 §9.6).
   */
  override halfClosed(): void {
    const request = this.request;
    if (request !== null) IncomingRequest.clientGone(request);
  }

  protected override requestLogged(): void {
    if (this.request !== null) {
      this.request = null;
      this.server.pending--;
    }
  }

  /** The TLS facts of this connection (server.tlsInfo), read from the socket once. */
  tlsFacts(): Readonly<Record<string, string>> {
    const proxy = this.connection.proxy;
    this.tls ??= (proxy !== null ? proxyTlsFacts(proxy.header) : null) ?? tlsFacts(this.socket);
    return this.tls;
  }

  /** The app's timeout(request, seconds): a deadline for this request's response from now on. */
  timeout(request: Request, seconds: number): void {
    if (request === this.request) this.connection.setTimeout("app", seconds);
  }

  logRequest(): void {
    const server = this.server;
    const log = server.log;
    if (log instanceof NullLog) return;
    const format = server.accessFormat;
    log.write(`${format !== null ? format(this) : geventLine(this)}\n`);
  }
}
