// Prime-curve arithmetic for the twin's ECDSA. node:crypto cannot verify or sign a precomputed hash
// (its ECDSA always hashes the message itself), and Moddable's ECDSA takes the hash, so the twin
// does the ECDSA equations here, with OpenSSL's scalar multiplication; the tests hold its verdicts
// to node:crypto's.
import { createECDH, type ECDH } from "node:crypto";
import { bigIntToBytes, bytesToBigInt } from "./crypt-support.ts";

export interface CurveDomain {
  readonly name: string;
  /** field prime */
  readonly p: bigint;
  readonly a: bigint;
  readonly b: bigint;
  readonly Gx: bigint;
  readonly Gy: bigint;
  /** group order (both curves have cofactor 1) */
  readonly n: bigint;
  /** bytes per scalar: ⌈bits(n) / 8⌉, Moddable's Curve.orderSize */
  readonly orderSize: number;
}

// The curves Moddable's modules/crypt/etc/curve.js knows (SEC 2 parameters).
export const DOMAINS: Readonly<Record<string, CurveDomain>> = Object.freeze({
  secp256r1: Object.freeze({
    name: "secp256r1",
    p: 0xffffffff00000001000000000000000000000000ffffffffffffffffffffffffn,
    a: 0xffffffff00000001000000000000000000000000fffffffffffffffffffffffcn,
    b: 0x5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604bn,
    Gx: 0x6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296n,
    Gy: 0x4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5n,
    n: 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n,
    orderSize: 32,
  }),
  secp384r1: Object.freeze({
    name: "secp384r1",
    p: 0xfffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffeffffffff0000000000000000ffffffffn,
    a: 0xfffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffeffffffff0000000000000000fffffffcn,
    b: 0xb3312fa7e23ee7e4988e056be3f82d19181d9c6efe8141120314088f5013875ac656398d8a2ed19d2a85c8edd3ec2aefn,
    Gx: 0xaa87ca22be8b05378eb1c71ef320ad746e1d3b628ba79b9859f741e082542a385502f25dbf55296c3a545e3872760ab7n,
    Gy: 0x3617de4a96262c6f5d9e98bf9292dc29f8f41dbd289a147ce9da3113b5f0b8c00a60b1ce1d7e819d7a431d7c90ea0e5fn,
    n: 0xffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973n,
    orderSize: 48,
  }),
});

// Instances of the twin's Curve → their domain, so ECDSA can read what firmware cannot.
export const curveDomains = new WeakMap<object, CurveDomain>();

export interface Affine {
  readonly x: bigint;
  readonly y: bigint;
}

export function mod(a: bigint, m: bigint): bigint {
  const r = a % m;
  return r < 0n ? r + m : r;
}

// Lehmer's extended Euclid (Knuth, TAOCP vol. 2, 4.5.2, algorithm L): the quotients are found on
// the leading 48 bits as doubles, and the big numbers are updated once per run of them. Half the
// time of the plain bigint loop, which spends it in bigint divisions.
const LEAD_BITS = 48;

export function invert(a: bigint, m: bigint): bigint {
  let u = mod(a, m), v = m, x0 = 1n, x1 = 0n;
  while (v !== 0n) {
    const shift = Math.max(0, u.toString(16).length * 4 - LEAD_BITS);
    let uh = Number(u >> BigInt(shift)), vh = Number(v >> BigInt(shift));
    // (A B; C D) maps (u, v) to the pair after the quotients that the leading bits determine exactly
    let A = 1, B = 0, C = 0, D = 1;
    while (vh + C !== 0 && vh + D !== 0) {
      const q = Math.floor((uh + A) / (vh + C));
      if (q !== Math.floor((uh + B) / (vh + D))) break;
      [A, C] = [C, A - q * C];
      [B, D] = [D, B - q * D];
      [uh, vh] = [vh, uh - q * vh];
    }
    if (B === 0) {
      const q = u / v;
      [u, v] = [v, u - q * v];
      [x0, x1] = [x1, x0 - q * x1];
    } else {
      const [a1, b1, c1, d1] = [BigInt(A), BigInt(B), BigInt(C), BigInt(D)];
      [u, v] = [a1 * u + b1 * v, c1 * u + d1 * v];
      [x0, x1] = [a1 * x0 + b1 * x1, c1 * x0 + d1 * x1];
    }
  }
  const inverse = mod(x0, m);
  if (mod(a * inverse, m) !== 1n) throw new RangeError("invert: not invertible");
  return inverse;
}

export function isOnCurve(d: CurveDomain, x: bigint, y: bigint): boolean {
  if (x < 0n || x >= d.p || y < 0n || y >= d.p) return false;
  return mod(y * y - (x * x * x + d.a * x + d.b), d.p) === 0n;
}

// OpenSSL multiplies, through node:crypto's ECDH: k·G is the public key of the private key k, and
// x(k·P) the shared secret of k with the peer key P (OpenSSL checks that P lies on the curve).
// Both curves have prime order (cofactor 1), so k in [1, n − 1] times a point other than infinity
// is never infinity.
const OPENSSL_CURVES: Readonly<Record<string, string>> = { secp256r1: "prime256v1", secp384r1: "secp384r1" };
const multipliers = new Map<string, ECDH>();

function multiplier(d: CurveDomain, k: bigint): ECDH {
  let ecdh = multipliers.get(d.name);
  if (!ecdh) multipliers.set(d.name, (ecdh = createECDH(OPENSSL_CURVES[d.name]!)));
  ecdh.setPrivateKey(bigIntToBytes(k, d.orderSize));
  return ecdh;
}

/** k·G, for k in [1, n − 1]. */
export function multiplyBase(d: CurveDomain, k: bigint): Affine {
  // 0x04 ‖ x ‖ y; on both curves a coordinate takes orderSize bytes
  const point = multiplier(d, k).getPublicKey();
  return { x: bytesToBigInt(point.subarray(1, 1 + d.orderSize)), y: bytesToBigInt(point.subarray(1 + d.orderSize)) };
}

/** The x coordinate of k·P, for k in [1, n − 1] and P on the curve. */
export function multiplyX(d: CurveDomain, k: bigint, P: Affine): bigint {
  const encoded = new Uint8Array(1 + 2 * d.orderSize);
  encoded[0] = 0x04;
  encoded.set(bigIntToBytes(P.x, d.orderSize), 1);
  encoded.set(bigIntToBytes(P.y, d.orderSize), 1 + d.orderSize);
  return bytesToBigInt(multiplier(d, k).computeSecret(encoded));
}

/** P + Q for points on the curve; null for the point at infinity. */
export function addPoints(d: CurveDomain, P: Affine, Q: Affine): Affine | null {
  const p = d.p;
  let slope: bigint;
  if (P.x === Q.x) {
    if (P.y !== Q.y || P.y === 0n) return null;
    slope = mod((3n * P.x * P.x + d.a) * invert(2n * P.y, p), p);
  } else slope = mod((Q.y - P.y) * invert(Q.x - P.x, p), p);
  const x = mod(slope * slope - P.x - Q.x, p);
  return { x, y: mod(slope * (P.x - x) - P.y, p) };
}
