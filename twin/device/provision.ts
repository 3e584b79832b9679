// Builds a twin device's flash the way a factory station flashes a board: a signed firmware image
// into ota_0 (otadata stays blank, so the bootloader starts ota_0) and the device's identity and
// OTA public key into the nvs partition.
import { mkdirSync } from "node:fs";
import { FlashFile } from "../flash/flash-file.ts";
import { buildNvsImage, type NvsValue } from "../flash/nvs.ts";
import { PartitionTable } from "../flash/partition-table.ts";
import { OtaConfigKey } from "../../modules/ota/ota-config.ts";
import { WifiKey } from "../../modules/net/credentials.ts";
import { buildUnsignedImage, signImage } from "../../ota/image-build.ts";
import { generateSigningKey } from "../../ota/signing-key.ts";
import { FLASH_SIZE, firmwareDomain, flashSlotImage } from "./bootloader.ts";

export { firmwareDomain } from "./bootloader.ts";
import { TwinDevice } from "./supervisor.ts";

export const FACTORY_SLOT = "ota_0";
/** Version and counter of the image made from a bare bundle. */
export const FACTORY_VERSION = "0.1.0";

/** A signed OTA image (docs/ota-image.md) and the public key (DER SPKI) that signed it. */
export interface SignedFirmware {
  readonly image: Uint8Array;
  readonly signerSpki: Uint8Array;
}

export interface TwinDeviceSpec {
  name: string;
  stateDir: string;
  /** a signed twin image for the factory slot, or a bare bundle (ESM source), signed here with a one-off key */
  firmware?: SignedFirmware;
  bundle?: string;
  /** Preference values of the firmware's domain (manifest config espguard.domain) */
  preferences: Readonly<Record<string, NvsValue>>;
  /**
   * The Wi-Fi network written beside them, as `espguard device provision` does, unless
   * `preferences` name one; null: none (the firmware reports "wifi-unprovisioned").
   */
  wifi?: { ssid: string; password: string } | null;
}

/** What the twin's access point is called when a test does not care. */
export const TWIN_WIFI = Object.freeze({ ssid: "espguard-twin", password: "twin-radio-passphrase" });

function wifiPreferences(spec: TwinDeviceSpec): Record<string, NvsValue> {
  if (spec.wifi === null || WifiKey.ssid in spec.preferences) return {};
  const wifi = spec.wifi ?? TWIN_WIFI;
  return { [WifiKey.ssid]: wifi.ssid, [WifiKey.pass]: wifi.password };
}

function factoryFirmware(spec: TwinDeviceSpec): SignedFirmware {
  if (spec.firmware) return spec.firmware;
  if (spec.bundle === undefined) throw new Error(`twin device ${spec.name}: give firmware (a signed image) or bundle`);
  const key = generateSigningKey();
  const unsigned = buildUnsignedImage({
    payload: new TextEncoder().encode(spec.bundle), payloadType: "twin-bundle", target: "twin", version: FACTORY_VERSION, counter: 0,
  });
  return { image: signImage(unsigned, key), signerSpki: key.spki };
}

export function createTwinDevice(spec: TwinDeviceSpec): TwinDevice {
  mkdirSync(spec.stateDir, { recursive: true });
  const device = new TwinDevice(spec.name, spec.stateDir);
  const table = PartitionTable.load();
  const nvs = table.require("nvs");
  const firmware = factoryFirmware(spec);
  const flash = FlashFile.create(device.flashPath, FLASH_SIZE);
  try {
    flashSlotImage(flash, FACTORY_SLOT, firmware.image, table);
    const preferences: Record<string, NvsValue> = { [OtaConfigKey.signingKey]: new Uint8Array(firmware.signerSpki).buffer, ...wifiPreferences(spec), ...spec.preferences };
    const domain = firmwareDomain();
    flash.write(nvs.offset, buildNvsImage(nvs.size, Object.entries(preferences).map(([key, value]) => ({ namespace: domain, key, value }))));
  } finally {
    flash.close();
  }
  return device;
}
