/** @module engine/blob — a file or Blob as a response body: an open file's span (found by path, by descriptor, or behind a Bun.file), or bytes in memory; validators only from the file's own fstat(2); a file's bytes read at explicit offsets, never from a descriptor's position. */

import { closeSync, constants, fstatSync, openSync, readSync, type Stats } from "node:fs";
import { ContractError } from "../errors.ts";
import { isDigits } from "../http/bytes.ts";
import { libc, libcFailure } from "./libc.ts";
import type { Span } from "./ranges.ts";

/**
 * What a response sends of a file or a Blob. For a file: the descriptor, and the bytes
 * `start`..`start + size` of it, read at those offsets (pread(2), sendfile(2) with an offset),
 * so that nothing depends on, or moves, the descriptor's own position. For a Blob in memory
 * (a `new Blob`, a `File`, a slice of one): `fd` is -1 and `blob` holds the bytes.
 */
export interface FileBody {
  /** The open file, or -1 for a Blob in memory. */
  readonly fd: number;
  /** The response opened `fd` (a path), so closes it; the app's own descriptor is the app's to close. */
  readonly owned: boolean;
  /** Where in the file the body starts. */
  readonly start: number;
  /** The body's length. */
  readonly size: number;
  /**
   * The file's modification time (ms since the epoch), when the body is the whole file as
   * fstat(2) found it: its ETag and Last-Modified come from it. NaN otherwise (a Blob in memory,
   * a File, a slice, a descriptor read from past its start): a time that does not date these
   * bytes would validate other bytes as these.
   */
  readonly mtimeMs: number;
  /** The Blob in memory, or null for a file. */
  readonly blob: Blob | null;
}

const regular = (st: Stats, what: string): Stats => {
  if (!st.isFile()) throw new ContractError(`${what} is not a regular file`);
  return st;
};

/**
 * `path` opened for a response, whole, and what fstat(2) says of the open file: a response sends
 * the bytes of the file it opened, under the size and validators its head gave, even when the
 * path is replaced (a deploy's rename) or removed meanwhile, as nginx and Bun.serve do. What
 * open(2) throws (ENOENT: a 500 naming the path) is the caller's.
 */
export function openPath(path: string): FileBody {
  return openSpan(path, 0, Number.POSITIVE_INFINITY);
}

/** `path` opened, and the part of it from `offset` that is at most `length` long: the whole file's validators only when that is all of it. */
function openSpan(path: string, offset: number, length: number): FileBody {
  // O_NONBLOCK: a FIFO at the path would otherwise block the event loop in open(2) until a
  // writer came; it fails the regular-file check instead. Reads of a regular file ignore it.
  const fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const st = regular(fstatSync(fd), path);
    return span(fd, true, st, offset, length);
  } catch (e) {
    closeSync(fd);
    throw e;
  }
}

/** The part of an open file of `st` from `offset`, at most `length` bytes (the file's end clips it). */
function span(fd: number, owned: boolean, st: Stats, offset: number, length: number): FileBody {
  const start = Math.min(offset, st.size);
  const size = Math.min(length, st.size - start);
  const whole = start === 0 && size === st.size;
  return { fd, owned, start, size, mtimeMs: whole ? st.mtimeMs : Number.NaN, blob: null };
}

/** lseek(2)'s SEEK_CUR: where a descriptor stands. */
const SEEK_CUR = 1;

/**
 * An open descriptor as a body: its bytes from where it stands to the file's end, as PEP 3333's
 * file_wrapper reads a file-like object (read() goes on from the current position) and as
 * gunicorn's sendfile sends it (from lseek(fd, 0, SEEK_CUR)). Read at explicit offsets, the
 * position stays where the app left it. The position needs lseek(2) through the C library;
 * where that did not load, the descriptor cannot be sent as it stands, and ContractError says so.
 */
export function openDescriptor(fd: number, owned: boolean): FileBody {
  const st = regular(fstatSync(fd), `descriptor ${fd}`);
  const c = libc();
  if (c === null) {
    throw new ContractError(
      `descriptor ${fd}: where it stands needs lseek(2) from the C library, which did not load (${libcFailure()}); give a path or Bun.file(path)`,
    );
  }
  const at = c.lseek(fd, 0, SEEK_CUR);
  if (at < 0) throw new Error(`descriptor ${fd}: lseek failed (errno ${c.errno()})`);
  return span(fd, owned, st, at, Number.POSITIVE_INFINITY);
}

/** What Bun keeps of a Blob that is a file: the file by path or by descriptor, and a slice's offset into it. */
type FileRef = { path: string; fd: -1; offset: number } | { path: null; fd: number; offset: number };

const FD_REF = "FileRef (fd: ";
const PATH_REF = 'FileRef ("';
const OFFSET = ",\n  offset: ";
const OFFSET_END = "\n\n}";

/**
 * Where Bun reads a Blob from, when it is a file (`Bun.file(path)`, `Bun.file(fd)`, a slice of
 * either); null for one in memory. Bun's API gives a file's path (`name`) but neither its
 * descriptor nor a slice's offset; its inspection says both ("FileRef (fd: 5)", "offset: 10"),
 * and is read here, anchored at its start and its end (a path in between cannot pass for
 * either). test/file.test.ts pins that form: a Bun that changes it fails there, not in a response.
 */
export function fileRef(blob: Blob): FileRef | null {
  // A File's name is no path; a subclass may inspect as anything.
  if (blob instanceof File || Object.getPrototypeOf(blob) !== Blob.prototype) return null;
  const shown = Bun.inspect(blob);
  let offset = 0;
  if (shown.endsWith(OFFSET_END)) {
    const at = shown.lastIndexOf(OFFSET, shown.length - OFFSET_END.length);
    const digits = shown.slice(at + OFFSET.length, shown.length - OFFSET_END.length);
    offset = at < 0 ? Number.NaN : digitsValue(digits);
  }
  if (!Number.isSafeInteger(offset)) return null;
  const name = (blob as { name?: unknown }).name;
  if (typeof name === "string") return shown.startsWith(PATH_REF) ? { path: name, fd: -1, offset } : null;
  if (!shown.startsWith(FD_REF)) return null;
  const fd = digitsValue(shown.slice(FD_REF.length, shown.indexOf(")", FD_REF.length)));
  return Number.isSafeInteger(fd) ? { path: null, fd, offset } : null;
}

/** A run of decimal digits as a number; NaN for anything else. */
const digitsValue = (s: string): number => (isDigits(s) ? Number(s) : Number.NaN);

/**
 * A Blob as a body. A file by path is opened now (openPath): the whole of it, or a slice's part
 * at its offset; a file by descriptor is the app's: the whole of it as it stands
 * (openDescriptor), or a slice's part at its offset in the file (a slice names its bytes by
 * offset). A slice is whole only when it starts at 0 and reaches the file's end: Bun sizes a
 * slice of a file it has not yet stat'ed as asked, past the end. Anything else is in memory.
 * What open(2) throws for a missing file (ENOENT, naming it) is the caller's: a 500.
 */
export function openBlob(blob: Blob): FileBody {
  const ref = fileRef(blob);
  if (ref === null) return { fd: -1, owned: false, start: 0, size: blob.size, mtimeMs: Number.NaN, blob };
  const length = blob.size;
  if (ref.path !== null) return openSpan(ref.path, ref.offset, length);
  const st = regular(fstatSync(ref.fd), `descriptor ${ref.fd}`);
  if (ref.offset === 0 && length >= st.size) return openDescriptor(ref.fd, false);
  return span(ref.fd, false, st, ref.offset, length);
}

/** Close what the response opened (once it is sent, or not sent). */
export function closeBody(body: FileBody): void {
  if (body.owned) closeSync(body.fd);
}

/**
 * The bytes of `part` of `body` (offsets within the body), a block of at most `block` bytes at
 * a time, as the consumer asks: a response of any size holds one block. A file is read by
 * pread(2) at its offsets (synchronously, as sendfile(2) reads it), into a fresh buffer each
 * time, for the writer may still hold the last one queued; a body that ends early (a file that
 * shrank since it was sized) just ends, and the writer's length check says so.
 */
export function bodyBlocks(body: FileBody, part: Span, block: number): AsyncGenerator<Uint8Array> {
  if (body.blob === null) return fileBlocks(body.fd, body.start + part.start, part.length, block);
  const whole = part.start === 0 && part.length === body.size;
  return blobSlices(whole ? body.blob : body.blob.slice(part.start, part.start + part.length), part.length, block);
}

async function* fileBlocks(fd: number, at: number, length: number, block: number): AsyncGenerator<Uint8Array> {
  for (let left = length; left > 0; ) {
    const bytes = Buffer.allocUnsafe(Math.min(block, left));
    const got = readSync(fd, bytes, 0, bytes.length, at);
    if (got === 0) return;
    at += got;
    left -= got;
    yield got === bytes.length ? bytes : bytes.subarray(0, got);
  }
}

/** A Blob in memory (its first `size` bytes) in slices of `slice` bytes; synchronous when Bun already holds the bytes. */
async function* blobSlices(blob: Blob, size: number, slice: number): AsyncGenerator<Uint8Array> {
  for (let at = 0; at < size; at += slice) {
    const part = at === 0 && size <= slice && blob.size === size ? blob : blob.slice(at, Math.min(size, at + slice));
    const pending = part.bytes();
    const peeked = Bun.peek(pending);
    const bytes = peeked instanceof Promise ? await pending : (peeked as Uint8Array);
    if (bytes.length === 0) return;
    yield bytes;
  }
}
