// The openssl recipes of docs/ota-image.md §4, run exactly as the document prints them: images the
// tools build verify with openssl alone, damaged ones do not, and a digest signed by openssl
// (standing in for a key on another machine) attaches into an image the device accepts.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { verifyImage } from "../modules/ota/image-verifier.ts";
import { PROJECT_ROOT } from "../twin/runtime/manifest.ts";
import { attachSignature, buildUnsignedImage, signImage, type UnsignedImage } from "../ota/image-build.ts";
import { rawSignatureFromDer } from "../ota/signature-der.ts";
import { privateKeyPem, publicKeyPem, signMessage } from "../ota/signing-key.ts";
import { bundleText, esp32Image, esp32Policy, signer, stranger, twinImage, twinPolicy } from "./fixtures/ota/images.ts";

const doc = readFileSync(join(PROJECT_ROOT, "docs/ota-image.md"), "utf8");

function script(name: string): string {
  const block = [...doc.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!).find((body) => body.trimStart().startsWith(`# ${name}`));
  assert.ok(block, `docs/ota-image.md has no sh block starting with "# ${name}"`);
  return block.replace(/^ {3}/gm, "");
}

const verifyScript = script("verify-image.sh");
const signScript = script("sign-digest.sh");

const dir = mkdtempSync(join(tmpdir(), "espguard-ota-openssl-"));
after(() => rmSync(dir, { recursive: true, force: true }));

function run(body: string, files: Record<string, string | Uint8Array>): { status: number | null; output: string } {
  for (const [name, content] of Object.entries(files)) writeFileSync(join(dir, name), content);
  const result = spawnSync("sh", ["-c", body], { cwd: dir, encoding: "utf8" });
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

function opensslVerifies(image: Uint8Array, publicKey = publicKeyPem(signer.spki)): { status: number | null; output: string } {
  return run(verifyScript, { "image.bin": image, "pub.pem": publicKey });
}

/** Signs until the signature's r or s starts with a zero byte: the raw → DER step must drop it. */
function signedWithLeadingZero(unsigned: UnsignedImage, half: 0 | 32): Uint8Array {
  for (;;) {
    const signature = signMessage(signer, unsigned.bytes);
    if (signature[half] === 0) return attachSignature(unsigned, signature, signer.spki);
  }
}

describe("verifying with openssl alone (docs/ota-image.md §4)", () => {
  test("a twin image and an ESP32 image verify", () => {
    for (const image of [twinImage().image, esp32Image().image]) {
      const { status, output } = opensslVerifies(image);
      assert.equal(status, 0, output);
      assert.match(output, /Verified OK/);
      assert.match(output, /payload \d+ bytes, security counter 5/);
    }
  });

  test("signatures whose r or s has a leading zero byte verify too", () => {
    const unsigned = buildUnsignedImage({ payload: bundleText(500), payloadType: "twin-bundle", target: "twin", version: "1.0.0", counter: 5 });
    for (const half of [0, 32] as const) {
      const image = signedWithLeadingZero(unsigned, half);
      assert.ok(verifyImage(image, twinPolicy()));
      const { status, output } = opensslVerifies(image);
      assert.equal(status, 0, output);
    }
  });

  test("a damaged payload, another signer or a bad signature fail", () => {
    const { image } = twinImage();
    const damaged = Uint8Array.from(image);
    damaged[200]! ^= 1;
    let result = opensslVerifies(damaged);
    assert.notEqual(result.status, 0);
    assert.match(result.output, /digest mismatch/);

    result = opensslVerifies(image, publicKeyPem(stranger.spki));
    assert.notEqual(result.status, 0);
    assert.match(result.output, /signed by another key/);

    const forged = Uint8Array.from(image);
    forged[forged.length - 1]! ^= 1;
    result = opensslVerifies(forged);
    assert.notEqual(result.status, 0);
    assert.match(result.output, /Verification failure/i);
  });

  test("a truncated file or something else entirely is refused", () => {
    const { image } = twinImage();
    assert.match(opensslVerifies(image.subarray(0, image.length - 1)).output, /size is not 256 \+ payload size/);
    assert.match(opensslVerifies(new TextEncoder().encode("not an image at all")).output, /not an espguard OTA image/);
  });
});

describe("signing the digest elsewhere (docs/ota-image.md §4)", () => {
  test("openssl pkeyutl signs the digest; the DER signature attaches into an image device and openssl accept", () => {
    const { payload } = esp32Image();
    const unsigned = buildUnsignedImage({ payload, payloadType: "esp32-app", target: "esp32", version: "2.0.1", counter: 12 });
    const { status, output } = run(signScript, { "image.digest": Buffer.from(unsigned.digest, "hex"), "key.pem": privateKeyPem(signer) });
    assert.equal(status, 0, output);
    const der = new Uint8Array(readFileSync(join(dir, "image.sig")));
    const image = attachSignature(unsigned, rawSignatureFromDer(der), signer.spki);
    assert.equal(verifyImage(image, esp32Policy()).header.counter, 12);
    assert.equal(opensslVerifies(image).status, 0);
    // The same digest signed here gives an image that differs only in the signature bytes.
    const local = signImage(unsigned, signer);
    assert.deepEqual(local.subarray(0, local.length - 64), image.subarray(0, image.length - 64));
  });
});
