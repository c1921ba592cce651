// The differential fuzzer's other side, run by node (not Bun): each input on stdin, framed as a
// 4-byte little-endian length and its bytes, is parsed by Node's own llhttp with no lenient
// flags, exactly as node:http's server would; one JSON line per input goes to stdout.
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const { HTTPParser, methods } = require("node:_http_common");

const MAX_HEADER_SIZE = 1 << 24;

function parse(input) {
  const parser = new HTTPParser();
  parser.initialize(HTTPParser.REQUEST, {}, MAX_HEADER_SIZE, 0);
  const msgs = [];
  let pending = [];
  let pendingUrl = "";
  let current = null;
  // As in node's _http_common: a long head arrives in kOnHeaders calls (fields and the URL so
  // far) before kOnHeadersComplete, which then has no fields or URL; after it they are trailers.
  parser[HTTPParser.kOnHeaders] = (headers, url) => {
    if (current === null) {
      pending = pending.concat(headers);
      pendingUrl += url;
    } else {
      current.trailers = current.trailers.concat(headers);
    }
  };
  parser[HTTPParser.kOnHeadersComplete] = (major, minor, headers, method, url, _status, _message, upgrade) => {
    current = {
      method: methods[method],
      url: url === undefined || url === "" ? pendingUrl : url,
      versionMajor: major,
      versionMinor: minor,
      headers: headers === undefined ? pending : pending.concat(headers),
      upgrade: Boolean(upgrade),
      body: "",
      trailers: [],
      complete: false,
    };
    pending = [];
    pendingUrl = "";
    msgs.push(current);
    return 0;
  };
  parser[HTTPParser.kOnBody] = (chunk) => {
    current.body += chunk.toString("latin1");
  };
  parser[HTTPParser.kOnMessageComplete] = () => {
    current.complete = true;
    current = null;
  };
  const ret = parser.execute(input);
  const error = ret instanceof Error ? `${ret.code}: ${ret.reason}` : null;
  return { msgs, error, consumed: ret instanceof Error ? -1 : ret };
}

const chunks = [];
process.stdin.on("data", (c) => chunks.push(c));
process.stdin.on("end", () => {
  const all = Buffer.concat(chunks);
  const out = [];
  let pos = 0;
  while (pos + 4 <= all.length) {
    const n = all.readUInt32LE(pos);
    const input = all.subarray(pos + 4, pos + 4 + n);
    pos += 4 + n;
    out.push(JSON.stringify(parse(input)));
  }
  process.stdout.write(`${out.join("\n")}\n`);
});
