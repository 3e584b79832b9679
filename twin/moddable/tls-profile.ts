// The TLS a Moddable device speaks (modules/crypt/ssl), as data and checks the twin's TLS socket
// enforces: TLS 1.2 only, the cipher suites ssl_ciphersuites.js offers for the manifest's
// `config.tls`, secp256r1 only, signature_algorithms {ECDSA, RSA} × SHA-256, an RSA client key,
// and a server certificate check at least as strict as ssl_cert.js's verify().
import { X509Certificate, createPrivateKey, type KeyObject } from "node:crypto";
import { AsnConvert } from "@peculiar/asn1-schema";
import { BasicConstraints, Certificate, SubjectAlternativeName, id_ce_basicConstraints, id_ce_subjectAltName } from "@peculiar/asn1-x509";
import config from "./mc-config.ts";
import { loadManifest } from "../runtime/manifest.ts";
import { PinError, checkPin, pinMatches } from "../../modules/pins/spki-pin.ts";

export type TlsFailure =
  /** the chain does not lead to `secure.certificate` through valid signatures by CA certificates */
  | "untrusted-chain"
  /** the server sent one certificate: Moddable matches the name only on a certificate with an issuer in the chain */
  | "leaf-only-chain"
  | "expired"
  | "not-yet-valid"
  /** no SAN DNS name or IPv4 address of the leaf matches the server name (the CN is never used) */
  | "name-mismatch"
  /** the leaf's public key is none of `secure.pins` (the board's pinned ssl/cert, modules/link/pinned-cert.ts) */
  | "pin-mismatch"
  /** no server name to check the certificate against */
  | "no-server-name"
  /** `secure.clientKey` is not an unencrypted RSA PKCS#8 key: Moddable signs only with RSA */
  | "unsupported-client-key"
  /** version, cipher suite or curve negotiation failed, or the server sent an alert during the handshake */
  | "handshake"
  /** a fatal alert or a bad record after the handshake */
  | "protocol";

/** A TLS connection failure, with the reason the link layer reports. */
export class TlsError extends Error {
  override name = "TlsError";
  constructor(readonly reason: TlsFailure, detail: string) {
    super(`TLS ${reason}: ${detail}`);
  }
}

export type KeyExchange = "RSA" | "DHE_RSA" | "ECDHE_RSA";

export interface CipherSuite {
  readonly id: number;
  /** OpenSSL's name, for node:tls and broker configuration */
  readonly openssl: string;
  readonly keyExchange: KeyExchange;
  readonly mode: "CBC" | "GCM";
  /** HMAC length in CBC suites */
  readonly macBytes: number;
}

const RSA_SUITES: readonly CipherSuite[] = [
  { id: 0x002f, openssl: "AES128-SHA", keyExchange: "RSA", mode: "CBC", macBytes: 20 },
  { id: 0x0035, openssl: "AES256-SHA", keyExchange: "RSA", mode: "CBC", macBytes: 20 },
  { id: 0x003c, openssl: "AES128-SHA256", keyExchange: "RSA", mode: "CBC", macBytes: 32 },
  { id: 0x003d, openssl: "AES256-SHA256", keyExchange: "RSA", mode: "CBC", macBytes: 32 },
];
const DHE_SUITES: readonly CipherSuite[] = [
  { id: 0x0067, openssl: "DHE-RSA-AES128-SHA256", keyExchange: "DHE_RSA", mode: "CBC", macBytes: 32 },
  { id: 0x006b, openssl: "DHE-RSA-AES256-SHA256", keyExchange: "DHE_RSA", mode: "CBC", macBytes: 32 },
  { id: 0x009e, openssl: "DHE-RSA-AES128-GCM-SHA256", keyExchange: "DHE_RSA", mode: "GCM", macBytes: 0 },
];
// Moddable files the ECDSA suite under ECDHE_RSA too, so one switch enables all three.
const ECDHE_SUITES: readonly CipherSuite[] = [
  { id: 0xc027, openssl: "ECDHE-RSA-AES128-SHA256", keyExchange: "ECDHE_RSA", mode: "CBC", macBytes: 32 },
  { id: 0xc02f, openssl: "ECDHE-RSA-AES128-GCM-SHA256", keyExchange: "ECDHE_RSA", mode: "GCM", macBytes: 0 },
  { id: 0xc02b, openssl: "ECDHE-ECDSA-AES128-GCM-SHA256", keyExchange: "ECDHE_RSA", mode: "GCM", macBytes: 0 },
];

export interface TlsConfig {
  DHE_RSA?: unknown;
  ECDHE_RSA?: unknown;
}

/**
 * The suites the device offers, in its preference order. mcconfig merges the project's
 * `config.tls` over tls_common.json's `{DHE_RSA: true, ECDHE_RSA: true}`, so a missing key is on.
 */
export function deviceCipherSuites(tls: TlsConfig = (config.tls ?? {}) as TlsConfig): readonly CipherSuite[] {
  return [
    ...RSA_SUITES,
    ...((tls.DHE_RSA ?? true) ? DHE_SUITES : []),
    ...((tls.ECDHE_RSA ?? true) ? ECDHE_SUITES : []),
  ];
}

/** supported_groups = {secp256r1} */
export const DEVICE_CURVE = "prime256v1";
export const DEVICE_CURVE_ID = 23;
/** signature_algorithms = {(SHA-256, ECDSA), (SHA-256, RSA)}: no RSA-PSS */
export const DEVICE_SIGALGS = "ECDSA+SHA256:RSA+SHA256";

/** Bytes on the wire for one application_data record (MAC-then-encrypt, explicit IV/nonce). */
export function recordBytes(suite: CipherSuite, plaintext: number): number {
  if (suite.mode === "GCM") return 5 + 8 + plaintext + 16;
  return 5 + 16 + Math.ceil((plaintext + suite.macBytes + 1) / 16) * 16;
}

/** Parses `secure.clientKey`; Moddable's pkcs8.js reads unencrypted RSA keys only. */
export function parseClientKey(der: Uint8Array): KeyObject {
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: Buffer.from(der), format: "der", type: "pkcs8" });
  } catch (cause) {
    throw new TlsError("unsupported-client-key", `secure.clientKey is not an unencrypted PKCS#8 DER private key (${(cause as Error).message})`);
  }
  if (key.asymmetricKeyType !== "rsa")
    throw new TlsError("unsupported-client-key",
      `secure.clientKey is a ${key.asymmetricKeyType} key; Moddable's TLS signs CertificateVerify with RSA only: issue the device an RSA key`);
  return key;
}

interface Parsed {
  readonly index: number;
  readonly der: Uint8Array;
  readonly cert: X509Certificate;
  readonly asn: Certificate;
}

// What ssl_cert.js _verify() can check, minus MD5 and DSA, which the twin refuses outright.
const SIGNATURE_ALGORITHMS = new Set([
  "1.2.840.113549.1.1.5", "1.2.840.113549.1.1.11", "1.2.840.113549.1.1.12", "1.2.840.113549.1.1.13", "1.2.840.113549.1.1.14",
  "1.2.840.10045.4.3.1", "1.2.840.10045.4.3.2", "1.2.840.10045.4.3.3", "1.2.840.10045.4.3.4",
]);

function describe(entry: Parsed): string {
  return `certificate ${entry.index} (${entry.cert.subject.replace(/\n/g, ", ")})`;
}

// Parsing takes ~1 ms a certificate and every connection presents the same few, so a parse is kept
// by its exact bytes; each connection still checks dates, chain and signatures. Bytes that do not
// parse are not kept: they throw every time.
const PARSED_KEPT = 64;
const parsed = new Map<string, Pick<Parsed, "cert" | "asn">>();

export function parseCertificate(der: Uint8Array, index: number, role: string): Parsed {
  const key = Buffer.from(der.buffer, der.byteOffset, der.byteLength).toString("base64");
  let entry = parsed.get(key);
  if (!entry) {
    try {
      entry = { cert: new X509Certificate(Buffer.from(der)), asn: AsnConvert.parse(der, Certificate) };
    } catch (cause) {
      throw new TlsError("untrusted-chain", `${role} is not a DER X.509 certificate (${(cause as Error).message})`);
    }
    if (parsed.size >= PARSED_KEPT) parsed.delete(parsed.keys().next().value!);
    parsed.set(key, entry);
  }
  return { index, der, ...entry };
}

function isCa(entry: Parsed): boolean {
  const extension = entry.asn.tbsCertificate.extensions?.find((e) => e.extnID === id_ce_basicConstraints);
  return extension !== undefined && AsnConvert.parse(extension.extnValue, BasicConstraints).cA;
}

function signedBy(subject: Parsed, issuer: Parsed): boolean {
  const algorithm = subject.asn.signatureAlgorithm.algorithm;
  if (!SIGNATURE_ALGORITHMS.has(algorithm))
    throw new TlsError("untrusted-chain", `${describe(subject)} is signed with algorithm ${algorithm}, which the device cannot verify`);
  return subject.cert.checkIssued(issuer.cert) && subject.cert.verify(issuer.cert.publicKey);
}

/** Moddable's date test: strictly after notBefore and strictly before notAfter. */
export function checkDates(entry: Parsed, now: number, role: string): void {
  const { notBefore, notAfter } = entry.asn.tbsCertificate.validity;
  const from = notBefore.getTime().getTime();
  const to = notAfter.getTime().getTime();
  const clock = `device clock ${new Date(now).toISOString()}`;
  if (!(from < now)) throw new TlsError("not-yet-valid", `${role} is valid from ${new Date(from).toISOString()}, ${clock}: set the device time (SNTP) before connecting`);
  if (!(now < to)) throw new TlsError("expired", `${role} expired ${new Date(to).toISOString()}, ${clock}`);
}

/**
 * ssl_cert.js's name rule, tightened: a SAN dNSName equal to the server name (case-insensitive),
 * or "*." + at least two labels matching all but the server name's first label; or a 4-byte SAN
 * iPAddress equal to the server name in dotted form. The subject CN is never consulted.
 */
export function sanMatches(leaf: Parsed, serverName: string): boolean {
  const wanted = serverName.toLowerCase();
  const extension = leaf.asn.tbsCertificate.extensions?.find((e) => e.extnID === id_ce_subjectAltName);
  if (!extension) return false;
  for (const name of AsnConvert.parse(extension.extnValue, SubjectAlternativeName)) {
    if (name.dNSName !== undefined) {
      const dns = name.dNSName.toLowerCase();
      if (dns.startsWith("*")) {
        const rest = dns.slice(1);
        const dot = wanted.indexOf(".");
        if (rest.startsWith(".") && !rest.includes("*") && rest.split(".").length >= 3 && dot > 0 && rest === wanted.slice(dot)) return true;
      } else if (dns === wanted) return true;
    } else if (name.iPAddress !== undefined) {
      // the schema renders a 4-byte address as a dotted quad and anything else with ":" or "/"
      if (/^\d{1,3}(\.\d{1,3}){3}$/.test(name.iPAddress) && name.iPAddress === wanted) return true;
    }
  }
  return false;
}

/**
 * Checks the certificate list a server sent against the one trusted certificate. Moddable's
 * verify() rejects a lone leaf (it computes the name match only for a certificate with an issuer
 * in the chain) but only checks the signature of the *last* sent certificate once the walk from
 * the leaf fails, so it accepts any leaf followed by the trusted CA's own certificate. The twin
 * instead requires every link: each certificate signed by the next, every issuer a CA, the last
 * one the trusted certificate or signed by it, and every date valid at the device's `now`.
 */
export function verifyServerChain(chain: readonly Uint8Array[], trusted: Uint8Array, serverName: string, now: number): void {
  if (chain.length === 0) throw new TlsError("untrusted-chain", "the server sent no certificate");
  if (chain.length === 1)
    throw new TlsError("leaf-only-chain", "the server sent only its own certificate; the device needs the chain: put the leaf and its CA certificate(s) in the server's certificate file");
  const anchor = parseCertificate(trusted, -1, "secure.certificate");
  const sent = chain.map((der, index) => parseCertificate(der, index, `certificate ${index} sent by the server`));
  for (let i = 0; i + 1 < sent.length; i++) {
    const subject = sent[i]!;
    const issuer = sent[i + 1]!;
    if (!isCa(issuer)) throw new TlsError("untrusted-chain", `${describe(issuer)} issues ${describe(subject)} but is not a CA certificate`);
    if (!signedBy(subject, issuer)) throw new TlsError("untrusted-chain", `${describe(subject)} is not signed by the next certificate in the chain, ${describe(issuer)}`);
  }
  const last = sent[sent.length - 1]!;
  const anchored = Buffer.from(last.der).equals(Buffer.from(anchor.der)) || (isCa(anchor) && signedBy(last, anchor));
  if (!anchored)
    throw new TlsError("untrusted-chain", `the chain ends at ${describe(last)}, which is neither the trusted secure.certificate nor signed by it (a rogue or different CA)`);
  checkDates(anchor, now, "the trusted secure.certificate");
  for (const entry of sent) checkDates(entry, now, describe(entry));
  if (!sanMatches(sent[0]!, serverName))
    throw new TlsError("name-mismatch", `no subjectAltName DNS name or IPv4 address of the server certificate matches "${serverName}" (the common name is never used)`);
}

const PINS_MANIFEST = "./modules/link/manifest_pins.json";
const TLS_MANIFEST = "$(MODDABLE)/modules/crypt/tls_419.json";

/**
 * What is wrong with `secure.pins`, if anything. On the board only the remapped ssl/cert reads
 * them, and the remap holds only when its manifest comes before tls_419.json (the first mapping
 * wins); otherwise the board ignores the pins without a word, so the twin refuses them.
 */
export function pinsProblem(pins: unknown): string | undefined {
  if (!Array.isArray(pins) || pins.length === 0) return "secure.pins must be a non-empty list of base64 SPKI SHA-256 pins";
  try {
    pins.forEach((pin) => checkPin(String(pin)));
  } catch (error) {
    if (error instanceof PinError) return `secure.pins: ${error.message}`;
    throw error;
  }
  const include = loadManifest().include;
  const pinsAt = include.indexOf(PINS_MANIFEST);
  const tlsAt = include.indexOf(TLS_MANIFEST);
  if (pinsAt < 0 || (tlsAt >= 0 && tlsAt < pinsAt))
    return `secure.pins reach the board only through the ssl/cert remap: manifest.json must include "${PINS_MANIFEST}" before "${TLS_MANIFEST}", else the board silently ignores the pins`;
  return undefined;
}

/** The pin check the board's pinned certificate manager makes after the chain check. */
export function verifyPins(leaf: Uint8Array | undefined, pins: readonly string[]): void {
  if (!leaf || !pinMatches(pins, leaf))
    throw new TlsError("pin-mismatch", `the server certificate's public key is not pinned (device pins: ${pins.join(", ")}); ` +
      `if the broker key was rotated, provision the new key's pin first (docs/runbooks/pin-rotation.md)`);
}
