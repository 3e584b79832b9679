// The twin's `preference` module: Moddable's API and value mapping (modPreference.c) over the NVS
// partition of a twin device's flash file.
import assert from "node:assert/strict";
import { copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, beforeEach, test } from "node:test";
import { deviceFlash, FlashFile, NoDeviceFlashError, PowerCut } from "../twin/flash/flash-file.ts";
import { buildNvsImage, NvsPartition, type NvsImageEntry } from "../twin/flash/nvs.ts";
import { PartitionTable } from "../twin/flash/partition-table.ts";
import Preference, { PreferenceError } from "../twin/moddable/preference.ts";

const FLASH_SIZE = 4 * 1024 * 1024;
const dir = mkdtempSync(join(tmpdir(), "espguard-preference-"));
const saved = process.env.ESPGUARD_TWIN_FLASH;
after(() => {
  rmSync(dir, { recursive: true, force: true });
  if (saved === undefined) delete process.env.ESPGUARD_TWIN_FLASH;
  else process.env.ESPGUARD_TWIN_FLASH = saved;
});
const nvsPartition = PartitionTable.load().require("nvs");
let devices = 0;

/** A fresh device flash, optionally provisioned, that Preference now uses. */
function device(provision: readonly NvsImageEntry[] = []): string {
  const path = join(dir, `device-${devices++}.bin`);
  const flash = FlashFile.create(path, FLASH_SIZE);
  if (provision.length > 0) flash.write(nvsPartition.offset, buildNvsImage(nvsPartition.size, provision));
  flash.close();
  process.env.ESPGUARD_TWIN_FLASH = path;
  return path;
}

/** What a board would see after a reset: the NVS partition of the flash file, mounted afresh. */
function mountCopy(path: string): NvsPartition {
  const flash = FlashFile.open(path);
  return NvsPartition.open(flash.region(nvsPartition.offset, nvsPartition.size), { strict: true });
}

beforeEach(() => {
  delete process.env.ESPGUARD_TWIN_FLASH;
});

test("outside a twin device every call explains that ESPGUARD_TWIN_FLASH is needed", () => {
  for (const call of [() => Preference.get("d", "k"), () => Preference.set("d", "k", 1), () => Preference.delete("d", "k"), () => Preference.keys("d")])
    assert.throws(call, (error: unknown) => error instanceof NoDeviceFlashError && /preference works only inside a twin device: ESPGUARD_TWIN_FLASH is not set/.test(error.message));
});

test("values come back as they went in, stored as the NVS types modPreference.c uses", () => {
  const path = device();
  const cert = Uint8Array.from({ length: 1100 }, (_, i) => i & 0xff).buffer;
  const big = Uint8Array.from({ length: 5000 }, (_, i) => (i * 7) & 0xff).buffer;
  Preference.set("espguard", "on", true);
  Preference.set("espguard", "off", false);
  Preference.set("espguard", "port", 8883);
  Preference.set("espguard", "min", -0x80000000);
  Preference.set("espguard", "max", 0x7fffffff);
  Preference.set("espguard", "whole", 3.0);
  Preference.set("espguard", "host", "broker.example");
  Preference.set("espguard", "empty", "");
  Preference.set("espguard", "cert", cert);
  Preference.set("espguard", "big", big);
  assert.equal(Preference.get("espguard", "on"), true);
  assert.equal(Preference.get("espguard", "off"), false);
  assert.equal(Preference.get("espguard", "port"), 8883);
  assert.equal(Preference.get("espguard", "min"), -0x80000000);
  assert.equal(Preference.get("espguard", "max"), 0x7fffffff);
  assert.equal(Preference.get("espguard", "whole"), 3);
  assert.equal(Preference.get("espguard", "host"), "broker.example");
  assert.equal(Preference.get("espguard", "empty"), "");
  const got = Preference.get("espguard", "cert");
  assert.ok(got instanceof ArrayBuffer);
  assert.deepEqual(new Uint8Array(got), new Uint8Array(cert));
  assert.deepEqual(new Uint8Array(Preference.get("espguard", "big") as ArrayBuffer), new Uint8Array(big));
  assert.equal(Preference.get("espguard", "missing"), undefined);
  assert.equal(Preference.get("elsewhere", "port"), undefined);
  assert.deepEqual(Preference.keys("espguard"), ["on", "off", "port", "min", "max", "whole", "host", "empty", "cert", "big"]);
  assert.deepEqual(Preference.keys("elsewhere"), []);

  const nvs = mountCopy(path);
  assert.deepEqual(
    nvs.entries("espguard").map((e) => e.type),
    ["u8", "u8", "i32", "i32", "i32", "i32", "string", "string", "blob", "blob"],
  );
  assert.deepEqual(nvs.get("espguard", "on"), { type: "u8", value: 1 });
  assert.deepEqual(nvs.issues, []);
});

test("set replaces a value of another type; delete removes it and tolerates a missing key or domain", () => {
  device();
  Preference.set("d", "k", "text");
  Preference.set("d", "k", 42);
  assert.equal(Preference.get("d", "k"), 42);
  Preference.set("d", "k", new ArrayBuffer(3));
  assert.equal((Preference.get("d", "k") as ArrayBuffer).byteLength, 3);
  Preference.set("d", "k", false);
  assert.equal(Preference.get("d", "k"), false);
  assert.deepEqual(Preference.keys("d"), ["k"]);
  assert.equal(Preference.delete("d", "k"), undefined);
  assert.equal(Preference.get("d", "k"), undefined);
  Preference.delete("d", "k");
  Preference.delete("nowhere", "k");
  assert.deepEqual(Preference.keys("d"), []);
});

test("values, keys and domains Preference cannot store are refused, and nothing changes", () => {
  const path = device();
  Preference.set("d", "k", "kept");
  const refused: [() => unknown, RegExp][] = [
    [() => Preference.set("d", "k", 1.5), /Preference.set\("d", "k"\): 1.5 is not an integer: .*"float unsupported"/],
    [() => Preference.set("d", "k", 2 ** 31), /does not fit in 32 bits/],
    [() => Preference.set("d", "k", NaN), /not an integer/],
    [() => Preference.set("d", "k", new Uint8Array(4) as unknown as ArrayBuffer), /cannot store a Uint8Array \(pass its .buffer/],
    [() => Preference.set("d", "k", undefined as unknown as string), /cannot store undefined \("unsupported type" on the board\)/],
    [() => Preference.set("d", "k", {} as unknown as string), /cannot store object/],
    [() => Preference.set("d", "k", 1n as unknown as number), /cannot store bigint/],
    [() => Preference.set("d", "a-key-of-16-byte", 1), /is 16 bytes; ESP-IDF holds at most 15/],
    [() => Preference.set("domain-of-16-byte", "k", 1), /NVS namespace .* is 17 bytes/],
    [() => Preference.get("d", "a-key-of-16-byte"), /is 16 bytes/],
    [() => Preference.keys(7 as unknown as string), /namespace must be a string, not number/],
    [() => Preference.delete("d", ""), /key is empty/],
  ];
  for (const [call, message] of refused)
    assert.throws(call, (error: unknown) => error instanceof PreferenceError && message.test(error.message), message.source);
  assert.equal(Preference.get("d", "k"), "kept");
  assert.deepEqual(mountCopy(path).keys("d"), ["k"]);
});

test("a provisioned NVS image is what the firmware reads", () => {
  device([
    { namespace: "espguard", key: "id", value: "device-1" },
    { namespace: "espguard", key: "port", value: 8883 },
    { namespace: "espguard", key: "key", value: new Uint8Array(1218).fill(7).buffer },
    { namespace: "espguard", key: "selfTest", value: true },
  ]);
  assert.equal(Preference.get("espguard", "id"), "device-1");
  assert.equal(Preference.get("espguard", "port"), 8883);
  assert.equal((Preference.get("espguard", "key") as ArrayBuffer).byteLength, 1218);
  assert.equal(Preference.get("espguard", "selfTest"), true);
  assert.deepEqual(Preference.keys("espguard"), ["id", "port", "key", "selfTest"]);
});

test("a key holding an NVS type Preference cannot read throws (the board would return undefined)", () => {
  device([{ namespace: "espguard", key: "port", value: { type: "u16", value: 8883 } }]);
  assert.throws(() => Preference.get("espguard", "port"), /the key holds an NVS u16, which Preference cannot read \(the board returns undefined\)/);
  assert.deepEqual(Preference.keys("espguard"), ["port"]);
});

test("set erases before it writes, as modPreference.c does: a power cut in between loses the key", () => {
  const path = device();
  Preference.set("d", "k", 1);
  Preference.set("d", "other", 2);
  const flash = deviceFlash("test");
  flash.cutPowerBefore(flash.operations + 1); // the erase of the old item is one bitmap write
  assert.throws(() => Preference.set("d", "k", 3), PowerCut);
  assert.throws(() => Preference.get("d", "k"), /unusable after a failed flash operation/);
  const rebooted = join(dir, "rebooted.bin");
  copyFileSync(path, rebooted);
  process.env.ESPGUARD_TWIN_FLASH = rebooted;
  assert.equal(Preference.get("d", "k"), undefined);
  assert.equal(Preference.get("d", "other"), 2);
});

test("when the partition is full the old value is already gone, as on the board", () => {
  device();
  Preference.set("d", "x", "small");
  let stored = 0;
  assert.throws(() => {
    for (;;) Preference.set("d", `b${stored++}`, new ArrayBuffer(3000));
  }, /no room for blob/);
  assert.throws(() => Preference.set("d", "x", new ArrayBuffer(3000)), (error: unknown) => error instanceof PreferenceError && /no room/.test(error.message));
  assert.equal(Preference.get("d", "x"), undefined);
  assert.equal(Preference.get("d", "b0") instanceof ArrayBuffer, true);
});

test("the module is frozen, like a preloaded class on the board", () => {
  assert.ok(Object.isFrozen(Preference) && Object.isFrozen(Preference.prototype));
  assert.throws(() => {
    (Preference as unknown as { get: unknown }).get = () => 1;
  }, TypeError);
});
