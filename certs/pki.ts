// The fleet's private PKI: one CA, a broker certificate, one client certificate per device and per
// service account, and CRLs for revocation. Every key is RSA-2048 because Moddable's TLS can only
// sign with an RSA client key (DESIGN.md §3), and one key type keeps the broker side uniform.
// @peculiar/x509 resolves its services through tsyringe, which needs the Reflect metadata API
// installed before the library module is evaluated.
import "reflect-metadata";
import { createPrivateKey, createPublicKey, webcrypto, randomBytes } from "node:crypto";
import { isIP } from "node:net";
import * as x509 from "@peculiar/x509";
import { AsnConvert } from "@peculiar/asn1-schema";
import { CRLNumber, id_ce_cRLNumber } from "@peculiar/asn1-x509";
import { toDeviceId } from "../modules/identity/device-id.ts";

// Node's WebCrypto implements the same interface under its own type names.
x509.cryptoProvider.set(webcrypto as unknown as ReturnType<typeof x509.cryptoProvider.get>);

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

export interface Issued {
  /** PEM of the certificate. */
  certPem: string;
  /** PKCS#8 PEM of the private key (unencrypted). */
  keyPem: string;
  /** DER certificate. */
  certDer: Uint8Array;
  /** DER PKCS#8 private key: what Moddable's TLS wants as `clientKey`. */
  keyPkcs8Der: Uint8Array;
}

export interface Validity {
  notBefore?: Date;
  notAfter?: Date;
}

export class PkiError extends Error {
  override name = "PkiError";
}

export class InvalidServiceNameError extends PkiError {
  override name = "InvalidServiceNameError";
  constructor(readonly serviceName: string) {
    super(`invalid service account name ${JSON.stringify(serviceName)}: it must be ${SERVICE_NAME_RULE}; ` +
      `the "${SERVICE_PREFIX}" prefix guarantees no device id can ever equal it and inherit its broker rights`);
  }
}

const RSA_KEYGEN: webcrypto.RsaHashedKeyGenParams = {
  name: "RSASSA-PKCS1-v1_5",
  modulusLength: 2048,
  publicExponent: new Uint8Array([1, 0, 1]),
  hash: "SHA-256",
};

const HOUR_MS = 3_600_000;
const YEAR_MS = 365 * 24 * HOUR_MS;

// Device ids (modules/identity/device-id.ts) cannot contain ".", so a name with this prefix can never be issued to a device: a
// device certificate whose CN equals a service name would inherit that account's broker ACL.
export const SERVICE_PREFIX = "svc.";
export const SERVICE_NAME_PATTERN = /^svc\.[a-z0-9][a-z0-9-]{0,27}$/;
const SERVICE_NAME_RULE = `"${SERVICE_PREFIX}" followed by 1 to 28 characters of a-z 0-9 -, starting with a letter or digit`;

export function assertServiceName(name: string): void {
  if (!SERVICE_NAME_PATTERN.test(name)) throw new InvalidServiceNameError(name);
}

export async function createCa(opts: { commonName: string } & Validity): Promise<Issued> {
  assertCommonName(opts.commonName);
  const validity = resolveValidity(opts, 10 * YEAR_MS);
  const keys = await generateRsa();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: [{ CN: [opts.commonName] }],
    ...validity,
    keys,
    signingAlgorithm: RSA_KEYGEN,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return toIssued(cert, keys.privateKey);
}

export async function issueServerCert(
  ca: Issued,
  opts: {
    commonName: string;
    dnsNames: string[];
    ipAddresses: string[];
    /** Certify this RSA key (PKCS#8 DER) instead of a new one: re-issuing keeps the devices' SPKI pins valid. */
    keyPkcs8Der?: Uint8Array;
  } & Validity,
): Promise<Issued> {
  assertCommonName(opts.commonName);
  for (const name of opts.dnsNames) assertDnsName(name);
  for (const address of opts.ipAddresses) {
    if (isIP(address) === 0) throw new PkiError(`server certificate IP address ${JSON.stringify(address)} is not an IPv4 or IPv6 address; pass addresses like 127.0.0.1`);
  }
  const names: x509.JsonGeneralName[] = [
    ...opts.dnsNames.map((value) => ({ type: "dns" as const, value })),
    ...opts.ipAddresses.map((value) => ({ type: "ip" as const, value })),
  ];
  // Without names the certificate carries no SAN at all: a CN-only certificate that strict
  // clients (Moddable, the twin) must refuse, which negative tests need.
  const san = names.length > 0 ? [new x509.SubjectAlternativeNameExtension(names, false)] : [];
  const keys = opts.keyPkcs8Der === undefined ? await generateRsa() : await importKeyPair(opts.keyPkcs8Der);
  return issueLeaf(ca, opts.commonName, opts, x509.ExtendedKeyUsage.serverAuth,
    x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, san, keys);
}

export async function issueDeviceCert(ca: Issued, opts: { deviceId: string } & Validity): Promise<Issued> {
  return issueClient(ca, toDeviceId(opts.deviceId), opts);
}

/** A client certificate for a back-end account (telemetry verifier, OTA publisher). */
export async function issueServiceCert(ca: Issued, opts: { name: string } & Validity): Promise<Issued> {
  assertServiceName(opts.name);
  return issueClient(ca, opts.name, opts);
}

/** Leaf PEM followed by CA PEM: a broker certfile must carry the chain, Moddable rejects a lone leaf. */
export function chainPem(leaf: Issued, ca: Issued): string {
  return ensureTrailingNewline(leaf.certPem) + ensureTrailingNewline(ca.certPem);
}

export type RevocationReason = "keyCompromise" | "affiliationChanged" | "superseded" | "cessationOfOperation";

export interface Revocation {
  /** Hex serial number, as `serialNumberHex` returns it. */
  serialNumber: string;
  revokedAt?: Date;
  /** Default `keyCompromise`: a fleet revokes a device certificate when the device is lost or cloned. */
  reason?: RevocationReason;
}

/**
 * A CRL signed by the CA, for mosquitto's `crlfile`. Defaults: valid from now-1h to now+30 days,
 * CRL number = the current Unix time in seconds, so successive CRLs of one CA increase as RFC 5280
 * requires without the caller keeping a counter.
 */
export async function createCrl(
  ca: Issued,
  opts: { revoked: Revocation[]; thisUpdate?: Date; nextUpdate?: Date; crlNumber?: number },
): Promise<{ crlPem: string; crlDer: Uint8Array }> {
  const now = Date.now();
  const crlNumber = opts.crlNumber ?? Math.floor(now / 1000);
  if (!Number.isSafeInteger(crlNumber) || crlNumber < 0) {
    throw new PkiError(`CRL number ${crlNumber} must be a non-negative integer larger than the previous CRL's`);
  }
  const thisUpdate = opts.thisUpdate ?? new Date(now - HOUR_MS);
  const nextUpdate = opts.nextUpdate ?? new Date(now + 30 * 24 * HOUR_MS);
  if (nextUpdate.getTime() <= thisUpdate.getTime()) {
    throw new PkiError(`CRL nextUpdate ${nextUpdate.toISOString()} is not after thisUpdate ${thisUpdate.toISOString()}; pass a later nextUpdate`);
  }
  for (const entry of opts.revoked) {
    if (!/^[0-9a-f]+$/i.test(entry.serialNumber)) throw new PkiError(`CRL entry serial ${JSON.stringify(entry.serialNumber)} is not a hex serial number; take it from serialNumberHex(cert)`);
  }
  const caCert = new x509.X509Certificate(bytes(ca.certDer));
  const crl = await x509.X509CrlGenerator.create({
    issuer: caCert.subjectName,
    thisUpdate,
    nextUpdate,
    signingAlgorithm: RSA_KEYGEN,
    signingKey: await importSigningKey(ca),
    entries: opts.revoked.map((entry) => ({
      serialNumber: entry.serialNumber,
      revocationDate: entry.revokedAt ?? new Date(now),
      // Always a concrete reason: given none, @peculiar/x509 2.2 emits an empty entry-extensions
      // SEQUENCE, which X.509 forbids and OpenSSL (so mosquitto) refuses to load.
      reason: x509.X509CrlReason[entry.reason ?? "keyCompromise"],
    })),
    extensions: [
      await x509.AuthorityKeyIdentifierExtension.create(caCert.publicKey),
      new x509.Extension(id_ce_cRLNumber, false, AsnConvert.serialize(new CRLNumber(crlNumber))),
    ],
  });
  const crlDer = new Uint8Array(crl.rawData);
  // The label OpenSSL (so mosquitto) reads; the library's own PEM says "CRL", which it rejects.
  return { crlPem: ensureTrailingNewline(x509.PemConverter.encode(crlDer, "X509 CRL")), crlDer };
}

/** The certificate's serial number as lowercase hex. */
export function serialNumberHex(issued: Pick<Issued, "certDer">): string {
  return new x509.X509Certificate(bytes(issued.certDer)).serialNumber.toLowerCase();
}

async function issueClient(ca: Issued, commonName: string, validity: Validity): Promise<Issued> {
  return issueLeaf(ca, commonName, validity, x509.ExtendedKeyUsage.clientAuth,
    x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, []);
}

async function issueLeaf(
  ca: Issued,
  commonName: string,
  validityOpts: Validity,
  eku: x509.ExtendedKeyUsage,
  keyUsage: x509.KeyUsageFlags,
  extra: x509.Extension[],
  keys?: CryptoKeyPair,
): Promise<Issued> {
  const validity = resolveValidity(validityOpts, YEAR_MS);
  const caCert = new x509.X509Certificate(bytes(ca.certDer));
  keys ??= await generateRsa();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: [{ CN: [commonName] }],
    issuer: caCert.subjectName,
    ...validity,
    publicKey: keys.publicKey,
    signingKey: await importSigningKey(ca),
    signingAlgorithm: RSA_KEYGEN,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(keyUsage, true),
      new x509.ExtendedKeyUsageExtension([eku], false),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(caCert.publicKey),
      ...extra,
    ],
  });
  return toIssued(cert, keys.privateKey);
}

function generateRsa(): Promise<CryptoKeyPair> {
  return webcrypto.subtle.generateKey(RSA_KEYGEN, true, ["sign", "verify"]);
}

/** A fresh RSA-2048 private key, PKCS#8 DER: the broker's backup key, certified only once it is promoted. */
export async function generateRsaKeyPkcs8(): Promise<Uint8Array> {
  const keys = await generateRsa();
  return new Uint8Array(await webcrypto.subtle.exportKey("pkcs8", keys.privateKey));
}

async function importKeyPair(pkcs8: Uint8Array): Promise<CryptoKeyPair> {
  try {
    const spki = createPublicKey(createPrivateKey({ key: Buffer.from(pkcs8), format: "der", type: "pkcs8" })).export({ type: "spki", format: "der" });
    const privateKey = await webcrypto.subtle.importKey("pkcs8", bytes(pkcs8), RSA_KEYGEN, true, ["sign"]);
    const publicKey = await webcrypto.subtle.importKey("spki", bytes(spki), RSA_KEYGEN, true, ["verify"]);
    return { privateKey, publicKey };
  } catch (cause) {
    throw new PkiError("the server key is not an RSA PKCS#8 key; it must be the RSA-2048 key the device's TLS can use", { cause });
  }
}

async function importSigningKey(ca: Issued): Promise<CryptoKey> {
  try {
    return await webcrypto.subtle.importKey("pkcs8", bytes(ca.keyPkcs8Der), RSA_KEYGEN, false, ["sign"]);
  } catch (cause) {
    throw new PkiError("the CA private key is not an RSA PKCS#8 key; pass the Issued value createCa returned (or one loaded from its files)", { cause });
  }
}

async function toIssued(cert: x509.X509Certificate, privateKey: CryptoKey): Promise<Issued> {
  const keyPkcs8Der = new Uint8Array(await webcrypto.subtle.exportKey("pkcs8", privateKey));
  return {
    certPem: ensureTrailingNewline(cert.toString("pem")),
    keyPem: ensureTrailingNewline(x509.PemConverter.encode(keyPkcs8Der, "PRIVATE KEY")),
    certDer: new Uint8Array(cert.rawData),
    keyPkcs8Der,
  };
}

// 16 random bytes with the top bit clear (a positive DER INTEGER) and the next bit set (so the
// encoding is exactly 16 bytes: no leading zero octet is needed or dropped).
function randomSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0]! & 0x7f) | 0x40;
  return bytes.toString("hex");
}

function resolveValidity(opts: Validity, defaultLifetimeMs: number): { notBefore: Date; notAfter: Date } {
  const now = Date.now();
  const notBefore = opts.notBefore ?? new Date(now - HOUR_MS);
  const notAfter = opts.notAfter ?? new Date(now + defaultLifetimeMs);
  if (Number.isNaN(notBefore.getTime()) || Number.isNaN(notAfter.getTime())) {
    throw new PkiError("certificate validity dates must be valid Date objects");
  }
  if (notAfter.getTime() <= notBefore.getTime()) {
    throw new PkiError(`certificate notAfter ${notAfter.toISOString()} is not after notBefore ${notBefore.toISOString()}; pass a later notAfter`);
  }
  return { notBefore, notAfter };
}

function assertCommonName(commonName: string): void {
  if (commonName.length === 0 || commonName.length > 64) {
    throw new PkiError(`common name ${JSON.stringify(commonName)} must be 1 to 64 characters (the X.509 upper bound)`);
  }
}

const DNS_LABEL = "[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?";
const DNS_NAME = new RegExp(`^(?:\\*\\.)?${DNS_LABEL}(?:\\.${DNS_LABEL})*$`);

function assertDnsName(name: string): void {
  if (name.length > 253 || !DNS_NAME.test(name)) {
    throw new PkiError(`server certificate DNS name ${JSON.stringify(name)} is not a host name; use letters, digits, "-" and ".", optionally one leading "*." wildcard`);
  }
}

// The X.509 and WebCrypto typings take views of a plain ArrayBuffer, while callers may hold a
// Buffer (possibly a slice of Node's shared pool): a copy satisfies both.
function bytes(view: Uint8Array): Uint8Array<ArrayBuffer> {
  return new Uint8Array(view);
}

function ensureTrailingNewline(text: string): string {
  return text.endsWith("\n") ? text : `${text}\n`;
}
