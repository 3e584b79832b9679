// The demo's devices: each one gets its own certificate, telemetry key (HKDF over the fleet
// secret), broker pin and the demo's boot deadline in NVS through the same preference map
// `espguard device provision` writes, and boots a signed v1 image from its factory slot.
import { join } from "node:path";
import type { TestBroker } from "../broker/mosquitto.ts";
import type { Issued } from "../certs/pki.ts";
import { spkiPin } from "../certs/pins.ts";
import { identityPreferences } from "../certs/provision-image.ts";
import { DEFAULT_KID, deriveTelemetryKey } from "../certs/telemetry-key.ts";
import { OtaConfigKey } from "../modules/ota/ota-config.ts";
import { PERIOD_KEY } from "../modules/telemetry/reporter.ts";
import { buildUnsignedImage, signImage } from "../ota/image-build.ts";
import type { SigningKey } from "../ota/signing-key.ts";
import { createTwinDevice } from "../twin/device/provision.ts";
import type { TwinDevice } from "../twin/device/supervisor.ts";

export interface FleetOptions {
  readonly broker: TestBroker;
  readonly stateDir: string;
  readonly fleetSecret: Uint8Array;
  readonly signer: SigningKey;
  /** the factory image, signed by `signer` */
  readonly image: Uint8Array;
  readonly ntp: string;
  readonly bootDeadlineMs: number;
  readonly telemetryPeriodMs: number;
}

export function twinImage(bundle: string, version: string, counter: number, key: SigningKey): Uint8Array {
  return signImage(buildUnsignedImage({ payload: new TextEncoder().encode(bundle), payloadType: "twin-bundle", target: "twin", version, counter }), key);
}

export interface DemoDevice {
  readonly device: TwinDevice;
  /** its certificate and key: what an attacker who extracted them from the board would hold */
  readonly identity: Issued;
}

export async function provisionDevice(deviceId: string, options: FleetOptions): Promise<DemoDevice> {
  const { broker } = options;
  const identity = await broker.issueDevice(deviceId);
  const preferences = identityPreferences({
    deviceId,
    brokerHost: broker.broker.host,
    brokerPort: broker.broker.port,
    caDer: broker.ca.certDer,
    certDer: identity.certDer,
    keyPkcs8Der: identity.keyPkcs8Der,
    pins: [spkiPin({ certPem: broker.server.certPem })],
    hmacKid: DEFAULT_KID,
    hmacKey: deriveTelemetryKey(options.fleetSecret, deviceId, DEFAULT_KID),
    timeFloor: Math.floor(Date.now() / 1000) - 60,
    wifi: { ssid: "espguard-demo", passphrase: "twin-has-no-radio" },
    selfTest: false,
    ntp: options.ntp,
    otaKeySpki: options.signer.spki,
  });
  const device = createTwinDevice({
    name: deviceId,
    stateDir: join(options.stateDir, deviceId),
    firmware: { image: options.image, signerSpki: options.signer.spki },
    preferences: { ...preferences, [OtaConfigKey.deadline]: options.bootDeadlineMs, [PERIOD_KEY]: options.telemetryPeriodMs },
  });
  return { device, identity };
}
