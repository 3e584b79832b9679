// The twin's second-stage bootloader, as ESP-IDF's with CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE
// (DESIGN.md §2): otadata picks the slot; an image still PENDING_VERIFY at reset becomes ABORTED
// and the other slot boots; a NEW image becomes PENDING_VERIFY as it boots. Where ESP-IDF checks
// the app image's SHA-256, the twin re-verifies the whole signed OTA image the slot holds
// (docs/ota-image.md §3) with the provisioned OTA key, so no unsigned byte ever runs. A slot that
// fails is skipped for the other one, as ESP-IDF's bootloader tries the remaining apps.
import { isUtf8 } from "node:buffer";
import { createHash } from "node:crypto";
import { type EmulatedFlash, FlashFile, MemoryFlash } from "../flash/flash-file.ts";
import { NvsPartition } from "../flash/nvs.ts";
import { activeCopy, OtaState, readEntries, setActiveState, slotOf } from "../flash/otadata.ts";
import { type Partition, PartitionTable } from "../flash/partition-table.ts";
import { decodeHeader, HEADER_SIZE, type ImageHeader, imageSize } from "../../modules/ota/image-format.ts";
import { ImageVerifier } from "../../modules/ota/image-verifier.ts";
import { TrustedKey } from "../../modules/ota/trusted-key.ts";
import { OtaConfigKey } from "../../modules/ota/ota-config.ts";
import { loadManifest } from "../runtime/manifest.ts";
import { BootError, otaLayout } from "./ota-layout.ts";

export { BootError, otaLayout } from "./ota-layout.ts";

export const FLASH_SIZE = 4 * 1024 * 1024;

export interface BootImage {
  readonly slot: string;
  readonly bundle: string;
  readonly sha256: string;
  readonly version: string;
  readonly counter: number;
}

/** The Preference domain (NVS namespace) of the firmware: manifest config espguard.domain. */
export function firmwareDomain(): string {
  const espguard = loadManifest().config.espguard as { domain?: unknown } | undefined;
  if (typeof espguard?.domain !== "string") throw new BootError("manifest.json config.espguard.domain is missing");
  return espguard.domain;
}

/**
 * The OTA public key provisioned in NVS (the stand-in for the secure-boot key an ESP32 keeps in
 * eFuse). Read from a copy: a bootloader never writes NVS, even to repair it.
 */
export function provisionedOtaKey(flash: EmulatedFlash, table = PartitionTable.load()): TrustedKey {
  const nvs = table.require("nvs");
  const item = NvsPartition.open(new MemoryFlash(flash.read(nvs.offset, nvs.size))).get(firmwareDomain(), OtaConfigKey.signingKey, "blob");
  if (item?.type !== "blob")
    throw new BootError(`no OTA public key in NVS ("${OtaConfigKey.signingKey}"): provision the device with the key its images are signed with`);
  return TrustedKey.fromSpki(item.value);
}

/** Slot bytes checked at a time: reading a slot into fresh memory costs more than checking it. */
const PIECE_BYTES = 64 * 1024;

/** Where `bytes` (5 or more) can be cut with no UTF-8 sequence across the cut: before its last lead byte. */
function characterBoundary(bytes: Uint8Array): number {
  let at = bytes.length - 1;
  while (at > bytes.length - 4 && (bytes[at]! & 0xc0) === 0x80) at--;
  return bytes[at]! >= 0xc0 ? at : bytes.length;
}

/** The header of the image in `slot`, once it is known to describe an image that fits the slot. */
function slotHeader(flash: EmulatedFlash, slot: Partition): ImageHeader {
  const header = decodeHeader(flash.read(slot.offset, HEADER_SIZE));
  const size = imageSize(header);
  if (size > slot.size) throw new BootError(`slot ${slot.name}: the header claims a ${size}-byte image, more than the ${slot.size}-byte slot`);
  return header;
}

/**
 * Verifies the signed image in `slot` and that its payload is a UTF-8 bundle, as the bootloader
 * and esp_ota_end (the twin's `embedded:update` complete()) both check; throws saying why not.
 * `piece(at, length)` returns the image's bytes [at, at + length), valid until the next call.
 */
function verifyPieces(slot: Partition, header: ImageHeader, key: TrustedKey, piece: (at: number, length: number) => Uint8Array): void {
  const verifier = new ImageVerifier({
    keys: [key], target: "twin", payloadTypes: ["twin-bundle"], acceptedCounter: header.counter, allowAcceptedCounter: true,
  });
  verifier.write(piece(0, HEADER_SIZE));
  const payloadEnd = HEADER_SIZE + header.payloadSize;
  let utf8 = true;
  for (let at = HEADER_SIZE; at < payloadEnd; ) {
    const bytes = piece(at, Math.min(PIECE_BYTES, payloadEnd - at));
    // each piece but the last ends on a character boundary, so UTF-8 is checked piece by piece
    const end = at + bytes.length < payloadEnd ? characterBoundary(bytes) : bytes.length;
    verifier.write(bytes.subarray(0, end));
    utf8 &&= isUtf8(bytes.subarray(0, end));
    at += end;
  }
  verifier.write(piece(payloadEnd, imageSize(header) - payloadEnd));
  verifier.finish();
  if (!utf8) throw new BootError(`slot ${slot.name}: the signed payload is not UTF-8, so not a twin bundle`);
}

/** The checks of readSlotImage, reading the slot a piece at a time (esp_ota_end's check). */
export function verifySlotImage(flash: EmulatedFlash, slot: Partition, key: TrustedKey): void {
  const buffer = new Uint8Array(PIECE_BYTES);
  verifyPieces(slot, slotHeader(flash, slot), key, (at, length) => {
    const bytes = buffer.subarray(0, length);
    flash.readInto(slot.offset + at, bytes);
    return bytes;
  });
}

/** Verifies the signed image in `slot` and returns its bundle; throws saying why it cannot boot. */
export function readSlotImage(flash: EmulatedFlash, slot: Partition, key: TrustedKey): BootImage {
  const header = slotHeader(flash, slot);
  const image = flash.read(slot.offset, imageSize(header));
  verifyPieces(slot, header, key, (at, length) => image.subarray(at, at + length));
  const payload = image.subarray(HEADER_SIZE, HEADER_SIZE + header.payloadSize);
  return {
    slot: slot.name,
    bundle: new TextDecoder("utf-8", { fatal: true }).decode(payload),
    sha256: createHash("sha256").update(payload).digest("hex"),
    version: header.version,
    counter: header.counter,
  };
}

/** One reset: updates otadata as the ESP-IDF bootloader does, then returns the verified image to run. */
export function bootFrom(flash: EmulatedFlash, table = PartitionTable.load()): BootImage {
  const layout = otaLayout(table);
  const region = flash.region(layout.otadata.offset, layout.otadata.size);
  let entries = readEntries(region);
  let copy = activeCopy(entries);
  if (copy >= 0 && entries[copy]!.state === OtaState.pendingVerify) {
    setActiveState(region, OtaState.aborted);
    entries = readEntries(region);
    copy = activeCopy(entries);
  }
  const chosen = copy < 0 ? 0 : slotOf(entries[copy]!.seq, layout.slots.length);
  const key = provisionedOtaKey(flash, table);
  const order = [chosen, ...layout.slots.map((_, i) => i).filter((i) => i !== chosen)];
  const failures: string[] = [];
  for (const index of order) {
    let image: BootImage;
    try {
      image = readSlotImage(flash, layout.slots[index]!, key);
    } catch (error) {
      failures.push(`${layout.slots[index]!.name}: ${(error as Error).message}`);
      continue;
    }
    if (index === chosen && copy >= 0 && entries[copy]!.state === OtaState.new) setActiveState(region, OtaState.pendingVerify);
    return image;
  }
  throw new BootError(`no slot holds a verified image:\n  ${failures.join("\n  ")}`);
}

export function readBootImage(flashPath: string): BootImage {
  const flash = FlashFile.open(flashPath, { strictBits: true });
  try {
    return bootFrom(flash);
  } finally {
    flash.close();
  }
}

/** Writes a signed image into an app slot the way a flasher does: erase what it needs, then program. */
export function flashSlotImage(flash: EmulatedFlash, slotName: string, image: Uint8Array, table = PartitionTable.load()): void {
  const slot = table.require(slotName);
  if (image.length > slot.size) throw new BootError(`the ${image.length}-byte image does not fit the ${slot.size}-byte slot ${slotName}`);
  flash.erase(slot.offset, Math.ceil(image.length / 4096) * 4096);
  flash.write(slot.offset, image);
}
