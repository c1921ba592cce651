/** @module bench/stress/body-trickle — POST bodies (Content-Length 10000) trickled at a byte every 0.5–2 s to an app reading wsgi.input, beside compliant slow uploads at 2 KB/s, with `--limits-min-body-rate 100 --timeouts-min-body-rate-grace 2`: the tricklers get 408 and a close within grace + 3 s, the compliant ones 200. */

import { check, exchange, idleFds, now, parseResponses, RawConn, runScript, sleep, startServer, stats } from "./lib.ts";

const GRACE = 2;
const LIMIT_S = GRACE + 3;
const LENGTH = 10_000;
const TRICKLERS = 5;
const COMPLIANT = 3;

const head = `POST /read HTTP/1.1\r\nHost: stress\r\nContent-Type: application/octet-stream\r\nContent-Length: ${LENGTH}\r\n\r\n`;

await runScript("body-trickle", 60, async () => {
  const server = await startServer(["--limits-min-body-rate", "100", "--timeouts-min-body-rate-grace", String(GRACE)]);
  const idle = await idleFds(server);

  /** A byte every 0.5–2 s after the head; how long after the head the server answered and closed. */
  const trickle = async (): Promise<{ status: number; answeredS: number; closedS: number; sent: number }> => {
    const c = await RawConn.open(server.port);
    c.write(head);
    const start = now();
    let sent = 0;
    // Bounded: the whole body at most, and no longer than the limit + 5 s.
    while (c.open && sent < LENGTH && now() - start < (LIMIT_S + 5) * 1000) {
      if (await c.waitClosed(500 + Math.random() * 1500)) break;
      if (c.received > 0) break; // answered: stop sending, wait for the close
      c.write("x");
      sent++;
    }
    await c.waitClosed(Math.max(0, start + (LIMIT_S + 5) * 1000 - now()));
    const parsed = parseResponses(c.bytes(), !c.open);
    const r = {
      status: parsed.responses[0]?.status ?? 0,
      answeredS: c.firstByteAt < 0 ? Number.NaN : (c.firstByteAt - start) / 1000,
      closedS: c.open || c.closedByUs ? Number.NaN : (c.closedAt - start) / 1000,
      sent,
    };
    c.close();
    return r;
  };

  /** 200 bytes every 100 ms (2 KB/s): the whole body in 5 s. */
  const compliant = async (): Promise<{ status: number; body: string }> => {
    const c = await RawConn.open(server.port);
    c.write(head);
    const piece = "y".repeat(200);
    for (let sent = 0; sent < LENGTH && c.open && c.received === 0; sent += piece.length) {
      c.write(piece);
      await sleep(100);
    }
    const { parsed } = await new Promise<{ parsed: ReturnType<typeof parseResponses> }>((resolve) => {
      void c
        .waitFor(() => parseResponses(c.bytes(), !c.open).responses.length > 0, 5000)
        .then(() => resolve({ parsed: parseResponses(c.bytes(), !c.open) }));
    });
    c.close();
    const r = parsed.responses[0];
    return { status: r?.status ?? 0, body: r ? Buffer.from(r.body).toString("latin1").trim() : "" };
  };

  const [slow, good] = await Promise.all([
    Promise.all(Array.from({ length: TRICKLERS }, trickle)),
    Promise.all(Array.from({ length: COMPLIANT }, compliant)),
  ]);
  const health = (await exchange(server.port, "GET / HTTP/1.1\r\nHost: stress\r\nConnection: close\r\n\r\n")).parsed.responses[0]
    ?.status;
  const back = await server.settleFds(idle, 5000);
  const alive = server.alive;
  await server.stop();

  const got408 = slow.filter((s) => s.status === 408).length;
  const closeT = stats(slow.map((s) => (Number.isNaN(s.closedS) ? Number.POSITIVE_INFINITY : s.closedS)));
  const goodOk = good.filter((g) => g.status === 200 && g.body === `read ${LENGTH}`).length;
  for (const s of slow)
    console.log(
      `  trickler: ${s.sent} bytes sent, status ${s.status || "none"}, answered after ${s.answeredS.toFixed(2)} s, closed after ${s.closedS.toFixed(2)} s`,
    );
  for (const g of good) console.log(`  compliant 2 KB/s: status ${g.status || "none"}, body ${JSON.stringify(g.body)}`);
  const slowOk = got408 === TRICKLERS && closeT.max <= LIMIT_S;
  const pass = slowOk && goodOk === COMPLIANT && back.fds <= idle && alive && health === 200;
  return {
    pass,
    figures:
      `tricklers 408 ${got408}/${TRICKLERS}, closed max ${closeT.max.toFixed(2)}s (${check(slowOk)} ≤ ${LIMIT_S}s), ` +
      `compliant 2 KB/s 200 ${goodOk}/${COMPLIANT} (${check(goodOk === COMPLIANT)}), fds idle ${idle} → ${back.fds} (${check(back.fds <= idle)})` +
      `${alive && health === 200 ? "" : `, server ${alive ? `health status ${health}` : `died (${server.exitStatus})`}`}`,
  };
});
