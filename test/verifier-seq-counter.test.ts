// The device's seq counter over the twin's NVS: blocks reserved ahead, one flash write per block,
// and no seq ever handed out twice, whichever flash operation a power cut lands before.
import assert from "node:assert/strict";
import { copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { deviceFlash, FlashFile, PowerCut } from "../twin/flash/flash-file.ts";
import { buildNvsImage } from "../twin/flash/nvs.ts";
import { PartitionTable } from "../twin/flash/partition-table.ts";
import { SeqCounter, SeqCounterError, SeqKey } from "../modules/telemetry/seq-counter.ts";
import Preference from "../twin/moddable/preference.ts";

const FLASH_SIZE = 4 * 1024 * 1024;
const DOMAIN = "espguard";
const dir = mkdtempSync(join(tmpdir(), "espguard-seq-"));
const saved = process.env.ESPGUARD_TWIN_FLASH;
after(() => {
  rmSync(dir, { recursive: true, force: true });
  if (saved === undefined) delete process.env.ESPGUARD_TWIN_FLASH;
  else process.env.ESPGUARD_TWIN_FLASH = saved;
});
const nvs = PartitionTable.load().require("nvs");
let flashes = 0;

function boot(path: string): void {
  process.env.ESPGUARD_TWIN_FLASH = path;
}

function freshDevice(): string {
  const path = join(dir, `flash-${flashes++}.bin`);
  const flash = FlashFile.create(path, FLASH_SIZE);
  flash.write(nvs.offset, buildNvsImage(nvs.size, [{ namespace: DOMAIN, key: "device_id", value: "d1" }]));
  flash.close();
  boot(path);
  return path;
}

/** The flash as a reset finds it: a copy, mounted afresh. */
function afterReset(path: string): string {
  const copy = join(dir, `flash-${flashes++}.bin`);
  copyFileSync(path, copy);
  boot(copy);
  return copy;
}

test("one NVS write per block; a reboot resumes above the reserved block", () => {
  const path = freshDevice();
  const counter = new SeqCounter(DOMAIN, 4);
  const flash = deviceFlash("test");
  const before = flash.operations;
  assert.deepEqual([1, 2, 3, 4].map(() => counter.take()), [1, 2, 3, 4]);
  const afterFirstBlock = flash.operations;
  assert.ok(afterFirstBlock > before, "the first take reserved a block");
  counter.take();
  const afterSecondReservation = flash.operations;
  for (let i = 0; i < 3; i++) counter.take();
  assert.equal(flash.operations, afterSecondReservation, "no flash operation for seqs inside a reserved block");
  afterReset(path);
  const rebooted = new SeqCounter(DOMAIN, 4);
  assert.equal(rebooted.ceiling, 8);
  assert.equal(rebooted.take(), 9);
});

test("a power cut before any flash operation of a reservation never lets a seq repeat", () => {
  for (let cutAt = 0; cutAt < 40; cutAt++) {
    const path = freshDevice();
    const counter = new SeqCounter(DOMAIN, 3);
    const handedOut: number[] = [];
    for (let i = 0; i < 7; i++) handedOut.push(counter.take());
    const flash = deviceFlash("test");
    flash.cutPowerBefore(flash.operations + cutAt);
    try {
      for (let i = 0; i < 20; i++) handedOut.push(counter.take());
    } catch (error) {
      if (!(error instanceof PowerCut)) throw error;
    }
    afterReset(path);
    const next = new SeqCounter(DOMAIN, 3).take();
    assert.ok(next > Math.max(...handedOut), `cut before operation +${cutAt}: next seq ${next} after ${Math.max(...handedOut)}`);
  }
});

test("a ceiling that is not a number is refused, never read as zero", () => {
  freshDevice();
  Preference.set(DOMAIN, SeqKey.a, "12x");
  assert.throws(() => new SeqCounter(DOMAIN, 4), (error: unknown) => error instanceof SeqCounterError && /not a telemetry seq ceiling/.test((error as Error).message));
  assert.throws(() => new SeqCounter(DOMAIN, 0), /seq block 0/);
});
