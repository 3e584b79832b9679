// The device's telemetry counter (`seq`), never reused across reboots, power cuts or updates,
// without a flash write per message: a whole block of numbers is reserved in NVS before the first
// of them is used, so after any reset the counter resumes above the last reserved block (the rest
// of that block is skipped, which the verifier accepts: it only needs seq to grow).
//
// Two NVS keys take turns. Moddable's Preference.set erases a key before writing it, so a power
// cut mid-write loses that key; the reservation is always written to the key holding the older
// ceiling, and the other key still holds the newer one. The ceiling is a decimal string because
// Preference numbers are int32 and seq runs to 2^53 − 1.
import Preference from "preference";
import { type Counter, isCounter } from "telemetry/envelope-header";

export const SeqKey = Object.freeze({ a: "tm_seq_a", b: "tm_seq_b" } as const);

export class SeqCounterError extends Error {
  override name = "SeqCounterError";
}

const CEILING = /^(?:0|[1-9][0-9]{0,15})$/;

function readCeiling(domain: string, key: string): number {
  const value = Preference.get(domain, key);
  if (value === undefined) return 0;
  const ceiling = typeof value === "string" && CEILING.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(ceiling))
    throw new SeqCounterError(`NVS "${key}" holds ${JSON.stringify(value)}, not a telemetry seq ceiling: erase the key only if the ` +
      `verifier's replay state for this device is reset too, or seq numbers would be reused`);
  return ceiling;
}

export class SeqCounter {
  readonly #domain: string;
  readonly #block: number;
  #next: number;
  #ceiling: number;
  #older: string;

  constructor(domain: string, block: number) {
    if (!Number.isSafeInteger(block) || block < 1 || block > 1_000_000)
      throw new SeqCounterError(`seq block ${block}: an integer 1–1000000 (config.espguard.seqBlock)`);
    this.#domain = domain;
    this.#block = block;
    const a = readCeiling(domain, SeqKey.a);
    const b = readCeiling(domain, SeqKey.b);
    this.#ceiling = Math.max(a, b);
    this.#next = this.#ceiling + 1;
    this.#older = a <= b ? SeqKey.a : SeqKey.b;
  }

  /** The highest seq reserved so far: every seq handed out, in any boot, is at most this. */
  get ceiling(): number {
    return this.#ceiling;
  }

  /** The next seq; reserves a new block in NVS (one write) when the current one is used up. */
  take(): Counter {
    if (this.#next > this.#ceiling) this.#reserve();
    const seq = this.#next++;
    return seq as Counter;
  }

  #reserve(): void {
    const ceiling = this.#ceiling + this.#block;
    if (!isCounter(ceiling)) throw new SeqCounterError("telemetry seq exhausted 2^53 − 1: erase the seq keys and delete the device's verifier state together");
    Preference.set(this.#domain, this.#older, String(ceiling));
    this.#older = this.#older === SeqKey.a ? SeqKey.b : SeqKey.a;
    this.#ceiling = ceiling;
  }
}

Object.freeze(SeqCounter.prototype);
