/** @module wsgi/file — PEP 3333's optional wsgi.file_wrapper: a file (path, Bun.file or open descriptor) returned as a result, sent sized from its size (by sendfile(2) on a plain socket, else in large reads), HEAD without reading it, the descriptor closed on every path. */

import { closeSync, fstatSync, statSync } from "node:fs";
import { blobSlices } from "../engine/blob.ts";
import { pathOf, pinFile } from "../engine/sendfile.ts";
import { ContractError } from "../errors.ts";

/** Bytes read per slice unless the app asks for another block size. */
export const DEFAULT_BLOCK = 512 * 1024;

/** What environ["wsgi.file_wrapper"] wraps: a path, a Blob (`Bun.file(…)`), or an open file descriptor. */
export type FileLike = string | Blob | number;

/**
 * A file returned by the app as its result (PEP 3333 "Optional Platform-Specific File
 * Handling"). The server sends it with Content-Length from the file's size (unless the app gave
 * one): on a plain socket by sendfile(2) (engine/sendfile) when it is a path, an open descriptor
 * or a whole `Bun.file(path)`; on TLS, and for a Blob in memory, in reads of `blockSize` bytes
 * into fresh buffers. A path is opened once, as the response starts, and that file is sent. It is also an async iterable of those blocks, for middleware that iterates
 * results. `close()` closes a descriptor the app handed over; the server calls it once, whatever
 * ends the response.
 */
export class FileWrapper implements AsyncIterable<Uint8Array> {
  /** What is read: the file as given, and once open() has opened a path, that open file. */
  blob: Blob;
  /** Bytes to send: the file's size when the wrapper was made, and once opened, the open file's. */
  size: number;
  /** When the file was last modified (ms since the epoch; NaN when unknown): its ETag and Last-Modified. */
  mtimeMs: number;
  readonly blockSize: number;
  /** The path to open as the response starts (see open()); null for a descriptor or a Blob that is no whole file. */
  private path: string | null;
  /** The app's descriptor, or the one open() opened; -1 for none. */
  private fd: number;

  constructor(file: FileLike, blockSize: number = DEFAULT_BLOCK) {
    if (!Number.isInteger(blockSize) || blockSize < 1) {
      throw new ContractError(`wsgi.file_wrapper: blockSize must be a positive integer, got ${String(blockSize)}`);
    }
    this.blockSize = blockSize;
    this.fd = -1;
    this.path = null;
    if (typeof file === "number") {
      // A regular file only: its size is the Content-Length (fstat throws EBADF for a bad one).
      const st = fstatSync(file);
      if (!st.isFile()) throw new ContractError(`wsgi.file_wrapper: descriptor ${file} is not a regular file`);
      this.fd = file;
      this.blob = Bun.file(file);
      this.size = st.size;
      this.mtimeMs = st.mtimeMs;
    } else if (typeof file === "string") {
      // Fails here, in the app's call, for a missing file (ENOENT): a 500 with the path, not an empty 200.
      const st = statSync(file);
      if (!st.isFile()) throw new ContractError(`wsgi.file_wrapper: ${file} is not a regular file`);
      this.blob = Bun.file(file);
      this.size = st.size;
      this.mtimeMs = st.mtimeMs;
      this.path = file;
    } else if (file instanceof Blob) {
      this.blob = file;
      this.size = file.size;
      // A Bun.file() or a File knows its time; a Blob made in memory does not.
      this.mtimeMs = "lastModified" in file ? Number(file.lastModified) : Number.NaN;
      this.path = pathOf(file);
    } else {
      throw new ContractError("wsgi.file_wrapper takes a path, a Blob (Bun.file) or a file descriptor");
    }
  }

  /**
   * The server starts sending it: a path is opened now, and the size, time and bytes sent are the
   * open file's (engine/sendfile's pinFile), so a file replaced or removed meanwhile is sent
   * whole as it was, never spliced with its successor. close() closes it. What open(2) throws
   * (the file is gone since the app named it) is the app's error: a 500.
   */
  open(): void {
    if (this.path === null) return;
    const pinned = pinFile(this.path);
    this.path = null;
    this.fd = pinned.fd;
    this.blob = Bun.file(pinned.fd);
    this.size = pinned.size;
    this.mtimeMs = pinned.mtimeMs;
  }

  /** The open file's descriptor, for sendfile(2) (after open()); -1 for a Blob that is no whole file. */
  get descriptor(): number {
    return this.fd;
  }

  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    return this.blocks(0, this.size);
  }

  /** `length` bytes from `start`, a block at a time (a Range's part). */
  blocks(start: number, length: number): AsyncGenerator<Uint8Array> {
    const whole = start === 0 && length === this.size;
    return blobSlices(whole ? this.blob : this.blob.slice(start, start + length), length, this.blockSize);
  }

  /** Close the descriptor the app handed over or open() opened (once); nothing to close for a Blob. */
  close(): void {
    const fd = this.fd;
    this.fd = -1;
    if (fd >= 0) closeSync(fd);
  }
}

/** environ["wsgi.file_wrapper"]. */
export const fileWrapper = (file: FileLike, blockSize?: number): FileWrapper => new FileWrapper(file, blockSize);
