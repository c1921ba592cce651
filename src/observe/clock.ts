/** @module observe/clock — the wall-clock strings logs and the Date header use, recomputed at most once a second, and request timing. */

const pad2 = (n: number): string => (n < 10 ? `0${n}` : `${n}`);
const DAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/**
 * Clock strings recomputed at most once per second: the Date header and the log timestamp.
 * They stay valid until a timer at the next second boundary marks them stale (as node:http
 * does): a response reads no wall clock for its Date.
 */
class Clock {
  private second = -1;
  private stale = true;
  private dateLine = new Uint8Array(0);
  private local = "";
  private clfTime = "";
  private readonly expireBound = (): void => {
    this.stale = true;
  };

  private refresh(): void {
    if (!this.stale) return;
    this.stale = false;
    const now = Date.now();
    // unref(): the clock never keeps a process alive. A timer that fires a little early finds
    // the same second and waits the rest of it.
    setTimeout(this.expireBound, 1000 - (now % 1000)).unref();
    const second = Math.floor(now / 1000);
    if (second === this.second) return;
    this.second = second;
    const d = new Date(second * 1000);
    // IMF-fixdate (RFC 9110 §5.6.7).
    const utcDate = `${DAYS[d.getUTCDay()]}, ${pad2(d.getUTCDate())} ${MONTHS[d.getUTCMonth()]} ${d.getUTCFullYear()} ${pad2(d.getUTCHours())}:${pad2(d.getUTCMinutes())}:${pad2(d.getUTCSeconds())} GMT`;
    const line = `Date: ${utcDate}\r\n`;
    const bytes = new Uint8Array(line.length);
    for (let i = 0; i < line.length; i++) bytes[i] = line.charCodeAt(i);
    this.dateLine = bytes;
    // gevent logs datetime.now() without microseconds: local time, "YYYY-MM-DD HH:MM:SS".
    this.local = `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} ${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
    // Apache's %t: "10/Oct/2000:13:55:36 -0700", local time with its UTC offset.
    const off = -d.getTimezoneOffset();
    const abs = Math.abs(off);
    const zone = `${off < 0 ? "-" : "+"}${pad2(Math.floor(abs / 60))}${pad2(abs % 60)}`;
    this.clfTime = `${pad2(d.getDate())}/${MONTHS[d.getMonth()]}/${d.getFullYear()}:${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())} ${zone}`;
  }

  /** Apache common-log time, "10/Oct/2000:13:55:36 -0700". */
  clf(): string {
    this.refresh();
    return this.clfTime;
  }

  /** "Date: <IMF-fixdate>\r\n" as bytes. */
  dateHeader(): Uint8Array {
    this.refresh();
    return this.dateLine;
  }

  /** The second (since the epoch) that dateHeader()'s Date says: a response's validators are judged against it. */
  dateSecond(): number {
    this.refresh();
    return this.second;
  }

  /** Local "YYYY-MM-DD HH:MM:SS", gevent's access-log timestamp. */
  localTimestamp(): string {
    this.refresh();
    return this.local;
  }
}

export const clock = new Clock();

/** The process's time origin, constant: read once instead of through a getter on every call. */
const TIME_ORIGIN = performance.timeOrigin;

/** Seconds since the epoch with sub-millisecond precision, like Python's time.time(). */
export const timeNow = (): number => (TIME_ORIGIN + performance.now()) / 1000;

/** The epoch seconds of a performance.now() reading given in seconds (a time the engine already took). */
export const epochOf = (perfSeconds: number): number => TIME_ORIGIN / 1000 + perfSeconds;
