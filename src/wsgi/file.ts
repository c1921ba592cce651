/** @module wsgi/file — PEP 3333's optional wsgi.file_wrapper: a file (path, Bun.file or open descriptor) returned as a result, sent sized from its size (by sendfile(2) on a plain socket, else in large reads at explicit offsets), HEAD without reading it, the descriptor closed on every path. */

import { closeSync, fstatSync, statSync } from "node:fs";
import { bodyBlocks, closeBody, type FileBody, fileRef, openBlob, openDescriptor, openPath } from "../engine/blob.ts";
import { ContractError } from "../errors.ts";

/** Bytes read per slice unless the app asks for another block size. */
export const DEFAULT_BLOCK = 512 * 1024;

/** What environ["wsgi.file_wrapper"] wraps: a path, a Blob (`Bun.file(…)`), or an open file descriptor. */
export type FileLike = string | Blob | number;

/**
 * A file returned by the app as its result (PEP 3333 "Optional Platform-Specific File
 * Handling"). The server sends it with Content-Length from its size (unless the app gave one):
 * on a plain socket by sendfile(2) (engine/sendfile), on TLS and for a Blob in memory in reads
 * of `blockSize` bytes into fresh buffers (engine/blob). A path is opened once, as the response
 * starts, and that file is sent. A descriptor is sent from where it stands to its end, as
 * PEP 3333's wrapped file would be read on from its position; it is read at explicit offsets,
 * so its position is left as the app left it. It is also an async iterable of those blocks,
 * for middleware that iterates results (closed when that iteration ends). `close()` closes a
 * descriptor the app handed over, or the file a path opened; the server calls it once,
 * whatever ends the response.
 */
export class FileWrapper implements AsyncIterable<Uint8Array> {
  readonly blockSize: number;
  /** What the app gave. */
  private readonly file: FileLike;
  /** What open() found to send; null before, and once closed. */
  private body: FileBody | null = null;
  private closed = false;

  constructor(file: FileLike, blockSize: number = DEFAULT_BLOCK) {
    if (!Number.isInteger(blockSize) || blockSize < 1) {
      throw new ContractError(`wsgi.file_wrapper: blockSize must be a positive integer, got ${String(blockSize)}`);
    }
    this.blockSize = blockSize;
    this.file = file;
    // Checked here, in the app's call, so that a missing file (ENOENT) is a 500 with its name,
    // not an empty 200; the file sent is the one open() opens.
    if (typeof file === "number") {
      // fstat throws EBADF for a descriptor that is not open.
      if (!fstatSync(file).isFile()) throw new ContractError(`wsgi.file_wrapper: descriptor ${file} is not a regular file`);
    } else if (typeof file === "string") {
      if (!statSync(file).isFile()) throw new ContractError(`wsgi.file_wrapper: ${file} is not a regular file`);
    } else if (file instanceof Blob) {
      const path = fileRef(file)?.path ?? null;
      if (path !== null && !statSync(path).isFile()) throw new ContractError(`wsgi.file_wrapper: ${path} is not a regular file`);
    } else {
      throw new ContractError("wsgi.file_wrapper takes a path, a Blob (Bun.file) or a file descriptor");
    }
  }

  /**
   * What is sent, found as the server starts sending it (engine/blob): a path opened now, so
   * that its size, validators and bytes are the open file's (a file replaced or removed
   * meanwhile is sent whole as it was, never spliced with its successor); a descriptor's
   * position read now. What open(2) throws (the file is gone since the app named it) is the
   * app's error: a 500.
   */
  open(): FileBody {
    if (this.body !== null) return this.body;
    if (this.closed) throw new ContractError("wsgi.file_wrapper: the file was closed before it was sent");
    const file = this.file;
    this.body =
      typeof file === "number" ? openDescriptor(file, true) : typeof file === "string" ? openPath(file) : openBlob(file);
    return this.body;
  }

  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    return this.iterate();
  }

  /**
   * The whole body, a block at a time, for middleware that iterates the result instead of the
   * server sending it; the file is closed once the iteration ends or is abandoned (return()), so
   * a middleware that forgets close() leaks no descriptor.
   */
  private async *iterate(): AsyncGenerator<Uint8Array> {
    try {
      const body = this.open();
      yield* bodyBlocks(body, { start: 0, length: body.size }, this.blockSize);
    } finally {
      this.close();
    }
  }

  /** Close the descriptor the app handed over, or the file open() opened (once); nothing to close for a Blob in memory or the app's Bun.file(fd). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    const body = this.body;
    this.body = null;
    if (body !== null) closeBody(body);
    else if (typeof this.file === "number") closeSync(this.file);
  }
}

/** environ["wsgi.file_wrapper"]. */
export const fileWrapper = (file: FileLike, blockSize?: number): FileWrapper => new FileWrapper(file, blockSize);
