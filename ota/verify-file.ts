// Checks an image file with the device's own streaming verifier, fed in network-sized chunks, so
// `ota verify` accepts exactly what a device would and refuses with the device's reason.
import { createReadStream } from "node:fs";
import { ImageVerifier, type ImageVerifyOptions, type VerifiedImage } from "../modules/ota/image-verifier.ts";
import { type PayloadType, type SecurityCounter, type TargetChip, toSecurityCounter } from "../modules/ota/image-format.ts";
import { TrustedKey } from "../modules/ota/trusted-key.ts";

const CHUNK_SIZE = 4096;

/** The payload type each target installs (docs/ota-image.md §1.1). */
export const PAYLOAD_TYPE_FOR: Readonly<Record<TargetChip, PayloadType>> = { esp32: "esp32-app", twin: "twin-bundle" };

export interface FilePolicy {
  readonly spki: Uint8Array;
  /** The device's chip; without it, whatever the header claims. */
  readonly target?: TargetChip;
  /** The counter the device accepted last; without it, any counter passes. */
  readonly acceptedCounter?: SecurityCounter;
}

export async function verifyImageFile(path: string, policy: FilePolicy): Promise<VerifiedImage> {
  const keys = [TrustedKey.fromSpki(policy.spki)];
  const verifierFor = (target: TargetChip): ImageVerifier => new ImageVerifier({
    keys, target, payloadTypes: [PAYLOAD_TYPE_FOR[target]],
    acceptedCounter: policy.acceptedCounter ?? toSecurityCounter(0),
    allowAcceptedCounter: policy.acceptedCounter === undefined,
  } satisfies ImageVerifyOptions);
  let verifier: ImageVerifier | undefined;
  const stream = createReadStream(path, { highWaterMark: CHUNK_SIZE });
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      // Without a target to hold it to, an image is checked against the one its header names.
      verifier ??= verifierFor(policy.target ?? targetFromHeader(chunk));
      verifier.write(chunk);
    }
  } finally {
    stream.destroy();
  }
  return (verifier ?? verifierFor(policy.target ?? "esp32")).finish();
}

// Header offset 10 holds the target chip code, 0x8000 for the twin (docs/ota-image.md §1.1). Anything
// else is taken for esp32, and the verifier's own header checks then refuse a code that is neither.
function targetFromHeader(chunk: Buffer): TargetChip {
  return chunk.length >= 12 && chunk.readUInt16LE(10) === 0x8000 ? "twin" : "esp32";
}
