// Moddable's "crypt" (modules/crypt/digest) on node:crypto: the Digest class, as a named export and
// in the frozen default object. BlockCipher, Mode, StreamCipher and GHASH are not twinned, so a
// firmware import of them fails at link time instead of running something unlike the board.
import { createHash, type Hash } from "node:crypto";
import { CryptStateError, DIGESTS, type DigestKind, isLent, readableBytes, registerDigest, toArrayBuffer } from "./crypt-support.ts";

export class Digest {
  readonly #kind: DigestKind;
  // undefined once closed: the board's close() finalises the context in place, so writing or
  // closing again without reset() would hash onto padding and return a wrong digest.
  #hash: Hash | undefined;

  constructor(type: string) {
    const name = String(type);
    const kind = Object.hasOwn(DIGESTS, name) ? DIGESTS[name] : undefined;
    if (!kind) throw new Error(`crypt: unsupported digest "${name}"; Moddable's Digest knows ${Object.keys(DIGESTS).join(", ")} (upper case)`);
    this.#kind = kind;
    this.#hash = createHash(kind.node);
    registerDigest(this, kind);
  }

  #own(operation: string): void {
    if (isLent(this))
      throw new CryptStateError(`Digest.${operation}: this ${this.#kind.name} Digest belongs to an HMAC, which keeps its ` +
        `running state in it on Moddable; hash with a separate new Digest`);
  }

  #live(operation: string): Hash {
    this.#own(operation);
    if (!this.#hash)
      throw new CryptStateError(`Digest.${operation} after close(): Moddable's close() finalises without resetting, so ` +
        `this would give a wrong digest. Call reset() first, use process(), or close(true) to read a digest and go on`);
    return this.#hash;
  }

  write(data: string | ArrayBuffer | ArrayBufferView): void {
    const hash = this.#live("write");
    hash.update(readableBytes(data, "Digest.write", true));
  }

  /** With `more` truthy, returns the digest so far and keeps hashing (the board snapshots its context). */
  close(more?: boolean): ArrayBuffer {
    const hash = this.#live("close");
    if (more) return toArrayBuffer(hash.copy().digest());
    this.#hash = undefined;
    return toArrayBuffer(hash.digest());
  }

  reset(): void {
    this.#own("reset");
    this.#hash = createHash(this.#kind.node);
  }

  get blockSize(): number {
    return this.#kind.blockSize;
  }

  get outputSize(): number {
    return this.#kind.outputSize;
  }

  process(...data: (string | ArrayBuffer | ArrayBufferView)[]): ArrayBuffer {
    this.reset();
    for (const item of data) this.write(item);
    return this.close();
  }

  update(data: string | ArrayBuffer | ArrayBufferView): void {
    this.write(data);
  }
}

// Preloaded on the board, so the class is read-only at run time.
Object.freeze(Digest.prototype);
Object.freeze(Digest);

export default Object.freeze({ Digest });
