// One telemetry signing key: HMAC-SHA256 over canonical bytes, written as the seed's lowercase
// hex `sig`. Moddable's `hmac` over `crypt`'s Digest on the board, their twins on Node: the device
// and the verifier run this same code.
import { Digest } from "crypt";
import HMAC from "hmac";
import type { CanonicalJson } from "telemetry/canonical-json";

/** HMAC-SHA256 as 64 lowercase hex digits: what the classic Python verifier compares. */
export type SigHex = string & { readonly __brand: "SigHex" };

export const SIG_HEX_LENGTH = 64;

/** RFC 2104 §3: a key shorter than the hash output weakens the MAC. */
export const MIN_KEY_BYTES = 32;

export class EnvelopeKeyError extends Error {
  override name = "EnvelopeKeyError";
}

/** Whether `text` holds SIG_HEX_LENGTH lowercase hex digits from `from` on. */
export function isSigHexAt(text: string, from: number): boolean {
  // a loop, not a regular expression: this runs on every message the verifier receives
  for (let i = from; i < from + SIG_HEX_LENGTH; i++) {
    const unit = text.charCodeAt(i);
    if (!((unit >= 0x30 && unit <= 0x39) || (unit >= 0x61 && unit <= 0x66))) return false;
  }
  return true;
}

export function isSigHex(value: unknown): value is SigHex {
  return typeof value === "string" && value.length === SIG_HEX_LENGTH && isSigHexAt(value, 0);
}

const HEX_BYTES: readonly string[] = Array.from({ length: 256 }, (_, byte) => (byte < 16 ? "0" : "") + byte.toString(16));

export class EnvelopeKey {
  readonly #hmac: HMAC;

  constructor(secret: ArrayBuffer | Uint8Array) {
    if (secret.byteLength < MIN_KEY_BYTES)
      throw new EnvelopeKeyError(`telemetry key is ${secret.byteLength} bytes; use at least ${MIN_KEY_BYTES} ` +
        `(provisioning derives 32-byte keys with HKDF)`);
    this.#hmac = new HMAC(new Digest("SHA256"), secret);
  }

  /** The signature of `signed`, which is ASCII: its string form is its bytes. */
  sign(signed: CanonicalJson): SigHex {
    const mac = new Uint8Array(this.#hmac.process(signed));
    let hex = "";
    for (let i = 0; i < mac.length; i++) hex += HEX_BYTES[mac[i]!];
    return hex as SigHex;
  }

  /**
   * Whether `sig` signs `signed` (the canonical bytes, as text or as bytes). Every byte is
   * compared, so the time taken tells nothing about how close a forged sig came; only `sig`, which
   * the sender chose, steers a branch.
   */
  matches(signed: CanonicalJson | Uint8Array, sig: SigHex): boolean {
    const mac = new Uint8Array(this.#hmac.process(signed));
    let difference = 0;
    for (let i = 0; i < mac.length; i++) {
      const high = sig.charCodeAt(2 * i);
      const low = sig.charCodeAt(2 * i + 1);
      difference |= mac[i]! ^ (((high <= 0x39 ? high - 0x30 : high - 0x57) << 4) | (low <= 0x39 ? low - 0x30 : low - 0x57));
    }
    return difference === 0;
  }
}

Object.freeze(EnvelopeKey.prototype);
