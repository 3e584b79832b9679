// Moddable's "hmac" (modules/crypt/etc/hmac.js) on node:crypto. The board's HMAC runs inside the
// Digest it is given, so the twin takes that Digest away from other use; its output equals Node's.
//
// One-shot SHA-256 MACs (process()) are the verifier's hot path, where node:crypto's per-call
// object setup costs more than hashing ~150 bytes. There the twin keeps the key's padded inner and
// outer SHA-256 states, as RFC 2104 §4 suggests, and runs only the message's blocks in JS.
import { createHash, createHmac, type Hmac } from "node:crypto";
import type { Digest } from "./crypt.ts";
import { CryptStateError, describe, type DigestKind, lendDigest, ModdableBugError, readableBytes, toArrayBuffer } from "./crypt-support.ts";

type Data = string | ArrayBuffer | ArrayBufferView;

// The board copies a short key with `new Uint8Array(key)`: a string or DataView becomes an empty
// key and wider typed arrays lose bits, all silently. Only whole bytes are accepted here.
function keyBytes(key: unknown): Uint8Array {
  if (key instanceof ArrayBuffer) return Uint8Array.from(new Uint8Array(key));
  if (ArrayBuffer.isView(key) && !(key instanceof DataView) && (key as Uint8Array).BYTES_PER_ELEMENT === 1)
    return Uint8Array.from(new Uint8Array(key.buffer, key.byteOffset, key.byteLength));
  throw new TypeError(`HMAC key: expected an ArrayBuffer or a Uint8Array, got ${describe(key)} ` +
    `(on the board a string or DataView key silently becomes an empty key)`);
}

// FIPS 180-4 §4.2.2
const K = Int32Array.from([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01,
  0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc,
  0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
  0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08,
  0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
  0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);
const IV = Int32Array.from([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]);
const BLOCK = 64;
const w = new Int32Array(64);

const rotateE = (e: number): number => ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
const rotateA = (a: number): number => ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));

// Eight rounds per pass with the working variables renamed instead of shifted along.
function compress(state: Int32Array, bytes: Uint8Array, at: number): void {
  for (let i = 0; i < 16; i++, at += 4) w[i] = (bytes[at]! << 24) | (bytes[at + 1]! << 16) | (bytes[at + 2]! << 8) | bytes[at + 3]!;
  rounds(state);
}

/** Compresses the block already in w[0..15] into `state`. */
function rounds(state: Int32Array): void {
  for (let i = 16; i < 64; i++) {
    const x = w[i - 15]!, y = w[i - 2]!;
    w[i] = (((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3)) + w[i - 7]! +
      (((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10)) + w[i - 16]! | 0;
  }
  let a = state[0]!, b = state[1]!, c = state[2]!, d = state[3]!, e = state[4]!, f = state[5]!, g = state[6]!, h = state[7]!;
  for (let i = 0; i < 64; i += 8) {
    h = h + rotateE(e) + ((e & f) ^ (~e & g)) + K[i]! + w[i]! | 0; d = d + h | 0; h = h + rotateA(a) + ((a & b) ^ (a & c) ^ (b & c)) | 0;
    g = g + rotateE(d) + ((d & e) ^ (~d & f)) + K[i + 1]! + w[i + 1]! | 0; c = c + g | 0; g = g + rotateA(h) + ((h & a) ^ (h & b) ^ (a & b)) | 0;
    f = f + rotateE(c) + ((c & d) ^ (~c & e)) + K[i + 2]! + w[i + 2]! | 0; b = b + f | 0; f = f + rotateA(g) + ((g & h) ^ (g & a) ^ (h & a)) | 0;
    e = e + rotateE(b) + ((b & c) ^ (~b & d)) + K[i + 3]! + w[i + 3]! | 0; a = a + e | 0; e = e + rotateA(f) + ((f & g) ^ (f & h) ^ (g & h)) | 0;
    d = d + rotateE(a) + ((a & b) ^ (~a & c)) + K[i + 4]! + w[i + 4]! | 0; h = h + d | 0; d = d + rotateA(e) + ((e & f) ^ (e & g) ^ (f & g)) | 0;
    c = c + rotateE(h) + ((h & a) ^ (~h & b)) + K[i + 5]! + w[i + 5]! | 0; g = g + c | 0; c = c + rotateA(d) + ((d & e) ^ (d & f) ^ (e & f)) | 0;
    b = b + rotateE(g) + ((g & h) ^ (~g & a)) + K[i + 6]! + w[i + 6]! | 0; f = f + b | 0; b = b + rotateA(c) + ((c & d) ^ (c & e) ^ (d & e)) | 0;
    a = a + rotateE(f) + ((f & g) ^ (~f & h)) + K[i + 7]! + w[i + 7]! | 0; e = e + a | 0; a = a + rotateA(b) + ((b & c) ^ (b & d) ^ (c & d)) | 0;
  }
  state[0] = state[0]! + a | 0; state[1] = state[1]! + b | 0; state[2] = state[2]! + c | 0; state[3] = state[3]! + d | 0;
  state[4] = state[4]! + e | 0; state[5] = state[5]! + f | 0; state[6] = state[6]! + g | 0; state[7] = state[7]! + h | 0;
}

const running = new Int32Array(8);

/** The SHA-256 states after the key's inner and outer pads (RFC 2104 §4: computed once per key). */
function padStates(key: Uint8Array): { inner: Int32Array; outer: Int32Array } {
  const block = new Uint8Array(BLOCK);
  block.set(key.length > BLOCK ? createHash("sha256").update(key).digest() : key);
  const pad = (byte: number): Int32Array => {
    const state = IV.slice();
    compress(state, block.map((b) => b ^ byte), 0);
    return state;
  };
  return { inner: pad(0x36), outer: pad(0x5c) };
}

let padded = new Uint8Array(1024);

// The message goes into `padded`, then SHA-256's padding for a message that follows one 64-byte
// block (the key's). Strings and bytes take separate functions, so that each call site sees one
// type (a verifier passes bytes only, a device strings only).
function room(length: number): void {
  if (padded.length < length + 9 + BLOCK) padded = new Uint8Array(2 * (length + 9 + BLOCK));
}

/** Copies an ASCII string without U+0000 (its UTF-8 is itself) into `padded`; false for any other. */
function copyAscii(text: string): boolean {
  room(text.length);
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit === 0 || unit > 0x7f) return false;
    padded[i] = unit;
  }
  return true;
}

function copyBytes(bytes: Uint8Array): void {
  room(bytes.length);
  padded.set(bytes);
}

/** Pads the `length` message bytes in `padded`; returns the padded length. */
function pad(length: number): number {
  const total = (length + 9 + BLOCK - 1) & -BLOCK;
  padded[length] = 0x80;
  padded.fill(0, length + 1, total - 5);
  const bits = (BLOCK + length) * 8;
  padded[total - 5] = bits / 2 ** 32;
  padded[total - 4] = bits >>> 24; padded[total - 3] = bits >>> 16; padded[total - 2] = bits >>> 8; padded[total - 1] = bits;
  return total;
}

const OUTER_PADDING = Int32Array.of(0x80000000 | 0, 0, 0, 0, 0, 0, 0, (BLOCK + 32) * 8);

function writeDigest(state: Int32Array, out: Uint8Array): void {
  for (let i = 0; i < 8; i++) {
    const v = state[i]!;
    out[4 * i] = v >>> 24; out[4 * i + 1] = v >>> 16; out[4 * i + 2] = v >>> 8; out[4 * i + 3] = v;
  }
}

/** HMAC-SHA256 of the `length` message bytes in `padded`, from the key's pad states, into `out`. */
function macPadded(pads: { inner: Int32Array; outer: Int32Array }, length: number, out: Uint8Array): void {
  const total = pad(length);
  running.set(pads.inner);
  for (let at = 0; at < total; at += BLOCK) compress(running, padded, at);
  // The outer hash's one block, as words: the inner digest, then padding for 64 + 32 bytes.
  w.set(running);
  w.set(OUTER_PADDING, 8);
  running.set(pads.outer);
  rounds(running);
  writeDigest(running, out);
}

export default class HMAC {
  readonly #kind: DigestKind;
  #key: Uint8Array = new Uint8Array(0);
  #pads: { inner: Int32Array; outer: Int32Array } | undefined;
  // undefined once closed: the board's close() leaves its Digest finalised, so update() or
  // close() again without reset() would return a wrong MAC.
  #mac: Hmac | undefined;

  constructor(h: Digest, key: ArrayBuffer | Uint8Array) {
    this.#kind = lendDigest(h);
    this.init(key);
  }

  #live(operation: string): Hmac {
    if (!this.#mac)
      throw new CryptStateError(`HMAC.${operation} after close(): Moddable's close() does not reset, so this would give ` +
        `a wrong MAC. Call reset() first or use process()`);
    return this.#mac;
  }

  init(key: ArrayBuffer | Uint8Array): void {
    this.#key = keyBytes(key);
    this.#pads = this.#kind.name === "SHA256" ? padStates(this.#key) : undefined;
    this.reset();
  }

  update(...data: Data[]): void {
    const mac = this.#live("update");
    for (const item of data) mac.update(readableBytes(item, "HMAC.update", true));
  }

  close(): ArrayBuffer {
    const mac = this.#live("close");
    this.#mac = undefined;
    return toArrayBuffer(mac.digest());
  }

  reset(): void {
    this.#mac = createHmac(this.#kind.node, this.#key);
  }

  process(...data: Data[]): ArrayBuffer {
    if (this.#pads === undefined || data.length !== 1) {
      this.reset();
      this.update(...data);
      return this.close();
    }
    // An ArrayBuffer first: asking a small typed array for its buffer makes V8 move it off the heap.
    const mac = new ArrayBuffer(32);
    const out = new Uint8Array(mac);
    const message = data[0]!;
    let length: number;
    if (typeof message === "string" && copyAscii(message)) length = message.length;
    else {
      // bytes, or a string's UTF-8 (readableBytes refuses what XS would hash differently)
      const bytes = message instanceof Uint8Array ? message : readableBytes(message, "HMAC.update", true);
      copyBytes(bytes);
      length = bytes.length;
    }
    macPadded(this.#pads, length, out);
    // as after close(): the board's Digest is left finalised
    this.#mac = undefined;
    return mac;
  }

  // On the board both call this.write, which HMAC does not have.
  sign(): never {
    throw new ModdableBugError("HMAC.sign is broken on Moddable (it calls this.write, which HMAC lacks): " +
      "use hmac.process(data) and truncate the result yourself if needed");
  }

  verify(): never {
    throw new ModdableBugError("HMAC.verify is broken on Moddable (it calls this.write, which HMAC lacks): " +
      "compute the tag with hmac.process(data) and compare every byte (no early exit)");
  }
}

Object.freeze(HMAC.prototype);
Object.freeze(HMAC);
