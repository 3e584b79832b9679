// Makes signed release messages (docs/ota-image.md §6). The release is read off the signed image
// itself, so what it announces cannot drift from what the device will download.
import { createHash } from "node:crypto";
import { decodeHeader, HEADER_SIZE, IMAGE_OVERHEAD } from "../modules/ota/image-format.ts";
import { encodeReleaseMessage, type ReleaseManifest, releaseSigningBytes, toReleaseManifest } from "../modules/ota/release.ts";
import { signMessage, type SigningKey } from "./signing-key.ts";

export class ReleaseBuildError extends Error {
  readonly name = "ReleaseBuildError";
}

/** The release announcing `image` (a signed image) at `url`, to be signed by `releaseKey`. */
export function releaseForImage(image: Uint8Array, url: string, releaseKey: SigningKey): ReleaseManifest {
  const header = decodeHeader(image);
  const size = IMAGE_OVERHEAD + header.payloadSize;
  if (image.length !== size)
    throw new ReleaseBuildError(`the header describes a ${size}-byte signed image, the file is ${image.length} bytes: give the signed image`);
  return toReleaseManifest({
    version: header.version,
    counter: header.counter,
    target: header.target,
    payloadType: header.payloadType,
    size,
    sha256: createHash("sha256").update(image.subarray(0, HEADER_SIZE + header.payloadSize)).digest("hex"),
    url,
    keyId: releaseKey.keyId,
  });
}

/** The message to publish over MQTT. */
export function signRelease(release: ReleaseManifest, releaseKey: SigningKey): string {
  if (release.keyId !== releaseKey.keyId)
    throw new ReleaseBuildError(`the release names signer ${release.keyId}, the key given is ${releaseKey.keyId}: sign with the key the release names`);
  return encodeReleaseMessage(release, signMessage(releaseKey, new Uint8Array(releaseSigningBytes(release))));
}
