// A device's whole identity as the NVS partition image `espguard device provision` writes: the
// items Moddable's Preference reads, in the firmware's Preference domain (manifest config
// espguard.domain), laid out by the same NVS writer the twin mounts. Flashed at the nvs offset of
// partitions.csv, so the firmware image itself carries no per-device secret.
import { buildNvsImage, type PreferenceValue } from "../twin/flash/nvs.ts";
import { ConfigKey } from "../modules/link/device-config.ts";
import { OtaConfigKey } from "../modules/ota/ota-config.ts";
import type { WifiNetwork } from "./wifi.ts";

/**
 * Every NVS key provisioning writes (each ≤ 15 bytes): the link's `ConfigKey`s, which the
 * firmware reads, the OTA signing key, and the Wi-Fi keys under the names docs/provisioning.md
 * documents for the connection manager.
 */
export const ProvisionKey = Object.freeze({
  ...ConfigKey,
  otaKey: OtaConfigKey.signingKey,
  wifiSsid: "wifi_ssid",
  wifiPass: "wifi_pass",
  wifiSsid2: "wifi_ssid2",
  wifiPass2: "wifi_pass2",
} as const);

export interface DeviceIdentity {
  deviceId: string;
  brokerHost: string;
  brokerPort: number;
  caDer: Uint8Array;
  certDer: Uint8Array;
  keyPkcs8Der: Uint8Array;
  /** Base64 SHA-256 of each accepted broker SPKI: current first, then the backup. */
  pins: readonly string[];
  hmacKid: string;
  hmacKey: Uint8Array;
  /** Unix seconds the device clock may never be set below. */
  timeFloor: number;
  wifi: WifiNetwork;
  fallbackWifi?: WifiNetwork;
  selfTest: boolean;
  /** NTP servers, "host[:port] …"; absent: the manifest's default list. */
  ntp?: string;
  /** DER SubjectPublicKeyInfo of the P-256 key that signs firmware; without it the device takes no update. */
  otaKeySpki?: Uint8Array;
}

export function identityPreferences(identity: DeviceIdentity): Record<string, PreferenceValue> {
  const preferences: Record<string, PreferenceValue> = {
    [ProvisionKey.deviceId]: identity.deviceId,
    [ProvisionKey.brokerHost]: identity.brokerHost,
    [ProvisionKey.brokerPort]: identity.brokerPort,
    [ProvisionKey.ca]: buffer(identity.caDer),
    [ProvisionKey.cert]: buffer(identity.certDer),
    [ProvisionKey.key]: buffer(identity.keyPkcs8Der),
    [ProvisionKey.pins]: identity.pins.join(" "),
    [ProvisionKey.hmacKid]: identity.hmacKid,
    [ProvisionKey.hmacKey]: buffer(identity.hmacKey),
    [ProvisionKey.timeFloor]: identity.timeFloor,
    [ProvisionKey.wifiSsid]: identity.wifi.ssid,
    [ProvisionKey.wifiPass]: identity.wifi.passphrase,
  };
  if (identity.fallbackWifi !== undefined) {
    preferences[ProvisionKey.wifiSsid2] = identity.fallbackWifi.ssid;
    preferences[ProvisionKey.wifiPass2] = identity.fallbackWifi.passphrase;
  }
  if (identity.ntp !== undefined) preferences[ProvisionKey.ntp] = identity.ntp;
  if (identity.otaKeySpki !== undefined) preferences[ProvisionKey.otaKey] = buffer(identity.otaKeySpki);
  if (identity.selfTest) preferences[ProvisionKey.selfTest] = true;
  return preferences;
}

export function buildIdentityImage(identity: DeviceIdentity, partitionSize: number, domain: string): Uint8Array {
  return buildNvsImage(partitionSize, Object.entries(identityPreferences(identity)).map(([key, value]) => ({ namespace: domain, key, value })));
}

function buffer(bytes: Uint8Array): ArrayBuffer {
  return new Uint8Array(bytes).buffer;
}
