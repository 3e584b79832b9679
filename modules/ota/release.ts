// The signed release manifest that announces an image over MQTT (docs/ota-image.md §6): JSON whose
// signature covers canonical bytes the verifier rebuilds from the parsed values, so what is
// verified is exactly what is used.
import { Digest } from "crypt";
import { fromHex, isHex, toHex } from "ota/bytes";
import {
  type FirmwareVersion, type ImageDigest, IMAGE_OVERHEAD, ImageFieldError, MAX_PAYLOAD_SIZE, pairingProblem, type PayloadType,
  type SecurityCounter, type TargetChip, toFirmwareVersion, toImageDigest, toPayloadType, toSecurityCounter, toTargetChip,
} from "ota/image-format";
import { checkOffer, findKey, type OtaPolicy } from "ota/policy";
import { OtaRejected } from "ota/rejected";
import { type KeyId, SIGNATURE_SIZE, toKeyId } from "ota/trusted-key";

export const RELEASE_FORMAT = "espguard-release/1";
export const MAX_RELEASE_MESSAGE = 1024;
export const MAX_URL_LENGTH = 256;

/** An https URL of printable ASCII without `"` or `\`, so it has one JSON spelling. */
export type ReleaseUrl = string & { readonly __brand: "ReleaseUrl" };

export interface ReleaseManifest {
  readonly version: FirmwareVersion;
  readonly counter: SecurityCounter;
  readonly target: TargetChip;
  readonly payloadType: PayloadType;
  /** The whole image file: header, payload and trailer. */
  readonly size: number;
  /** The image digest, SHA-256 of header ‖ payload. */
  readonly sha256: ImageDigest;
  readonly url: ReleaseUrl;
  /** The key that signed this manifest. */
  readonly keyId: KeyId;
}

export interface SignedRelease {
  readonly release: ReleaseManifest;
  /** raw r ‖ s, not yet checked */
  readonly signature: Uint8Array;
}

/** The manifest's fields as plain values, before validation. */
export interface ReleaseFields {
  readonly version: string;
  readonly counter: number;
  readonly target: string;
  readonly payloadType: string;
  readonly size: number;
  readonly sha256: string;
  readonly url: string;
  readonly keyId: string;
}

// The wire keys in canonical order; "sig" is last and outside the signed bytes.
const KEYS = ["format", "version", "counter", "target", "type", "size", "sha256", "url", "kid", "sig"];
const TYPES: Readonly<Record<string, string>> = {
  format: "string", version: "string", counter: "number", target: "string", type: "string",
  size: "number", sha256: "string", url: "string", kid: "string", sig: "string",
};

export function toReleaseUrl(text: string): ReleaseUrl {
  let printable = true;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x21 || c > 0x7e || c === 0x22 || c === 0x5c) printable = false;
  }
  if (printable && text.length <= MAX_URL_LENGTH && text.length > 8 && text.startsWith("https://")) return text as ReleaseUrl;
  throw new ImageFieldError(`release url ${JSON.stringify(text)} must be https://…, at most ${MAX_URL_LENGTH} characters ` +
    `from ! to ~ without " or \\ (percent-encode anything else)`);
}

function toImageFileSize(size: number): number {
  if (Number.isInteger(size) && size > IMAGE_OVERHEAD && size <= IMAGE_OVERHEAD + MAX_PAYLOAD_SIZE) return size;
  throw new ImageFieldError(`release size ${size} is not an image size (${IMAGE_OVERHEAD + 1} to ${IMAGE_OVERHEAD + MAX_PAYLOAD_SIZE} bytes)`);
}

/** Validates the fields of a release; throws ImageFieldError or OtaKeyError naming the first bad one. */
export function toReleaseManifest(fields: ReleaseFields): ReleaseManifest {
  const target = toTargetChip(fields.target);
  const payloadType = toPayloadType(fields.payloadType);
  const pairing = pairingProblem(payloadType, target);
  if (pairing !== undefined) throw new ImageFieldError(pairing);
  return {
    version: toFirmwareVersion(fields.version),
    counter: toSecurityCounter(fields.counter),
    target,
    payloadType,
    size: toImageFileSize(fields.size),
    sha256: toImageDigest(fields.sha256),
    url: toReleaseUrl(fields.url),
    keyId: toKeyId(fields.keyId),
  };
}

function canonicalText(release: ReleaseManifest): string {
  return JSON.stringify({
    format: RELEASE_FORMAT,
    version: release.version,
    counter: release.counter,
    target: release.target,
    type: release.payloadType,
    size: release.size,
    sha256: release.sha256,
    url: release.url,
    kid: release.keyId,
  });
}

/** The bytes the release signature covers. */
export function releaseSigningBytes(release: ReleaseManifest): ArrayBuffer {
  return ArrayBuffer.fromString(canonicalText(release));
}

/** The message to publish: the canonical JSON with `sig` (raw r ‖ s, hex) added last. */
export function encodeReleaseMessage(release: ReleaseManifest, signature: Uint8Array): string {
  if (signature.length !== SIGNATURE_SIZE)
    throw new ImageFieldError(`a release signature is raw r ‖ s of ${SIGNATURE_SIZE} bytes, got ${signature.length}`);
  return `${canonicalText(release).slice(0, -1)},"sig":"${toHex(signature)}"}`;
}

function badRelease(problem: string): OtaRejected {
  return new OtaRejected("bad-release", `${problem}; a release message is the JSON object of docs/ota-image.md §6`);
}

function messageText(message: ArrayBuffer | string): string {
  const length = typeof message === "string" ? message.length : message.byteLength;
  if (length > MAX_RELEASE_MESSAGE) throw badRelease(`the message is ${length} bytes, more than ${MAX_RELEASE_MESSAGE}`);
  if (typeof message === "string") return message;
  try {
    return String.fromArrayBuffer(message);
  } catch {
    throw badRelease("the message is not UTF-8");
  }
}

export function parseReleaseMessage(message: ArrayBuffer | string): SignedRelease {
  let record: unknown;
  try {
    record = JSON.parse(messageText(message));
  } catch (error) {
    if (error instanceof OtaRejected) throw error;
    throw badRelease("the message is not JSON");
  }
  if (typeof record !== "object" || record === null || Array.isArray(record)) throw badRelease("the message is not a JSON object");
  const fields = record as Readonly<Record<string, unknown>>;
  for (const key of Object.keys(fields))
    if (KEYS.indexOf(key) < 0) throw badRelease(`unknown key ${JSON.stringify(key)} (${RELEASE_FORMAT} has only ${KEYS.join(", ")})`);
  for (const key of KEYS) {
    if (!Object.hasOwn(fields, key)) throw badRelease(`key "${key}" is missing`);
    if (typeof fields[key] !== TYPES[key]) throw badRelease(`key "${key}" must be a ${TYPES[key]}`);
  }
  if (fields.format !== RELEASE_FORMAT) throw badRelease(`format ${JSON.stringify(fields.format)} is not ${RELEASE_FORMAT}`);
  const sig = fields.sig as string;
  if (!isHex(sig, SIGNATURE_SIZE)) throw badRelease(`"sig" must be raw r ‖ s as ${2 * SIGNATURE_SIZE} lowercase hex digits`);
  try {
    const release = toReleaseManifest({
      version: fields.version as string,
      counter: fields.counter as number,
      target: fields.target as string,
      payloadType: fields.type as string,
      size: fields.size as number,
      sha256: fields.sha256 as string,
      url: fields.url as string,
      keyId: fields.kid as string,
    });
    return { release, signature: fromHex(sig) };
  } catch (error) {
    throw badRelease((error as Error).message);
  }
}

/**
 * The release a device may download, or OtaRejected. Policy comes before the signature: a retained
 * announcement of the release already installed is refused without an ECDSA verify.
 */
export function verifyReleaseMessage(message: ArrayBuffer | string, policy: OtaPolicy): ReleaseManifest {
  const { release, signature } = parseReleaseMessage(message);
  checkOffer(release, policy);
  const key = findKey(policy.keys, release.keyId);
  const digest = new Digest("SHA256").process(releaseSigningBytes(release));
  if (!key.verify(digest, signature))
    throw new OtaRejected("bad-signature", `the release signature does not verify with key ${release.keyId}: the message was altered or signed with another key`);
  return release;
}
