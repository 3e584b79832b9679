// Moddable's "hmac" (modules/crypt/etc/hmac.js) on node:crypto. The board's HMAC runs inside the
// Digest it is given, so the twin takes that Digest away from other use; its output equals Node's.
import { createHmac, type Hmac } from "node:crypto";
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

export default class HMAC {
  readonly #kind: DigestKind;
  #key: Uint8Array = new Uint8Array(0);
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
    this.reset();
    this.update(...data);
    return this.close();
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
