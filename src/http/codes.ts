/** @module http/codes — every error the parser, the body decoder and the PROXY protocol reader return: a stable code, its status and message, and its lower-case name (the access log's and the metrics' `reason`). Codes are appended, never renumbered. */

/**
 * Error codes returned (negated) by {@link RequestParser.execute}. Each maps to a status and a
 * message through {@link PARSE_ERRORS}; only the connection turns one into bytes.
 */
export const ParseError = {
  BAD_REQUEST_LINE: 1,
  BAD_METHOD: 2,
  BAD_TARGET: 3,
  BAD_VERSION: 4,
  VERSION_NOT_SUPPORTED: 5,
  URI_TOO_LONG: 6,
  HEADERS_TOO_LARGE: 7,
  TOO_MANY_HEADERS: 8,
  BARE_LF: 9,
  BARE_CR: 10,
  NUL: 11,
  BAD_HEADER_NAME: 12,
  SPACE_BEFORE_COLON: 13,
  BAD_HEADER_VALUE: 14,
  BAD_FOLD: 15,
  FOLD_IN_FRAMING: 16,
  MISSING_HOST: 17,
  DUPLICATE_HOST: 18,
  BAD_HOST: 19,
  BAD_CONTENT_LENGTH: 20,
  CL_AND_TE: 21,
  TE_NOT_CHUNKED: 22,
  UNKNOWN_CODING: 23,
  TE_IN_HTTP10: 24,
  EXPECTATION_FAILED: 25,
  TARGET_FORM: 26,
  BAD_AUTHORITY: 27,
  TARGET_USERINFO: 28,
  BAD_SCHEME: 29,
  OBS_FOLD: 30,
  METHOD_TOO_LONG: 31,
  DUPLICATE_CONTENT_LENGTH: 32,
  BAD_TRANSFER_ENCODING: 33,
} as const;

/** [status, message] for each {@link ParseError} code. */
export const PARSE_ERRORS: Readonly<Record<number, readonly [number, string]>> = {
  1: [400, "malformed request line"],
  2: [400, "invalid character in method"],
  3: [400, "invalid request-target"],
  4: [400, "malformed HTTP version"],
  5: [505, "HTTP version not supported"],
  6: [414, "request line too long"],
  7: [431, "header section too large"],
  8: [431, "too many header fields"],
  9: [400, "bare LF line terminator"],
  10: [400, "bare CR in request head"],
  11: [400, "NUL byte in request head"],
  12: [400, "invalid character in header field name"],
  13: [400, "whitespace between header field name and colon"],
  14: [400, "invalid character in header field value"],
  15: [400, "obs-fold line without a preceding field"],
  16: [400, "obs-fold in Content-Length, Transfer-Encoding or Host"],
  17: [400, "missing Host header field"],
  18: [400, "more than one Host header field"],
  19: [400, "invalid Host header field value"],
  20: [400, "invalid Content-Length"],
  21: [400, "both Content-Length and Transfer-Encoding"],
  22: [400, "final transfer coding is not chunked"],
  23: [501, "unsupported transfer coding"],
  24: [400, "Transfer-Encoding in an HTTP/1.0 request"],
  25: [417, "unsupported expectation"],
  26: [400, "request-target form not allowed with this method"],
  27: [400, "invalid authority in request-target"],
  28: [400, "userinfo in request-target"],
  29: [400, "absolute-form scheme is not http or https"],
  30: [400, "obs-fold in a request head"],
  31: [501, "method longer than any the server implements"],
  32: [400, "more than one Content-Length value"],
  33: [400, "malformed Transfer-Encoding"],
};

/** Error codes returned (negated) by {@link BodyDecoder.execute}; see {@link BODY_ERRORS}. */
export const BodyError = {
  BAD_CHUNK_SIZE: 1,
  CHUNK_SIZE_OVERFLOW: 2,
  BAD_CHUNK_EXT: 3,
  CHUNK_EXT_TOO_LONG: 4,
  BAD_CHUNK_END: 5,
  BAD_TRAILER: 6,
  TRAILERS_TOO_LARGE: 7,
  TOO_LARGE: 8,
  WS_AFTER_CHUNK_SIZE: 9,
  CHUNK_SIZE_TOO_LONG: 10,
  FORBIDDEN_TRAILER: 11,
  OBS_FOLD_IN_TRAILER: 12,
  CHUNK_OVERHEAD: 13,
} as const;

/** [status, message] for each {@link BodyError} code. */
export const BODY_ERRORS: Readonly<Record<number, readonly [number, string]>> = {
  1: [400, "invalid chunk size"],
  2: [400, "chunk size overflow"],
  3: [400, "invalid chunk extension"],
  4: [400, "chunk extension too long"],
  5: [400, "chunk data not followed by CRLF"],
  6: [400, "invalid trailer field"],
  7: [431, "trailer section too large"],
  8: [413, "request body too large"],
  9: [400, "whitespace after chunk size without a chunk extension"],
  10: [400, "chunk size line too long"],
  11: [400, "framing, routing or connection field in trailer section"],
  12: [400, "obs-fold in trailer section"],
  13: [400, "chunked framing out of proportion to its data"],
};

/**
 * Why a connection's PROXY protocol header (v1 or v2) was refused: returned (negated) by
 * {@link ProxyParser.execute}, or found by the engine (untrusted, timeout, closed). The
 * connection is closed without a response: there is no HTTP to answer in yet.
 */
export const ProxyError = {
  PROXY_MISSING: 1,
  PROXY_V1_TOO_LONG: 2,
  PROXY_V1_MALFORMED: 3,
  PROXY_V1_BAD_ADDRESS: 4,
  PROXY_V1_BAD_PORT: 5,
  PROXY_V2_BAD_VERSION: 6,
  PROXY_V2_BAD_COMMAND: 7,
  PROXY_V2_BAD_FAMILY: 8,
  PROXY_V2_TOO_LONG: 9,
  PROXY_V2_SHORT_ADDRESS: 10,
  PROXY_V2_BAD_TLV: 11,
  PROXY_WRONG_VERSION: 12,
  PROXY_UNTRUSTED: 13,
  PROXY_TIMEOUT: 14,
  PROXY_CLOSED: 15,
} as const;

/** The message of each {@link ProxyError} code. */
export const PROXY_ERRORS: Readonly<Record<number, string>> = {
  1: "the connection does not start with a PROXY protocol header",
  2: "PROXY v1 line longer than 107 bytes",
  3: "malformed PROXY v1 line",
  4: "PROXY v1 address not of its family",
  5: "PROXY v1 port not 0 to 65535",
  6: "PROXY v2 version is not 2",
  7: "PROXY v2 command is neither LOCAL nor PROXY",
  8: "PROXY v2 address family or transport not supported",
  9: "PROXY v2 header longer than bunwsgi accepts",
  10: "PROXY v2 address block shorter than its family's",
  11: "PROXY v2 TLV runs past the header",
  12: "PROXY header of a version this bind does not accept",
  13: "PROXY header from a peer not in proxy_protocol_from",
  14: "PROXY header not complete within timeouts.header",
  15: "connection closed before its PROXY header was complete",
};

/**
 * What an operator should check when a {@link ProxyError} comes from a proxy rather than a
 * stray client: the warning's second half. Empty for the two that a connection without any
 * header causes too (a TCP health check, a port scan): those are no sign of a misconfiguration.
 */
export const PROXY_HINTS: Readonly<Record<number, string>> = {
  1: "is the proxy sending one (HAProxy send-proxy or send-proxy-v2 on its server line)? If it is not meant to, turn proxy_protocol off on this bind",
  12: "the proxy sends the other version: set this bind's proxy_protocol to it, or to auto",
  13: "list the proxy's address in proxy_protocol_from",
  14: "",
  15: "",
};
/** The hint for the malformed headers (codes 2 to 11). */
export const PROXY_HINT_MALFORMED =
  "the peer does not speak the PROXY protocol as its specification (HAProxy's proxy-protocol.txt) says";

/** Each code's name in lower case ("bare_cr", "bad_chunk_size"): stable names for logs and metrics. */
const names = (table: Readonly<Record<string, number>>): string[] => {
  const out: string[] = [];
  for (const [name, code] of Object.entries(table)) out[code] = name.toLowerCase();
  return out;
};
export const PARSE_REASONS: readonly string[] = names(ParseError);
export const BODY_REASONS: readonly string[] = names(BodyError);
export const PROXY_REASONS: readonly string[] = names(ProxyError);
