// The OTA verifier on a real XS engine (an xsnap worker, via the XS engine check), with its
// built-ins frozen as after a Moddable preload: the same verdicts as on Node, for good images,
// broken ones and release messages, fed as the ArrayBuffer chunks an HTTP client delivers.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { runFirmwareInXs } from "../twin/xs/xs-check.ts";
import { fromHex, toHex } from "../modules/ota/bytes.ts";
import { verifyImage } from "../modules/ota/image-verifier.ts";
import { releaseForImage, signRelease } from "../ota/release-sign.ts";
import { bundleText, signer, stranger, twinImage, twinPolicy } from "./fixtures/ota/images.ts";

const scratch = mkdtempSync(join(tmpdir(), "espguard-ota-xs-"));
after(() => rmSync(scratch, { recursive: true, force: true }));

interface Case {
  readonly name: string;
  readonly image: Uint8Array;
  readonly chunk: number;
}

// Firmware entry: verifies each case in chunks and traces one JSON line of verdicts.
function entrySource(cases: readonly Case[], releases: readonly string[]): string {
  return `import { ImageVerifier } from "ota/image-verifier";
import { OtaRejected } from "ota/rejected";
import { verifyReleaseMessage } from "ota/release";
import { TrustedKey } from "ota/trusted-key";
import { fromHex } from "ota/bytes";
const policy = { keys: [TrustedKey.fromSpki(fromHex("${toHex(signer.spki)}"))], target: "twin", payloadTypes: ["twin-bundle"], acceptedCounter: 4 };
const verdict = (run) => {
  try {
    return run();
  } catch (error) {
    if (error instanceof OtaRejected) return { reason: error.reason };
    throw error;
  }
};
const cases = ${JSON.stringify(cases.map((c) => ({ name: c.name, hex: toHex(c.image), chunk: c.chunk })))};
const out = {};
for (const { name, hex, chunk } of cases) {
  const image = fromHex(hex);
  out[name] = verdict(() => {
    const verifier = new ImageVerifier(policy);
    let payload = 0;
    for (let at = 0; at < image.length; at += chunk) payload += verifier.write(image.slice(at, at + chunk).buffer).length;
    const { header, digest } = verifier.finish();
    return { version: header.version, counter: header.counter, digest, payload };
  });
}
${JSON.stringify(releases)}.forEach((message, i) => {
  out["release " + i] = verdict(() => ({ url: verifyReleaseMessage(ArrayBuffer.fromString(message), policy).url }));
});
trace(JSON.stringify(out) + "\\n");
`;
}

function flipped(image: Uint8Array, at: number): Uint8Array {
  const copy = Uint8Array.from(image);
  copy[at]! ^= 0x01;
  return copy;
}

function withSignature(image: Uint8Array, r: string, s: string): Uint8Array {
  const copy = Uint8Array.from(image);
  copy.set(fromHex(r.padStart(64, "0") + s.padStart(64, "0")), copy.length - 64);
  return copy;
}

test("XS gives the verdicts Node gives, for images and release messages", async () => {
  const good = twinImage({ payload: bundleText(20_000), counter: 9, version: "4.5.6" });
  const n = "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551";
  const cases: Case[] = [
    { name: "valid, 4 KB chunks", image: good.image, chunk: 4096 },
    { name: "valid, 333-byte chunks", image: good.image, chunk: 333 },
    { name: "payload flip", image: flipped(good.image, 5000), chunk: 4096 },
    { name: "header flip", image: flipped(good.image, 40), chunk: 4096 },
    { name: "signature s = 0", image: withSignature(good.image, "1234", "0"), chunk: 4096 },
    { name: "signature r = n", image: withSignature(good.image, n, "1234"), chunk: 4096 },
    { name: "signature flip", image: flipped(good.image, good.image.length - 3), chunk: 4096 },
    { name: "other signer", image: twinImage({ key: stranger }).image, chunk: 4096 },
    { name: "downgrade", image: twinImage({ counter: 2 }).image, chunk: 4096 },
    { name: "truncated", image: good.image.subarray(0, good.image.length - 1), chunk: 4096 },
    { name: "extra bytes", image: Uint8Array.from([...good.image, 0]), chunk: 4096 },
    { name: "bad magic", image: flipped(good.image, 0), chunk: 4096 },
    { name: "wrong target", image: flipped(good.image, 11), chunk: 4096 },
  ];
  const release = signRelease(releaseForImage(good.image, "https://ota.example.net/4.5.6.bin", signer), signer);
  const releases = [release, release.replace("ota.example.net", "evil.example.net"), signRelease(releaseForImage(good.image, "https://x.example/a", stranger), stranger)];

  const entry = join(scratch, "verify.js");
  writeFileSync(entry, entrySource(cases, releases));
  const result = await runFirmwareInXs({ entry, timeoutMs: 60_000, computeLimit: 0 });
  assert.ok(result.ok, result.error?.message);
  const xs = JSON.parse(result.traces.at(-1)!) as Record<string, unknown>;
  assert.deepEqual(xs["signature s = 0"], { reason: "bad-signature" });
  assert.equal((xs["valid, 4 KB chunks"] as { payload: number }).payload, 20_000);

  const node: Record<string, unknown> = {};
  for (const { name, image } of cases) {
    try {
      const { header, digest } = verifyImage(image, twinPolicy());
      node[name] = { version: header.version, counter: header.counter, digest, payload: header.payloadSize };
    } catch (error) {
      node[name] = { reason: (error as { reason: string }).reason };
    }
  }
  assert.deepEqual(xs, {
    ...node,
    "release 0": { url: "https://ota.example.net/4.5.6.bin" },
    "release 1": { reason: "bad-signature" },
    "release 2": { reason: "unknown-key" },
  });
});
