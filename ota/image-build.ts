// Builds and signs OTA images (docs/ota-image.md). Signing is separable: buildUnsignedImage gives
// the bytes and the digest to sign, any P-256 signer (this machine, another one, an HSM) signs the
// digest, and attachSignature completes the image, after checking the signature the way a device will.
import { createHash } from "node:crypto";
import { fromHex, toHex } from "../modules/ota/bytes.ts";
import {
  decodeHeader, DIGEST_SIZE, encodeHeader, HEADER_SIZE, type ImageDigest, type ImageHeader, type PayloadType, type TargetChip,
  toBuildId, toFirmwareVersion, toPayloadType, toSecurityCounter, toTargetChip,
} from "../modules/ota/image-format.ts";
import { KEY_ID_SIZE, SIGNATURE_SIZE, TrustedKey } from "../modules/ota/trusted-key.ts";
import { checkEsp32AppImage, ESP_CHIP_IDS } from "./esp32-app-image.ts";
import { signMessage, type SigningKey } from "./signing-key.ts";

export interface ImageSpec {
  readonly payload: Uint8Array;
  readonly payloadType: PayloadType | string;
  readonly target: TargetChip | string;
  readonly version: string;
  readonly counter: number;
  /** Defaults to the first 16 hex digits of the payload's SHA-256. */
  readonly buildId?: string;
}

/** Header ‖ payload, and the digest a signer signs. */
export interface UnsignedImage {
  readonly header: ImageHeader;
  readonly bytes: Uint8Array;
  readonly digest: ImageDigest;
}

export class ImageBuildError extends Error {
  readonly name = "ImageBuildError";
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

function sha256(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(createHash("sha256").update(bytes).digest());
}

function checkPayload(spec: ImageSpec, payloadType: PayloadType, target: TargetChip): void {
  if (payloadType === "twin-bundle") {
    try {
      utf8.decode(spec.payload);
    } catch {
      throw new ImageBuildError("a twin bundle is a JavaScript module in UTF-8, and this payload is not UTF-8: give the file `espguard firmware bundle` wrote");
    }
    return;
  }
  const app = checkEsp32AppImage(spec.payload);
  if (app.appDesc.version !== spec.version)
    throw new ImageBuildError(`the app image says version ${JSON.stringify(app.appDesc.version)} (esp_app_desc_t), the release says ` +
      `${JSON.stringify(spec.version)}: build the firmware with that version, or release it as ${app.appDesc.version}`);
  if (app.chipId !== ESP_CHIP_IDS[target])
    throw new ImageBuildError(`the app image is built for chip id ${app.chipId}, not ${target} (chip id ${ESP_CHIP_IDS[target]}): build it for ${target}`);
}

export function buildUnsignedImage(spec: ImageSpec): UnsignedImage {
  const payloadType = toPayloadType(spec.payloadType);
  const target = toTargetChip(spec.target);
  const header: ImageHeader = {
    payloadType,
    target,
    payloadSize: spec.payload.length,
    counter: toSecurityCounter(spec.counter),
    version: toFirmwareVersion(spec.version),
    buildId: toBuildId(spec.buildId ?? toHex(sha256(spec.payload)).slice(0, 16)),
  };
  const headerBytes = encodeHeader(header);
  checkPayload(spec, payloadType, target);
  const bytes = new Uint8Array(HEADER_SIZE + spec.payload.length);
  bytes.set(headerBytes);
  bytes.set(spec.payload, HEADER_SIZE);
  return { header, bytes, digest: toHex(sha256(bytes)) as ImageDigest };
}

/** Reads an unsigned image file (header ‖ payload) back, e.g. on the machine that holds the key. */
export function readUnsignedImage(bytes: Uint8Array): UnsignedImage {
  const header = decodeHeader(bytes);
  const expected = HEADER_SIZE + header.payloadSize;
  if (bytes.length !== expected)
    throw new ImageBuildError(`an unsigned image with a ${header.payloadSize}-byte payload is ${expected} bytes, this file is ${bytes.length}` +
      (bytes.length === expected + DIGEST_SIZE + KEY_ID_SIZE + SIGNATURE_SIZE ? " (it is already signed)" : ""));
  return { header, bytes, digest: toHex(sha256(bytes)) as ImageDigest };
}

/**
 * The signed image: `unsigned` followed by its digest, the signer's key id and `signature` (raw
 * r ‖ s; convert DER with rawSignatureFromDer). Refuses a signature a device would refuse.
 */
export function attachSignature(unsigned: UnsignedImage, signature: Uint8Array, signerSpki: Uint8Array): Uint8Array {
  const key = TrustedKey.fromSpki(signerSpki);
  const digest = sha256(unsigned.bytes);
  if (!key.verify(digest.slice().buffer, signature))
    throw new ImageBuildError(`the signature does not verify over digest ${toHex(digest)} with key ${key.id}: ` +
      `sign this image's digest, with the private key of this public key, as raw r ‖ s (64 bytes) or DER`);
  const image = new Uint8Array(unsigned.bytes.length + DIGEST_SIZE + KEY_ID_SIZE + SIGNATURE_SIZE);
  let at = 0;
  for (const part of [unsigned.bytes, digest, fromHex(key.id), signature]) {
    image.set(part, at);
    at += part.length;
  }
  return image;
}

export function signImage(unsigned: UnsignedImage, key: SigningKey): Uint8Array {
  return attachSignature(unsigned, signMessage(key, unsigned.bytes), key.spki);
}
