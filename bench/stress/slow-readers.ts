/** @module bench/stress/slow-readers — a 64 MiB streamed response (64 KiB chunks from an async generator) read by slow-but-steady clients (16 KiB every 100 ms, ~160 KiB/s): none is cut; then by stalled clients (request, never read): each is cut within the write timeout / min-rate grace + 3 s (seen as the server's fd count); peak RSS stays bounded. `--timeouts-write 2 --limits-min-response-rate 1000 --timeouts-min-response-rate-grace 2`. */

import { check, ExactReader, idleFds, KiB, knownFlags, mib, now, RawConn, runScript, sleep, startServer, stats } from "./lib.ts";

const WRITE = 2;
const GRACE = 2;
const CUT_LIMIT_S = Math.max(WRITE, GRACE) + 3;
const STEP = 16 * KiB;
const REQUEST = "GET /big?mib=64 HTTP/1.1\r\nHost: stress\r\n\r\n";
const RSS_BOUND_MIB = 200; // over idle: a server buffering each 64 MiB stream would need N × 64 MiB

await runScript("slow-readers", 90, async (opts) => {
  const readers = opts.fast ? 20 : 30;
  const readSeconds = opts.fast ? 6 : 9;
  const stalledN = 10;
  const { flags, missing } = knownFlags([
    ["--timeouts-write", String(WRITE)],
    ["--limits-min-response-rate", "1000"],
    ["--timeouts-min-response-rate-grace", String(GRACE)],
  ]);
  const server = await startServer(flags);
  const idle = await idleFds(server);
  const idleRss = server.rssKiB();

  // Steady readers: 16 KiB every 100 ms, read exactly (see ExactReader), for readSeconds.
  const steady = async (): Promise<{ got: number; open: boolean; cutAt: number; error: string | null }> => {
    const c = ExactReader.open(server.port);
    c.send(REQUEST);
    const start = now();
    let cutAt = Number.NaN;
    while (now() - start < readSeconds * 1000) {
      await sleep(100);
      c.read(STEP);
      if (c.ended !== null) {
        cutAt = (now() - start) / 1000;
        break;
      }
    }
    const r = { got: c.received, open: c.ended === null, cutAt, error: c.ended };
    c.close();
    return r;
  };
  let peakRss = 0;
  const sampler = setInterval(() => {
    peakRss = Math.max(peakRss, server.rssKiB());
  }, 250);
  const steadyResults = await Promise.all(Array.from({ length: readers }, steady));
  await server.settleFds(idle, 3000);

  // Stalled readers: request, then never read; the server should drop them (its fd count says when).
  const stalled: RawConn[] = [];
  for (let i = 0; i < stalledN; i++) {
    const c = await RawConn.open(server.port, { keep: false });
    c.pause();
    c.write(REQUEST);
    stalled.push(c);
  }
  const t0 = now();
  await sleep(200);
  const withStalled = server.fds();
  let cutS = Number.NaN;
  const stalledDeadline = t0 + (CUT_LIMIT_S + 4) * 1000;
  while (now() < stalledDeadline) {
    if (server.fds() <= idle) {
      cutS = (now() - t0) / 1000;
      break;
    }
    await sleep(100);
  }
  const stalledLeft = server.fds() - idle;
  // Let them read what the kernel holds, so they see the end too.
  let stalledGot = 0;
  for (const c of stalled) c.resume();
  await Promise.all(stalled.map((c) => c.waitClosed(2000)));
  for (const c of stalled) {
    stalledGot = Math.max(stalledGot, c.received);
    c.close();
  }
  clearInterval(sampler);
  peakRss = Math.max(peakRss, server.peakRssKiB());
  const back = await server.settleFds(idle, 5000);
  const alive = server.alive;
  await server.stop();

  const got = stats(steadyResults.map((r) => r.got));
  const cut = steadyResults.filter((r) => !r.open);
  // A steady reader takes 160 KiB/s: it must have had at least 60 % of that over the run (the
  // first reads wait for the stream to start; a cut reader gets far less).
  const minExpected = 0.6 * 160 * 1024 * readSeconds;
  const steadyOk = cut.length === 0 && got.min >= minExpected;
  const stalledOk = !Number.isNaN(cutS) && cutS <= CUT_LIMIT_S;
  const rssOk = peakRss - idleRss <= RSS_BOUND_MIB * 1024;
  console.log(
    `  ${readers} steady readers for ${readSeconds}s: received ${mib(got.min / 1024)}–${mib(got.max / 1024)} MiB (median ${mib(got.median / 1024)}), ${cut.length} cut` +
      (cut.length > 0
        ? ` (after ${stats(cut.map((r) => r.cutAt)).min.toFixed(1)}–${stats(cut.map((r) => r.cutAt)).max.toFixed(1)} s, ${cut[0]?.error ?? "FIN"}; received ${mib(stats(cut.map((r) => r.got)).max / 1024)} MiB at most)`
        : ""),
  );
  console.log(
    `  ${stalledN} stalled readers: server fds ${withStalled} (idle ${idle}), all dropped after ${Number.isNaN(cutS) ? `— (${stalledLeft} still held after ${CUT_LIMIT_S + 4}s)` : `${cutS.toFixed(1)} s`}; at most ${mib(stalledGot / 1024)} MiB reached one of them`,
  );
  const missingNote = missing.length > 0 ? `unknown flag ${missing.join(", ")} (ran without it), ` : "";
  return {
    pass: missing.length === 0 && steadyOk && stalledOk && rssOk && back.fds <= idle && alive,
    figures:
      `${missingNote}steady readers cut ${cut.length}/${readers}, min received ${mib(got.min / 1024)} MiB (${check(steadyOk)} ≥ ${mib(minExpected / 1024)} MiB, none cut), ` +
      `stalled readers dropped after ${Number.isNaN(cutS) ? "never" : `${cutS.toFixed(1)}s`} (${check(stalledOk)} ≤ ${CUT_LIMIT_S}s), ` +
      `RSS idle ${mib(idleRss)} peak ${mib(peakRss)} MiB (${check(rssOk)} ≤ idle + ${RSS_BOUND_MIB}), fds idle ${idle} → ${back.fds} (${check(back.fds <= idle)})` +
      `${alive ? "" : `, server died (${server.exitStatus})`}`,
  };
});
