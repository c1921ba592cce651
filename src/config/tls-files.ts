/** @module config/tls-files — the [tls] files checked before any listener is: each one PEM of the kind its key names, the key decrypted by the passphrase and matching the certificate, the ciphers known, and each certificate's dates. */

import { createPrivateKey, type KeyObject, X509Certificate } from "node:crypto";
import { readProblem } from "./files.ts";
import { tlsOptions } from "./options.ts";
import type { Config } from "./resolve.ts";

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;
const NO_CERTIFICATE = 'no "-----BEGIN CERTIFICATE-----" line';

/** Every certificate of a PEM text: parsed, or why it does not parse. */
const certificates = (text: string): Array<X509Certificate | string> =>
  [...text.matchAll(PEM_CERTIFICATE)].map((m) => {
    try {
      return new X509Certificate(m[0]);
    } catch (e) {
      return (e as Error).message;
    }
  });

/** An OpenSSL error's reason ("BAD_DECRYPT"), the part of its message an operator can look up. */
const reason = (e: unknown): string => (e as Error).message.split(":").pop() ?? "";

const date = (d: Date): string =>
  d
    .toISOString()
    .replace("T", " ")
    .replace(/\.\d+Z$/, " UTC");

/**
 * What is wrong with the TLS material of `c`, each error naming the setting, its place and its
 * file; and a warning for each certificate outside its dates (a renewal may be on its way, so
 * that does not stop a start). A file that is not set or cannot be read is skipped: that is
 * config/rules' error.
 */
export function checkTls(c: Config): { errors: string[]; warnings: string[] } {
  const errors: string[] = [];
  const warnings: string[] = [];
  const readable = (key: string): string | null => {
    const path = c.str(key);
    return path !== null && readProblem(path) === null ? path : null;
  };
  const [certPath, keyPath, caPath] = [readable("tls.cert"), readable("tls.key"), readable("tls.ca")];
  /** An error about `key`, at the place of `at` (a passphrase that is missing is found at tls.key). */
  const fail = (key: string, why: string, at = key): number => errors.push(`${c.where(at)}: ${key}: ${why}`);
  const dated = (key: string, path: string, list: Array<X509Certificate | string>): void => {
    const now = Date.now();
    list.forEach((x, i) => {
      if (typeof x === "string") {
        fail(key, `${path}: certificate ${i + 1} is not a valid PEM certificate (${x.split(":").pop()})`);
        return;
      }
      const which = `${c.where(key)}: ${key}: ${path}: certificate ${JSON.stringify(x.subject.replace(/\n/g, ", "))}`;
      const [from, to] = [date(x.validFromDate), date(x.validToDate)];
      if (x.validToDate.getTime() < now) warnings.push(`${which} expired on ${to} (valid from ${from})`);
      else if (x.validFromDate.getTime() > now) warnings.push(`${which} is not valid until ${from} (valid to ${to})`);
    });
  };

  let leaf: X509Certificate | null = null;
  if (certPath !== null) {
    const certText = c.tlsFile("tls.cert");
    const chain = certificates(certText);
    if (chain.length === 0) {
      fail(
        "tls.cert",
        /PRIVATE KEY-----/.test(certText)
          ? `${certPath} holds a private key, not a certificate: are tls.cert and tls.key swapped?`
          : `${certPath} is not a PEM certificate: ${NO_CERTIFICATE}`,
      );
    }
    dated("tls.cert", certPath, chain);
    if (chain[0] instanceof X509Certificate) leaf = chain[0];
  }
  const key = keyPath === null ? null : privateKey(keyPath);
  if (leaf !== null && key !== null && !leaf.checkPrivateKey(key)) {
    fail("tls.key", `${keyPath} does not match tls.cert ${certPath}: it is not the key of that certificate`);
  }
  if (caPath !== null) {
    const cas = certificates(c.tlsFile("tls.ca"));
    if (cas.length === 0) fail("tls.ca", `${caPath} holds no PEM certificate: ${NO_CERTIFICATE}`);
    dated("tls.ca", caPath, cas);
  }
  if (errors.length > 0 || certPath === null || keyPath === null || (c.str("tls.ca") !== null && caPath === null)) {
    return { errors, warnings };
  }

  // The files are sound: what is left (the cipher list) only Bun's own TLS library can judge.
  try {
    const tls = tlsOptions(c);
    Bun.listen({ hostname: "127.0.0.1", port: 0, ...(tls !== undefined ? { tls } : {}), socket: { data() {} } }).stop(true);
  } catch (e) {
    const message = (e as Error).message;
    const ciphers = c.str("tls.ciphers");
    if (ciphers !== null && /cipher/i.test(message)) {
      fail(
        "tls.ciphers",
        `${JSON.stringify(ciphers)} names no TLS 1.2 cipher Bun's TLS library (BoringSSL) knows, such as "ECDHE+AESGCM:ECDHE+CHACHA20" (TLS 1.3 suites are not chosen here)`,
      );
    } else if (caPath !== null && /^Invalid CA\b/.test(message)) {
      fail("tls.ca", `Bun's TLS library refuses ${caPath} (${message})`);
    } else if (/^error:[0-9a-f]{8}:|^Invalid /.test(message)) {
      fail("tls.cert", `Bun cannot serve tls.cert ${certPath} with tls.key ${keyPath} (${message})`);
    }
  }
  return { errors, warnings };

  /** The key of `path`, decrypted with tls.passphrase when it is encrypted; null after failing why not. */
  function privateKey(path: string): KeyObject | null {
    const keyText = c.tlsFile("tls.key");
    const passphrase = c.str("tls.passphrase");
    try {
      const key = createPrivateKey({ key: keyText });
      if (passphrase !== null) fail("tls.passphrase", `has no effect: tls.key ${path} is not encrypted`);
      return key;
    } catch (e) {
      if ((e as { code?: string }).code === "ERR_MISSING_PASSPHRASE") {
        if (passphrase === null) fail("tls.passphrase", `needed: tls.key ${path} is encrypted`, "tls.key");
        else {
          try {
            return createPrivateKey({ key: keyText, passphrase });
          } catch (e) {
            fail("tls.passphrase", `does not decrypt tls.key ${path} (${reason(e)})`);
          }
        }
      } else if (!/PRIVATE KEY-----/.test(keyText)) {
        fail(
          "tls.key",
          keyText.includes("-----BEGIN CERTIFICATE-----")
            ? `${path} holds a certificate, not a private key: are tls.cert and tls.key swapped?`
            : `${path} is not a PEM private key: no "-----BEGIN PRIVATE KEY-----" line (nor RSA or EC PRIVATE KEY)`,
        );
      } else fail("tls.key", `${path} is not a usable private key (${reason(e)})`);
      return null;
    }
  }
}
