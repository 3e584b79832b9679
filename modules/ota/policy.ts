// What a device accepts: its trusted keys, its chip, the payloads it installs and the counter it
// accepted last. Images and release manifests are held to the same policy.
import type { PayloadType, SecurityCounter, TargetChip } from "ota/image-format";
import { OtaRejected } from "ota/rejected";
import type { KeyId, TrustedKey } from "ota/trusted-key";

export interface OtaPolicy {
  readonly keys: readonly TrustedKey[];
  readonly target: TargetChip;
  readonly payloadTypes: readonly PayloadType[];
  /** The counter of the image the device accepted last (persisted by the updater). */
  readonly acceptedCounter: SecurityCounter;
}

/** What an image or a release says about itself before it is authenticated. */
export interface OtaOffer {
  readonly target: TargetChip;
  readonly payloadType: PayloadType;
  readonly counter: SecurityCounter;
}

/**
 * Refuses an offer this device must not install. `allowAccepted` admits counter = accepted counter,
 * for a bootloader re-checking the image it already installed; an update never passes it.
 */
export function checkOffer(offer: OtaOffer, policy: OtaPolicy, allowAccepted = false): void {
  if (offer.target !== policy.target)
    throw new OtaRejected("wrong-target", `built for target ${offer.target}, this device is ${policy.target}: build the release for ${policy.target}`);
  if (policy.payloadTypes.indexOf(offer.payloadType) < 0)
    throw new OtaRejected("payload-type", `payload type ${offer.payloadType} is not installed here (this device installs ${policy.payloadTypes.join(", ") || "nothing"})`);
  const floor = allowAccepted ? policy.acceptedCounter : policy.acceptedCounter + 1;
  if (offer.counter < floor)
    throw new OtaRejected("downgrade", `security counter ${offer.counter} is not above the accepted counter ${policy.acceptedCounter}: ` +
      `a device never goes back; release it with counter ${policy.acceptedCounter + 1} or higher`);
}

export function findKey(keys: readonly TrustedKey[], id: KeyId | string): TrustedKey {
  for (const key of keys) if (key.id === id) return key;
  throw new OtaRejected("unknown-key", `signed by key ${id}, which this device does not trust ` +
    `(trusted: ${keys.map((key) => `${key.id.slice(0, 16)}…`).join(", ") || "none"}); sign with a trusted key or provision its public key`);
}
