/** @module http/bytes — byte constants, character classes and byte-level helpers shared by the protocol code (no I/O). */

export const CR = 13;
export const LF = 10;
export const SP = 32;
export const HTAB = 9;
export const COLON = 58;

/** Bun's Buffer has Node's untyped latin1Slice, a little cheaper than toString("latin1", s, e). */
interface Latin1Slice {
  latin1Slice(start: number, end: number): string;
}
export const latin1 = (buf: Uint8Array, s: number, e: number): string =>
  e > s ? (buf as unknown as Latin1Slice).latin1Slice(s, e) : "";

/** Runs up to this long are compared or measured by a loop here: cheaper than a native call. */
export const SHORT_RUN = 64;

/** Whether buf holds a's bytes at `at`. */
export function sameBytes(a: Uint8Array, buf: Uint8Array, at: number): boolean {
  // Every request buffer is a Buffer (Bun hands reads over as Buffers): its native compare is faster for long runs.
  if (a.length > SHORT_RUN) return (buf as Buffer).compare(a, 0, a.length, at, at + a.length) === 0;
  for (let i = 0; i < a.length; i++) if (a[i] !== buf[at + i]) return false;
  return true;
}

/** Whether buf holds the latin-1 bytes of s at `at`. */
export function sameLatin1(s: string, buf: Uint8Array, at: number): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) !== buf[at + i]) return false;
  return true;
}

/** The value of a hex digit, or -1. */
export const hexValue = (c: number): number => {
  if (c >= 48 && c <= 57) return c - 48;
  const l = c | 0x20;
  return l >= 97 && l <= 102 ? l - 87 : -1;
};

/** tchar (RFC 9110 §5.6.2). */
export const TCHAR = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") {
  TCHAR[c.charCodeAt(0)] = 1;
}
/** field-vchar / SP / HTAB / obs-text (RFC 9110 §5.5): everything but CTLs and DEL. */
export const VALUE_CHAR = new Uint8Array(256);
for (let i = 0; i < 256; i++) VALUE_CHAR[i] = i === HTAB || (i >= 0x20 && i !== 0x7f) ? 1 : 0;

export const lower = (b: number): number => (b >= 65 && b <= 90 ? b | 0x20 : b);

/** Case-insensitive compare of buf[at, at+word.length) with a lowercase ASCII word. */
export function equalsLower(buf: Uint8Array, at: number, word: Uint8Array): boolean {
  for (let i = 0; i < word.length; i++) if (lower(buf[at + i] as number) !== word[i]) return false;
  return true;
}

/** The bytes of an ASCII string. */
export const ascii = (s: string): Uint8Array => Uint8Array.from(s, (c) => c.charCodeAt(0));

/** OWS = *( SP / HTAB ) (RFC 9110 §5.6.3): whether b is one of its bytes. */
export const isOWS = (b: number): boolean => b === SP || b === HTAB;
export const isDigit = (b: number): boolean => b >= 48 && b <= 57;
export const isAlpha = (b: number): boolean => (b | 0x20) >= 0x61 && (b | 0x20) <= 0x7a;
export const isHex = (b: number): boolean => isDigit(b) || ((b | 0x20) >= 0x61 && (b | 0x20) <= 0x66);

/** One to 15 ASCII digits (every such number is a safe integer): a Content-Length, a port, a descriptor. */
export const isDigits = (s: string): boolean => {
  if (s.length === 0 || s.length > 15) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return true;
};
