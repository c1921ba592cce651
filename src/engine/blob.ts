/** @module engine/blob — a Blob or file read in large slices for a response body: one read into one fresh buffer per slice, synchronous when Bun already holds the bytes. */

/**
 * The bytes of `blob` (its first `size` bytes) in slices of `slice` bytes. A file is read a
 * slice at a time as the consumer asks, so a response of any size holds one slice; one that
 * ends early (a file that shrank since its size was taken) just ends, and the writer's length
 * check says so.
 */
export async function* blobSlices(blob: Blob, size: number, slice: number): AsyncGenerator<Uint8Array> {
  for (let at = 0; at < size; at += slice) {
    const part = at === 0 && size <= slice && blob.size === size ? blob : blob.slice(at, Math.min(size, at + slice));
    const pending = part.bytes();
    const peeked = Bun.peek(pending);
    const bytes = peeked instanceof Promise ? await pending : (peeked as Uint8Array);
    if (bytes.length === 0) return;
    yield bytes;
  }
}
