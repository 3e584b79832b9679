// Moddable's "ecp" (modules/crypt/arith/ecp.js), the ECPoint class: here only to carry a public key
// into ECDSA, so points are immutable (the board's ECDSA keeps a reference to the point it is given).
import { bytesToBigInt, describe } from "./crypt-support.ts";

export default class ECPoint {
  readonly #x: bigint;
  readonly #y: bigint;
  readonly #identity: boolean;

  constructor(x: bigint, y: bigint, identity = false) {
    if (typeof x !== "bigint" || typeof y !== "bigint")
      throw new TypeError(`new ECPoint(x, y): coordinates must be bigints, got ${describe(x)} and ${describe(y)}`);
    this.#x = x;
    this.#y = y;
    this.#identity = Boolean(identity);
  }

  get X(): bigint {
    return this.#x;
  }

  get Y(): bigint {
    return this.#y;
  }

  isZero(): boolean {
    return this.#identity;
  }

  /** An uncompressed SEC 1 point, 04 ‖ X ‖ Y, such as the bit string of an EC SubjectPublicKeyInfo. */
  static fromOctetString(os: Uint8Array): ECPoint {
    // The board indexes os[0] and slices by os.length: an ArrayBuffer reads as "unsupported
    // format", and a wrong length silently splits X and Y in the wrong place.
    if (!(os instanceof Uint8Array))
      throw new TypeError(`ECPoint.fromOctetString: expected a Uint8Array (e.g. from BER getBitString()), got ${describe(os)}`);
    if (os[0] !== 0x04) throw new Error("unsupported format: ECPoint.fromOctetString takes only uncompressed points (first byte 04)");
    if (os.length < 3 || os.length % 2 === 0)
      throw new RangeError(`ECPoint.fromOctetString: an uncompressed point is 04 ‖ X ‖ Y with X and Y of equal length, got ${os.length} bytes`);
    const size = (os.length - 1) / 2;
    return new ECPoint(bytesToBigInt(os.subarray(1, 1 + size)), bytesToBigInt(os.subarray(1 + size)));
  }
}

Object.freeze(ECPoint.prototype);
Object.freeze(ECPoint);
