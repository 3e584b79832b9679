// Builds a twin device's flash the way a factory station flashes a board: the app image into
// ota_0 and the device's identity into the nvs partition.
import { mkdirSync } from "node:fs";
import { FlashFile } from "../flash/flash-file.ts";
import { buildNvsImage, type NvsValue } from "../flash/nvs.ts";
import { PartitionTable } from "../flash/partition-table.ts";
import { loadManifest } from "../runtime/manifest.ts";
import { FACTORY_SLOT, FLASH_SIZE, flashAppImage } from "./bootloader.ts";
import { TwinDevice } from "./supervisor.ts";

export interface TwinDeviceSpec {
  name: string;
  stateDir: string;
  /** firmware bundle (ESM source) to flash into the factory slot */
  bundle: string;
  /** Preference values of the firmware's domain (manifest config espguard.domain) */
  preferences: Readonly<Record<string, NvsValue>>;
}

export function firmwareDomain(): string {
  const espguard = loadManifest().config.espguard as { domain?: unknown } | undefined;
  if (typeof espguard?.domain !== "string") throw new Error("manifest.json config.espguard.domain is missing");
  return espguard.domain;
}

export function createTwinDevice(spec: TwinDeviceSpec): TwinDevice {
  mkdirSync(spec.stateDir, { recursive: true });
  const device = new TwinDevice(spec.name, spec.stateDir);
  const table = PartitionTable.load();
  const nvs = table.require("nvs");
  const flash = FlashFile.create(device.flashPath, FLASH_SIZE);
  try {
    flashAppImage(flash, FACTORY_SLOT, spec.bundle, table);
    const domain = firmwareDomain();
    flash.write(nvs.offset, buildNvsImage(nvs.size, Object.entries(spec.preferences).map(([key, value]) => ({ namespace: domain, key, value }))));
  } finally {
    flash.close();
  }
  return device;
}

