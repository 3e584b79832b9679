// The twin radio cut during OTA, on twin devices against a real mosquitto and the `ota serve`
// HTTPS server: a download the radio cut resumes with a Range request once the network is back,
// and an update whose first boot finds no network is given up at the boot-guard deadline, which
// counts from boot whether or not Wi-Fi is up (docs/wifi.md).
import assert from "node:assert/strict";
import { connect, createServer, type Server, type Socket } from "node:net";
import { describe, test } from "node:test";
import { flashState, nextFirmware, SHORT_DEADLINE, statuses, twinImage, useOtaRig } from "./fixtures/ota-device/rig.ts";

const ota = useOtaRig();

/**
 * Relays to `target`; the first connection's response stops after `bytes` and is then held open
 * (the device sees no error until its radio is cut). Later connections pass through.
 */
async function startStallingRelay(target: number, bytes: number): Promise<{ port: number; stalled: Promise<void>; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  let connections = 0;
  let onStall!: () => void;
  const stalled = new Promise<void>((resolve) => (onStall = resolve));
  const server: Server = createServer((device) => {
    const first = ++connections === 1;
    const upstream = connect(target, "127.0.0.1");
    for (const socket of [device, upstream]) {
      sockets.add(socket);
      socket.on("close", () => sockets.delete(socket));
      socket.on("error", () => {});
    }
    device.pipe(upstream);
    let sent = 0;
    let holding = false;
    upstream.on("data", (data: Buffer) => {
      if (holding) return;
      if (first && sent + data.length >= bytes) {
        device.write(data.subarray(0, bytes - sent));
        holding = true;
        onStall();
        return;
      }
      sent += data.length;
      device.write(data);
    });
    upstream.on("end", () => holding || device.end());
    device.on("close", () => upstream.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as { port: number }).port,
    stalled,
    close() {
      for (const socket of sockets) socket.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

describe("the twin radio during OTA", () => {
  test("radio cut mid-download: the download resumes with a Range request once the radio is back", async () => {
    const device = await ota.rig.device("radio-ota-resume", twinImage(ota.bundles.good, "1.0.0", 1, ota.rig.signer));
    device.start();
    await device.waitForEvent("subscribed");
    const v2 = twinImage(ota.bundles.good, "2.0.0", 2, ota.rig.signer);
    const relay = await startStallingRelay(ota.rig.images.port, Math.floor(v2.length / 2));
    ota.rig.onClose(() => relay.close());
    const url = ota.rig.serve(v2, relay.port);
    await ota.rig.announce(device, v2, url);
    await relay.stalled;
    await device.radio.cut();
    const interrupted = await device.waitForEvent("ota-interrupted");
    const received = Number(interrupted.detail.received);
    assert.ok(received > 0 && received < v2.length, `cut after ${received} of ${v2.length} bytes`);
    await device.waitForEvent("wifi-down", { where: (e) => e.detail.reason === "lost" });
    await device.radio.restore();
    const resumed = await device.waitForEvent("ota-request", { where: (e) => Number(e.detail.from) > 0 && e.boot === 1 });
    assert.ok(Number(resumed.detail.from) >= received, "the bytes received before the cut are kept");
    assert.deepEqual((await nextFirmware(device, 1)).detail, { version: "2.0.0", ota: "pending-verify" });
    await device.waitForEvent("ota-status", { fromBoot: 2, where: (e) => e.detail.state === "valid" });
    const path = new URL(url).pathname;
    const served = ota.rig.images.requests.filter((r) => r.path === path);
    assert.equal(served[0]!.status, 200);
    assert.ok(served.slice(1).every((r) => r.status === 206), `after the first request only ranges: ${JSON.stringify(served)}`);
    assert.deepEqual(flashState(device), { slot: 1, counter: "2" });
  });

  test("radio cut across an update's reboot: the guard's deadline runs without the network and the previous image returns", async () => {
    const device = await ota.rig.device("radio-ota-guard", twinImage(ota.bundles.good, "1.0.0", 1, ota.rig.signer), SHORT_DEADLINE);
    device.start();
    await device.waitForEvent("subscribed");
    const v2 = twinImage(ota.bundles.good, "2.0.0", 2, ota.rig.signer);
    await ota.rig.announce(device, v2, ota.rig.serve(v2));
    // the radio goes while v1 restarts into v2; the state outlives the reboot, as an access point does
    await device.waitForEvent("ota-status", { where: (e) => e.detail.state === "rebooting" });
    await device.radio.cut();
    const v2boot = await nextFirmware(device, 1);
    assert.deepEqual(v2boot.detail, { version: "2.0.0", ota: "pending-verify" });
    await device.waitForEvent("boot-guard-expired", { fromBoot: v2boot.boot, timeoutMs: 30_000 });
    const back = await nextFirmware(device, v2boot.boot);
    assert.deepEqual(back.detail, { version: "1.0.0", ota: "undefined" });
    const v2events = device.events.filter((e) => e.boot === v2boot.boot).map((e) => e.name);
    assert.ok(v2events.includes("wifi-down"), "v2 tried to join and could not");
    assert.ok(!v2events.includes("wifi-up") && !v2events.includes("broker-reached"));
    // the release's counter is spent on the attempt (docs/ota-device.md), outage or not
    assert.deepEqual(flashState(device), { slot: 0, counter: "2" });

    await device.radio.restore();
    const rolled = await device.waitForEvent("ota-status", { fromBoot: back.boot, where: (e) => e.detail.state === "rolled-back" });
    assert.equal(rolled.detail.reason, "broker-unreachable");
    await device.waitForEvent("subscribed", { fromBoot: back.boot });
    // the remedy for an outage is the next release: with the network up it installs and stays
    const v3 = twinImage(ota.bundles.good, "2.0.1", 3, ota.rig.signer);
    await ota.rig.announce(device, v3, ota.rig.serve(v3));
    const again = await nextFirmware(device, back.boot);
    assert.deepEqual(again.detail, { version: "2.0.1", ota: "pending-verify" });
    await device.waitForEvent("ota-status", { fromBoot: again.boot, where: (e) => e.detail.state === "valid" });
    assert.deepEqual(statuses(device, again.boot).at(-1), { state: "valid", version: "2.0.1" });
    assert.deepEqual(flashState(device), { slot: 1, counter: "3" });
  });
});
