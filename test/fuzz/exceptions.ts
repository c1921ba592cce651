/**
 * @module test/fuzz/exceptions — the ONE list of places where bunwsgi accepts a request that
 * Node's llhttp (strict, no lenient flags) rejects or reads differently. Each is allowed by the
 * RFC text quoted with it, and recognised by a predicate over the request as bunwsgi parsed it
 * and llhttp's result; the differential fuzzer fails on any difference none of them matches.
 */

import type { BodyEvent, HeadEvent } from "./driver.ts";

export interface LlhttpMessage {
  method: string;
  url: string;
  versionMajor: number;
  versionMinor: number;
  headers: string[];
  upgrade: boolean;
  body: string;
  trailers: string[];
  complete: boolean;
}

export interface LlhttpResult {
  msgs: LlhttpMessage[];
  error: string | null;
  consumed: number;
}

/** What a predicate sees: the request (index `index` in the input) and both parsers' view of it. */
export interface Divergence {
  input: Uint8Array;
  index: number;
  head: HeadEvent;
  body: BodyEvent | undefined;
  /** The request before it on the connection, if any. */
  previous: HeadEvent | undefined;
  llhttp: LlhttpResult;
}

export interface Exception {
  id: string;
  rfc: string;
  text: string;
  applies: (d: Divergence) => boolean;
}

/** llhttp stopped with this error at this request's head (it produced no message for it). */
const headRejected = (d: Divergence, ...codes: string[]): boolean =>
  d.llhttp.msgs.length === d.index && codes.some((c) => d.llhttp.error?.startsWith(`${c}:`) === true);

const latin1 = (b: Uint8Array, s: number, e: number): string => String.fromCharCode(...b.subarray(s, e));

/** The chunk-size lines (size and chunk-ext, without CRLF) of a chunked body bunwsgi accepted. */
function chunkLines(b: Uint8Array, start: number, end: number): string[] {
  const lines: string[] = [];
  let i = start;
  while (i < end) {
    let e = i;
    while (e < end && b[e] !== 13) e++;
    const line = latin1(b, i, e);
    lines.push(line);
    const size = Number.parseInt(line, 16);
    if (size === 0) break;
    i = e + 2 + size + 2;
  }
  return lines;
}

export const EXCEPTIONS: readonly Exception[] = [
  {
    id: "extension-method",
    rfc: "RFC 9110 §9.1, §16.1",
    text:
      'method = token. "The method token is case-sensitive [...] Additional methods, outside the scope ' +
      'of this specification, have been specified for use in HTTP." llhttp knows a fixed list only.',
    applies: (d) => headRejected(d, "HPE_INVALID_METHOD"),
  },
  {
    id: "higher-minor-version",
    rfc: "RFC 9110 §2.5",
    text:
      "A recipient that receives a message with a major version number that it implements and a minor " +
      "version number higher than what it implements SHOULD process the message as if it were in the " +
      "highest minor version within that major version to which the recipient is conformant.",
    applies: (d) => d.head.versionMinor > 1 && headRejected(d, "HPE_INVALID_VERSION"),
  },
  {
    id: "htab-after-framing-value",
    rfc: "RFC 9112 §5, RFC 9110 §5.6.3",
    text:
      'field-line = field-name ":" OWS field-value OWS, and OWS = *( SP / HTAB ): a tab after ' +
      '"chunked" or a length is not part of the value. llhttp trims SP but not HTAB there.',
    applies: (d) =>
      /\n(transfer-encoding|content-length):[^\r\n]*\t\r\n/i.test(latin1(d.input, d.head.start, d.head.end)) &&
      d.llhttp.msgs.length <= d.index + 1 &&
      /^HPE_INVALID_(TRANSFER_ENCODING|CONTENT_LENGTH):/.test(d.llhttp.error ?? ""),
  },
  {
    id: "empty-list-element-in-transfer-encoding",
    rfc: "RFC 9110 §5.6.1.2",
    text:
      "Empty elements do not contribute to the count of elements present. A recipient MUST parse and " +
      'ignore a reasonable number of empty list elements: "chunked," is "chunked". llhttp refuses them.',
    applies: (d) =>
      d.head.fields.some((f) => f[0].toLowerCase() === "transfer-encoding" && /^[ \t]*,|,[ \t]*(,|$)/.test(f[1])) &&
      d.llhttp.msgs.length <= d.index + 1 &&
      d.llhttp.error?.startsWith("HPE_INVALID_TRANSFER_ENCODING:") === true,
  },
  {
    id: "htab-in-connection-list",
    rfc: "RFC 9110 §5.6.1, §7.6.1",
    text:
      'Connection = #connection-option, and #element is element *( OWS "," OWS element ) with OWS = ' +
      '*( SP / HTAB ): "keep-alive<HTAB>, foo" keeps an HTTP/1.0 connection open. llhttp misses the ' +
      "token next to a tab, closes, and refuses the next request.",
    applies: (d) =>
      d.previous?.fields.some((f) => f[0].toLowerCase() === "connection" && f[1].includes("\t")) === true &&
      headRejected(d, "HPE_CLOSED_CONNECTION"),
  },
  {
    id: "chunk-ext-bws",
    rfc: "RFC 9112 §7.1.1",
    text: 'chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] ): whitespace before ";" and around "=".',
    applies: (d) =>
      d.head.chunked &&
      d.body !== undefined &&
      chunkLines(d.input, d.body.start, d.body.end).some((l) => /[ \t]/.test(l)) &&
      d.llhttp.msgs.length === d.index + 1 &&
      d.llhttp.msgs[d.index]?.complete === false,
  },
];
