// P-256 signing keys for OTA images and release manifests, on node:crypto. The key id is computed
// by the firmware's own function, so tools and devices cannot disagree on it.
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject, sign } from "node:crypto";
import { type KeyId, keyIdOf } from "../modules/ota/trusted-key.ts";

export class SigningKeyError extends Error {
  readonly name = "SigningKeyError";
}

export interface SigningKey {
  readonly privateKey: KeyObject;
  /** The public key as DER SubjectPublicKeyInfo: what a device is given to trust. */
  readonly spki: Uint8Array;
  readonly keyId: KeyId;
}

const NEW_KEY_HINT = "OTA signing uses ECDSA P-256: make a key with `espguard ota keygen` or `openssl ecparam -name prime256v1 -genkey -noout`";

function requireP256(key: KeyObject, what: string): void {
  const curve = key.asymmetricKeyDetails?.namedCurve;
  if (key.asymmetricKeyType !== "ec" || curve !== "prime256v1")
    throw new SigningKeyError(`${what} is ${key.asymmetricKeyType === "ec" ? `an EC key on ${curve}` : `a ${key.asymmetricKeyType} key`}; ${NEW_KEY_HINT}`);
}

function spkiOf(publicKey: KeyObject): Uint8Array {
  return new Uint8Array(publicKey.export({ type: "spki", format: "der" }));
}

function fromPrivateKey(privateKey: KeyObject): SigningKey {
  requireP256(privateKey, "the signing key");
  const spki = spkiOf(createPublicKey(privateKey));
  return { privateKey, spki, keyId: keyIdOf(spki) };
}

export function generateSigningKey(): SigningKey {
  return fromPrivateKey(generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey);
}

/** From an unencrypted PEM private key (PKCS#8 or SEC 1). */
export function signingKeyFromPem(pem: string): SigningKey {
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey({ key: pem, format: "pem" });
  } catch (error) {
    throw new SigningKeyError(`not a readable PEM private key (${(error as Error).message}); an encrypted key must be decrypted first. ${NEW_KEY_HINT}`);
  }
  return fromPrivateKey(privateKey);
}

/** PKCS#8 PEM, to store with mode 0600. */
export function privateKeyPem(key: SigningKey): string {
  return key.privateKey.export({ type: "pkcs8", format: "pem" }).toString();
}

export function publicKeyPem(spki: Uint8Array): string {
  return createPublicKey({ key: Buffer.from(spki), format: "der", type: "spki" }).export({ type: "spki", format: "pem" }).toString();
}

/** A P-256 public key as DER SubjectPublicKeyInfo, from PEM text or DER bytes. */
export function publicKeySpki(key: string | Uint8Array): Uint8Array {
  let publicKey: KeyObject;
  try {
    publicKey = typeof key === "string" ? createPublicKey({ key, format: "pem" }) : createPublicKey({ key: Buffer.from(key), format: "der", type: "spki" });
  } catch (error) {
    throw new SigningKeyError(`not a readable public key (${(error as Error).message}): give the PEM or DER SubjectPublicKeyInfo`);
  }
  requireP256(publicKey, "the public key");
  return spkiOf(publicKey);
}

/** ECDSA P-256 with SHA-256 over `message`, as raw r ‖ s (64 bytes). */
export function signMessage(key: SigningKey, message: Uint8Array): Uint8Array {
  return new Uint8Array(sign("sha256", message, { key: key.privateKey, dsaEncoding: "ieee-p1363" }));
}
