// ESP-IDF app images (esp_image_format.h, esp_app_format.h), checked before one is wrapped in an
// OTA image: a broken app image would pass the OTA signature and fail only at boot, in the ESP-IDF
// bootloader. esptool is not available here, so this reads the format itself.
import { createHash } from "node:crypto";
import type { TargetChip } from "../modules/ota/image-format.ts";

export const ESP_IMAGE_MAGIC = 0xe9;
export const ESP_APP_DESC_MAGIC = 0xabcd5432;
export const ESP_IMAGE_HEADER_SIZE = 24;
export const ESP_SEGMENT_HEADER_SIZE = 8;
export const ESP_APP_DESC_SIZE = 256;
export const ESP_MAX_SEGMENTS = 16;
export const ESP_CHECKSUM_SEED = 0xef;
const MAX_SEGMENT_LENGTH = 0x1000000;
const HASH_SIZE = 32;

/** esp_chip_id_t of the chips a target names; the twin has none. */
export const ESP_CHIP_IDS: Readonly<Partial<Record<TargetChip, number>>> = { esp32: 0x0000 };

export interface Esp32Segment {
  readonly loadAddress: number;
  /** where the segment's data starts in the image */
  readonly offset: number;
  readonly length: number;
}

/** The strings of esp_app_desc_t that say which firmware this is. */
export interface Esp32AppDescription {
  readonly secureVersion: number;
  readonly version: string;
  readonly projectName: string;
  readonly time: string;
  readonly date: string;
  readonly idfVersion: string;
}

export interface Esp32AppImage {
  readonly chipId: number;
  readonly entryAddress: number;
  readonly segments: readonly Esp32Segment[];
  readonly hashAppended: boolean;
  readonly appDesc: Esp32AppDescription;
}

export class Esp32ImageError extends Error {
  readonly name = "Esp32ImageError";

  constructor(problem: string) {
    super(`not a valid ESP32 app image: ${problem} (give the .bin that idf.py / mcconfig writes for the app partition, not a merged flash image or an ELF)`);
  }
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

function cString(image: Uint8Array, at: number, size: number, field: string): string {
  const bytes = image.subarray(at, at + size);
  const end = bytes.indexOf(0);
  if (end < 0) throw new Esp32ImageError(`esp_app_desc_t.${field} is not NUL-terminated within its ${size} bytes`);
  try {
    return utf8.decode(bytes.subarray(0, end));
  } catch {
    throw new Esp32ImageError(`esp_app_desc_t.${field} is not UTF-8`);
  }
}

function readSegments(image: Uint8Array, view: DataView, count: number): { segments: Esp32Segment[]; end: number } {
  const segments: Esp32Segment[] = [];
  let at = ESP_IMAGE_HEADER_SIZE;
  for (let i = 0; i < count; i++) {
    if (at + ESP_SEGMENT_HEADER_SIZE > image.length)
      throw new Esp32ImageError(`segment ${i} of ${count}: its header at byte ${at} runs past the end of the ${image.length}-byte file`);
    const loadAddress = view.getUint32(at, true);
    const length = view.getUint32(at + 4, true);
    if (length % 4 !== 0 || length >= MAX_SEGMENT_LENGTH)
      throw new Esp32ImageError(`segment ${i} has length ${length}; ESP-IDF needs a multiple of 4 below 16 MiB`);
    const offset = at + ESP_SEGMENT_HEADER_SIZE;
    if (offset + length > image.length)
      throw new Esp32ImageError(`segment ${i} (${length} bytes at byte ${offset}) runs past the end of the ${image.length}-byte file`);
    segments.push({ loadAddress, offset, length });
    at = offset + length;
  }
  return { segments, end: at };
}

function checksum(image: Uint8Array, segments: readonly Esp32Segment[]): number {
  let sum = ESP_CHECKSUM_SEED;
  for (const { offset, length } of segments) for (let i = offset; i < offset + length; i++) sum ^= image[i]!;
  return sum;
}

function readAppDesc(image: Uint8Array, view: DataView, first: Esp32Segment): Esp32AppDescription {
  if (first.length < ESP_APP_DESC_SIZE)
    throw new Esp32ImageError(`the first segment is ${first.length} bytes, too short for the ${ESP_APP_DESC_SIZE}-byte esp_app_desc_t that opens it`);
  const at = first.offset;
  const magic = view.getUint32(at, true);
  if (magic !== ESP_APP_DESC_MAGIC)
    throw new Esp32ImageError(`the first segment does not open with esp_app_desc_t (magic 0x${magic.toString(16)}, expected 0x${ESP_APP_DESC_MAGIC.toString(16)})`);
  return {
    secureVersion: view.getUint32(at + 4, true),
    version: cString(image, at + 16, 32, "version"),
    projectName: cString(image, at + 48, 32, "project_name"),
    time: cString(image, at + 80, 16, "time"),
    date: cString(image, at + 96, 16, "date"),
    idfVersion: cString(image, at + 112, 32, "idf_ver"),
  };
}

/** Checks an app image as the ESP-IDF bootloader would, and returns what it describes; throws Esp32ImageError. */
export function checkEsp32AppImage(image: Uint8Array): Esp32AppImage {
  if (image.length < ESP_IMAGE_HEADER_SIZE) throw new Esp32ImageError(`${image.length} bytes is shorter than the ${ESP_IMAGE_HEADER_SIZE}-byte image header`);
  if (image[0] !== ESP_IMAGE_MAGIC) throw new Esp32ImageError(`first byte is 0x${image[0]!.toString(16).padStart(2, "0")}, not the 0xe9 magic`);
  const view = new DataView(image.buffer, image.byteOffset, image.byteLength);
  const count = image[1]!;
  if (count < 1 || count > ESP_MAX_SEGMENTS) throw new Esp32ImageError(`segment count ${count} is outside 1 to ${ESP_MAX_SEGMENTS}`);
  const hashFlag = image[23]!;
  if (hashFlag > 1) throw new Esp32ImageError(`hash_appended is ${hashFlag}; it must be 0 or 1`);
  const { segments, end } = readSegments(image, view, count);
  // The checksum byte ends a 16-byte block: zero padding runs up to it.
  const checksumAt = end + 15 - (end % 16);
  const expectedLength = checksumAt + 1 + (hashFlag ? HASH_SIZE : 0);
  if (image.length < expectedLength)
    throw new Esp32ImageError(`the file ends at ${image.length} bytes, before the ${hashFlag ? "checksum and appended SHA-256" : "checksum"} (${expectedLength} bytes in all)`);
  if (image.length > expectedLength)
    throw new Esp32ImageError(`${image.length - expectedLength} bytes follow the end of the image at byte ${expectedLength}`);
  const computed = checksum(image, segments);
  if (image[checksumAt] !== computed)
    throw new Esp32ImageError(`checksum byte is 0x${image[checksumAt]!.toString(16)}, the segments give 0x${computed.toString(16)}: the image is corrupt`);
  if (hashFlag) {
    const hash = createHash("sha256").update(image.subarray(0, checksumAt + 1)).digest();
    if (!hash.equals(image.subarray(checksumAt + 1)))
      throw new Esp32ImageError("the appended SHA-256 does not match the image: the image is corrupt");
  }
  return {
    chipId: view.getUint16(12, true),
    entryAddress: view.getUint32(4, true),
    segments,
    hashAppended: hashFlag === 1,
    appDesc: readAppDesc(image, view, segments[0]!),
  };
}
