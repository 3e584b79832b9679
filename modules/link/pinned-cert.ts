// The board's pinned "ssl/cert": Moddable's certificate manager plus an SPKI pin check on the
// server's leaf after the chain check. Moddable's chain walk accepts any leaf followed by the
// trusted CA's own certificate; the pin closes that hole. A refusal is thrown with a `reason`
// (for a false return the handshake only says "certificate: auth err"), so the link reports what
// failed. manifest_pins.json maps "ssl/cert" to ssl-cert.js, which applies this to Moddable's
// class ("ssl/cert-base") and X509; the logic lives here, type-checked and in the manifest.
import { pinMatches } from "pins/spki-pin";

export interface CertificateManagerOptions {
  /** ours: the provisioned pins (secure.pins reaches the certificate manager's constructor) */
  pins?: readonly string[];
  [other: string]: unknown;
}

export interface VerifyOptions {
  tls_server_name?: string;
  [other: string]: unknown;
}

/** modules/crypt/ssl/ssl_cert.js */
export interface CertificateManagerClass {
  new (options: CertificateManagerOptions): { verify(certs: Uint8Array[], options: VerifyOptions): boolean };
}

/** The part of modules/crypt/etc/x509.js used here. */
export interface X509Api {
  decode(certificate: Uint8Array): { tbs: Uint8Array };
  decodeTBS(tbs: Uint8Array): { validity: { from: number; to: number } };
  /** tag 2 dNSName (string), tag 7 iPAddress (ArrayBuffer) */
  decodeSAN(certificate: Uint8Array): { tag: number; value: string | ArrayBuffer }[] | undefined;
}

export type Refusal = "pin-mismatch" | "expired" | "not-yet-valid" | "name-mismatch" | "untrusted-chain";

export class CertificateRefused extends Error {
  override name = "CertificateRefused";
  constructor(readonly reason: Refusal, detail: string) {
    super(`TLS ${reason}: ${detail}`);
  }
}

function nameMatches(x509: X509Api, leaf: Uint8Array, serverName: string): boolean {
  const wanted = serverName.toLowerCase();
  const dot = wanted.indexOf(".");
  for (const name of x509.decodeSAN(leaf) ?? []) {
    if (name.tag === 2 && typeof name.value === "string") {
      const dns = name.value.toLowerCase();
      if (dns === wanted || (dns.startsWith("*.") && dot > 0 && dns.slice(1) === wanted.slice(dot))) return true;
    } else if (name.tag === 7 && name.value instanceof ArrayBuffer && name.value.byteLength === 4) {
      if (new Uint8Array(name.value).join(".") === wanted) return true;
    }
  }
  return false;
}

/** Why the chain check said no, as far as the leaf tells. */
function refusal(x509: X509Api, leaf: Uint8Array, options: VerifyOptions): CertificateRefused {
  const { from, to } = x509.decodeTBS(x509.decode(leaf).tbs).validity;
  const now = Date.now();
  if (!(from < now)) return new CertificateRefused("not-yet-valid", `server certificate valid from ${from}, device clock ${now}`);
  if (!(now < to)) return new CertificateRefused("expired", `server certificate expired at ${to}, device clock ${now}`);
  if (!nameMatches(x509, leaf, options.tls_server_name ?? "")) return new CertificateRefused("name-mismatch", `no SAN matches ${options.tls_server_name}`);
  return new CertificateRefused("untrusted-chain", "the chain does not lead to the provisioned CA");
}

export function pinnedCertificateManager(Base: CertificateManagerClass, x509: X509Api): CertificateManagerClass {
  return class PinnedCertificateManager extends Base {
    #pins: readonly string[] | undefined;

    constructor(options: CertificateManagerOptions) {
      super(options);
      this.#pins = options.pins;
    }

    override verify(certs: Uint8Array[], options: VerifyOptions): boolean {
      const leaf = certs[0];
      if (!leaf) throw new CertificateRefused("untrusted-chain", "the server sent no certificate");
      if (!super.verify(certs, options)) throw refusal(x509, leaf, options);
      if (this.#pins && !pinMatches(this.#pins, leaf))
        throw new CertificateRefused("pin-mismatch", "the server's public key is not one of the provisioned pins");
      return true;
    }
  };
}
