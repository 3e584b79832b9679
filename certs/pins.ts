// SPKI pins: SHA-256 of a key's DER SubjectPublicKeyInfo, what the device's certificate check
// hashes out of the broker's leaf (DESIGN.md §3). Pinning the key rather than the certificate lets
// the broker's certificate be re-issued (new names, new dates) without re-provisioning the fleet.
import { createPrivateKey, createPublicKey } from "node:crypto";
import { pinOfSpki } from "../modules/pins/spki-pin.ts";

/** The base64 pin of a private key (PKCS#8 DER) or of a certificate (PEM). */
export function spkiPin(source: { keyPkcs8Der: Uint8Array } | { certPem: string }): string {
  const publicKey = "certPem" in source
    ? createPublicKey(source.certPem)
    : createPublicKey(createPrivateKey({ key: Buffer.from(source.keyPkcs8Der), format: "der", type: "pkcs8" }));
  return pinOfSpki(publicKey.export({ type: "spki", format: "der" }));
}
