// The ESP32 app image checker `ota build` runs on esp32-app payloads (docs/ota-image.md §5), on
// synthetic images laid out as esptool writes them.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { describe, test } from "node:test";
import { checkEsp32AppImage, Esp32ImageError } from "../ota/esp32-app-image.ts";
import { buildUnsignedImage, ImageBuildError } from "../ota/image-build.ts";
import { buildEsp32App } from "./fixtures/ota/esp32-app.ts";

function fails(image: Uint8Array, pattern: RegExp): void {
  assert.throws(() => checkEsp32AppImage(image), (error: unknown) => {
    assert.ok(error instanceof Esp32ImageError, String(error));
    assert.match(error.message, pattern);
    return true;
  });
}

function edited(image: Uint8Array, edit: (bytes: Uint8Array, view: DataView) => void): Uint8Array {
  const copy = Uint8Array.from(image);
  edit(copy, new DataView(copy.buffer));
  return copy;
}

/** Fixes up the checksum and appended hash after an edit, so only the edit itself is wrong. */
function resealed(image: Uint8Array, edit: (bytes: Uint8Array, view: DataView) => void): Uint8Array {
  const copy = edited(image, edit);
  const { segments } = checkEsp32AppImage(image);
  let sum = 0xef;
  for (const { offset, length } of segments) for (let i = offset; i < offset + length; i++) sum ^= copy[i]!;
  const checksumAt = copy.length - 33;
  copy[checksumAt] = sum;
  copy.set(createHash("sha256").update(copy.subarray(0, checksumAt + 1)).digest(), checksumAt + 1);
  return copy;
}

const app = buildEsp32App({ version: "2.3.4", projectName: "espguard-fw" });
const { segments } = checkEsp32AppImage(app);
const checksumAt = app.length - 33;

describe("ESP32 app image checker", () => {
  test("reads a valid image: segments, entry, chip, esp_app_desc_t", () => {
    const info = checkEsp32AppImage(app);
    assert.equal(info.chipId, 0);
    assert.equal(info.entryAddress, 0x40081234);
    assert.equal(info.hashAppended, true);
    assert.deepEqual(info.segments.map((s) => s.length), [1024, 256, 2048, 4096]);
    assert.equal(info.segments[0]!.offset, 32);
    assert.deepEqual(info.appDesc, { secureVersion: 0, version: "2.3.4", projectName: "espguard-fw", time: "12:00:00", date: "Jan  1 2025", idfVersion: "v5.4.1" });
    assert.equal(app.length % 16, 0);
  });

  test("without an appended hash, and with padding before the checksum", () => {
    for (const lengths of [[256], [260], [268, 4], [256, 0, 12], Array(16).fill(256)]) {
      const image = buildEsp32App({ hashAppended: false, segmentLengths: lengths });
      const info = checkEsp32AppImage(image);
      assert.equal(info.hashAppended, false);
      assert.equal(info.segments.length, lengths.length);
      assert.equal(image.length % 16, 0);
    }
  });

  test("header errors", () => {
    fails(app.subarray(0, 23), /shorter than the 24-byte image header/);
    fails(edited(app, (b) => (b[0] = 0xea)), /not the 0xe9 magic/);
    fails(edited(app, (b) => (b[1] = 0)), /segment count 0/);
    fails(edited(app, (b) => (b[1] = 17)), /segment count 17/);
    fails(edited(app, (b) => (b[23] = 2)), /hash_appended is 2/);
  });

  test("segment errors: unaligned or huge length, past the end of the file", () => {
    fails(edited(app, (_, v) => v.setUint32(28, 1022, true)), /length 1022; ESP-IDF needs a multiple of 4/);
    fails(edited(app, (_, v) => v.setUint32(28, 0x1000000, true)), /below 16 MiB/);
    fails(edited(app, (_, v) => v.setUint32(28, app.length, true)), /segment 0 .* runs past the end/);
    const one = buildEsp32App({ segmentLengths: [256], hashAppended: false });
    fails(edited(one, (b) => (b[1] = 2)).subarray(0, 288), /segment 1 of 2: its header at byte 288 runs past the end of the 288-byte file/);
    fails(buildEsp32App({ segmentLengths: [1024, 256] }).subarray(0, 1100), /runs past the end/);
  });

  test("length errors: cut before the checksum or the hash, bytes after the end", () => {
    fails(app.subarray(0, checksumAt), /before the checksum and appended SHA-256/);
    fails(app.subarray(0, app.length - 1), /before the checksum and appended SHA-256/);
    fails(Buffer.concat([app, new Uint8Array(16)]), /16 bytes follow the end of the image/);
    fails(edited(app, (b) => (b[23] = 0)), /32 bytes follow the end/);
  });

  test("integrity: a flipped data byte breaks the checksum; a flipped checksum or hash is caught", () => {
    fails(edited(app, (b) => (b[segments[2]!.offset + 7]! ^= 0x10)), /checksum byte is 0x[0-9a-f]+, the segments give/);
    fails(edited(app, (b) => (b[checksumAt]! ^= 1)), /checksum byte/);
    fails(edited(app, (b) => (b[app.length - 1]! ^= 1)), /appended SHA-256 does not match/);
    // Bytes outside the segments (the header) are covered only by the hash.
    fails(edited(app, (b) => (b[2]! ^= 1)), /appended SHA-256 does not match/);
  });

  test("esp_app_desc_t: first segment long enough, magic, NUL-terminated strings", () => {
    fails(buildEsp32App({ segmentLengths: [252, 256] }), /first segment is 252 bytes, too short/);
    fails(resealed(app, (_, v) => v.setUint32(32, 0xabcd5433, true)), /magic 0xabcd5433, expected 0xabcd5432/);
    fails(resealed(app, (b) => b.fill(0x41, 32 + 16, 32 + 48)), /version is not NUL-terminated/);
    fails(resealed(app, (b) => b.fill(0x41, 32 + 48, 32 + 80)), /project_name is not NUL-terminated/);
    fails(resealed(app, (b) => (b[32 + 16] = 0xff)), /version is not UTF-8/);
  });
});

describe("ota build on ESP32 payloads", () => {
  const base = { payloadType: "esp32-app", target: "esp32", version: "2.3.4", counter: 7 } as const;

  test("a valid app whose esp_app_desc_t version is the release version builds", () => {
    assert.equal(buildUnsignedImage({ ...base, payload: app }).header.payloadSize, app.length);
  });

  test("the app's version must equal --version", () => {
    assert.throws(() => buildUnsignedImage({ ...base, payload: app, version: "2.3.5" }),
      (error: unknown) => error instanceof ImageBuildError && /says version "2.3.4".*release says "2.3.5"/.test(error.message));
  });

  test("the app must be built for the target chip", () => {
    assert.throws(() => buildUnsignedImage({ ...base, payload: buildEsp32App({ version: "2.3.4", chipId: 9 }) }), /chip id 9, not esp32/);
  });

  test("a broken app is refused before anything is signed", () => {
    assert.throws(() => buildUnsignedImage({ ...base, payload: app.subarray(0, app.length - 1) }), Esp32ImageError);
    assert.throws(() => buildUnsignedImage({ ...base, payload: new TextEncoder().encode("export default function main() { trace('hello'); }") }), /not the 0xe9 magic/);
  });
});
