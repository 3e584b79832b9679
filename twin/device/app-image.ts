// The twin's app image: what an ESP32 slot holds as an 0xE9 app image with an appended SHA-256,
// the twin slot holds as a firmware bundle behind a small header the twin bootloader checks.
//
//   offset size  field
//   0      4     magic "EGTA"
//   4      4     bundle length, u32 little-endian
//   8      32    SHA-256 of the bundle
//   40     n     bundle (UTF-8 JavaScript module)
import { createHash } from "node:crypto";

export const APP_IMAGE_MAGIC = "EGTA";
export const APP_IMAGE_HEADER = 40;

export class AppImageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "AppImageError";
  }
}

export function encodeAppImage(bundle: string): Uint8Array {
  const body = new TextEncoder().encode(bundle);
  const image = new Uint8Array(APP_IMAGE_HEADER + body.length);
  image.set(new TextEncoder().encode(APP_IMAGE_MAGIC), 0);
  new DataView(image.buffer).setUint32(4, body.length, true);
  image.set(createHash("sha256").update(body).digest(), 8);
  image.set(body, APP_IMAGE_HEADER);
  return image;
}

/** Reads the header at the start of `slot` (a whole partition); returns the bundle's length. */
export function appImageLength(header: Uint8Array, slotSize: number): number {
  if (header.length < APP_IMAGE_HEADER || new TextDecoder().decode(header.subarray(0, 4)) !== APP_IMAGE_MAGIC)
    throw new AppImageError("no app image in slot (magic mismatch): flash a firmware bundle first");
  const length = new DataView(header.buffer, header.byteOffset).getUint32(4, true);
  if (APP_IMAGE_HEADER + length > slotSize)
    throw new AppImageError(`app image claims ${length} bytes, more than the ${slotSize}-byte slot holds`);
  return length;
}

/** Verifies a whole image (header + bundle) and returns the bundle text. */
export function decodeAppImage(image: Uint8Array): string {
  const length = appImageLength(image, image.length);
  const body = image.subarray(APP_IMAGE_HEADER, APP_IMAGE_HEADER + length);
  const digest = createHash("sha256").update(body).digest();
  if (!digest.equals(image.subarray(8, 40))) throw new AppImageError("app image SHA-256 mismatch: the slot is corrupt");
  return new TextDecoder("utf-8", { fatal: true }).decode(body);
}
