/** @module bench/stress/slowloris — keep-alive wrk throughput alone, then beside hundreds of slow-head connections (a byte every 1–2 s), then alone again, with `--timeouts-header 3`: throughput kept (≥ 0.9), every slow connection closed by the server within the header deadline + 1 s + the 1 s tick, fds back to idle. */

import { check, idleFds, mib, now, RawConn, runScript, sleep, startServer, stats, wrk, wrkErrors } from "./lib.ts";

const HEADER = 3;
const LIMIT_S = HEADER + 1 + 1; // deadline + 1 s, + the server's 1 s timer tick

await runScript("slowloris", 90, async (opts) => {
  const seconds = opts.fast ? 3 : 5;
  const attackers = opts.fast ? 300 : 600;
  const server = await startServer(["--timeouts-header", String(HEADER), "--timeouts-keep-alive", "5"]);
  const idle = await idleFds(server);
  await wrk(server.port, { seconds: 1 }); // warm-up

  const base1 = await wrk(server.port, { seconds });

  // The attack: keep `attackers` slow heads open; each one that closes is replaced, until stop.
  const head = "GET / HTTP/1.1\r\nHost: stress\r\nUser-Agent: slowloris\r\nX-a: ";
  const closeTimes: number[] = [];
  let opened = 0;
  let answered408 = 0;
  let refused = 0;
  let stillOpen = 0;
  let stop = false;
  const maxOpened = attackers * 20; // count bound besides the time bound
  const slowOne = async (): Promise<void> => {
    while (!stop && opened < maxOpened) {
      opened++;
      let c: RawConn;
      try {
        c = await RawConn.open(server.port);
      } catch {
        refused++;
        await sleep(200);
        continue;
      }
      const first = now();
      let i = 0;
      // A byte every 1–2 s, never finishing the head.
      while (c.open && !stop && i < 1000) {
        c.write(head[i % head.length] as string);
        i++;
        await c.waitClosed(1000 + Math.random() * 1000);
      }
      // Stopped: send no more, but give the server its deadline to close this one too.
      if (c.open) await c.waitClosed(Math.max(0, first + (LIMIT_S + 1) * 1000 - now()));
      if (!c.open && !c.closedByUs) {
        closeTimes.push((c.closedAt - first) / 1000);
        if (c.text().startsWith("HTTP/1.1 408")) answered408++;
      } else stillOpen++;
      c.close();
    }
  };
  const crowd: Promise<void>[] = [];
  for (let i = 0; i < attackers; i++) {
    crowd.push(slowOne());
    if (i % 50 === 49) await sleep(20);
  }
  await sleep(1500); // the crowd is in place
  const fdsUnderAttack = server.fds();
  const attacked = await wrk(server.port, { seconds });
  const peakFds = Math.max(fdsUnderAttack, server.fds());
  stop = true;
  await Promise.all(crowd);

  const base2 = await wrk(server.port, { seconds });
  const back = await server.settleFds(idle, 8000);
  const alive = server.alive;
  const peakRss = server.peakRssKiB();
  await server.stop();

  const baseline = (base1.rps + base2.rps) / 2;
  const ratio = attacked.rps / baseline;
  const close = stats(closeTimes);
  const wrkBad = attacked.read + attacked.timeout + attacked.connect + base1.timeout + base2.timeout;
  const pass =
    ratio >= 0.9 && close.n > 0 && close.max <= LIMIT_S && stillOpen === 0 && back.fds <= idle && wrkBad === 0 && alive;
  console.log(
    `  wrk alone ${base1.rps.toFixed(0)} and ${base2.rps.toFixed(0)} req/s, under attack ${attacked.rps.toFixed(0)} req/s (${wrkErrors(attacked)})`,
  );
  console.log(
    `  ${attackers} slow heads kept open (${opened} opened, peak server fds ${peakFds}); closed by the server after ${close.min.toFixed(2)}–${close.max.toFixed(2)} s (median ${close.median.toFixed(2)}), ${answered408} with 408; ${stillOpen} never closed by the server; ${refused} refused`,
  );
  return {
    pass,
    figures:
      `throughput ratio ${ratio.toFixed(2)} (${check(ratio >= 0.9)} ≥ 0.90; ${attacked.rps.toFixed(0)} vs ${baseline.toFixed(0)} req/s), ` +
      `slow heads closed ${close.n} max ${close.max.toFixed(2)}s (${check(close.max <= LIMIT_S && stillOpen === 0)} ≤ ${LIMIT_S}s, ${stillOpen} left open), ` +
      `fds idle ${idle} → ${back.fds} after ${back.ms} ms (${check(back.fds <= idle)}), wrk errors ${wrkBad}, RSS peak ${mib(peakRss)} MiB` +
      `${alive ? "" : `, server died (${server.exitStatus})`}`,
  };
});
