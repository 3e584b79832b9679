// Verifies a signed OTA image as it streams in (docs/ota-image.md §3): chunks of any size, the
// header checked as soon as it is complete, header ‖ payload hashed on the fly, the trailer
// collected; finish() then checks digest, key and signature. Each write() returns the payload part
// of its chunk, for updaters that store only the payload.
import { Digest } from "crypt";
import { equalBytes, toBytes, toHex } from "ota/bytes";
import { decodeHeader, DIGEST_SIZE, type ImageDigest, type ImageHeader, imageSize, HEADER_SIZE, TRAILER_SIZE } from "ota/image-format";
import { checkOffer, findKey, type OtaPolicy } from "ota/policy";
import { OtaRejected } from "ota/rejected";
import type { ReleaseManifest } from "ota/release";
import { KEY_ID_SIZE, type KeyId } from "ota/trusted-key";

export interface ImageVerifyOptions extends OtaPolicy {
  /** The release that announced this image: size, digest, version, counter, target and type must match it. */
  readonly release?: ReleaseManifest;
  /** The largest payload the destination holds (an ESP32 slot holds the payload; a twin slot the whole image). */
  readonly maxPayloadSize?: number;
  /** Admit counter = acceptedCounter: only for a bootloader re-checking the image it already accepted. */
  readonly allowAcceptedCounter?: boolean;
}

export interface VerifiedImage {
  readonly header: ImageHeader;
  readonly digest: ImageDigest;
  readonly keyId: KeyId;
  /** Where the payload starts in the image. */
  readonly payloadOffset: number;
  readonly imageSize: number;
}

/** A verifier used again after it accepted an image: one verifier per image. */
export class VerifierReusedError extends Error {
  readonly name = "VerifierReusedError";
}

const AT_KEY_ID = DIGEST_SIZE;
const AT_SIGNATURE = DIGEST_SIZE + KEY_ID_SIZE;

function checkAgainstRelease(header: ImageHeader, release: ReleaseManifest): void {
  if (imageSize(header) !== release.size)
    throw new OtaRejected("size-mismatch", `the header makes the image ${imageSize(header)} bytes (payload ${header.payloadSize}), ` +
      `the release announced ${release.size}: the header's size field or the release is wrong`);
  const differs = header.version !== release.version ? `version ${header.version} vs ${release.version}`
    : header.counter !== release.counter ? `counter ${header.counter} vs ${release.counter}`
    : header.target !== release.target ? `target ${header.target} vs ${release.target}`
    : header.payloadType !== release.payloadType ? `payload type ${header.payloadType} vs ${release.payloadType}`
    : undefined;
  if (differs !== undefined)
    throw new OtaRejected("release-mismatch", `the image is not the one the release announced (${differs}): publish a release made from this image`);
}

export class ImageVerifier {
  readonly #options: ImageVerifyOptions;
  readonly #digest = new Digest("SHA256");
  readonly #headerBytes = new Uint8Array(HEADER_SIZE);
  readonly #trailer = new Uint8Array(TRAILER_SIZE);
  #header: ImageHeader | undefined;
  #imageSize = 0;
  #received = 0;
  #failure: OtaRejected | undefined;
  #result: VerifiedImage | undefined;

  constructor(options: ImageVerifyOptions) {
    this.#options = options;
  }

  /** The header, once its bytes are in and it passed the header checks. */
  get header(): ImageHeader | undefined {
    return this.#header;
  }

  /** Image bytes taken so far. */
  get received(): number {
    return this.#received;
  }

  /** The whole image's size as its header states it; undefined before the header is in. */
  get imageSize(): number | undefined {
    return this.#header ? this.#imageSize : undefined;
  }

  /** Takes the next bytes of the image; returns the payload bytes among them (a view, possibly empty). */
  write(chunk: ArrayBuffer | Uint8Array): Uint8Array {
    this.#usable();
    try {
      return this.#take(toBytes(chunk));
    } catch (error) {
      if (error instanceof OtaRejected) this.#failure = error;
      throw error;
    }
  }

  /** After the last chunk: the verified image, or OtaRejected. */
  finish(): VerifiedImage {
    this.#usable();
    try {
      this.#result = this.#check();
      return this.#result;
    } catch (error) {
      if (error instanceof OtaRejected) this.#failure = error;
      throw error;
    }
  }

  #usable(): void {
    if (this.#failure) throw this.#failure;
    if (this.#result) throw new VerifierReusedError("ImageVerifier: this image is already verified; create a new ImageVerifier for the next image");
  }

  #take(bytes: Uint8Array): Uint8Array {
    let at = 0;
    if (this.#received < HEADER_SIZE) {
      at = Math.min(HEADER_SIZE - this.#received, bytes.length);
      this.#headerBytes.set(bytes.subarray(0, at), this.#received);
      this.#received += at;
      if (this.#received < HEADER_SIZE) return bytes.subarray(at, at);
      this.#acceptHeader();
    }
    const payloadEnd = HEADER_SIZE + this.#header!.payloadSize;
    const payloadTaken = Math.min(Math.max(payloadEnd - this.#received, 0), bytes.length - at);
    // a chunk wholly inside the payload is passed on as it is, not as a new view of itself
    const payload = at === 0 && payloadTaken === bytes.length ? bytes : bytes.subarray(at, at + payloadTaken);
    if (payloadTaken > 0) {
      this.#digest.write(payload);
      this.#received += payloadTaken;
      at += payloadTaken;
    }
    if (at < bytes.length) {
      const trailerTaken = Math.min(this.#imageSize - this.#received, bytes.length - at);
      this.#trailer.set(bytes.subarray(at, at + trailerTaken), this.#received - payloadEnd);
      this.#received += trailerTaken;
      at += trailerTaken;
      if (at < bytes.length)
        throw new OtaRejected("extra-bytes", `bytes continue past the ${this.#imageSize}-byte image the header describes: ` +
          `the download is not this image, or the header's payload size (${this.#header!.payloadSize}) is too small`);
    }
    return payload;
  }

  #acceptHeader(): void {
    const header = decodeHeader(this.#headerBytes);
    const options = this.#options;
    checkOffer(header, options, options.allowAcceptedCounter === true);
    if (options.maxPayloadSize !== undefined && header.payloadSize > options.maxPayloadSize)
      throw new OtaRejected("too-large", `the ${header.payloadSize}-byte payload does not fit the ${options.maxPayloadSize} bytes available: ` +
        `shrink the firmware or enlarge the OTA partitions`);
    if (options.release) checkAgainstRelease(header, options.release);
    this.#header = header;
    this.#imageSize = imageSize(header);
    this.#digest.write(this.#headerBytes);
  }

  #check(): VerifiedImage {
    const header = this.#header;
    if (!header || this.#received < this.#imageSize) {
      const expected = header ? `${this.#imageSize}` : `at least ${HEADER_SIZE}`;
      throw new OtaRejected("truncated", `the image ended after ${this.#received} of ${expected} bytes: resume or restart the download`);
    }
    const digest = this.#digest.close();
    if (!equalBytes(new Uint8Array(digest), this.#trailer.subarray(0, DIGEST_SIZE)))
      throw new OtaRejected("digest-mismatch", "SHA-256 of header and payload differs from the image's digest: the image was damaged or altered");
    const keyId = toHex(this.#trailer.subarray(AT_KEY_ID, AT_SIGNATURE));
    const key = findKey(this.#options.keys, keyId);
    if (!key.verify(digest, this.#trailer.subarray(AT_SIGNATURE)))
      throw new OtaRejected("bad-signature", `the signature does not verify with key ${key.id}: the image was altered or signed with another key`);
    const hex = toHex(new Uint8Array(digest)) as ImageDigest;
    const release = this.#options.release;
    if (release && release.sha256 !== hex)
      throw new OtaRejected("release-mismatch", `the image digest ${hex} is not the ${release.sha256} the release announced: publish a release made from this image`);
    return { header, digest: hex, keyId: key.id, payloadOffset: HEADER_SIZE, imageSize: this.#imageSize };
  }
}

/** Verifies a whole image held in memory, e.g. a twin slot at boot. */
export function verifyImage(image: ArrayBuffer | Uint8Array, options: ImageVerifyOptions): VerifiedImage {
  const verifier = new ImageVerifier(options);
  verifier.write(image);
  return verifier.finish();
}
