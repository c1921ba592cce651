/** @module process/lines — a worker's stdout or stderr re-emitted by the master in whole lines, so lines of different workers never interleave. */

/** The most a line may grow without a newline before it is written anyway (a runaway write). */
const MAX_PARTIAL = 1024 * 1024;

/** Copy a worker's pipe to `write` one batch of whole lines at a time, until the pipe ends. */
export async function relayLines(stream: ReadableStream<Uint8Array>, write: (text: string) => void): Promise<void> {
  const decoder = new TextDecoder();
  let partial = "";
  try {
    for await (const chunk of stream) {
      const text = partial + decoder.decode(chunk, { stream: true });
      const end = text.lastIndexOf("\n") + 1;
      if (end > 0) write(text.slice(0, end));
      partial = text.slice(end);
      if (partial.length > MAX_PARTIAL) {
        write(`${partial}\n`);
        partial = "";
      }
    }
  } catch {
    // The worker was killed mid-write: what arrived is written below.
  }
  const rest = partial + decoder.decode();
  if (rest !== "") write(rest.endsWith("\n") ? rest : `${rest}\n`);
}
