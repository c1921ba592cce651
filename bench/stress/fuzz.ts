/** @module bench/stress/fuzz — random and mutated requests (bit flips, inserted CR/LF/NUL, truncations, huge numbers, Upgrade combos with bodies, chunked bodies cut short) on fresh connections, with every server timeout at 2 s and a hang detector: each connection must get well-formed responses or be closed by the server before its deadline (largest timeout + 3 s); the server must survive and its fds go back to idle. `--count K` (20 000; 3 000 with --fast), `--seed N`. */

import { check, get, hasFlag, idleFds, now, type Parsed, parseResponses, pool, RawConn, runScript, startServer } from "./lib.ts";

const T = 2;
const DEADLINE_MS = (T + 3) * 1000;
const CONCURRENCY = 200;

/** mulberry32: a small seeded PRNG, so a run can be replayed with --seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Case {
  kind: string;
  bytes: Uint8Array;
}

function generator(rand: () => number, paths: string[]): () => Case {
  const int = (n: number): number => Math.floor(rand() * n);
  const pick = <X>(xs: readonly X[]): X => xs[int(xs.length)] as X;
  const HUGE = [
    "99999999999999999999999",
    "18446744073709551616",
    "9007199254740993",
    "-1",
    "0x10",
    "1e3",
    "+5",
    " 7",
    "4294967296",
  ];
  const body = (n: number): string => "b".repeat(n);
  const chunked = (sizes: number[]): string => `${sizes.map((n) => `${n.toString(16)}\r\n${body(n)}\r\n`).join("")}0\r\n\r\n`;
  const path = (): string => pick(paths);
  const templates: Array<[string, () => string]> = [
    ["get", () => `GET ${path()} HTTP/1.1\r\nHost: fuzz\r\n\r\n`],
    ["get-1.0", () => `GET ${path()} HTTP/1.0\r\n\r\n`],
    [
      "post-length",
      () => {
        const n = int(300);
        return `POST ${path()} HTTP/1.1\r\nHost: fuzz\r\nContent-Length: ${n}\r\n\r\n${body(n)}`;
      },
    ],
    [
      "post-chunked",
      () =>
        `POST ${path()} HTTP/1.1\r\nHost: fuzz\r\nTransfer-Encoding: chunked\r\n\r\n${chunked([1 + int(50), int(200), 1 + int(9)])}`,
    ],
    [
      "upgrade",
      () => {
        const n = int(40);
        const framing = pick([
          `Content-Length: ${n}\r\n\r\n${body(n)}`,
          `Transfer-Encoding: chunked\r\n\r\n${chunked([n + 1])}`,
          "\r\n",
        ]);
        const conn = pick(["Upgrade", "keep-alive, upgrade", "close, Upgrade", "Upgrade, close", "keep-alive"]);
        const ver = pick(["1.1", "1.1", "1.0"]);
        return `GET ${paths.includes("/upgrade") ? pick(["/upgrade", path()]) : path()} HTTP/${ver}\r\nHost: fuzz\r\nUpgrade: ${pick(["websocket", "h2c", "echo/1, x"])}\r\nConnection: ${conn}\r\n${framing}raw-after-head`;
      },
    ],
    [
      "pipelined",
      () =>
        `GET ${path()} HTTP/1.1\r\nHost: fuzz\r\n\r\nPOST /read HTTP/1.1\r\nHost: fuzz\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\nHost: fuzz\r\n\r\n`,
    ],
    [
      "huge-number",
      () =>
        pick([
          `POST /read HTTP/1.1\r\nHost: fuzz\r\nContent-Length: ${pick(HUGE)}\r\n\r\nxyz`,
          `POST /read HTTP/1.1\r\nHost: fuzz\r\nTransfer-Encoding: chunked\r\n\r\n${pick(["ffffffffffffffffff", "-1", "1_0", "0x5", "7fffffffffffffff"])}\r\nabc\r\n0\r\n\r\n`,
          `POST /read HTTP/1.1\r\nHost: fuzz\r\nContent-Length: 5\r\nContent-Length: ${pick(HUGE)}\r\n\r\nhello`,
          `POST /read HTTP/1.1\r\nHost: fuzz\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\n\r\n`,
        ]),
    ],
    [
      "chunked-cut",
      () => {
        const full = `POST /read HTTP/1.1\r\nHost: fuzz\r\nTransfer-Encoding: chunked\r\n\r\n${chunked([10 + int(50), 5])}`;
        return full.slice(0, full.indexOf("\r\n\r\n") + 4 + 1 + int(40));
      },
    ],
    ["garbage", () => Array.from({ length: 1 + int(200) }, () => String.fromCharCode(int(256))).join("")],
  ];
  const mutate = (b: number[]): number[] => {
    const at = (): number => int(b.length + 1);
    switch (int(7)) {
      case 0: {
        const i = int(b.length);
        b[i] = ((b[i] as number) ^ (1 << int(8))) & 0xff;
        break;
      }
      case 1:
        b.splice(at(), 0, pick([13, 10, 0, 13, 10, 32, 9, 0x7f, 0xff, 58]));
        break;
      case 2:
        b.splice(int(b.length), 1);
        break;
      case 3:
        b.length = int(b.length); // truncation
        break;
      case 4: {
        // A number somewhere becomes huge.
        const s = Buffer.from(b).toString("latin1");
        const m = [...s.matchAll(/\d+/g)];
        const hit = m.length > 0 ? m[int(m.length)] : undefined;
        if (hit?.index !== undefined) {
          const r = s.slice(0, hit.index) + pick(HUGE) + s.slice(hit.index + hit[0].length);
          return [...Buffer.from(r, "latin1")];
        }
        break;
      }
      case 5: {
        const s = Buffer.from(b)
          .toString("latin1")
          .replace(pick([/\r\n/, /\r\n/g, /: /, / HTTP/]), pick(["\n", "\r", " \r\n", ":", "\r\n "]));
        return [...Buffer.from(s, "latin1")];
      }
      case 6:
        b.splice(
          at(),
          0,
          ...Buffer.from(
            pick(["\r\nTransfer-Encoding: chunked", "\r\nContent-Length: 2", "\r\n Upgrade: x", "\r\nConnection: upgrade"]),
          ),
        );
        break;
    }
    return b;
  };
  return () => {
    const [kind, make] = pick(templates);
    let b = [...Buffer.from(make(), "latin1")];
    const mutations = kind === "garbage" ? 0 : pick([0, 0, 1, 1, 2, 3]);
    for (let i = 0; i < mutations; i++) b = mutate(b);
    return { kind: mutations > 0 ? `${kind}+${mutations}` : kind, bytes: Uint8Array.from(b) };
  };
}

type Outcome = "answered" | "closed" | "hang" | "malformed" | "refused";

/** One case on a fresh connection: send it, then wait for a finished exchange, the server's close, or the deadline. */
async function feed(port: number, c: Case): Promise<{ outcome: Outcome; parsed: Parsed | null }> {
  let conn: RawConn;
  try {
    conn = await RawConn.open(port);
  } catch {
    return { outcome: "refused", parsed: null };
  }
  conn.write(c.bytes);
  let parsed = parseResponses(new Uint8Array(0), false);
  // Done early: a malformed answer, or a complete keep-alive response with nothing after it.
  const finished = (): boolean => {
    parsed = parseResponses(conn.bytes(), !conn.open);
    if (parsed.malformed !== null) return true;
    if (!conn.open) return true;
    const last = parsed.responses[parsed.responses.length - 1];
    return last !== undefined && !parsed.upgraded && !last.close && parsed.rest === 0;
  };
  await conn.waitFor(finished, DEADLINE_MS);
  finished();
  const closedByServer = !conn.open;
  conn.close();
  if (parsed.malformed !== null) return { outcome: "malformed", parsed };
  if (closedByServer) return { outcome: parsed.responses.length > 0 ? "answered" : "closed", parsed };
  const last = parsed.responses[parsed.responses.length - 1];
  if (last !== undefined && !parsed.upgraded && !last.close && parsed.rest === 0) return { outcome: "answered", parsed };
  return { outcome: "hang", parsed };
}

const show = (b: Uint8Array): string => JSON.stringify(Buffer.from(b).toString("latin1")).slice(0, 240);

await runScript("fuzz", 150, async (opts) => {
  const count = opts.count ?? (opts.fast ? 3000 : 20_000);
  const capSeconds = opts.fast ? 25 : 60;
  const seed = opts.seed ?? Math.floor(Math.random() * 2 ** 31);
  const flags = ["--timeouts-header", "--timeouts-body", "--timeouts-keep-alive", "--timeouts-write"].flatMap((f) => [
    f,
    String(T),
  ]);
  const optional = ["--timeouts-upgraded", "--timeouts-app"];
  const present = optional.filter(hasFlag);
  for (const f of present) flags.push(f, String(T));
  // A path whose app never ends by itself is fed only when a timeout can end it.
  const paths = ["/", "/", "/read", "/read", "/stream"];
  if (present.includes("--timeouts-upgraded")) paths.push("/upgrade");
  if (present.includes("--timeouts-app")) paths.push("/sleep");
  const server = await startServer(flags);
  const idle = await idleFds(server);
  const next = generator(prng(seed), paths);
  const cases = (function* () {
    const stopAt = now() + capSeconds * 1000;
    for (let i = 0; i < count && now() < stopAt && server.alive; i++) yield next();
  })();

  const tally = new Map<Outcome, number>();
  const hangKinds = new Map<string, number>();
  const examples: string[] = [];
  let fed = 0;
  const t0 = now();
  await pool(cases, CONCURRENCY, async (c) => {
    const { outcome, parsed } = await feed(server.port, c);
    fed++;
    tally.set(outcome, (tally.get(outcome) ?? 0) + 1);
    if (outcome === "hang" || outcome === "malformed" || outcome === "refused") {
      const k = `${outcome} ${c.kind.split("+")[0]}`;
      hangKinds.set(k, (hangKinds.get(k) ?? 0) + 1);
      if (examples.length < 4)
        examples.push(
          `${outcome}: sent ${show(c.bytes)} → ${parsed?.malformed ?? `${parsed?.responses.map((r) => r.status).join(",") || "no response"}${parsed?.upgraded ? " (upgraded)" : ""}, still open`}`,
        );
    }
  });
  const elapsed = (now() - t0) / 1000;
  const health = await get(server.port, "/");
  const back = await server.settleFds(idle, 6000);
  const alive = server.alive;
  const stacks = (server.log.match(/\n\s+at /g) ?? []).length;
  await server.stop();

  const n = (o: Outcome): number => tally.get(o) ?? 0;
  console.log(
    `  seed ${seed}: ${fed} cases in ${elapsed.toFixed(1)} s (${CONCURRENCY} at a time, ${flags.join(" ")}); answered ${n("answered")}, closed without answer ${n("closed")}, hangs ${n("hang")}, malformed ${n("malformed")}, refused ${n("refused")}`,
  );
  if (hangKinds.size > 0) console.log(`  by kind: ${[...hangKinds].map(([k, v]) => `${k} ${v}`).join(", ")}`);
  for (const e of examples) console.log(`  ${e}`);
  if (present.length < optional.length)
    console.log(
      `  (no ${optional.filter((f) => !present.includes(f)).join(", ")} in this CLI: the /upgrade echo or /sleep app not fed)`,
    );
  if (stacks > 0) console.log(`  server error log has ${stacks} stack-trace lines; last 1500 chars:\n${server.log.slice(-1500)}`);
  const pass =
    n("hang") === 0 && n("malformed") === 0 && n("refused") === 0 && alive && health === 200 && back.fds <= idle && fed > 0;
  return {
    pass,
    figures:
      `${fed}/${count} cases (seed ${seed}), hangs ${n("hang")} (${check(n("hang") === 0)}), malformed ${n("malformed")} (${check(n("malformed") === 0)}), ` +
      `refused ${n("refused")}, server ${alive ? (health === 200 ? "alive, health 200" : `alive, health ${health || "no answer"}`) : `died (${server.exitStatus})`}, ` +
      `fds idle ${idle} → ${back.fds} (${check(back.fds <= idle)})`,
  };
});
