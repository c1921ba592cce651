/** @module engine/libc — the C library through bun:ffi, loaded once for the whole process (fcntl for process/descriptors, sendfile and errno for engine/sendfile, lseek for engine/blob, sendmsg and setsockopt for engine/output, recv's peek for engine/connection, a listener's last drain for engine/server, the descriptor limit for engine/fd-room, execve for process/allocator); null where it cannot be loaded, and callers then do without. */

import { dlopen, FFIType, type Pointer, ptr, read } from "bun:ffi";

/** The few libc calls bunwsgi makes that Bun has no API for. */
export interface Libc {
  /** fcntl(2) with an int argument. */
  fcntl(fd: number, cmd: number, arg: number): number;
  /** sendfile(2) with `offset` as its off_t* (read and advanced by the kernel): bytes sent, 0 at the file's end, -1 on error. */
  sendfile(outFd: number, inFd: number, offset: BigInt64Array, count: number): number;
  /** lseek(2): the descriptor's new file offset (with SEEK_CUR and 0, where it stands), or -1 on error. */
  lseek(fd: number, offset: number, whence: number): number;
  /**
   * sendmsg(2) of `count` buffers whose addresses and lengths are in `iov` (struct iovec: a
   * pointer and a size_t each), with MSG_NOSIGNAL, and MSG_MORE when `more` (the kernel may
   * hold a last partial segment for the next send): bytes written, or -1 (errno says why).
   */
  sendv(fd: number, iov: BigUint64Array, count: number, more: boolean): number;
  /**
   * Send what a MSG_MORE send left held, now: setting TCP_NODELAY (which Bun's sockets have)
   * pushes pending frames (Linux tcp_sock_set_nodelay). 0, or -1 on error.
   */
  tcpPush(fd: number): number;
  /**
   * execve(2): this process becomes `path` run with `argv` (argv[0] included) and `env`
   * ("NAME=value" strings), keeping its PID and every descriptor not marked close-on-exec
   * (inherited listening sockets; Bun marks its own). Returns only on failure: -1.
   */
  execve(path: string, argv: readonly string[], env: readonly string[]): number;
  /**
   * Attach a socket filter that drops every packet (SO_ATTACH_FILTER, classic BPF "ret #0"): on a
   * listening TCP socket the kernel then drops new SYNs (the client retries them, and finds the
   * port's other sockets or none) while the connections already queued stay to be accepted.
   * 0, or -1 on error.
   */
  dropAll(fd: number): number;
  /**
   * recv(2) of one byte with MSG_PEEK | MSG_DONTWAIT, the byte left in the socket: 1 when bytes
   * wait to be read, 0 when what waits is the peer's end (FIN), -1 when nothing waits (EAGAIN)
   * or on error.
   */
  peek(fd: number): number;
  /** The soft RLIMIT_NOFILE (getrlimit(2)): descriptors this process may have open; Infinity for none, -1 on error. */
  maxDescriptors(): number;
  /** This thread's errno, read right after a call that returned -1 (errno(3): only then is it meaningful). */
  errno(): number;
}

/**
 * struct msghdr on the 64-bit Linux ABIs Bun ships (glibc and musl alike, little-endian): name,
 * namelen, iov, iovlen, control, controllen, flags, each in an 8-byte slot; only iov and iovlen
 * are set, the rest stay 0. Reused: calls are synchronous.
 */
const MSGHDR = new BigUint64Array(7);
const MSG_IOV = 2;
const MSG_IOVLEN = 3;
/** <sys/socket.h> and <netinet/tcp.h> on Linux. */
const MSG_MORE = 0x8000;
const MSG_NOSIGNAL = 0x4000;
const IPPROTO_TCP = 6;
const TCP_NODELAY = 1;
const ONE = new Int32Array([1]);
const SOL_SOCKET = 1;
const SO_ATTACH_FILTER = 26;
/** One struct sock_filter (code u16, jt u8, jf u8, k u32): BPF_RET | BPF_K with k = 0, "accept 0 bytes". */
const DROP_ALL = new Uint8Array([0x06, 0, 0, 0, 0, 0, 0, 0]);
/** struct sock_fprog on 64-bit Linux: len (u16, padded to 8) and a pointer to the filter. */
const DROP_PROG = new BigUint64Array(2);

/** recv(2) flags on Linux, and the byte a peek copies (never read). */
const MSG_PEEK = 0x2;
const MSG_DONTWAIT = 0x40;
const PEEKED = new Uint8Array(1);

/** <sys/resource.h> on Linux; struct rlimit is two rlim_t (64-bit): the soft limit, then the hard one. */
const RLIMIT_NOFILE = 7;
const RLIMIT = new BigUint64Array(2);
const RLIM_INFINITY = 0xffffffffffffffffn;

/** glibc's name, then musl's (Alpine) for the architectures Bun ships. */
const NAMES = ["libc.so.6", "libc.musl-x86_64.so.1", "libc.musl-aarch64.so.1"];

let loaded: Libc | null | undefined;
/** Why no library loaded, for a caller that cannot do without (workers). */
let failure = "";

function load(): Libc | null {
  const tried: string[] = [];
  for (const name of NAMES) {
    try {
      const { symbols } = dlopen(name, {
        fcntl: { args: [FFIType.i32, FFIType.i32, FFIType.i32], returns: FFIType.i32 },
        // ssize_t sendfile(int out_fd, int in_fd, off_t *offset, size_t count): off_t and ssize_t are 64-bit on every platform Bun runs on.
        sendfile: { args: [FFIType.i32, FFIType.i32, FFIType.ptr, FFIType.u64], returns: FFIType.i64_fast },
        // off_t lseek(int fd, off_t offset, int whence).
        lseek: { args: [FFIType.i32, FFIType.i64, FFIType.i32], returns: FFIType.i64_fast },
        // ssize_t sendmsg(int sockfd, const struct msghdr *msg, int flags).
        sendmsg: { args: [FFIType.i32, FFIType.ptr, FFIType.i32], returns: FFIType.i64_fast },
        // ssize_t recv(int sockfd, void *buf, size_t len, int flags).
        recv: { args: [FFIType.i32, FFIType.ptr, FFIType.u64, FFIType.i32], returns: FFIType.i64_fast },
        // int setsockopt(int fd, int level, int name, const void *value, socklen_t length).
        setsockopt: { args: [FFIType.i32, FFIType.i32, FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
        // int execve(const char *path, char *const argv[], char *const envp[]).
        execve: { args: [FFIType.ptr, FFIType.ptr, FFIType.ptr], returns: FFIType.i32 },
        // int getrlimit(int resource, struct rlimit *rlim).
        getrlimit: { args: [FFIType.i32, FFIType.ptr], returns: FFIType.i32 },
        __errno_location: { args: [], returns: FFIType.ptr },
      });
      return {
        fcntl: (fd, cmd, arg) => symbols.fcntl(fd, cmd, arg),
        sendfile: (outFd, inFd, offset, count) => Number(symbols.sendfile(outFd, inFd, offset, count)),
        lseek: (fd, offset, whence) => Number(symbols.lseek(fd, offset, whence)),
        sendv: (fd, iov, count, more) => {
          MSGHDR[MSG_IOV] = BigInt(ptr(iov));
          MSGHDR[MSG_IOVLEN] = BigInt(count);
          return Number(symbols.sendmsg(fd, ptr(MSGHDR), more ? MSG_NOSIGNAL | MSG_MORE : MSG_NOSIGNAL));
        },
        tcpPush: (fd) => symbols.setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, ptr(ONE), 4),
        dropAll: (fd) => {
          DROP_PROG[0] = 1n;
          DROP_PROG[1] = BigInt(ptr(DROP_ALL));
          return symbols.setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, ptr(DROP_PROG), 16);
        },
        peek: (fd) => Math.sign(Number(symbols.recv(fd, ptr(PEEKED), 1, MSG_PEEK | MSG_DONTWAIT))),
        maxDescriptors: () => {
          if (symbols.getrlimit(RLIMIT_NOFILE, ptr(RLIMIT)) !== 0) return -1;
          const soft = RLIMIT[0] as bigint;
          return soft === RLIM_INFINITY ? Number.POSITIVE_INFINITY : Number(soft);
        },
        execve: (path, argv, env) => {
          const strings = [path, ...argv, ...env].map((t) => Buffer.from(`${t}\0`, "utf8"));
          // NULL-terminated arrays of pointers into `strings`, which stay referenced until the call.
          const vector = (from: number, n: number): BigUint64Array => {
            const v = new BigUint64Array(n + 1);
            for (let i = 0; i < n; i++) v[i] = BigInt(ptr(strings[from + i] as Buffer));
            return v;
          };
          const args = vector(1, argv.length);
          const vars = vector(1 + argv.length, env.length);
          return symbols.execve(ptr(strings[0] as Buffer), ptr(args), ptr(vars));
        },
        errno: () => read.i32(symbols.__errno_location() as Pointer, 0),
      };
    } catch (e) {
      tried.push(`${name}: ${(e as Error).message}`);
    }
  }
  failure = tried.join("; ");
  return null;
}

/** The C library, loaded on first use; null when bun:ffi or the library is unavailable. */
export function libc(): Libc | null {
  if (loaded === undefined) loaded = load();
  return loaded;
}

/** Why libc() is null ("" when it is not). */
export function libcFailure(): string {
  libc();
  return failure;
}
