// The verifier's keys: derived on first use from the fleet secret, exactly as provisioning
// derives them (certs/telemetry-key.ts), for the key ids the fleet is known to use. A message
// naming any other kid is refused before any derivation.
import { deriveTelemetryKey } from "../certs/telemetry-key.ts";
import type { DeviceId } from "../modules/identity/device-id.ts";
import type { KeyId } from "../modules/telemetry/envelope-header.ts";
import { EnvelopeKey } from "../modules/telemetry/envelope-key.ts";
import type { KeyLookup } from "../modules/telemetry/envelope.ts";

export class Keyring {
  readonly #fleetSecret: Uint8Array;
  readonly #kids: ReadonlySet<string>;
  readonly #keys = new Map<string, EnvelopeKey>();

  constructor(fleetSecret: Uint8Array, kids: readonly string[]) {
    this.#fleetSecret = fleetSecret;
    this.#kids = new Set(kids);
  }

  readonly lookup: KeyLookup = (dev: DeviceId, kid: KeyId) => {
    if (!this.#kids.has(kid)) return undefined;
    const name = `${dev}/${kid}`;
    let key = this.#keys.get(name);
    if (!key) {
      key = new EnvelopeKey(deriveTelemetryKey(this.#fleetSecret, dev, kid));
      this.#keys.set(name, key);
    }
    return key;
  };
}
