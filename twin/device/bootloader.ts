// The twin's second-stage bootloader: reads the partition table, picks the app slot, and checks
// the image there before anything runs, as the ESP-IDF bootloader checks an app image's SHA-256.
// Until A/B OTA lands (otadata, issue #6) the boot slot is ota_0, where a factory flash puts it.
import { createHash } from "node:crypto";
import { type EmulatedFlash, FlashFile } from "../flash/flash-file.ts";
import { PartitionTable } from "../flash/partition-table.ts";
import { APP_IMAGE_HEADER, appImageLength, decodeAppImage, encodeAppImage } from "./app-image.ts";

export const FLASH_SIZE = 4 * 1024 * 1024;
export const FACTORY_SLOT = "ota_0";

export interface BootImage {
  readonly slot: string;
  readonly bundle: string;
  readonly sha256: string;
}

export function readAppImage(flash: EmulatedFlash, slotName: string, table = PartitionTable.load()): BootImage {
  const slot = table.require(slotName);
  const length = appImageLength(flash.read(slot.offset, APP_IMAGE_HEADER), slot.size);
  const bundle = decodeAppImage(flash.read(slot.offset, APP_IMAGE_HEADER + length));
  return { slot: slotName, bundle, sha256: createHash("sha256").update(bundle).digest("hex") };
}

export function readBootImage(flashPath: string): BootImage {
  const flash = FlashFile.open(flashPath);
  try {
    return readAppImage(flash, FACTORY_SLOT);
  } finally {
    flash.close();
  }
}

/** Writes a firmware bundle into an app slot the way a flasher does: erase, then program. */
export function flashAppImage(flash: EmulatedFlash, slotName: string, bundle: string, table = PartitionTable.load()): void {
  const slot = table.require(slotName);
  const image = encodeAppImage(bundle);
  if (image.length > slot.size) throw new Error(`firmware image of ${image.length} bytes does not fit the ${slot.size}-byte slot ${slotName}`);
  flash.erase(slot.offset, slot.size);
  flash.write(slot.offset, image);
}
