// Prime-curve arithmetic for the twin's ECDSA. node:crypto cannot verify or sign a precomputed hash
// (its ECDSA always hashes the message itself), and Moddable's ECDSA takes the hash, so the twin
// does the curve math here; the tests hold its verdicts to node:crypto's.

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

/** Jacobian (X, Y, Z): x = X/Z², y = Y/Z³; Z = 0 is the point at infinity. */
type Jacobian = readonly [bigint, bigint, bigint];
const INFINITY: Jacobian = [1n, 1n, 0n];

export function mod(a: bigint, m: bigint): bigint {
  const r = a % m;
  return r < 0n ? r + m : r;
}

export function invert(a: bigint, m: bigint): bigint {
  let [r0, r1] = [mod(a, m), m];
  let [s0, s1] = [1n, 0n];
  while (r1 !== 0n) {
    const q = r0 / r1;
    [r0, r1] = [r1, r0 - q * r1];
    [s0, s1] = [s1, s0 - q * s1];
  }
  if (r0 !== 1n) throw new RangeError("invert: not invertible");
  return mod(s0, m);
}

export function isOnCurve(d: CurveDomain, x: bigint, y: bigint): boolean {
  if (x < 0n || x >= d.p || y < 0n || y >= d.p) return false;
  return mod(y * y - (x * x * x + d.a * x + d.b), d.p) === 0n;
}

// Both curves have a = −3, which the doubling formula relies on (dbl-2001-b).
function double(d: CurveDomain, [X, Y, Z]: Jacobian): Jacobian {
  const p = d.p;
  if (Z === 0n || Y === 0n) return INFINITY;
  const delta = mod(Z * Z, p);
  const gamma = mod(Y * Y, p);
  const beta = mod(X * gamma, p);
  const alpha = mod(3n * (X - delta) * (X + delta), p);
  const X3 = mod(alpha * alpha - 8n * beta, p);
  const Z3 = mod((Y + Z) * (Y + Z) - gamma - delta, p);
  const Y3 = mod(alpha * (4n * beta - X3) - 8n * gamma * gamma, p);
  return [X3, Y3, Z3];
}

function add(d: CurveDomain, P: Jacobian, Q: Jacobian): Jacobian {
  if (P[2] === 0n) return Q;
  if (Q[2] === 0n) return P;
  const p = d.p;
  const [X1, Y1, Z1] = P;
  const [X2, Y2, Z2] = Q;
  const Z1Z1 = mod(Z1 * Z1, p);
  const Z2Z2 = mod(Z2 * Z2, p);
  const U1 = mod(X1 * Z2Z2, p);
  const U2 = mod(X2 * Z1Z1, p);
  const S1 = mod(Y1 * Z2 * Z2Z2, p);
  const S2 = mod(Y2 * Z1 * Z1Z1, p);
  if (U1 === U2) return S1 === S2 ? double(d, P) : INFINITY;
  const H = mod(U2 - U1, p);
  const R = mod(S2 - S1, p);
  const HH = mod(H * H, p);
  const HHH = mod(H * HH, p);
  const V = mod(U1 * HH, p);
  const X3 = mod(R * R - HHH - 2n * V, p);
  const Y3 = mod(R * (V - X3) - S1 * HHH, p);
  const Z3 = mod(H * Z1 * Z2, p);
  return [X3, Y3, Z3];
}

function toAffine(d: CurveDomain, [X, Y, Z]: Jacobian): Affine | null {
  if (Z === 0n) return null;
  const zi = invert(Z, d.p);
  const zi2 = mod(zi * zi, d.p);
  return { x: mod(X * zi2, d.p), y: mod(Y * zi2 * zi, d.p) };
}

/** k1·G + k2·Q (Shamir's trick); null when the sum is the point at infinity. */
export function combine(d: CurveDomain, k1: bigint, k2: bigint, Q: Affine): Affine | null {
  const G: Jacobian = [d.Gx, d.Gy, 1n];
  const Qj: Jacobian = [Q.x, Q.y, 1n];
  const both = add(d, G, Qj);
  let R = INFINITY;
  for (let i = Math.max(k1.toString(2).length, k2.toString(2).length) - 1; i >= 0; i--) {
    R = double(d, R);
    const bit1 = (k1 >> BigInt(i)) & 1n;
    const bit2 = (k2 >> BigInt(i)) & 1n;
    if (bit1 && bit2) R = add(d, R, both);
    else if (bit1) R = add(d, R, G);
    else if (bit2) R = add(d, R, Qj);
  }
  return toAffine(d, R);
}
