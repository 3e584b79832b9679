// The signed OTA image container of docs/ota-image.md: a fixed 128-byte header, the payload, a
// fixed 128-byte trailer. Header encoding and decoding live here once, for the device and the tools.
import { isHex } from "ota/bytes";
import { OtaRejected } from "ota/rejected";

export const FORMAT_VERSION = 1;
export const HEADER_SIZE = 128;
export const TRAILER_SIZE = 128;
/** Bytes an image adds around its payload. */
export const IMAGE_OVERHEAD = HEADER_SIZE + TRAILER_SIZE;
/** 16 MiB: the largest ESP32 flash, so no payload can be larger. */
export const MAX_PAYLOAD_SIZE = 0x1000000;
export const MAX_SECURITY_COUNTER = 0xffffffff;
/** Width of the version and build id fields; at least one NUL ends the text. */
export const TEXT_FIELD_SIZE = 32;
export const DIGEST_SIZE = 32;

const MAGIC = [0x45, 0x47, 0x4f, 0x49]; // "EGOI"
const AT_VERSION = 4;
const AT_HEADER_SIZE = 6;
const AT_PAYLOAD_TYPE = 8;
const AT_TARGET = 10;
const AT_PAYLOAD_SIZE = 12;
const AT_COUNTER = 16;
const AT_FIRMWARE_VERSION = 32;
const AT_BUILD_ID = 64;
const RESERVED: readonly (readonly [number, number])[] = [[9, 10], [20, 32], [96, 128]];

export type PayloadType = "esp32-app" | "twin-bundle";
export type TargetChip = "esp32" | "twin";
/** The anti-rollback number: a device installs only an image whose counter is above the one it accepted last. */
export type SecurityCounter = number & { readonly __brand: "SecurityCounter" };
/** A semver 2.0.0 version of at most 31 characters. */
export type FirmwareVersion = string & { readonly __brand: "FirmwareVersion" };
export type BuildId = string & { readonly __brand: "BuildId" };
/** SHA-256 of header ‖ payload, lowercase hex: what the signature signs. */
export type ImageDigest = string & { readonly __brand: "ImageDigest" };

export interface ImageHeader {
  readonly payloadType: PayloadType;
  readonly target: TargetChip;
  readonly payloadSize: number;
  readonly counter: SecurityCounter;
  readonly version: FirmwareVersion;
  readonly buildId: BuildId;
}

const PAYLOAD_TYPE_CODES: Readonly<Record<PayloadType, number>> = { "esp32-app": 1, "twin-bundle": 2 };
// ESP-IDF's esp_chip_id_t for real chips (the chip_id of an app image); 0x8000 is outside its range.
const TARGET_CODES: Readonly<Record<TargetChip, number>> = { esp32: 0x0000, twin: 0x8000 };
const TARGET_OF: Readonly<Record<PayloadType, TargetChip>> = { "esp32-app": "esp32", "twin-bundle": "twin" };

// semver.org's grammar: no leading zeros in numeric identifiers.
const SEMVER = /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$/;
const BUILD_ID = /^[0-9A-Za-z._:+-]+$/;
const MAX_TEXT = TEXT_FIELD_SIZE - 1;

/** A header field value the format does not allow, given by a tool or a device's configuration. */
export class ImageFieldError extends Error {
  readonly name = "ImageFieldError";
}

function counterProblem(value: number): string | undefined {
  if (Number.isInteger(value) && value >= 0 && value <= MAX_SECURITY_COUNTER) return undefined;
  return `security counter ${value} is not an integer from 0 to ${MAX_SECURITY_COUNTER}`;
}

function versionProblem(text: string): string | undefined {
  if (text.length >= 1 && text.length <= MAX_TEXT && SEMVER.test(text)) return undefined;
  return `firmware version ${JSON.stringify(text)} is not a semantic version (MAJOR.MINOR.PATCH[-pre][+build], ` +
    `no leading zeros, no "v") of 1 to ${MAX_TEXT} characters`;
}

function buildIdProblem(text: string): string | undefined {
  if (text.length >= 1 && text.length <= MAX_TEXT && BUILD_ID.test(text)) return undefined;
  return `build id ${JSON.stringify(text)} must be 1 to ${MAX_TEXT} characters from 0-9 A-Z a-z . _ : + -`;
}

function payloadSizeProblem(size: number): string | undefined {
  if (Number.isInteger(size) && size >= 1 && size <= MAX_PAYLOAD_SIZE) return undefined;
  return `payload size ${size} is outside 1 to ${MAX_PAYLOAD_SIZE} bytes (16 MiB, the largest ESP32 flash)`;
}

/** Why `payloadType` cannot be installed on `target`, or undefined when it can. */
export function pairingProblem(payloadType: PayloadType, target: TargetChip): string | undefined {
  if (TARGET_OF[payloadType] === target) return undefined;
  return `payload type ${payloadType} does not run on target ${target}: it needs target ${TARGET_OF[payloadType]}`;
}

function fieldValue<T>(problem: string | undefined, value: T): T {
  if (problem !== undefined) throw new ImageFieldError(problem);
  return value;
}

export function toSecurityCounter(value: number): SecurityCounter {
  return fieldValue(counterProblem(value), value as SecurityCounter);
}

export function toFirmwareVersion(text: string): FirmwareVersion {
  return fieldValue(versionProblem(text), text as FirmwareVersion);
}

export function toBuildId(text: string): BuildId {
  return fieldValue(buildIdProblem(text), text as BuildId);
}

export function isPayloadType(text: string): text is PayloadType {
  return Object.hasOwn(PAYLOAD_TYPE_CODES, text);
}

export function isTargetChip(text: string): text is TargetChip {
  return Object.hasOwn(TARGET_CODES, text);
}

export function toPayloadType(text: string): PayloadType {
  if (isPayloadType(text)) return text;
  throw new ImageFieldError(`payload type ${JSON.stringify(text)} is not one of ${Object.keys(PAYLOAD_TYPE_CODES).join(", ")}`);
}

export function toTargetChip(text: string): TargetChip {
  if (isTargetChip(text)) return text;
  throw new ImageFieldError(`target chip ${JSON.stringify(text)} is not one of ${Object.keys(TARGET_CODES).join(", ")}`);
}

export function toImageDigest(text: string): ImageDigest {
  if (isHex(text, DIGEST_SIZE)) return text as ImageDigest;
  throw new ImageFieldError(`image digest ${JSON.stringify(text)} is not 64 lowercase hex digits (a SHA-256)`);
}

export function imageSize(header: ImageHeader): number {
  return IMAGE_OVERHEAD + header.payloadSize;
}

function headerProblem(header: ImageHeader): string | undefined {
  if (!isPayloadType(header.payloadType)) return `payload type ${JSON.stringify(header.payloadType)} is not one of ${Object.keys(PAYLOAD_TYPE_CODES).join(", ")}`;
  if (!isTargetChip(header.target)) return `target chip ${JSON.stringify(header.target)} is not one of ${Object.keys(TARGET_CODES).join(", ")}`;
  return pairingProblem(header.payloadType, header.target) ?? payloadSizeProblem(header.payloadSize) ??
    counterProblem(header.counter) ?? versionProblem(header.version) ?? buildIdProblem(header.buildId);
}

function writeUint(bytes: Uint8Array, at: number, size: number, value: number): void {
  for (let i = 0; i < size; i++) bytes[at + i] = (value >>> (8 * i)) & 0xff;
}

function readUint(bytes: Uint8Array, at: number, size: number): number {
  let value = 0;
  for (let i = size - 1; i >= 0; i--) value = value * 256 + bytes[at + i]!;
  return value;
}

function writeText(bytes: Uint8Array, at: number, text: string): void {
  for (let i = 0; i < text.length; i++) bytes[at + i] = text.charCodeAt(i);
}

function readText(bytes: Uint8Array, at: number, field: string): string {
  let end = at;
  while (end < at + TEXT_FIELD_SIZE && bytes[end] !== 0) end++;
  if (end === at + TEXT_FIELD_SIZE) throw new OtaRejected("bad-header", `the ${field} field has no NUL terminator in its ${TEXT_FIELD_SIZE} bytes`);
  for (let i = end; i < at + TEXT_FIELD_SIZE; i++)
    if (bytes[i] !== 0) throw new OtaRejected("bad-header", `the ${field} field has non-zero bytes after its terminating NUL`);
  let text = "";
  for (let i = at; i < end; i++) text += String.fromCharCode(bytes[i]!);
  return text;
}

function codeName<T extends string>(codes: Readonly<Record<T, number>>, code: number): T | undefined {
  for (const name of Object.keys(codes) as T[]) if (codes[name] === code) return name;
  return undefined;
}

function hex(value: number, digits: number): string {
  return `0x${value.toString(16).padStart(digits, "0")}`;
}

export function encodeHeader(header: ImageHeader): Uint8Array {
  const problem = headerProblem(header);
  if (problem !== undefined) throw new ImageFieldError(problem);
  const bytes = new Uint8Array(HEADER_SIZE);
  bytes.set(MAGIC);
  writeUint(bytes, AT_VERSION, 2, FORMAT_VERSION);
  writeUint(bytes, AT_HEADER_SIZE, 2, HEADER_SIZE);
  bytes[AT_PAYLOAD_TYPE] = PAYLOAD_TYPE_CODES[header.payloadType];
  writeUint(bytes, AT_TARGET, 2, TARGET_CODES[header.target]);
  writeUint(bytes, AT_PAYLOAD_SIZE, 4, header.payloadSize);
  writeUint(bytes, AT_COUNTER, 4, header.counter);
  writeText(bytes, AT_FIRMWARE_VERSION, header.version);
  writeText(bytes, AT_BUILD_ID, header.buildId);
  return bytes;
}

/** Reads the first HEADER_SIZE bytes of `bytes`; throws OtaRejected naming the first field that is wrong. */
export function decodeHeader(bytes: Uint8Array): ImageHeader {
  if (bytes.length < HEADER_SIZE)
    throw new OtaRejected("truncated", `${bytes.length} bytes are not a whole ${HEADER_SIZE}-byte header`);
  for (let i = 0; i < MAGIC.length; i++)
    if (bytes[i] !== MAGIC[i]) throw new OtaRejected("bad-magic", "the image does not start with \"EGOI\": not an espguard OTA image (was an unsigned firmware file sent?)");
  const version = readUint(bytes, AT_VERSION, 2);
  if (version !== FORMAT_VERSION)
    throw new OtaRejected("unsupported-version", `format version ${version}; this firmware reads only version ${FORMAT_VERSION}: ` +
      `first install, as a version ${FORMAT_VERSION} image, firmware that reads the new format`);
  const headerSize = readUint(bytes, AT_HEADER_SIZE, 2);
  if (headerSize !== HEADER_SIZE)
    throw new OtaRejected("header-size", `header size ${headerSize}; format version ${FORMAT_VERSION} headers are exactly ${HEADER_SIZE} bytes`);
  for (const [from, to] of RESERVED)
    for (let i = from; i < to; i++)
      if (bytes[i] !== 0) throw new OtaRejected("bad-header", `reserved byte ${i} is ${hex(bytes[i]!, 2)}; format version ${FORMAT_VERSION} requires 0`);
  const payloadType = codeName(PAYLOAD_TYPE_CODES, bytes[AT_PAYLOAD_TYPE]!);
  if (!payloadType) throw new OtaRejected("bad-header", `payload type code ${bytes[AT_PAYLOAD_TYPE]} is not defined in format version ${FORMAT_VERSION}`);
  const targetCode = readUint(bytes, AT_TARGET, 2);
  const target = codeName(TARGET_CODES, targetCode);
  if (!target) throw new OtaRejected("bad-header", `target chip ${hex(targetCode, 4)} is not defined in format version ${FORMAT_VERSION}`);
  const header: ImageHeader = {
    payloadType,
    target,
    payloadSize: readUint(bytes, AT_PAYLOAD_SIZE, 4),
    counter: readUint(bytes, AT_COUNTER, 4) as SecurityCounter,
    version: readText(bytes, AT_FIRMWARE_VERSION, "firmware version") as FirmwareVersion,
    buildId: readText(bytes, AT_BUILD_ID, "build id") as BuildId,
  };
  const problem = headerProblem(header);
  if (problem !== undefined) throw new OtaRejected("bad-header", problem);
  return header;
}
