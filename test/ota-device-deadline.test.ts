// The boot guard with its real, default deadline (30 s, manifest config espguard.bootDeadlineMs):
// a release that never reaches the broker is given up after 30 s and the previous image returns.
// The other rollback tests use a short deadline provisioned in NVS.
import assert from "node:assert/strict";
import { test } from "node:test";
import { loadManifest } from "../twin/runtime/manifest.ts";
import { nextFirmware, twinImage, useOtaRig } from "./fixtures/ota-device/rig.ts";

const ota = useOtaRig();

test("an unreachable release is rolled back at the default 30 s deadline", async () => {
  assert.equal((loadManifest().config.espguard as { bootDeadlineMs: number }).bootDeadlineMs, 30_000);
  const device = await ota.rig.device("ota-deadline-30s", twinImage(ota.bundles.good, "1.0.0", 1, ota.rig.signer));
  device.start();
  await device.waitForEvent("subscribed");
  const v2 = twinImage(ota.bundles.wrongPort, "2.0.0", 2, ota.rig.signer);
  await ota.rig.announce(device, v2, ota.rig.serve(v2));
  const v2boot = await nextFirmware(device, 1);
  assert.deepEqual(v2boot.detail, { version: "2.0.0", ota: "pending-verify" });
  assert.equal((await device.waitForEvent("boot-guard", { fromBoot: v2boot.boot })).detail.deadlineMs, 30_000);
  const back = await nextFirmware(device, v2boot.boot, 45_000);
  assert.deepEqual(back.detail, { version: "1.0.0", ota: "undefined" });
  assert.ok(device.events.some((e) => e.name === "boot-guard-expired" && e.boot === v2boot.boot));
  const rolled = await device.waitForEvent("ota-status", { fromBoot: back.boot, where: (e) => e.detail.state === "rolled-back" });
  assert.equal(rolled.detail.reason, "broker-unreachable");
});
