// Moddable's "ber" (modules/crypt/etc/ber.js), the reading half: enough to take a DER
// SubjectPublicKeyInfo apart. The board's reader never checks bounds and misreads some encodings
// without a word; the twin throws a BERError wherever the board would read garbage.
import { BERError, bytesToBigInt, describe } from "./crypt-support.ts";

const TAG_NAMES: Readonly<Record<number, string>> = { 0x02: "an integer", 0x03: "a bit string", 0x04: "an octet string", 0x06: "an object identifier", 0x30: "a sequence" };

export default class BER {
  readonly #a: Uint8Array;
  #i = 0;
  // Set when the board's cursor would be misplaced: every later read there is misaligned.
  #lost: string | undefined;

  constructor(buffer: ArrayBuffer | Uint8Array) {
    // Given anything else, the board silently builds an empty BER for encoding.
    if (buffer instanceof ArrayBuffer) this.#a = new Uint8Array(buffer);
    else if (buffer instanceof Uint8Array) this.#a = buffer;
    else throw new TypeError(`new BER(buffer): expected an ArrayBuffer or a Uint8Array to read, got ${describe(buffer)}`);
  }

  /** Bytes left; −1 after a bit string that ended the data, as on the board. */
  get readable(): number {
    return this.#a.byteLength - this.#i;
  }

  #usable(): void {
    if (this.#lost) throw new BERError(this.#lost);
  }

  #byte(what: string): number {
    this.#usable();
    if (this.#i >= this.#a.byteLength)
      throw new BERError(`BER: ${what} past the end of the data (the board reads undefined and goes on); the DER is truncated`);
    return this.#a[this.#i++]!;
  }

  #take(length: number, what: string): Uint8Array {
    this.#usable();
    if (!Number.isInteger(length) || length < 0 || this.#i + length > this.#a.byteLength)
      throw new BERError(`BER: ${what} of ${length} bytes runs past the end of the data (${this.readable} left); ` +
        `the board would return a short or out-of-bounds view`);
    const chunk = this.#a.subarray(this.#i, this.#i + length);
    this.#i += length;
    return chunk;
  }

  #expect(tag: number): number {
    const found = this.getTag();
    if (found !== tag) throw new BERError(`BER: not ${TAG_NAMES[tag]} (tag 0x${found.toString(16).padStart(2, "0")})`);
    const length = this.getLength();
    if (length === 0 && tag !== 0x30 && tag !== 0x04)
      throw new BERError(`BER: empty ${TAG_NAMES[tag]!.replace(/^an? /, "")}; the board would read the next element's bytes as its content`);
    return length;
  }

  getTag(): number {
    return this.#byte("tag");
  }

  getLength(): number {
    const first = this.#byte("length");
    if (first < 0x80) return first;
    const count = first & 0x7f;
    if (count === 0)
      throw new BERError("BER: indefinite length; the board returns −1 and misreads what follows (DER has only definite lengths)");
    if (count > 3) throw new BERError(`BER: a ${count}-byte length overflows the board's 32-bit arithmetic`);
    let length = 0;
    for (let k = 0; k < count; k++) length = length * 256 + this.#byte("length");
    return length;
  }

  /** The next byte without consuming it; undefined at the end, as on the board. */
  peek(): number | undefined {
    this.#usable();
    return this.#a[this.#i];
  }

  /** A view of the next `n` bytes (no copy). */
  getChunk(n: number): Uint8Array {
    return this.#take(n, "chunk");
  }

  /** The sequence's content, as a view to read with a new BER. */
  getSequence(): Uint8Array {
    return this.#take(this.#expect(0x30), "sequence");
  }

  getInteger(): bigint {
    const bytes = this.#take(this.#expect(0x02), "integer");
    const value = bytesToBigInt(bytes);
    return bytes[0]! & 0x80 ? value - (1n << BigInt(bytes.length * 8)) : value;
  }

  /** The bits of a bit string with no unused bits, as a view. */
  getBitString(): Uint8Array {
    const length = this.#expect(0x03);
    if (this.#byte("bit string padding") !== 0)
      throw new BERError("BER: bit string with unused bits; the board shifts each byte on its own and mangles the value");
    const bits = this.#take(length - 1, "bit string");
    // The board advances by the whole length after the padding byte: one byte too far.
    this.#i += 1;
    this.#lost = "BER: read after getBitString(); on the board it leaves the cursor one byte past the bit string, so " +
      "this read would be misaligned. Read the bit string last, or parse what follows from the enclosing getSequence() with a new BER";
    return bits;
  }

  getOctetString(): Uint8Array {
    return this.#take(this.#expect(0x04), "octet string");
  }

  getObjectIdentifier(): Uint32Array {
    const bytes = this.#take(this.#expect(0x06), "object identifier");
    const first = bytes[0]!;
    // The board splits the first byte into two arcs with idiv/irem by 40, right only below 120.
    if (first >= 120) throw new BERError("BER: object identifier 2.40 or above; the board misreads its first two arcs");
    const arcs = [Math.floor(first / 40), first % 40];
    let arc = 0;
    for (let k = 1; k < bytes.length; k++) {
      arc = arc * 128 + (bytes[k]! & 0x7f);
      if (arc >= 2 ** 32) throw new BERError("BER: object identifier arc of 2^32 or more; the board keeps it modulo 2^32");
      if (bytes[k]! & 0x80) continue;
      arcs.push(arc);
      arc = 0;
    }
    if (bytes[bytes.length - 1]! & 0x80)
      throw new BERError("BER: object identifier ends inside an arc; the board would return a garbage last arc");
    return Uint32Array.from(arcs);
  }
}

Object.freeze(BER.prototype);
Object.freeze(BER);
