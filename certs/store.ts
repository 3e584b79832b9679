// The fleet PKI on disk: one folder (default .espguard/pki, git-ignored) holding the CA, the
// fleet secret, the broker's certificate and keys, one folder per device, the revocation list and
// the CRL made from it. Every loader checks what it reads and says which command fixes it.
import { createPrivateKey, X509Certificate } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { createCrl, type Issued, type RevocationReason } from "./pki.ts";
import type { OutputFile } from "./atomic-files.ts";

export const DEFAULT_PKI_DIR = ".espguard/pki";

export class PkiStoreError extends Error {
  override name = "PkiStoreError";
}

export interface DevicePaths {
  dir: string;
  certPem: string;
  /** DER certificate: NVS key `cert`. */
  certDer: string;
  keyPem: string;
  /** Unencrypted PKCS#8 DER: what Moddable's TLS takes as the client key (NVS key `key`). */
  keyDer: string;
}

export class PkiStore {
  readonly dir: string;

  constructor(dir: string) {
    this.dir = resolve(dir);
  }

  get caPem(): string { return join(this.dir, "ca.pem"); }
  get caDer(): string { return join(this.dir, "ca.der"); }
  get caKey(): string { return join(this.dir, "ca.key"); }
  get fleetSecret(): string { return join(this.dir, "fleet.secret"); }
  get crlPem(): string { return join(this.dir, "crl.pem"); }
  get revocations(): string { return join(this.dir, "revocations.json"); }
  get serverPem(): string { return join(this.dir, "server.pem"); }
  get serverChain(): string { return join(this.dir, "server-chain.pem"); }
  get serverKey(): string { return join(this.dir, "server.key"); }
  /** Pre-generated, never certified until promoted: its pin lets devices survive a broker key change. */
  get backupKey(): string { return join(this.dir, "server-backup.key"); }
  get devicesDir(): string { return join(this.dir, "devices"); }
  get servicesDir(): string { return join(this.dir, "services"); }

  device(deviceId: string): DevicePaths {
    const dir = join(this.devicesDir, deviceId);
    return { dir, certPem: join(dir, "cert.pem"), certDer: join(dir, "cert.der"), keyPem: join(dir, "key.pem"), keyDer: join(dir, "key.der") };
  }

  /** A back-end account's files, laid out as a device's. */
  service(name: string): DevicePaths {
    const dir = join(this.servicesDir, name);
    return { dir, certPem: join(dir, "cert.pem"), certDer: join(dir, "cert.der"), keyPem: join(dir, "key.pem"), keyDer: join(dir, "key.der") };
  }

  /** The CA, checked: present, readable, key matching certificate, valid at `now`. */
  loadCa(now = new Date()): Issued {
    if (!existsSync(this.caPem)) {
      throw new PkiStoreError(`no CA in ${this.dir} (${this.caPem} is missing); create one with: espguard certs init --dir ${this.dir}`);
    }
    const cert = readCertificate(this.caPem, "CA certificate");
    const keyPkcs8Der = readPrivateKey(this.caKey, "CA private key");
    if (!cert.checkPrivateKey(createPrivateKey({ key: Buffer.from(keyPkcs8Der), format: "der", type: "pkcs8" }))) {
      throw new PkiStoreError(`${this.caKey} is not the private key of ${this.caPem}; restore the matching pair or start over with: espguard certs init --force --dir ${this.dir}`);
    }
    assertCurrent(cert, "the CA certificate", this.caPem, now,
      `create a new CA with: espguard certs init --force --dir ${this.dir}, then re-issue and re-provision the broker and every device`);
    return issued(cert, keyPkcs8Der);
  }

  loadServer(): { server: Issued; backupKeyPkcs8Der: Uint8Array } {
    if (!existsSync(this.serverPem)) {
      throw new PkiStoreError(`no broker certificate in ${this.dir} (${this.serverPem} is missing); issue one with: espguard certs server --dns <broker host> --dir ${this.dir}`);
    }
    const cert = readCertificate(this.serverPem, "broker certificate");
    const keyPkcs8Der = readPrivateKey(this.serverKey, "broker private key");
    if (!cert.checkPrivateKey(createPrivateKey({ key: Buffer.from(keyPkcs8Der), format: "der", type: "pkcs8" }))) {
      throw new PkiStoreError(`${this.serverKey} is not the private key of ${this.serverPem}; re-issue with: espguard certs server --force --dir ${this.dir}`);
    }
    return { server: issued(cert, keyPkcs8Der), backupKeyPkcs8Der: readPrivateKey(this.backupKey, "broker backup key") };
  }

  loadDevice(deviceId: string): Issued | undefined {
    return loadIdentity(this.device(deviceId), `device ${deviceId}`);
  }

  loadService(name: string): Issued | undefined {
    return loadIdentity(this.service(name), `service account ${name}`);
  }

  deviceIds(): string[] {
    return identityNames(this.devicesDir, (name) => this.device(name));
  }

  serviceNames(): string[] {
    return identityNames(this.servicesDir, (name) => this.service(name));
  }

  loadRevocations(): Revocation[] {
    if (!existsSync(this.revocations)) return [];
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(this.revocations, "utf8"));
    } catch (error) {
      throw new PkiStoreError(`cannot read the revocation list ${this.revocations}: ${(error as Error).message}; restore it from a backup (it is the source of the CRL)`);
    }
    if (!Array.isArray(parsed) || !parsed.every(isRevocation)) {
      throw new PkiStoreError(`${this.revocations} is not an espguard revocation list (an array of {deviceId, serial, revokedAt, reason}); restore it from a backup`);
    }
    return parsed;
  }

  /** The revocation list and the CRL signed from it: written together, so they never disagree. */
  async crlFiles(ca: Issued, revocations: readonly Revocation[], validityDays = CRL_DAYS): Promise<OutputFile[]> {
    const now = Date.now();
    const { crlPem } = await createCrl(ca, {
      revoked: revocations.map((entry) => ({ serialNumber: entry.serial, revokedAt: new Date(entry.revokedAt), reason: entry.reason })),
      nextUpdate: new Date(now + validityDays * DAY_MS),
    });
    return [
      { path: this.crlPem, data: crlPem, replaces: true },
      { path: this.revocations, data: `${JSON.stringify(revocations, null, 2)}\n`, replaces: true },
    ];
  }
}

/** A device's or service account's certificate and key as files: PEM for people and tools, DER for the firmware. */
export function identityFiles(cert: Issued, paths: DevicePaths): OutputFile[] {
  return [
    { path: paths.certPem, data: cert.certPem },
    { path: paths.certDer, data: cert.certDer },
    { path: paths.keyPem, data: cert.keyPem, mode: 0o600 },
    { path: paths.keyDer, data: cert.keyPkcs8Der, mode: 0o600 },
  ];
}

/** Validity from an hour ago, so a device whose clock runs a little behind accepts a fresh certificate. */
export function validityDays(days: number, now = Date.now()): { notBefore: Date; notAfter: Date } {
  return { notBefore: new Date(now - 3_600_000), notAfter: new Date(now + days * DAY_MS) };
}

export interface Revocation {
  /** The device id, or the service account's name (svc.*): the certificate's CN. */
  deviceId: string;
  /** Lowercase hex, as `serialNumberHex` gives it. */
  serial: string;
  revokedAt: string;
  reason: RevocationReason;
}

/** How long a CRL stays valid; OpenSSL (so mosquitto) refuses every client once it lapses. */
export const CRL_DAYS = 30;
export const DAY_MS = 86_400_000;

export const REVOCATION_REASONS: readonly RevocationReason[] = ["keyCompromise", "affiliationChanged", "superseded", "cessationOfOperation"];

function isRevocation(value: unknown): value is Revocation {
  const entry = value as Partial<Revocation> | null;
  return typeof entry === "object" && entry !== null && typeof entry.deviceId === "string" && typeof entry.serial === "string" &&
    /^[0-9a-f]+$/.test(entry.serial) && typeof entry.revokedAt === "string" && !Number.isNaN(Date.parse(entry.revokedAt)) &&
    REVOCATION_REASONS.includes(entry.reason as RevocationReason);
}

export function isRevocationReason(value: string): value is RevocationReason {
  return (REVOCATION_REASONS as readonly string[]).includes(value);
}

export function readCertificate(path: string, what: string): X509Certificate {
  let text: Buffer;
  try {
    text = readFileSync(path);
  } catch (error) {
    throw new PkiStoreError(`cannot read the ${what} ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  try {
    return new X509Certificate(text);
  } catch {
    throw new PkiStoreError(`${path} is not a certificate (PEM or DER); restore the ${what} or re-issue it`);
  }
}

/** A private key file as PKCS#8 DER. The error never quotes the file: it may hold a secret. */
export function readPrivateKey(path: string, what: string): Uint8Array {
  let data: Buffer;
  try {
    data = readFileSync(path);
  } catch (error) {
    throw new PkiStoreError(`cannot read the ${what} ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  try {
    const key = data.includes("-----BEGIN") ? createPrivateKey(data) : createPrivateKey({ key: data, format: "der", type: "pkcs8" });
    if (key.asymmetricKeyType !== "rsa") throw new Error("not RSA");
    return new Uint8Array(key.export({ type: "pkcs8", format: "der" }));
  } catch {
    throw new PkiStoreError(`${path} is not an unencrypted RSA private key (PEM or PKCS#8 DER); restore the ${what} from a backup`);
  }
}

export function assertCurrent(cert: X509Certificate, what: string, path: string, now: Date, fix: string): void {
  const notAfter = new Date(cert.validTo);
  const notBefore = new Date(cert.validFrom);
  if (notAfter.getTime() < now.getTime()) throw new PkiStoreError(`${what} ${path} expired on ${notAfter.toISOString()}; ${fix}`);
  if (notBefore.getTime() > now.getTime()) throw new PkiStoreError(`${what} ${path} is not valid before ${notBefore.toISOString()}; check this machine's clock, or ${fix}`);
}

function issued(cert: X509Certificate, keyPkcs8Der: Uint8Array): Issued {
  return {
    certPem: cert.toString(),
    keyPem: createPrivateKey({ key: Buffer.from(keyPkcs8Der), format: "der", type: "pkcs8" }).export({ type: "pkcs8", format: "pem" }) as string,
    certDer: new Uint8Array(cert.raw),
    keyPkcs8Der,
  };
}

function loadIdentity(paths: DevicePaths, what: string): Issued | undefined {
  if (!existsSync(paths.certPem)) return undefined;
  return issued(readCertificate(paths.certPem, `certificate of ${what}`), readPrivateKey(paths.keyPem, `private key of ${what}`));
}

/** The sub-folders of `dir` that hold a certificate, sorted. */
function identityNames(dir: string, paths: (name: string) => DevicePaths): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true })
    .filter((entry) => entry.isDirectory() && existsSync(paths(entry.name).certPem))
    .map((entry) => entry.name)
    .sort();
}
