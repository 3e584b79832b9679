// Moddable's "ecdsa" (modules/crypt/etc/ecdsa.js): new ECDSA(key, curve), verify(H, sig, asn1) and
// sign(H, asn1), where H is the message's hash as an ArrayBuffer and sig is raw r‖s (each
// orderSize bytes) or, with asn1, a DER SEQUENCE of two INTEGERs.
// The board's verify trusts its input: it loops forever on s = 0 or a negative DER integer and
// returns true for s + n, trailing bytes and non-minimal DER. The twin throws an
// UncheckedSignatureError for every such signature, so firmware must check before it calls verify.
import { randomBytes } from "node:crypto";
import type Curve from "./curve.ts";
import ECPoint from "./ecp.ts";
import { addPoints, type Affine, curveDomains, type CurveDomain, invert, isOnCurve, mod, multiplyBase, multiplyX } from "./ec-arith.ts";
import { bigIntToBytes, bytesToBigInt, describe, ECKeyError, toArrayBuffer, UncheckedSignatureError } from "./crypt-support.ts";

// XS's BigInt.fromArrayBuffer takes only an ArrayBuffer and throws on an empty one; the board
// does not truncate a hash longer than the order as FIPS 186 does, so its verdict would differ.
function hashInteger(H: unknown, d: CurveDomain, operation: string): bigint {
  if (!(H instanceof ArrayBuffer))
    throw new TypeError(`ECDSA.${operation}: the hash must be an ArrayBuffer (Digest close() returns one), got ${describe(H)}`);
  if (H.byteLength === 0 || H.byteLength > d.orderSize)
    throw new RangeError(`ECDSA.${operation}: a ${H.byteLength}-byte hash; ${d.name} takes 1 to ${d.orderSize} bytes ` +
      `(the board does not truncate longer hashes, so it would disagree with every other verifier)`);
  return bytesToBigInt(new Uint8Array(H));
}

function signatureBytes(sig: unknown): Uint8Array {
  if (sig instanceof ArrayBuffer) return new Uint8Array(sig);
  if (sig instanceof Uint8Array) return sig;
  throw new TypeError(`ECDSA.verify: the signature must be an ArrayBuffer or a Uint8Array, got ${describe(sig)}`);
}

function inRange(r: bigint, s: bigint, d: CurveDomain): { r: bigint; s: bigint } {
  if (s === 0n) throw new UncheckedSignatureError("signature with s = 0 (the board would loop forever)");
  if (r === 0n) throw new UncheckedSignatureError("signature with r = 0");
  if (r >= d.n) throw new UncheckedSignatureError(`signature with r ≥ n of ${d.name}`);
  if (s >= d.n) throw new UncheckedSignatureError(`signature with s ≥ n of ${d.name} (the board reduces s mod n, so s + n verifies)`);
  return { r, s };
}

function rawSignature(bytes: Uint8Array, d: CurveDomain): { r: bigint; s: bigint } {
  const size = d.orderSize;
  if (bytes.length !== 2 * size)
    throw new UncheckedSignatureError(`raw signature of ${bytes.length} bytes where r‖s on ${d.name} is exactly ${2 * size} ` +
      `(the board reads the first ${2 * size} and ignores the rest)`);
  return inRange(bytesToBigInt(bytes.subarray(0, size)), bytesToBigInt(bytes.subarray(size)), d);
}

function derLength(bytes: Uint8Array, at: number): { length: number; next: number } {
  const first = bytes[at];
  if (first === undefined) throw new UncheckedSignatureError("DER signature truncated");
  if (first < 0x80) return { length: first, next: at + 1 };
  const count = first & 0x7f;
  if (count === 0) throw new UncheckedSignatureError("DER signature with an indefinite length");
  if (count > 2 || at + 1 + count > bytes.length) throw new UncheckedSignatureError("DER signature with a malformed length");
  let length = 0;
  for (let k = 1; k <= count; k++) length = length * 256 + bytes[at + k]!;
  if (length < 0x80 || bytes[at + 1] === 0) throw new UncheckedSignatureError("DER signature with a non-minimal length (the board accepts it)");
  return { length, next: at + 1 + count };
}

function derInteger(bytes: Uint8Array, at: number): { value: bigint; next: number } {
  if (bytes[at] !== 0x02) throw new UncheckedSignatureError("DER signature: expected an INTEGER");
  const { length, next } = derLength(bytes, at + 1);
  if (length === 0) throw new UncheckedSignatureError("DER signature with an empty INTEGER");
  if (next + length > bytes.length) throw new UncheckedSignatureError("DER signature truncated inside an INTEGER");
  const content = bytes.subarray(next, next + length);
  if (content[0]! & 0x80) throw new UncheckedSignatureError("DER signature with a negative INTEGER (the board would loop forever)");
  if (content[0] === 0 && length > 1 && !(content[1]! & 0x80))
    throw new UncheckedSignatureError("DER signature with a non-minimal INTEGER (leading zero byte; the board accepts it)");
  return { value: bytesToBigInt(content), next: next + length };
}

function derSignature(bytes: Uint8Array, d: CurveDomain): { r: bigint; s: bigint } {
  if (bytes[0] !== 0x30) throw new UncheckedSignatureError("DER signature: expected a SEQUENCE");
  const { length, next } = derLength(bytes, 1);
  if (next + length !== bytes.length)
    throw new UncheckedSignatureError(next + length > bytes.length ? "DER signature truncated"
      : `DER signature followed by ${bytes.length - next - length} trailing bytes (the board accepts them)`);
  const r = derInteger(bytes, next);
  const s = derInteger(bytes, r.next);
  if (s.next !== bytes.length) throw new UncheckedSignatureError("DER signature with bytes after s inside the SEQUENCE (the board accepts them)");
  return inRange(r.value, s.value, d);
}

function derEncode(r: bigint, s: bigint): Uint8Array {
  const integer = (v: bigint) => {
    const bytes = bigIntToBytes(v);
    const content = bytes[0]! & 0x80 ? [0, ...bytes] : [...bytes];
    return [0x02, content.length, ...content];
  };
  const body = [...integer(r), ...integer(s)];
  return Uint8Array.from([0x30, ...(body.length < 0x80 ? [body.length] : [0x81, body.length]), ...body]);
}

export default class ECDSA {
  readonly #domain: CurveDomain;
  readonly #public: Affine | undefined;
  readonly #private: bigint | undefined;

  /** A public ECPoint to verify with, or a private scalar (bigint) to sign with. */
  constructor(key: ECPoint | bigint, curve: Curve) {
    const domain = typeof curve === "object" && curve !== null ? curveDomains.get(curve) : undefined;
    if (!domain) throw new TypeError(`new ECDSA(key, curve): curve must be a Curve from "curve" (new Curve("secp256r1")), got ${describe(curve)}`);
    this.#domain = domain;
    if (typeof key === "bigint") {
      if (key < 1n || key >= domain.n) throw new ECKeyError(`new ECDSA(privateKey, curve): the private key must lie in [1, n − 1] of ${domain.name}`);
      this.#private = key;
    } else if (key instanceof ECPoint) {
      // The board does not check, and verifying against an off-curve point is meaningless.
      if (key.isZero() || !isOnCurve(domain, key.X, key.Y))
        throw new ECKeyError(`new ECDSA(point, curve): the public key is not a point on ${domain.name}; check the key's curve and bytes`);
      this.#public = { x: key.X, y: key.Y };
    } else {
      throw new TypeError(`new ECDSA(key, curve): key must be an ECPoint (public) or a bigint (private), got ${describe(key)}`);
    }
  }

  verify(H: ArrayBuffer, sig: ArrayBuffer | Uint8Array, asn1?: boolean): boolean {
    const d = this.#domain;
    if (!this.#public) throw new TypeError("ECDSA.verify: this ECDSA holds a private key; verify with new ECDSA(publicPoint, curve)");
    const e = hashInteger(H, d, "verify");
    const bytes = signatureBytes(sig);
    const { r, s } = asn1 ? derSignature(bytes, d) : rawSignature(bytes, d);
    const n = d.n;
    // R = (e/s)·G + (r/s)·Q, taken as u·(Q + t·G) with t = e/r and u = r/s, so that OpenSSL does one
    // multiplication of G and one of a point. One inversion of r·s gives both 1/r and 1/s.
    const z = invert(r * s, n);
    const t = mod(e, n) * s % n * z % n;
    const u = r * r % n * z % n;
    const T = t === 0n ? this.#public : addPoints(d, multiplyBase(d, t), this.#public);
    // Like the board, compare R.x with r unreduced: it can only refuse what the standard accepts.
    return T !== null && multiplyX(d, u, T) === r;
  }

  sign(H: ArrayBuffer, asn1?: boolean): ArrayBuffer {
    const d = this.#domain;
    const du = this.#private;
    if (du === undefined) throw new TypeError("ECDSA.sign: this ECDSA holds a public key; sign with new ECDSA(privateScalar, curve)");
    const e = hashInteger(H, d, "sign");
    for (;;) {
      const k = bytesToBigInt(randomBytes(d.orderSize));
      if (k === 0n || k >= d.n) continue;
      const R = multiplyBase(d, k);
      // The board takes r = R.x unreduced; a k giving R.x ≥ n would sign invalidly, so draw again.
      if (R.x >= d.n) continue;
      const r = R.x;
      const s = mod(invert(k, d.n) * (e + du * r), d.n);
      if (r === 0n || s === 0n) continue;
      if (asn1) return toArrayBuffer(derEncode(r, s));
      const raw = new Uint8Array(2 * d.orderSize);
      raw.set(bigIntToBytes(r, d.orderSize));
      raw.set(bigIntToBytes(s, d.orderSize), d.orderSize);
      return raw.buffer;
    }
  }
}

Object.freeze(ECDSA.prototype);
Object.freeze(ECDSA);
