// What the twin bootloader tells the firmware's process about the image it started: its slot and
// version (on a board, esp_ota_get_running_partition and esp_app_get_description). The boot
// script sets them before the firmware loads; the twin's Moddable modules read them.
import { BootError, otaLayout } from "./ota-layout.ts";
import { PartitionTable } from "../flash/partition-table.ts";

export const RUNNING_SLOT_ENV = "ESPGUARD_TWIN_SLOT";
export const RUNNING_VERSION_ENV = "ESPGUARD_TWIN_APP_VERSION";

export function runningSlotIndex(table = PartitionTable.load()): number {
  const name = process.env[RUNNING_SLOT_ENV];
  const index = otaLayout(table).slots.findIndex((slot) => slot.name === name);
  if (index < 0) throw new BootError(`${RUNNING_SLOT_ENV}=${name ?? "(unset)"} names no OTA slot: the firmware runs only in a booted twin device`);
  return index;
}

export function runningVersion(): string {
  const version = process.env[RUNNING_VERSION_ENV];
  if (!version) throw new BootError(`${RUNNING_VERSION_ENV} is unset: the firmware runs only in a booted twin device`);
  return version;
}
