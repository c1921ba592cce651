/** @module bench/servers/cpu-work — the workers scenarios' CPU-bound route: an FNV-1a checksum over a fixed buffer, the same code in every server, its length calibrated once by bench/run.ts. */

/** Fill `words` with xorshift32 from a fixed seed: deterministic bytes that differ all along (the bench's files use it too). */
export function xorshiftFill(words: Uint32Array): void {
  let x = 2463534242;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    words[i] = x >>> 0;
  }
}

/** 4 KiB of fixed bytes, read round and round. */
const BUFFER = (() => {
  const words = new Uint32Array(1024);
  xorshiftFill(words);
  return new Uint8Array(words.buffer);
})();

/** FNV-1a over `bytes` bytes of the buffer, wrapping round it: plain JavaScript work, about 1 ns a byte. */
export function checksum(bytes: number): number {
  let h = 2166136261;
  for (let i = 0; i < bytes; i++) h = Math.imul(h ^ (BUFFER[i & 4095] as number), 16777619);
  return h >>> 0;
}

/** The bytes each request checksums: BENCH_CPU_BYTES, set by bench/run.ts from its calibration (the same for every server). */
export const CPU_BYTES = Number(process.env.BENCH_CPU_BYTES ?? "500000");

/** The CPU route's response body: the checksum, so the work cannot be skipped and every server's answer can be compared. */
export const cpuBody = (): string => `${checksum(CPU_BYTES)}\n`;

/**
 * The bytes that take `ms` milliseconds of this process's CPU: after a warm-up (the JIT's optimising tier), the fastest
 * of several timed runs (the fastest is the least disturbed by other work on the machine), scaled.
 */
export function calibrate(ms: number): { bytes: number; msPerRun: number } {
  const probe = 1_000_000;
  for (let i = 0; i < 50; i++) checksum(probe);
  let best = Number.POSITIVE_INFINITY;
  for (let i = 0; i < 30; i++) {
    const t = performance.now();
    checksum(probe);
    best = Math.min(best, performance.now() - t);
  }
  const bytes = Math.round((probe * ms) / best / 1000) * 1000;
  let check = Number.POSITIVE_INFINITY;
  for (let i = 0; i < 30; i++) {
    const t = performance.now();
    checksum(bytes);
    check = Math.min(check, performance.now() - t);
  }
  return { bytes, msPerRun: check };
}
