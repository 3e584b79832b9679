// Power-cut sweeps over the A/B update and over the rollback, after MCUboot's perm_with_fails /
// revert_with_fails: count the N flash operations of a clean run, then for every i < N cut power
// before operation i, reset, and check that the bootloader starts a verified image and that
// retrying finishes the job. The runs drive the same twin `embedded:update`, otadata and
// bootloader code a twin device process uses, in this process (a device process per cut would cost
// a boot each: ~1 s × N).
import assert from "node:assert/strict";
import { copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { generateSigningKey } from "../ota/signing-key.ts";
import { bootFrom, type BootImage } from "../twin/device/bootloader.ts";
import { otaLayout } from "../twin/device/ota-layout.ts";
import { createTwinDevice } from "../twin/device/provision.ts";
import { RUNNING_SLOT_ENV } from "../twin/device/running-slot.ts";
import { deviceFlash, type FlashFile, PowerCut } from "../twin/flash/flash-file.ts";
import { OtaState, setActiveState } from "../twin/flash/otadata.ts";
import Flash from "../twin/moddable/storage-flash.ts";
import OTA from "../twin/moddable/update.ts";
import { twinImage } from "./fixtures/ota-device/rig.ts";
import { bundleText } from "./fixtures/ota/images.ts";

const signer = generateSigningKey();
const v1 = twinImage(new TextDecoder().decode(bundleText(9000)), "1.0.0", 1, signer);
const v2 = twinImage(new TextDecoder().decode(bundleText(11000)), "2.0.0", 2, signer);
const dir = mkdtempSync(join(tmpdir(), "espguard-powercut-"));
let factory: string;
let runs = 0;

before(() => {
  factory = createTwinDevice({ name: "sweep", stateDir: join(dir, "factory"), firmware: { image: v1, signerSpki: signer.spki }, preferences: {} }).flashPath;
});

after(() => {
  delete process.env.ESPGUARD_TWIN_FLASH;
  delete process.env[RUNNING_SLOT_ENV];
  rmSync(dir, { recursive: true, force: true });
});

/** A fresh copy of `from`, opened as the device flash of this process. */
function powerOn(from: string): FlashFile {
  const path = join(dir, `run-${++runs}.bin`);
  copyFileSync(from, path);
  process.env.ESPGUARD_TWIN_FLASH = path;
  return deviceFlash("power-cut sweep");
}

/** A reset: the flash powered again (no cut pending) and the bootloader run over it. */
function reset(flash: FlashFile): { flash: FlashFile; image: BootImage } {
  const next = powerOn(flash.path);
  const image = bootFrom(next);
  process.env[RUNNING_SLOT_ENV] = image.slot;
  return { flash: next, image };
}

/** What the updater does to flash once the image is in hand: stream it into the next slot, complete. */
function install(image: Uint8Array): void {
  const update = OTA.open({ partition: Flash.open({ path: "nextota" }) });
  for (let at = 0; at < image.length; at += 1460) update.write(image.subarray(at, at + 1460));
  update.complete();
}

/** The boot guard giving the running image up (esp_ota_mark_app_invalid_rollback_and_reboot's flash part). */
function giveUp(flash: FlashFile): void {
  const { otadata } = otaLayout();
  setActiveState(flash.region(otadata.offset, otadata.size), OtaState.invalid);
}

function cutAt(flash: FlashFile, operation: number, run: () => void): boolean {
  flash.cutPowerBefore(flash.operations + operation);
  try {
    run();
    return false;
  } catch (error) {
    if (!(error instanceof PowerCut)) throw error;
    return true;
  }
}

describe("power cuts", () => {
  test("during an update: every cut leaves a verified image booting, and a retried update completes", () => {
    const clean = powerOn(factory);
    process.env[RUNNING_SLOT_ENV] = bootFrom(clean).slot;
    const start = clean.operations;
    install(v2);
    const n = clean.operations - start;
    assert.ok(n > 40, `a clean update is ${n} flash operations`);
    for (let i = 0; i < n; i++) {
      const flash = powerOn(factory);
      process.env[RUNNING_SLOT_ENV] = bootFrom(flash).slot;
      assert.equal(cutAt(flash, i, () => install(v2)), true, `cut before operation ${i} of ${n}`);
      let { flash: rebooted, image } = reset(flash);
      // the new image becomes the boot image only with the last operation (programming its otadata entry)
      assert.equal(image.version, "1.0.0", `cut before operation ${i}`);
      install(v2);
      ({ image } = reset(rebooted));
      assert.equal(image.version, "2.0.0", `retry after cut ${i}`);
    }
  });

  test("during a rollback: every cut leaves a verified image booting, and the rollback completes", () => {
    const installed = powerOn(factory);
    process.env[RUNNING_SLOT_ENV] = bootFrom(installed).slot;
    install(v2);
    const rollback = (flash: FlashFile): void => {
      const image = bootFrom(flash);
      if (image.version === "2.0.0") giveUp(flash);
    };
    const clean = powerOn(installed.path);
    const start = clean.operations;
    rollback(clean);
    const n = clean.operations - start;
    assert.ok(n >= 4, `boot (NEW → PENDING_VERIFY) and give-up are ${n} flash operations`);
    assert.equal(bootFrom(powerOn(clean.path)).version, "1.0.0");
    for (let i = 0; i < n; i++) {
      const flash = powerOn(installed.path);
      assert.equal(cutAt(flash, i, () => rollback(flash)), true, `cut before operation ${i} of ${n}`);
      let current = flash;
      let image: BootImage;
      // a reset while PENDING_VERIFY aborts v2; otherwise v2 boots again and gives up again
      for (let resets = 0; ; resets++) {
        assert.ok(resets < 3, `cut ${i}: still not back on v1 after ${resets} resets`);
        ({ flash: current, image } = reset(current));
        if (image.version === "1.0.0") break;
        giveUp(current);
      }
      assert.equal(image.version, "1.0.0");
    }
  });
});
