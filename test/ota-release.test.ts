// The signed release manifest (docs/ota-image.md §6): made from a signed image, verified on the
// device against its policy, and bound to the image the device then downloads.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { toHex } from "../modules/ota/bytes.ts";
import { ImageFieldError } from "../modules/ota/image-format.ts";
import { verifyImage } from "../modules/ota/image-verifier.ts";
import { OtaRejected, type RejectReason } from "../modules/ota/rejected.ts";
import { encodeReleaseMessage, MAX_RELEASE_MESSAGE, parseReleaseMessage, releaseSigningBytes, toReleaseManifest, verifyReleaseMessage } from "../modules/ota/release.ts";
import { TrustedKey } from "../modules/ota/trusted-key.ts";
import { ReleaseBuildError, releaseForImage, signRelease } from "../ota/release-sign.ts";
import { signMessage } from "../ota/signing-key.ts";
import { esp32Image, esp32Policy, signer, stranger, twinImage, twinPolicy } from "./fixtures/ota/images.ts";

const URL = "https://ota.example.net/fw/espguard-2.0.1.bin";
const { image } = esp32Image();
const release = releaseForImage(image, URL, signer);
const message = signRelease(release, signer);

function rejects(reason: RejectReason, run: () => unknown): void {
  assert.throws(run, (error: unknown) => {
    assert.ok(error instanceof OtaRejected, `expected OtaRejected(${reason}), got ${String(error)}`);
    assert.equal(error.reason, reason, error.message);
    return true;
  });
}

const wire = () => JSON.parse(message) as Record<string, unknown>;
const resign = (record: Record<string, unknown>) => {
  const { sig: _, ...fields } = record;
  const manifest = toReleaseManifest({
    version: String(fields.version), counter: Number(fields.counter), target: String(fields.target), payloadType: String(fields.type),
    size: Number(fields.size), sha256: String(fields.sha256), url: String(fields.url), keyId: String(fields.kid),
  });
  return signRelease(manifest, signer);
};

describe("release manifest", () => {
  test("it is read off the signed image and verifies on the device, as MQTT bytes or text", () => {
    assert.deepEqual(verifyReleaseMessage(ArrayBuffer.fromString(message), esp32Policy()), release);
    assert.deepEqual(verifyReleaseMessage(message, esp32Policy()), release);
    assert.equal(release.size, image.length);
    assert.equal(release.version, "2.0.1");
    assert.equal(release.sha256, verifyImage(image, esp32Policy()).digest);
  });

  test("the message is the canonical JSON of §6 with sig last; the signature covers the rest", () => {
    const text = String.fromArrayBuffer(releaseSigningBytes(release));
    assert.equal(text, `{"format":"espguard-release/1","version":"2.0.1","counter":5,"target":"esp32","type":"esp32-app",` +
      `"size":${image.length},"sha256":"${release.sha256}","url":"${URL}","kid":"${signer.keyId}"}`);
    assert.equal(message, `${text.slice(0, -1)},"sig":"${wire().sig}"}`);
    assert.ok(message.length < MAX_RELEASE_MESSAGE);
  });

  test("key order and whitespace on the wire do not matter: the verifier rebuilds the canonical bytes", () => {
    fc.assert(fc.property(fc.shuffledSubarray(Object.keys(wire()), { minLength: 10, maxLength: 10 }), (keys) => {
      const record = wire();
      const reordered = JSON.stringify(Object.fromEntries(keys.map((key) => [key, record[key]])), null, 1);
      assert.deepEqual(verifyReleaseMessage(reordered, esp32Policy()), release);
    }), { numRuns: 20 });
  });

  test("the image the release announced is what the updater accepts", () => {
    assert.ok(verifyImage(image, esp32Policy({ release })));
    rejects("release-mismatch", () => verifyImage(esp32Image().image, esp32Policy({ release })));
  });

  test("a changed field → bad-signature", () => {
    for (const [key, value] of [["url", "https://evil.example.net/x.bin"], ["counter", 6], ["size", image.length + 4], ["sha256", "0".repeat(64)]] as const) {
      const record = { ...wire(), [key]: value };
      rejects("bad-signature", () => verifyReleaseMessage(JSON.stringify(record), esp32Policy()));
    }
  });

  test("out-of-range signatures → bad-signature before ECDSA", () => {
    for (const sig of ["0".repeat(128), "f".repeat(128), `${"0".repeat(63)}1${"0".repeat(64)}`])
      rejects("bad-signature", () => verifyReleaseMessage(JSON.stringify({ ...wire(), sig }), esp32Policy()));
  });

  test("a signer the device does not trust → unknown-key", () => {
    const foreign = signRelease(releaseForImage(image, URL, stranger), stranger);
    rejects("unknown-key", () => verifyReleaseMessage(foreign, esp32Policy()));
    assert.ok(verifyReleaseMessage(foreign, esp32Policy({ keys: [TrustedKey.fromSpki(stranger.spki)] })));
  });

  test("policy: wrong target, payload type, lower or equal counter", () => {
    rejects("wrong-target", () => verifyReleaseMessage(message, twinPolicy()));
    rejects("payload-type", () => verifyReleaseMessage(message, esp32Policy({ payloadTypes: [] })));
    rejects("downgrade", () => verifyReleaseMessage(message, esp32Policy({ acceptedCounter: release.counter })));
    const twin = twinImage({ counter: 3 });
    rejects("downgrade", () => verifyReleaseMessage(signRelease(releaseForImage(twin.image, URL, signer), signer), twinPolicy()));
  });

  const malformed: [string, () => string | ArrayBuffer][] = [
    ["not JSON", () => "{"],
    ["an array", () => "[]"],
    ["null", () => "null"],
    ["an unknown key", () => JSON.stringify({ ...wire(), extra: 1 })],
    ["a missing key", () => JSON.stringify({ ...wire(), kid: undefined })],
    ["a number as a string", () => JSON.stringify({ ...wire(), counter: "5" })],
    ["another format", () => JSON.stringify({ ...wire(), format: "espguard-release/2" })],
    ["uppercase hex in sig", () => JSON.stringify({ ...wire(), sig: String(wire().sig).toUpperCase() })],
    ["a short sig", () => JSON.stringify({ ...wire(), sig: "ab" })],
    ["a fractional counter", () => JSON.stringify({ ...wire(), counter: 5.5 })],
    ["a counter of 2^32", () => JSON.stringify({ ...wire(), counter: 2 ** 32 })],
    ["a size too small for an image", () => JSON.stringify({ ...wire(), size: 256 })],
    ["an http url", () => JSON.stringify({ ...wire(), url: "http://ota.example.net/x.bin" })],
    ["a url with a space", () => JSON.stringify({ ...wire(), url: "https://ota.example.net/a b.bin" })],
    ["a url with a quote", () => JSON.stringify({ ...wire(), url: 'https://ota.example.net/a"b.bin' })],
    ["a type that does not run on the target", () => JSON.stringify({ ...wire(), type: "twin-bundle" })],
    ["a version that is not semver", () => JSON.stringify({ ...wire(), version: "2.0" })],
    ["a kid that is not hex", () => JSON.stringify({ ...wire(), kid: "k".repeat(64) })],
    ["more than 1024 bytes", () => JSON.stringify({ ...wire(), url: `https://x/${"a".repeat(1100)}` })],
    ["bytes that are not UTF-8", () => Uint8Array.of(0x7b, 0xff, 0x7d).buffer],
  ];
  for (const [name, make] of malformed) {
    test(`a message with ${name} → bad-release`, () => {
      rejects("bad-release", () => verifyReleaseMessage(make(), esp32Policy()));
    });
  }

  test("a well-formed message passes parsing whatever its signature; only verification trusts it", () => {
    const { release: parsed, signature } = parseReleaseMessage(JSON.stringify({ ...wire(), sig: "0".repeat(128) }));
    assert.deepEqual(parsed, release);
    assert.equal(toHex(signature), "0".repeat(128));
  });

  test("a re-signed edit verifies: the signature, not the parser, decides", () => {
    const moved = resign({ ...wire(), url: "https://mirror.example.net/fw.bin" });
    assert.equal(verifyReleaseMessage(moved, esp32Policy()).url, "https://mirror.example.net/fw.bin");
  });

  test("tools refuse to make a release the device would refuse", () => {
    assert.throws(() => releaseForImage(image, "http://x/y.bin", signer), ImageFieldError);
    assert.throws(() => releaseForImage(image.subarray(0, image.length - 1), URL, signer), ReleaseBuildError);
    assert.throws(() => signRelease(release, stranger), /sign with the key the release names/);
    assert.throws(() => encodeReleaseMessage(release, new Uint8Array(63)), /64 bytes/);
    const cross = signMessage(signer, image.subarray(0, image.length - 128));
    rejects("bad-signature", () => verifyReleaseMessage(encodeReleaseMessage(release, cross), esp32Policy()));
  });
});
