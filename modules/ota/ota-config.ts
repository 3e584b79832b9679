// What the OTA path keeps in NVS (Moddable's Preference, the firmware's domain): the provisioned
// signing key, the highest security counter accepted, the boot-guard deadline, and the bookkeeping
// that lets the image running after a reset tell whether the last update took or was rolled back.
import Preference from "preference";
import config from "mc/config";
import { type SecurityCounter, toSecurityCounter } from "ota/image-format";
import { TrustedKey } from "ota/trusted-key";

/** NVS keys (≤ 15 characters) in the firmware's Preference domain. */
export const OtaConfigKey = Object.freeze({
  /** DER SubjectPublicKeyInfo of the P-256 key that signs images and releases */
  signingKey: "ota_key",
  /** the highest security counter accepted, decimal text (a counter can exceed NVS's i32) */
  counter: "ota_counter",
  /** boot guard deadline in ms; absent = the manifest's espguard.bootDeadlineMs */
  deadline: "boot_deadline",
  /** "<counter> <version>" of the image installed and not yet confirmed */
  pending: "ota_pending",
  /** why the running image gave itself up, for the image that boots next to report */
  rollbackWhy: "ota_why",
} as const);

export class OtaConfigError extends Error {
  override name = "OtaConfigError";

  constructor(readonly key: string, problem: string) {
    super(`OTA config "${key}": ${problem}; provision the device (espguard device provision)`);
  }
}

function domain(): string {
  const value = (config.espguard as { domain?: unknown } | undefined)?.domain;
  if (typeof value !== "string") throw new OtaConfigError("domain", "manifest config espguard.domain is missing");
  return value;
}

export function readOtaKey(): TrustedKey {
  const value = Preference.get(domain(), OtaConfigKey.signingKey);
  if (!(value instanceof ArrayBuffer)) throw new OtaConfigError(OtaConfigKey.signingKey, value === undefined ? "missing" : "not a blob");
  return TrustedKey.fromSpki(value);
}

export function acceptedCounter(): SecurityCounter {
  const value = Preference.get(domain(), OtaConfigKey.counter);
  if (value === undefined) return toSecurityCounter(0);
  if (typeof value !== "string" || !/^(0|[1-9][0-9]{0,9})$/.test(value) || Number(value) > 0xffffffff)
    throw new OtaConfigError(OtaConfigKey.counter, "not a decimal security counter");
  return toSecurityCounter(Number(value));
}

/** Raises the accepted counter; never lowers it. */
export function raiseAcceptedCounter(counter: number): void {
  if (counter > acceptedCounter()) Preference.set(domain(), OtaConfigKey.counter, String(counter));
}

export function bootDeadlineMs(): number {
  const stored = Preference.get(domain(), OtaConfigKey.deadline);
  const value = stored ?? (config.espguard as { bootDeadlineMs?: unknown }).bootDeadlineMs;
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1)
    throw new OtaConfigError(OtaConfigKey.deadline, "not a positive whole number of milliseconds");
  return value;
}

export interface PendingImage {
  readonly counter: number;
  readonly version: string;
}

export function pendingImage(): PendingImage | undefined {
  const value = Preference.get(domain(), OtaConfigKey.pending);
  if (typeof value !== "string") return undefined;
  const space = value.indexOf(" ");
  return { counter: Number(value.slice(0, space)), version: value.slice(space + 1) };
}

export function setPendingImage(image: PendingImage | undefined): void {
  if (image) Preference.set(domain(), OtaConfigKey.pending, `${image.counter} ${image.version}`);
  else Preference.delete(domain(), OtaConfigKey.pending);
}

export function rollbackReason(): string | undefined {
  const value = Preference.get(domain(), OtaConfigKey.rollbackWhy);
  return typeof value === "string" ? value : undefined;
}

export function setRollbackReason(reason: string | undefined): void {
  if (reason !== undefined) Preference.set(domain(), OtaConfigKey.rollbackWhy, reason);
  else Preference.delete(domain(), OtaConfigKey.rollbackWhy);
}
