/** @module test/proxy-bytes — PROXY protocol headers as bytes, for the reader's and the server's tests. */

export const SIG = [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a];
export const ascii = (s: string): number[] => [...Buffer.from(s, "latin1")];
export const u16 = (n: number): number[] => [n >> 8, n & 0xff];
export const tlv = (type: number, value: number[]): number[] => [type, ...u16(value.length), ...value];

/** A v2 header: version/command byte, family byte, then the body (address block and TLVs). */
export function v2(verCmd: number, fam: number, body: number[]): Uint8Array {
  return Uint8Array.from([...SIG, verCmd, fam, ...u16(body.length), ...body]);
}
export const V2_TCP4 = (tlvs: number[] = []): Uint8Array =>
  v2(0x21, 0x11, [203, 0, 113, 7, 192, 0, 2, 1, ...u16(51234), ...u16(443), ...tlvs]);
