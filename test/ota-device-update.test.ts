// A/B OTA on twin devices against a real mosquitto and the `ota serve` HTTPS server: a signed
// release installs, the device reboots into the downloaded bundle and confirms it; releases that
// cannot reach the broker or crash at boot roll back; forged or stale releases never touch the
// boot slot; a download cut half way resumes with Range.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { OtaConfigKey } from "../modules/ota/ota-config.ts";
import { HEADER_SIZE } from "../modules/ota/image-format.ts";
import { buildUnsignedImage, signImage } from "../ota/image-build.ts";
import { releaseForImage, signRelease } from "../ota/release-sign.ts";
import { generateSigningKey } from "../ota/signing-key.ts";
import { buildEsp32App } from "./fixtures/ota/esp32-app.ts";
import { flashState, nextFirmware, SHORT_DEADLINE, startCuttingRelay, statuses, twinImage, useOtaRig } from "./fixtures/ota-device/rig.ts";
import type { TwinDevice } from "../twin/device/supervisor.ts";

const ota = useOtaRig();

async function runningV2(name: string) {
  const device = await ota.rig.device(name, twinImage(ota.bundles.good, "1.0.0", 1, ota.rig.signer), SHORT_DEADLINE);
  device.start();
  await device.waitForEvent("subscribed");
  const v2 = twinImage(ota.bundles.good, "2.0.0", 2, ota.rig.signer);
  await ota.rig.announce(device, v2, ota.rig.serve(v2));
  const booted = await nextFirmware(device, 1);
  assert.deepEqual(booted.detail, { version: "2.0.0", ota: "pending-verify" });
  await device.waitForEvent("ota-status", { fromBoot: booted.boot, where: (e) => e.detail.state === "valid" });
  await device.waitForEvent("subscribed", { fromBoot: booted.boot });
  return { device, boot: booted.boot };
}

/** v2 running, a v3 from `bundle` installed: the device must end up back on v2, reporting the rollback. */
async function brokenV3RollsBack(name: string, bundle: string, prepare: (device: TwinDevice) => void = () => {}) {
  const { device, boot } = await runningV2(name);
  prepare(device);
  const v3 = twinImage(bundle, "3.0.0", 3, ota.rig.signer);
  await ota.rig.announce(device, v3, ota.rig.serve(v3));
  await device.waitForEvent("ota-installed", { fromBoot: boot });
  const back = await device.waitForEvent("firmware", { fromBoot: boot + 2, timeoutMs: 30_000 });
  assert.deepEqual(back.detail, { version: "2.0.0", ota: "valid" });
  const rolled = await device.waitForEvent("ota-status", { fromBoot: back.boot, where: (e) => e.detail.state === "rolled-back" });
  assert.deepEqual(rolled.detail, { state: "rolled-back", version: "3.0.0", reason: "reset-while-pending", running: "2.0.0" });
  return { device, boot };
}

describe("OTA on a twin device", () => {
  test("v1 → v2: downloads, verifies, reboots into v2's image and confirms it", async () => {
    const { device, boot } = await runningV2("ota-v2");
    assert.deepEqual(statuses(device).map((s) => s.state), ["downloading", "downloading", "downloading", "downloading", "verifying", "rebooting", "valid"]);
    assert.deepEqual(statuses(device, boot).at(-1), { state: "valid", version: "2.0.0" });
    // a further reset boots v2 again, now VALID
    await device.stop();
    device.start();
    assert.deepEqual((await nextFirmware(device, boot)).detail, { version: "2.0.0", ota: "valid" });
  });

  test("v3 that cannot reach the broker gives itself up at the deadline: back on v2, rolled-back reported", async () => {
    const { device, boot } = await runningV2("ota-unreachable");
    const v3 = twinImage(ota.bundles.wrongPort, "3.0.0", 3, ota.rig.signer);
    await ota.rig.announce(device, v3, ota.rig.serve(v3));
    const v3boot = await nextFirmware(device, boot);
    assert.deepEqual(v3boot.detail, { version: "3.0.0", ota: "pending-verify" });
    await device.waitForEvent("boot-guard-expired", { fromBoot: v3boot.boot });
    const back = await nextFirmware(device, v3boot.boot);
    assert.deepEqual(back.detail, { version: "2.0.0", ota: "valid" });
    const rolled = await device.waitForEvent("ota-status", { fromBoot: back.boot, where: (e) => e.detail.state === "rolled-back" });
    assert.deepEqual(rolled.detail, { state: "rolled-back", version: "3.0.0", reason: "broker-unreachable", running: "2.0.0" });
    // the failed release's counter stays spent: announcing it again changes nothing
    assert.equal(flashState(device).counter, "3");
  });

  test("v3 that crashes on boot is ABORTED by the bootloader: back on v2", async () => {
    const { device, boot } = await brokenV3RollsBack("ota-crash", ota.bundles.crash);
    assert.ok(device.events.some((e) => e.name === "abort" && e.boot === boot + 1), "v3 crashed at boot");
  });

  test("v3 that hangs on boot is reset by the task watchdog and ABORTED: back on v2", async () => {
    const { device, boot } = await brokenV3RollsBack("ota-hang", ota.bundles.hang, (running) => {
      running.watchdogMs = 3000;
    });
    const reset = await device.waitForEvent("watchdog-reset", { fromBoot: boot + 1 });
    assert.equal(reset.boot, boot + 1, "the watchdog reset the boot running v3");
  });

  test("adversarial releases and images are refused with the boot slot and the counter unchanged", async () => {
    const device = await ota.rig.device("ota-adversary", twinImage(ota.bundles.good, "1.0.0", 5, ota.rig.signer), { [OtaConfigKey.counter]: "5" });
    device.start();
    await device.waitForEvent("subscribed");
    const before = flashState(device);
    assert.deepEqual(before, { slot: 0, counter: "5" });
    const good = twinImage(ota.bundles.good, "2.0.0", 6, ota.rig.signer);
    const flip = (at: number): Uint8Array => {
      const bytes = good.slice();
      bytes[at]! ^= 0x01;
      return bytes;
    };
    const payloadSize = good.length - 256;
    const lyingSize = good.slice();
    new DataView(lyingSize.buffer).setUint32(12, payloadSize - 16, true);
    const stranger = generateSigningKey();
    const esp32 = signImage(buildUnsignedImage({ payload: buildEsp32App({ version: "2.0.0" }), payloadType: "esp32-app", target: "esp32", version: "2.0.0", counter: 6 }), ota.rig.signer);
    const cases: { name: string; served: Uint8Array; announced?: Uint8Array; signer?: typeof stranger; reason: string }[] = [
      { name: "bit flip in the header", served: flip(17), announced: good, reason: "release-mismatch" },
      { name: "bit flip in the payload", served: flip(HEADER_SIZE + 1000), announced: good, reason: "digest-mismatch" },
      { name: "bit flip in the signature", served: flip(good.length - 10), announced: good, reason: "bad-signature" },
      { name: "truncated", served: good.subarray(0, good.length - 100), announced: good, reason: "truncated" },
      { name: "extra bytes", served: Uint8Array.of(...good, 0), announced: good, reason: "extra-bytes" },
      { name: "header size field lies", served: lyingSize, announced: good, reason: "size-mismatch" },
      { name: "image signed by an unknown key", served: twinImage(ota.bundles.good, "2.0.0", 6, stranger), reason: "unknown-key" },
      { name: "release signed by an unknown key", served: good, signer: stranger, reason: "unknown-key" },
      { name: "valid signature on a lower counter", served: twinImage(ota.bundles.good, "0.9.0", 4, ota.rig.signer), reason: "downgrade" },
      { name: "wrong target", served: esp32, reason: "wrong-target" },
    ];
    for (const c of cases) {
      const seen = device.events.length;
      const url = ota.rig.serve(c.served);
      const signer = c.signer ?? ota.rig.signer;
      await ota.rig.announceRaw(device, signRelease(releaseForImage(c.announced ?? c.served, url, signer), signer));
      const rejected = await device.waitForEvent("ota-status", { where: (e) => e.detail.state === "rejected" && device.events.indexOf(e) >= seen });
      assert.equal(rejected.detail.reason, c.reason, `${c.name}: ${rejected.detail.detail}`);
      assert.deepEqual(flashState(device), before, c.name);
    }
    assert.equal(device.boots, 1, "no rejected image caused a reboot");
    // and the genuine release still installs afterwards
    await ota.rig.announce(device, good, ota.rig.serve(good));
    assert.deepEqual((await nextFirmware(device, 1)).detail, { version: "2.0.0", ota: "pending-verify" });
  });

  test("a download cut half way resumes with a Range request instead of starting over", async () => {
    const device = await ota.rig.device("ota-resume", twinImage(ota.bundles.good, "1.0.0", 1, ota.rig.signer));
    device.start();
    await device.waitForEvent("subscribed");
    const v2 = twinImage(ota.bundles.good, "2.0.0", 2, ota.rig.signer);
    const relay = await startCuttingRelay(ota.rig.images.port, Math.floor(v2.length / 2));
    ota.rig.onClose(() => relay.close());
    const url = ota.rig.serve(v2, relay.port);
    await ota.rig.announce(device, v2, url);
    const interrupted = await device.waitForEvent("ota-interrupted");
    const received = Number(interrupted.detail.received);
    assert.ok(received > 0 && received < v2.length, `cut after ${received} of ${v2.length} bytes`);
    const resumed = await device.waitForEvent("ota-request", { where: (e) => Number(e.detail.from) > 0 });
    assert.equal(resumed.detail.from, received);
    assert.deepEqual((await nextFirmware(device, 1)).detail, { version: "2.0.0", ota: "pending-verify" });
    const path = new URL(url).pathname;
    const served = ota.rig.images.requests.filter((r) => r.path === path);
    assert.deepEqual(served.map((r) => [r.status, r.range]), [[200, undefined], [206, `bytes=${received}-`]]);
  });

  test("power cut mid-download: the old image boots, and the update announced again completes", async () => {
    const device = await ota.rig.device("ota-cut", twinImage(ota.bundles.good, "1.0.0", 1, ota.rig.signer));
    device.start();
    await device.waitForEvent("subscribed");
    const v2 = twinImage(ota.bundles.good, "2.0.0", 2, ota.rig.signer);
    const relay = await startCuttingRelay(ota.rig.images.port, Math.floor(v2.length / 2));
    ota.rig.onClose(() => relay.close());
    const url = ota.rig.serve(v2, relay.port);
    await ota.rig.announce(device, v2, url);
    // the relay holds the download at half way until the device retries; cut power meanwhile
    await device.waitForEvent("ota-interrupted");
    await device.powerCut();
    assert.deepEqual(flashState(device), { slot: 0, counter: undefined });
    device.start();
    assert.deepEqual((await nextFirmware(device, 1)).detail, { version: "1.0.0", ota: "undefined" });
    await device.waitForEvent("subscribed", { fromBoot: 2 });
    await ota.rig.announce(device, v2, url);
    assert.deepEqual((await nextFirmware(device, 2)).detail, { version: "2.0.0", ota: "pending-verify" });
    await device.waitForEvent("ota-status", { fromBoot: 3, where: (e) => e.detail.state === "valid" });
    assert.deepEqual(flashState(device), { slot: 1, counter: "2" });
  });
});
