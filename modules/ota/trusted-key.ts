// A P-256 public key the device trusts to sign images and releases, and the one place where a
// signature meets Moddable's ECDSA. That ECDSA loops forever on s = 0 and accepts s + n
// (DESIGN.md §3), so nothing reaches it before the length and range checks here.
import BER from "ber";
import { Digest } from "crypt";
import Curve from "curve";
import ECDSA from "ecdsa";
import ECPoint from "ecp";
import { isHex, toBytes, toHex } from "ota/bytes";

/** SHA-256 of the signer's DER SubjectPublicKeyInfo, lowercase hex. */
export type KeyId = string & { readonly __brand: "KeyId" };

export const KEY_ID_SIZE = 32;
export const SIGNATURE_SIZE = 64;
/** Every uncompressed P-256 SubjectPublicKeyInfo is exactly this long. */
export const P256_SPKI_SIZE = 91;

const SCALAR_SIZE = 32;
const POINT_SIZE = 1 + 2 * SCALAR_SIZE;
const EC_PUBLIC_KEY = [1, 2, 840, 10045, 2, 1];
const PRIME256V1 = [1, 2, 840, 10045, 3, 1, 7];
// The order n of P-256, big-endian.
const ORDER = [
  0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
  0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];

/** A public key that cannot be trusted as configured; the message says what is wrong with it. */
export class OtaKeyError extends Error {
  readonly name = "OtaKeyError";
}

export function isKeyId(text: string): text is KeyId {
  return isHex(text, KEY_ID_SIZE);
}

export function toKeyId(text: string): KeyId {
  if (isKeyId(text)) return text;
  throw new OtaKeyError(`key id ${JSON.stringify(text)} is not 64 lowercase hex digits (the SHA-256 of a DER public key)`);
}

export function keyIdOf(spki: ArrayBuffer | Uint8Array): KeyId {
  return toHex(new Uint8Array(new Digest("SHA256").process(toBytes(spki)))) as KeyId;
}

function sameArcs(arcs: Uint32Array, expected: readonly number[]): boolean {
  if (arcs.length !== expected.length) return false;
  for (let i = 0; i < arcs.length; i++) if (arcs[i] !== expected[i]) return false;
  return true;
}

/** The big-endian scalar at `at` is in [1, n − 1]. */
function scalarInRange(bytes: Uint8Array, at: number): boolean {
  let zero = true;
  for (let i = 0; i < SCALAR_SIZE; i++) if (bytes[at + i] !== 0) zero = false;
  if (zero) return false;
  for (let i = 0; i < SCALAR_SIZE; i++) {
    if (bytes[at + i]! < ORDER[i]!) return true;
    if (bytes[at + i]! > ORDER[i]!) return false;
  }
  return false;
}

/** A raw r ‖ s Moddable's ECDSA may see: exactly 64 bytes with 1 ≤ r, s < n. */
export function isCheckedSignature(signature: Uint8Array): boolean {
  return signature.length === SIGNATURE_SIZE && scalarInRange(signature, 0) && scalarInRange(signature, SCALAR_SIZE);
}

function publicPoint(spki: Uint8Array): Uint8Array {
  // Moddable's BER reads without bounds checks; the fixed size keeps every read inside the key.
  if (spki.length !== P256_SPKI_SIZE)
    throw new OtaKeyError(`a P-256 public key is a ${P256_SPKI_SIZE}-byte DER SubjectPublicKeyInfo, got ${spki.length} bytes ` +
      `(export it with: openssl pkey -pubin -in key.pub.pem -outform DER)`);
  try {
    const outer = new BER(new Uint8Array(spki).buffer);
    const info = new BER(outer.getSequence());
    if (outer.readable !== 0) throw new OtaKeyError("bytes follow the SubjectPublicKeyInfo");
    const algorithm = new BER(info.getSequence());
    if (!sameArcs(algorithm.getObjectIdentifier(), EC_PUBLIC_KEY)) throw new OtaKeyError("not an EC public key (algorithm is not id-ecPublicKey)");
    if (!sameArcs(algorithm.getObjectIdentifier(), PRIME256V1)) throw new OtaKeyError("not a P-256 key (curve is not prime256v1)");
    if (algorithm.readable !== 0) throw new OtaKeyError("unexpected algorithm parameters");
    // Read last: Moddable's getBitString leaves the reader one byte past the bit string.
    const point = info.getBitString();
    if (point.length !== POINT_SIZE || point[0] !== 0x04) throw new OtaKeyError("the public point is not an uncompressed P-256 point");
    return point;
  } catch (error) {
    if (error instanceof OtaKeyError) throw new OtaKeyError(`not a usable P-256 public key: ${error.message}`);
    throw new OtaKeyError(`not a DER SubjectPublicKeyInfo: ${(error as Error).message}`);
  }
}

export class TrustedKey {
  readonly id: KeyId;
  readonly #ecdsa: ECDSA;

  private constructor(id: KeyId, ecdsa: ECDSA) {
    this.id = id;
    this.#ecdsa = ecdsa;
  }

  /** From the signer's public key as DER SubjectPublicKeyInfo (what `openssl pkey -pubin -outform DER` writes). */
  static fromSpki(spki: ArrayBuffer | Uint8Array): TrustedKey {
    const bytes = toBytes(spki);
    const point = publicPoint(bytes);
    let ecdsa: ECDSA;
    try {
      ecdsa = new ECDSA(ECPoint.fromOctetString(point), new Curve("secp256r1"));
    } catch (error) {
      throw new OtaKeyError(`not a usable P-256 public key: ${(error as Error).message}`);
    }
    return new TrustedKey(keyIdOf(bytes), ecdsa);
  }

  /** Whether `signature` (raw r ‖ s) signs the SHA-256 `digest` with this key. */
  verify(digest: ArrayBuffer, signature: Uint8Array): boolean {
    if (!isCheckedSignature(signature)) return false;
    // A copy of exactly 64 bytes: the board's verify slices r and s out of what it is given.
    return this.#ecdsa.verify(digest, new Uint8Array(signature).buffer);
  }
}
