// The signed OTA image: build → sign → stream-verify in chunks of any size, and every way an image
// can be wrong, each refused with its reason (docs/ota-image.md §3).
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { describe, test } from "node:test";
import fc from "fast-check";
import { fromHex } from "../modules/ota/bytes.ts";
import {
  decodeHeader, encodeHeader, HEADER_SIZE, IMAGE_OVERHEAD, ImageFieldError, toBuildId, toFirmwareVersion, toSecurityCounter,
} from "../modules/ota/image-format.ts";
import { ImageVerifier, type ImageVerifyOptions, VerifierReusedError, verifyImage } from "../modules/ota/image-verifier.ts";
import { OtaRejected, type RejectReason } from "../modules/ota/rejected.ts";
import { toReleaseManifest } from "../modules/ota/release.ts";
import { TrustedKey } from "../modules/ota/trusted-key.ts";
import { checkEsp32AppImage } from "../ota/esp32-app-image.ts";
import { attachSignature, buildUnsignedImage, ImageBuildError, readUnsignedImage } from "../ota/image-build.ts";
import { signMessage, type SigningKey } from "../ota/signing-key.ts";
import { ACCEPTED, bundleText, esp32Image, esp32Policy, signer, stranger, trusted, twinImage, twinPolicy } from "./fixtures/ota/images.ts";

const P256_N = fromHex("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551");

function rejects(reason: RejectReason, run: () => unknown): void {
  assert.throws(run, (error: unknown) => {
    assert.ok(error instanceof OtaRejected, `expected OtaRejected(${reason}), got ${String(error)}`);
    assert.equal(error.reason, reason, error.message);
    return true;
  });
}

/** Feeds `image` in pieces of the given sizes (cycled); returns the verified image and the payload bytes write() handed back. */
function stream(image: Uint8Array, options: ImageVerifyOptions, sizes: readonly number[] = [4096]) {
  const verifier = new ImageVerifier(options);
  const payload: Uint8Array[] = [];
  for (let at = 0, i = 0; at < image.length; i++) {
    const size = Math.max(1, sizes[i % sizes.length]!);
    payload.push(verifier.write(image.subarray(at, at + size)));
    at += size;
  }
  return { verified: verifier.finish(), payload: Buffer.concat(payload) };
}

const sha256 = (bytes: Uint8Array) => new Uint8Array(createHash("sha256").update(bytes).digest());

/** Signs header ‖ payload as they are, lying fields and all: a signer that signs what a broken build produced. */
function seal(signed: Uint8Array, key: SigningKey = signer): Uint8Array {
  return Buffer.concat([signed, sha256(signed), fromHex(key.keyId), signMessage(key, signed)]);
}

function withHeader(image: Uint8Array, edit: (header: Uint8Array, view: DataView) => void): Uint8Array {
  const copy = Uint8Array.from(image);
  edit(copy.subarray(0, HEADER_SIZE), new DataView(copy.buffer, 0, HEADER_SIZE));
  return copy;
}

function flip(image: Uint8Array, bit: number): Uint8Array {
  const copy = Uint8Array.from(image);
  copy[bit >> 3]! ^= 1 << (bit & 7);
  return copy;
}

const twin = twinImage();
const trailerAt = twin.image.length - 128;

describe("round trip", () => {
  test("a twin bundle, split anywhere, verifies and hands back exactly its payload", () => {
    fc.assert(fc.property(
      fc.integer({ min: 1, max: 6000 }),
      fc.array(fc.integer({ min: 1, max: 700 }), { minLength: 1, maxLength: 8 }),
      fc.integer({ min: 5, max: 0xffffffff }),
      (length, sizes, counter) => {
        const { image, payload } = twinImage({ payload: bundleText(length), counter });
        const { verified, payload: out } = stream(image, twinPolicy(), sizes);
        assert.deepEqual(new Uint8Array(out), payload);
        assert.equal(verified.header.counter, counter);
        assert.equal(verified.header.payloadSize, length);
        assert.equal(verified.imageSize, image.length);
        assert.equal(verified.payloadOffset, HEADER_SIZE);
        assert.equal(verified.keyId, signer.keyId);
        assert.equal(verified.digest, Buffer.from(sha256(image.subarray(0, HEADER_SIZE + length))).toString("hex"));
      }), { numRuns: 40 });
  });

  test("an ESP32 app streams through; the payload bytes are the app image ESP-IDF boots", () => {
    const { image, payload } = esp32Image({ version: "3.1.4-rc.1+g1a2b3c" });
    fc.assert(fc.property(fc.array(fc.integer({ min: 1, max: 5000 }), { minLength: 1, maxLength: 6 }), (sizes) => {
      const { verified, payload: out } = stream(image, esp32Policy(), sizes);
      assert.deepEqual(new Uint8Array(out), payload);
      assert.equal(verified.header.version, "3.1.4-rc.1+g1a2b3c");
      assert.equal(checkEsp32AppImage(out).appDesc.version, "3.1.4-rc.1+g1a2b3c");
    }), { numRuns: 20 });
  });

  test("verifyImage checks a whole image in memory, as a twin bootloader does with its slot", () => {
    assert.equal(verifyImage(twin.image, twinPolicy()).header.version, "1.2.0");
    assert.equal(verifyImage(twin.image.slice().buffer, twinPolicy()).header.payloadSize, twin.payload.length);
  });

  test("the header is parsed the moment its 128th byte arrives, and the size is known from then on", () => {
    const verifier = new ImageVerifier(twinPolicy());
    assert.equal(verifier.write(twin.image.subarray(0, 127)).length, 0);
    const known = () => ({ header: verifier.header, imageSize: verifier.imageSize });
    assert.deepEqual(known(), { header: undefined, imageSize: undefined });
    assert.equal(verifier.write(twin.image.subarray(127, 128)).length, 0);
    assert.equal(verifier.header?.payloadSize, twin.payload.length);
    assert.equal(verifier.imageSize, twin.image.length);
    assert.equal(verifier.received, 128);
  });

  test("a verifier takes one image: used again it says so", () => {
    const verifier = new ImageVerifier(twinPolicy());
    verifier.write(twin.image);
    verifier.finish();
    assert.throws(() => verifier.write(new Uint8Array(1)), VerifierReusedError);
    assert.throws(() => verifier.finish(), VerifierReusedError);
  });

  test("header fields round-trip through encode and decode", () => {
    const header = {
      payloadType: "esp32-app", target: "esp32", payloadSize: 1_572_864, counter: toSecurityCounter(0xffffffff),
      version: toFirmwareVersion("10.20.30-alpha.1"), buildId: toBuildId("g0123456789abcdef0123456789abcd"),
    } as const;
    assert.deepEqual(decodeHeader(encodeHeader(header)), header);
  });
});

describe("header checks refuse an image before its payload is downloaded", () => {
  const cases: [string, RejectReason, (h: Uint8Array, v: DataView) => void][] = [
    ["magic", "bad-magic", (h) => (h[0] = 0xe9)],
    ["format version 2", "unsupported-version", (_, v) => v.setUint16(4, 2, true)],
    ["format version 0", "unsupported-version", (_, v) => v.setUint16(4, 0, true)],
    ["header size 256", "header-size", (_, v) => v.setUint16(6, 256, true)],
    ["header size 127", "header-size", (_, v) => v.setUint16(6, 127, true)],
    ["payload type 3", "bad-header", (h) => (h[8] = 3)],
    ["reserved byte 9", "bad-header", (h) => (h[9] = 1)],
    ["reserved byte 20", "bad-header", (h) => (h[20] = 1)],
    ["reserved byte 127", "bad-header", (h) => (h[127] = 0x80)],
    ["undefined target chip", "bad-header", (_, v) => v.setUint16(10, 0x0009, true)],
    ["twin bundle for an esp32", "bad-header", (_, v) => v.setUint16(10, 0x0000, true)],
    ["payload size 0", "bad-header", (_, v) => v.setUint32(12, 0, true)],
    ["payload size over 16 MiB", "bad-header", (_, v) => v.setUint32(12, 0x1000001, true)],
    ["version with a leading zero", "bad-header", (h) => (h[32] = 0x30, h[33] = 0x31)],
    ["version without a NUL", "bad-header", (h) => h.fill(0x31, 32, 64)],
    ["data hidden after the version's NUL", "bad-header", (h) => (h[60] = 0x41)],
    ["empty build id", "bad-header", (h) => h.fill(0, 64, 96)],
    ["build id with a space", "bad-header", (h) => (h[64] = 0x20)],
    ["counter equal to the accepted one", "downgrade", (_, v) => v.setUint32(16, ACCEPTED, true)],
    ["counter below the accepted one", "downgrade", (_, v) => v.setUint32(16, 0, true)],
  ];
  for (const [name, reason, edit] of cases) {
    test(`${name} → ${reason}, at the 128th byte`, () => {
      const verifier = new ImageVerifier(twinPolicy());
      const bad = withHeader(twin.image, edit);
      verifier.write(bad.subarray(0, 127));
      rejects(reason, () => verifier.write(bad.subarray(127, 128)));
      // The refusal sticks: the updater cannot stream on past it.
      rejects(reason, () => verifier.write(bad.subarray(128)));
      rejects(reason, () => verifier.finish());
    });
  }

  test("an image for another chip → wrong-target", () => {
    rejects("wrong-target", () => verifyImage(twin.image, esp32Policy()));
    rejects("wrong-target", () => verifyImage(esp32Image().image, twinPolicy()));
  });

  test("a payload type the device does not install → payload-type", () => {
    rejects("payload-type", () => verifyImage(twin.image, twinPolicy({ payloadTypes: [] })));
  });

  test("a payload larger than the slot → too-large", () => {
    rejects("too-large", () => verifyImage(twin.image, twinPolicy({ maxPayloadSize: twin.payload.length - 1 })));
    assert.ok(verifyImage(twin.image, twinPolicy({ maxPayloadSize: twin.payload.length })));
  });

  test("a validly signed image with a lower or equal counter → downgrade; equal is allowed only to a bootloader re-check", () => {
    const old = twinImage({ counter: 3 });
    rejects("downgrade", () => verifyImage(old.image, twinPolicy()));
    const same = twinImage({ counter: ACCEPTED });
    rejects("downgrade", () => verifyImage(same.image, twinPolicy()));
    assert.equal(verifyImage(same.image, twinPolicy({ allowAcceptedCounter: true })).header.counter, ACCEPTED);
    rejects("downgrade", () => verifyImage(old.image, twinPolicy({ allowAcceptedCounter: true })));
  });

  test("every single-bit flip in the header is refused", () => {
    const seen = new Set<RejectReason>();
    for (let bit = 0; bit < HEADER_SIZE * 8; bit++) {
      assert.throws(() => verifyImage(flip(twin.image, bit), twinPolicy()), (error: unknown) => {
        assert.ok(error instanceof OtaRejected, `bit ${bit}: ${String(error)}`);
        seen.add(error.reason);
        return true;
      });
    }
    // Each header check is reached by some flip; fields no check reads are caught by the digest.
    for (const reason of ["bad-magic", "unsupported-version", "header-size", "bad-header", "digest-mismatch", "downgrade", "truncated", "extra-bytes"] as const)
      assert.ok(seen.has(reason), `no flip led to ${reason}; saw ${[...seen].join(", ")}`);
  });
});

describe("payload and trailer", () => {
  test("a bit flip anywhere in the payload → digest-mismatch", () => {
    fc.assert(fc.property(fc.integer({ min: HEADER_SIZE * 8, max: trailerAt * 8 - 1 }), (bit) => {
      rejects("digest-mismatch", () => verifyImage(flip(twin.image, bit), twinPolicy()));
    }), { numRuns: 200 });
  });

  test("a bit flip in the trailer's digest → digest-mismatch", () => {
    for (const byte of [0, 17, 31]) rejects("digest-mismatch", () => verifyImage(flip(twin.image, (trailerAt + byte) * 8 + 3), twinPolicy()));
  });

  test("a bit flip in the key id → unknown-key", () => {
    for (const byte of [32, 50, 63]) rejects("unknown-key", () => verifyImage(flip(twin.image, (trailerAt + byte) * 8), twinPolicy()));
  });

  test("a bit flip anywhere in the signature → bad-signature", () => {
    for (let bit = (trailerAt + 64) * 8; bit < twin.image.length * 8; bit += 7)
      rejects("bad-signature", () => verifyImage(flip(twin.image, bit), twinPolicy()));
  });

  test("signed by a key the device does not trust → unknown-key", () => {
    rejects("unknown-key", () => verifyImage(twinImage({ key: stranger }).image, twinPolicy()));
    assert.ok(verifyImage(twinImage({ key: stranger }).image, twinPolicy({ keys: [trusted, TrustedKey.fromSpki(stranger.spki)] })));
  });

  test("another key's signature under the trusted key's id → bad-signature", () => {
    const forged = Uint8Array.from(twin.image);
    forged.set(signMessage(stranger, twin.image.subarray(0, trailerAt)), trailerAt + 64);
    rejects("bad-signature", () => verifyImage(forged, twinPolicy()));
  });

  const scalar = (hex: string) => fromHex(hex.padStart(64, "0"));
  const nPlus = (k: number) => {
    const out = Uint8Array.from(P256_N);
    out[31]! += k;
    return out;
  };
  const outOfRange: [string, Uint8Array, Uint8Array][] = [
    ["s = 0", scalar("1234"), scalar("0")],
    ["r = 0", scalar("0"), scalar("1234")],
    ["r = n", P256_N, scalar("1234")],
    ["s = n", scalar("1234"), P256_N],
    ["s = n + 1", scalar("1234"), nPlus(1)],
    ["r = 2^256 − 1", scalar("f".repeat(64)), scalar("1234")],
    ["r and s all zero", scalar("0"), scalar("0")],
  ];
  for (const [name, r, s] of outOfRange) {
    test(`${name} → bad-signature from the range check, before ECDSA (which would hang or accept)`, () => {
      const bad = Uint8Array.from(twin.image);
      bad.set(r, trailerAt + 64);
      bad.set(s, trailerAt + 96);
      // The twin's ECDSA throws UncheckedSignatureError on these: an OtaRejected proves it was never called.
      rejects("bad-signature", () => verifyImage(bad, twinPolicy()));
    });
  }
});

describe("framing", () => {
  const P = twin.payload.length;
  const boundaries = [0, 1, 4, 127, 128, 129, 128 + P - 1, 128 + P, 128 + P + 1, 128 + P + 31, 128 + P + 32, 128 + P + 64, 128 + P + 127];
  for (const length of boundaries) {
    test(`cut after ${length} of ${twin.image.length} bytes → truncated`, () => {
      const verifier = new ImageVerifier(twinPolicy());
      verifier.write(twin.image.subarray(0, length));
      rejects("truncated", () => verifier.finish());
    });
  }

  test("bytes after the image → extra-bytes, in the same chunk or a later one", () => {
    rejects("extra-bytes", () => verifyImage(Buffer.concat([twin.image, Uint8Array.of(0)]), twinPolicy()));
    const verifier = new ImageVerifier(twinPolicy());
    verifier.write(twin.image);
    rejects("extra-bytes", () => verifier.write(Uint8Array.of(0xff)));
    rejects("extra-bytes", () => verifier.finish());
  });

  test("an empty chunk is nothing", () => {
    const verifier = new ImageVerifier(twinPolicy());
    assert.equal(verifier.write(new Uint8Array(0)).length, 0);
    verifier.write(twin.image);
    assert.equal(verifier.write(new ArrayBuffer(0)).length, 0);
    assert.ok(verifier.finish());
  });

  // A broken build that signed a header whose payload size is wrong.
  const signedRegion = twin.image.subarray(0, trailerAt);
  const lying = (delta: number) => seal(withHeader(signedRegion, (_, v) => v.setUint32(12, P + delta, true)));
  const release = toReleaseManifest({
    version: "1.2.0", counter: 5, target: "twin", payloadType: "twin-bundle", size: twin.image.length,
    sha256: Buffer.from(sha256(signedRegion)).toString("hex"), url: "https://ota.example.net/1.2.0.bin", keyId: signer.keyId,
  });

  test("a payload size bigger than the payload → size-mismatch against the release, truncated without one", () => {
    rejects("size-mismatch", () => new ImageVerifier(twinPolicy({ release })).write(lying(+100).subarray(0, HEADER_SIZE)));
    rejects("truncated", () => verifyImage(lying(+100), twinPolicy()));
  });

  test("a payload size smaller than the payload → size-mismatch against the release, extra-bytes without one", () => {
    rejects("size-mismatch", () => verifyImage(lying(-100), twinPolicy({ release })));
    rejects("extra-bytes", () => verifyImage(lying(-100), twinPolicy()));
  });

  test("the image the release announced verifies against it; another one → release-mismatch", () => {
    assert.equal(verifyImage(twin.image, twinPolicy({ release })).digest, release.sha256);
    const sameShape = twinImage({ payload: bundleText(P) });
    rejects("release-mismatch", () => verifyImage(sameShape.image, twinPolicy({ release })));
    rejects("release-mismatch", () => verifyImage(twinImage({ payload: twin.payload, version: "1.2.1" }).image, twinPolicy({ release })));
    rejects("release-mismatch", () => verifyImage(twinImage({ payload: twin.payload, counter: 6 }).image, twinPolicy({ release })));
  });
});

describe("building and signing", () => {
  test("the separable flow: unsigned image and digest here, a signature from elsewhere, attached after a device-style check", () => {
    const unsigned = buildUnsignedImage({ payload: twin.payload, payloadType: "twin-bundle", target: "twin", version: "1.2.0", counter: 9, buildId: "git-1a2b3c4" });
    assert.equal(unsigned.digest, Buffer.from(sha256(unsigned.bytes)).toString("hex"));
    const reread = readUnsignedImage(unsigned.bytes);
    assert.deepEqual(reread, unsigned);
    const image = attachSignature(reread, signMessage(signer, reread.bytes), signer.spki);
    assert.equal(verifyImage(image, twinPolicy()).header.buildId, "git-1a2b3c4");
  });

  test("attachSignature refuses a signature a device would refuse", () => {
    const unsigned = buildUnsignedImage({ payload: twin.payload, payloadType: "twin-bundle", target: "twin", version: "1.2.0", counter: 9 });
    assert.throws(() => attachSignature(unsigned, signMessage(stranger, unsigned.bytes), signer.spki), ImageBuildError);
    assert.throws(() => attachSignature(unsigned, signMessage(signer, unsigned.bytes.subarray(1)), signer.spki), /does not verify/);
    assert.throws(() => attachSignature(unsigned, new Uint8Array(64), signer.spki), ImageBuildError);
  });

  test("readUnsignedImage refuses a signed image or a cut one", () => {
    assert.throws(() => readUnsignedImage(twin.image), /already signed/);
    assert.throws(() => readUnsignedImage(twin.image.subarray(0, 200)), ImageBuildError);
  });

  test("the build id defaults to the payload's hash; bad fields are refused with the rule", () => {
    const unsigned = buildUnsignedImage({ payload: twin.payload, payloadType: "twin-bundle", target: "twin", version: "1.2.0", counter: 9 });
    assert.equal(unsigned.header.buildId, Buffer.from(sha256(twin.payload)).toString("hex").slice(0, 16));
    const base = { payload: twin.payload, payloadType: "twin-bundle", target: "twin", version: "1.2.0", counter: 9 };
    assert.throws(() => buildUnsignedImage({ ...base, version: "v1.2.0" }), /semantic version/);
    assert.throws(() => buildUnsignedImage({ ...base, version: "1.2.0-" + "x".repeat(30) }), /1 to 31 characters/);
    assert.throws(() => buildUnsignedImage({ ...base, counter: -1 }), ImageFieldError);
    assert.throws(() => buildUnsignedImage({ ...base, counter: 2 ** 32 }), ImageFieldError);
    assert.throws(() => buildUnsignedImage({ ...base, target: "esp32s3" }), /not one of esp32, twin/);
    assert.throws(() => buildUnsignedImage({ ...base, target: "esp32" }), /needs target twin/);
    assert.throws(() => buildUnsignedImage({ ...base, payload: new Uint8Array(0) }), /payload size 0/);
    assert.throws(() => buildUnsignedImage({ ...base, payload: Uint8Array.of(0xc3, 0x28) }), /not UTF-8/);
    assert.throws(() => buildUnsignedImage({ ...base, buildId: "a b" }), /build id/);
  });

  test("an image over 16 MiB of payload cannot be built", () => {
    const header = { ...decodeHeader(twin.image), payloadSize: 0x1000001 };
    assert.throws(() => encodeHeader(header), /16 MiB/);
    assert.equal(IMAGE_OVERHEAD, 256);
  });
});
