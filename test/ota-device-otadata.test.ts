// otadata and the twin bootloader, byte for byte against ESP-IDF's rules (DESIGN.md §2).
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { buildUnsignedImage } from "../ota/image-build.ts";
import { generateSigningKey } from "../ota/signing-key.ts";
import { bootFrom, flashSlotImage } from "../twin/device/bootloader.ts";
import { otaLayout } from "../twin/device/ota-layout.ts";
import { createTwinDevice } from "../twin/device/provision.ts";
import { FlashFile, MemoryFlash, SECTOR_SIZE } from "../twin/flash/flash-file.ts";
import { activeCopy, encodeEntry, OtaState, readEntries, selectSlot, seqCrc, setActiveState, slotOf } from "../twin/flash/otadata.ts";
import { twinImage } from "./fixtures/ota-device/rig.ts";
import { bundleText } from "./fixtures/ota/images.ts";

const dir = mkdtempSync(join(tmpdir(), "espguard-otadata-"));
after(() => rmSync(dir, { recursive: true, force: true }));

test("an entry is ESP-IDF's esp_ota_select_entry_t: seq, 20-byte label, state, CRC32 of the seq", () => {
  // binascii.crc32(struct.pack("<I", seq), 0xFFFFFFFF), as esptool's otatool computes it
  assert.equal(seqCrc(1), 0x4743989a);
  assert.equal(seqCrc(2), 0x55f63774);
  const entry = encodeEntry(1, OtaState.new);
  assert.equal(entry.length, 32);
  assert.deepEqual([...entry.subarray(0, 4)], [1, 0, 0, 0]);
  assert.deepEqual([...entry.subarray(4, 24)], new Array(20).fill(0xff));
  assert.deepEqual([...entry.subarray(24, 28)], [0, 0, 0, 0]);
  assert.deepEqual([...entry.subarray(28, 32)], [0x9a, 0x98, 0x43, 0x47]);
});

test("the valid copy with the highest seq wins; bad CRC, INVALID and ABORTED copies do not count", () => {
  const flash = new MemoryFlash(2 * SECTOR_SIZE, { strictBits: true });
  assert.equal(activeCopy(readEntries(flash)), -1, "blank otadata: the first slot boots");
  assert.equal(selectSlot(flash, 1, 2), 2);
  assert.equal(slotOf(2, 2), 1);
  assert.equal(selectSlot(flash, 0, 2), 3, "the next seq that selects slot 0, in the other copy");
  let entries = readEntries(flash);
  assert.deepEqual(entries.map((e) => e.seq), [2, 3]);
  assert.equal(activeCopy(entries), 1);
  setActiveState(flash, OtaState.aborted);
  assert.equal(activeCopy(readEntries(flash)), 0, "an ABORTED copy gives way to the other");
  flash.write(0 * SECTOR_SIZE + 28, Uint8Array.of(0));
  entries = readEntries(flash);
  assert.equal(activeCopy(entries), -1, "a copy whose CRC does not match the seq is ignored");
});

test("the bootloader refuses a slot whose image does not verify, and boots the other one", () => {
  const signer = generateSigningKey();
  const stranger = generateSigningKey();
  const good = twinImage(new TextDecoder().decode(bundleText(5000)), "1.0.0", 1, signer);
  const device = createTwinDevice({ name: "bl", stateDir: join(dir, "bl"), firmware: { image: good, signerSpki: signer.spki }, preferences: {} });
  const flash = FlashFile.open(device.flashPath, { strictBits: true });
  try {
    const { otadata } = otaLayout();
    const region = flash.region(otadata.offset, otadata.size);
    const forged = twinImage(new TextDecoder().decode(bundleText(5000)), "6.6.6", 9, stranger);
    flashSlotImage(flash, "ota_1", forged);
    selectSlot(region, 1, 2);
    const booted = bootFrom(flash);
    assert.equal(booted.slot, "ota_0");
    assert.equal(booted.version, "1.0.0");
    const unsigned = buildUnsignedImage({ payload: bundleText(100), payloadType: "twin-bundle", target: "twin", version: "7.0.0", counter: 10 }).bytes;
    flashSlotImage(flash, "ota_0", unsigned);
    assert.throws(() => bootFrom(flash), /no slot holds a verified image[\s\S]*ota_1: unknown-key[\s\S]*ota_0: /);
  } finally {
    flash.close();
  }
});

test("booting a NEW image makes it PENDING_VERIFY; a reset while PENDING_VERIFY makes it ABORTED and the other slot boots", () => {
  const signer = generateSigningKey();
  const v1 = twinImage(new TextDecoder().decode(bundleText(4000)), "1.0.0", 1, signer);
  const v2 = twinImage(new TextDecoder().decode(bundleText(4000)), "2.0.0", 2, signer);
  const device = createTwinDevice({ name: "pv", stateDir: join(dir, "pv"), firmware: { image: v1, signerSpki: signer.spki }, preferences: {} });
  const flash = FlashFile.open(device.flashPath, { strictBits: true });
  try {
    const { otadata } = otaLayout();
    const region = flash.region(otadata.offset, otadata.size);
    flashSlotImage(flash, "ota_1", v2);
    selectSlot(region, 1, 2);
    assert.equal(bootFrom(flash).version, "2.0.0");
    assert.equal(readEntries(region)[0].state, OtaState.pendingVerify);
    assert.equal(bootFrom(flash).version, "1.0.0");
    assert.equal(readEntries(region)[0].state, OtaState.aborted);
  } finally {
    flash.close();
  }
});
