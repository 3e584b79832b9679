// The signed fields that make a reading attributable and replay-checkable: who sent it (`dev`),
// with which key (`kid`), in which order (`seq`) and when (`ts`, only when the clock is trusted).
import { type DeviceId, DEVICE_ID_RULE, isDeviceId } from "identity/device-id";

/** Names a device's telemetry key, so keys can be rotated while old messages stay checkable. */
export type KeyId = string & { readonly __brand: "KeyId" };
/** A device's message counter: never reused, across reboots, power cuts and updates. */
export type Counter = number & { readonly __brand: "Counter" };
/** Seconds since 1970-01-01T00:00:00Z from a trusted clock. */
export type UnixSeconds = number & { readonly __brand: "UnixSeconds" };

export const KEY_ID_RULE = "1–16 characters from a–z, 0–9, '.', '-' and '_', starting with a letter or digit";
export const COUNTER_RULE = "an integer from 1 to 2^53 − 1";
export const UNIX_SECONDS_RULE = "an integer from 1 to 2^53 − 1 (seconds since 1970)";

const KEY_ID = /^[a-z0-9][a-z0-9._-]{0,15}$/;

export function isKeyId(value: unknown): value is KeyId {
  return typeof value === "string" && KEY_ID.test(value);
}

export function isCounter(value: unknown): value is Counter {
  return Number.isSafeInteger(value) && (value as number) >= 1;
}

export function isUnixSeconds(value: unknown): value is UnixSeconds {
  return Number.isSafeInteger(value) && (value as number) >= 1;
}

export interface EnvelopeHeader {
  readonly dev: DeviceId;
  readonly kid: KeyId;
  readonly seq: Counter;
  /** Absent when the device's clock is not trusted: a guessed time is worse than none. */
  readonly ts?: UnixSeconds;
}

/** The field that holds the signature: the only one the signature does not cover. */
export const SIG_FIELD = "sig";

export class EnvelopeHeaderError extends Error {
  override name = "EnvelopeHeaderError";
  constructor(readonly field: string, problem: string) {
    super(`telemetry field "${field}" ${problem}`);
  }
}

type Fields = { readonly [field: string]: unknown };

// For error messages: short, and safe for any value a signer may be handed (JSON.stringify
// throws on a bigint).
function shown(body: Fields, field: string): string {
  if (!Object.hasOwn(body, field)) return "missing";
  const value = body[field];
  if (typeof value === "string") return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  if (value === null || typeof value === "number" || typeof value === "boolean" || typeof value === "undefined") return String(value);
  if (Array.isArray(value)) return "an array";
  return typeof value === "object" ? "an object" : `a ${typeof value}`;
}

/**
 * The header of a message body, or the first problem with it. `ts` may be absent but, when the
 * key is there, must be a time: an explicit `undefined` or `null` is refused, not read as "no clock".
 */
export function readHeader(body: Fields): EnvelopeHeader | EnvelopeHeaderError {
  const { dev, kid, seq, ts } = body;
  if (typeof dev !== "string" || !isDeviceId(dev)) return new EnvelopeHeaderError("dev", `is ${shown(body, "dev")}: use a device id (${DEVICE_ID_RULE})`);
  if (!isKeyId(kid)) return new EnvelopeHeaderError("kid", `is ${shown(body, "kid")}: use a key id (${KEY_ID_RULE})`);
  if (!isCounter(seq)) return new EnvelopeHeaderError("seq", `is ${shown(body, "seq")}: use ${COUNTER_RULE}`);
  if (!Object.hasOwn(body, "ts")) return { dev, kid, seq };
  if (!isUnixSeconds(ts))
    return new EnvelopeHeaderError("ts", `is ${shown(body, "ts")}: use ${UNIX_SECONDS_RULE}, or leave ts out while the clock is not trusted`);
  return { dev, kid, seq, ts };
}
