// What the twin's crypto modules share and firmware must not see: the typed errors, the rule for
// which inputs Moddable's native code reads as bytes, and which Digest belongs to which HMAC.
// Kept out of crypt.ts / hmac.ts / ecdsa.ts so those export exactly what the Moddable modules do.

/** A Digest or HMAC used in a state where Moddable would silently produce a wrong result. */
export class CryptStateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "CryptStateError";
  }
}

/** A Moddable API that cannot work on the board; the message names what to use instead. */
export class ModdableBugError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ModdableBugError";
  }
}

/**
 * A signature Moddable's ECDSA.verify must never see: it loops forever on some (s = 0, negative
 * DER integers) and wrongly returns true on others (s + n, trailing bytes, non-minimal DER).
 */
export class UncheckedSignatureError extends Error {
  constructor(problem: string) {
    super(`${problem}. Moddable's ECDSA.verify hangs or accepts such signatures: check the signature ` +
      `before calling verify (raw r‖s of exactly 2 × orderSize bytes, or strict DER; 1 ≤ r, s < n)`);
    this.name = "UncheckedSignatureError";
  }
}

/** A public point that is not on the curve, or a private scalar outside [1, n − 1]. */
export class ECKeyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ECKeyError";
  }
}

/** Input Moddable's BER reader would misread (read past the end, mangle, or lose its place). */
export class BERError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "BERError";
  }
}

// XS stores U+0000 as C0 80 and lone surrogates as 3-byte sequences, and the digest hashes
// those internal bytes; Node's UTF-8 differs for both, so such strings are refused.
const DIVERGENT_STRING = /\0|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const utf8 = new TextEncoder();

/**
 * The bytes Moddable's native code reads from `data` (xsmcGetBufferReadable): an ArrayBuffer, a
 * DataView, or a typed array with 1-byte elements; with `strings`, a string's UTF-8 too.
 */
export function readableBytes(data: unknown, where: string, strings: boolean): Uint8Array {
  if (typeof data === "string" && strings) {
    if (DIVERGENT_STRING.test(data))
      throw new TypeError(`${where}: the string holds U+0000 or an unpaired surrogate, which XS encodes differently ` +
        `from UTF-8, so the board would hash other bytes than Node. Pass the intended bytes as an ArrayBuffer`);
    return utf8.encode(data);
  }
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  // the common case, read in place: a view of it would cost an allocation per write
  if (data instanceof Uint8Array) return data;
  if (ArrayBuffer.isView(data) && (data instanceof DataView || (data as Uint8Array).BYTES_PER_ELEMENT === 1))
    return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const accepted = strings ? "a string, an ArrayBuffer, a DataView or a Uint8Array" : "an ArrayBuffer, a DataView or a Uint8Array";
  throw new TypeError(`${where}: expected ${accepted} (typed arrays with wider elements are rejected on the board: ` +
    `"invalid buffer"), got ${describe(data)}`);
}

export function describe(value: unknown): string {
  if (value === null) return "null";
  if (typeof value === "object" || typeof value === "function") return (value as object).constructor?.name ?? "an object";
  return typeof value;
}

export function toArrayBuffer(bytes: Uint8Array): ArrayBuffer {
  return Uint8Array.from(bytes).buffer;
}

export interface DigestKind {
  /** Moddable's name */
  readonly name: string;
  /** node:crypto's name */
  readonly node: string;
  readonly blockSize: number;
  readonly outputSize: number;
}

// modules/crypt/digest/modCrypt.c gDigests, minus GHASH (which only its own class can initialise).
export const DIGESTS: Readonly<Record<string, DigestKind>> = Object.freeze({
  MD5: { name: "MD5", node: "md5", blockSize: 64, outputSize: 16 },
  SHA1: { name: "SHA1", node: "sha1", blockSize: 64, outputSize: 20 },
  SHA224: { name: "SHA224", node: "sha224", blockSize: 64, outputSize: 28 },
  SHA256: { name: "SHA256", node: "sha256", blockSize: 64, outputSize: 32 },
  SHA384: { name: "SHA384", node: "sha384", blockSize: 128, outputSize: 48 },
  SHA512: { name: "SHA512", node: "sha512", blockSize: 128, outputSize: 64 },
});

const digestKinds = new WeakMap<object, DigestKind>();
const lentDigests = new WeakSet<object>();

export function registerDigest(digest: object, kind: DigestKind): void {
  digestKinds.set(digest, kind);
}

/** Moddable's HMAC keeps its running state in the Digest it is given, so the HMAC takes it for good. */
export function lendDigest(digest: unknown): DigestKind {
  const kind = typeof digest === "object" && digest !== null ? digestKinds.get(digest) : undefined;
  if (!kind) throw new TypeError(`new HMAC(h, key): h must be a Digest from "crypt" (new Digest("SHA256")), got ${describe(digest)}`);
  if (lentDigests.has(digest as object))
    throw new CryptStateError(`new HMAC(h, key): this ${kind.name} Digest already belongs to another HMAC, which keeps ` +
      `its state in it; give each HMAC its own new Digest`);
  lentDigests.add(digest as object);
  return kind;
}

export function isLent(digest: object): boolean {
  return lentDigests.has(digest);
}

/** Unsigned big-endian, as XS's BigInt.fromArrayBuffer reads it. */
export function bytesToBigInt(bytes: Uint8Array): bigint {
  return bytes.length === 0 ? 0n : BigInt("0x" + Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("hex"));
}

/** Unsigned big-endian, left-padded to `size` bytes (or minimal when size is 0). */
export function bigIntToBytes(value: bigint, size = 0): Uint8Array {
  let hex = value.toString(16);
  if (hex.length % 2) hex = "0" + hex;
  hex = hex.padStart(size * 2, "0");
  return Uint8Array.from(Buffer.from(hex, "hex"));
}
