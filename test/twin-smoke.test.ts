// A twin device booted from a firmware bundle reaches a real mosquitto over the device TLS
// profile with its own client certificate, publishes, and reads its own message back; and it
// refuses a broker that only a lax client would accept. (A leaf-only chain cannot be staged with
// mosquitto: OpenSSL completes the chain from its cafile. test/twin-socket-tls.test.ts refuses one
// from a server that really sends only its leaf.)
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import mqtt from "mqtt";
import { requireMosquitto, startTestBroker, type TestBroker } from "../broker/mosquitto.ts";
import { createCa, type Issued } from "../certs/pki.ts";
import { ConfigKey } from "../modules/link/device-config.ts";
import { provisionDevice } from "./support/link-device.ts";
import type { TwinDevice } from "../twin/device/supervisor.ts";
import { bundleFirmware } from "../twin/runtime/bundle.ts";

const stateRoot = mkdtempSync(join(tmpdir(), "espguard-smoke-"));
const brokers: TestBroker[] = [];
const devices: TwinDevice[] = [];
let ca: Issued;
let bundle: string;

before(async () => {
  requireMosquitto();
  ca = await createCa({ commonName: "espguard smoke CA" });
  bundle = await bundleFirmware({ format: "esm" });
});

after(async () => {
  await Promise.all(devices.map((device) => device.stop()));
  await Promise.all(brokers.map((broker) => broker.stop()));
  rmSync(stateRoot, { recursive: true, force: true });
});

async function broker(options: Parameters<typeof startTestBroker>[0] = {}): Promise<TestBroker> {
  const started = await startTestBroker({ ca, echo: true, ...options });
  brokers.push(started);
  return started;
}


async function bootDevice(target: TestBroker, deviceId: string): Promise<TwinDevice> {
  const device = await provisionDevice(target, stateRoot, bundle, deviceId, {
    // provisioning time: with no NTP server reachable it is the device's clock
    timeFloor: Math.floor(Date.now() / 1000),
    extra: { [ConfigKey.selfTest]: true },
  });
  devices.push(device);
  device.start();
  return device;
}

describe("twin device against a real mosquitto", () => {
  test("boots from a bundle, connects with its client certificate, publishes and receives its own message", async () => {
    const target = await broker({ services: { verifier: ["svc.verifier"] } });
    const service = await target.issueService("svc.verifier");
    const watcher = await mqtt.connectAsync(`mqtts://127.0.0.1:${target.broker.port}`, {
      ca: ca.certPem, cert: service.certPem, key: service.keyPem, clientId: "svc.verifier", reconnectPeriod: 0,
    });
    try {
      await watcher.subscribeAsync("devices/+/telemetry", { qos: 1 });
      const seenByBroker = new Promise<string>((resolve) => watcher.on("message", (topic, payload) => resolve(`${topic} ${payload}`)));
      const device = await bootDevice(target, "smoke-1");
      await device.waitForEvent("broker-reached");
      const echoed = await device.waitForEvent("message", { where: (e) => e.detail.topic === "devices/smoke-1/telemetry" });
      assert.deepEqual(JSON.parse(String(echoed.detail.payload)), { selftest: "smoke-1" });
      assert.equal(await seenByBroker, `devices/smoke-1/telemetry ${JSON.stringify({ selftest: "smoke-1" })}`);
    } finally {
      await watcher.endAsync();
    }
  });

  test("refuses a broker certificate whose only name is its CN (no SAN)", async () => {
    const target = await broker({ dnsNames: [], ipAddresses: [] });
    const device = await bootDevice(target, "smoke-cn");
    const down = await device.waitForEvent("link-down");
    assert.equal(down.detail.reason, "name-mismatch");
    assert.equal(device.events.some((e) => e.name === "broker-reached"), false);
  });
});
