// Moddable's crypto modules (modules/crypt/, brought in by tls_common.json), which
// @moddable/typings lacks. Only the surface firmware should use: what is broken or unsafe on the
// board (HMAC sign/verify, Curve.dh, BER encoding, ECPoint setters) is left out on purpose.

declare module "crypt" {
  export type DigestAlgorithm = "MD5" | "SHA1" | "SHA224" | "SHA256" | "SHA384" | "SHA512";
  /** Bytes as Moddable's native code reads them; a string is hashed as its UTF-8. */
  export type DigestData = string | ArrayBuffer | DataView | Uint8Array | Int8Array | Uint8ClampedArray;

  export class Digest {
    constructor(type: DigestAlgorithm);
    write(data: DigestData): void;
    /** Same as write(). */
    update(data: DigestData): void;
    /**
     * The digest. Does not reset: call reset() before writing again. With `more`, returns the
     * digest so far and hashing goes on.
     */
    close(more?: boolean): ArrayBuffer;
    reset(): void;
    /** reset(), write() each item, close(). */
    process(...data: DigestData[]): ArrayBuffer;
    readonly blockSize: number;
    readonly outputSize: number;
  }

  const crypt: { readonly Digest: typeof Digest };
  export default crypt;
}

declare module "hmac" {
  import type { Digest, DigestData } from "crypt";

  /** HMAC over `h`, which it takes over for good: hash other data with another Digest. */
  export default class HMAC {
    constructor(h: Digest, key: ArrayBuffer | Uint8Array);
    /** Re-key; also resets. */
    init(key: ArrayBuffer | Uint8Array): void;
    update(...data: DigestData[]): void;
    /** The MAC. Does not reset: call reset() before the next message, or use process(). */
    close(): ArrayBuffer;
    reset(): void;
    /** reset(), update(...data), close(). */
    process(...data: DigestData[]): ArrayBuffer;
  }
}

declare module "ber" {
  /** Reads DER/BER. The board checks no bounds: validate lengths before trusting the result. */
  export default class BER {
    constructor(buffer: ArrayBuffer | Uint8Array);
    /** Bytes left to read; −1 after a bit string that ended the data. */
    readonly readable: number;
    getTag(): number;
    getLength(): number;
    peek(): number | undefined;
    /** A view (no copy) of the next n bytes. */
    getChunk(n: number): Uint8Array;
    /** The content of a SEQUENCE, as a view to read with a new BER. */
    getSequence(): Uint8Array;
    getInteger(): bigint;
    /**
     * The bits of a BIT STRING with no unused bits, as a view. Leaves the reader one byte past
     * the bit string: read nothing after it from the same BER.
     */
    getBitString(): Uint8Array;
    getOctetString(): Uint8Array;
    /** The arcs, e.g. [1, 2, 840, 10045, 2, 1]. */
    getObjectIdentifier(): Uint32Array;
  }
}

declare module "curve" {
  export default class Curve {
    constructor(name: "secp256r1" | "secp384r1");
    /** Bytes per scalar: 32 for secp256r1, 48 for secp384r1. */
    readonly orderSize: number;
  }
}

declare module "ecp" {
  export default class ECPoint {
    constructor(x: bigint, y: bigint, identity?: boolean);
    readonly X: bigint;
    readonly Y: bigint;
    isZero(): boolean;
    /** An uncompressed point, 04 ‖ X ‖ Y (e.g. the bit string of an EC SubjectPublicKeyInfo). */
    static fromOctetString(os: Uint8Array): ECPoint;
  }
}

declare module "ecdsa" {
  import type Curve from "curve";
  import type ECPoint from "ecp";

  export default class ECDSA {
    /** A public point to verify with, or a private scalar to sign with. */
    constructor(key: ECPoint | bigint, curve: Curve);
    /**
     * H: the message's hash (at most orderSize bytes). sig: raw r‖s of 2 × orderSize bytes, or
     * DER with `asn1`. Check the signature first: on the board, s = 0 or a negative DER integer
     * hangs, and s + n, trailing bytes or non-minimal DER verify as true.
     */
    verify(H: ArrayBuffer, sig: ArrayBuffer | Uint8Array, asn1?: boolean): boolean;
    /** Raw r‖s, or DER with `asn1`. */
    sign(H: ArrayBuffer, asn1?: boolean): ArrayBuffer;
  }
}
