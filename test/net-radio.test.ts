// Twin devices running main.ts against a real mosquitto, with their radio cut and restored by the
// supervisor: telemetry signed while the radio is down reaches the broker once it is back (QoS 1
// outbox), a device that boots with no network joins as soon as there is one, and a device with no
// provisioned Wi-Fi says so instead of looping.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import mqtt from "mqtt";
import { requireMosquitto, startTestBroker, type TestBroker } from "../broker/mosquitto.ts";
import { deriveTelemetryKey } from "../certs/telemetry-key.ts";
import { ConfigKey } from "../modules/link/device-config.ts";
import { PERIOD_KEY } from "../modules/telemetry/reporter.ts";
import { TWIN_WIFI } from "../twin/device/provision.ts";
import { provisionDevice } from "./support/link-device.ts";
import type { DeviceEvent, TwinDevice } from "../twin/device/supervisor.ts";
import { bundleFirmware } from "../twin/runtime/bundle.ts";
import { startNtpServer, type NtpServer } from "./support/ntp-server.ts";

const root = mkdtempSync(join(tmpdir(), "espguard-net-radio-"));
const fleetSecret = Buffer.alloc(32, 7);
let target: TestBroker;
let ntp: NtpServer;
let bundle: string;
let watch: mqtt.MqttClient;
const received: { topic: string; seq: number }[] = [];
const devices: TwinDevice[] = [];

before(async () => {
  requireMosquitto();
  target = await startTestBroker({ services: { verifier: ["svc.watch"] } });
  ntp = await startNtpServer();
  bundle = await bundleFirmware({ format: "esm" });
  const service = await target.issueService("svc.watch");
  watch = await mqtt.connectAsync(`mqtts://127.0.0.1:${target.broker.port}`, {
    ca: target.ca.certPem, cert: service.certPem, key: service.keyPem, clientId: "svc.watch", reconnectPeriod: 0,
  });
  watch.on("message", (topic, payload) => received.push({ topic, seq: JSON.parse(payload.toString("utf8")).seq }));
  await watch.subscribeAsync("devices/+/telemetry", { qos: 1 });
});

after(async () => {
  await Promise.all(devices.map((device) => device.stop()));
  await watch?.endAsync();
  await ntp?.stop();
  await target?.stop();
  rmSync(root, { recursive: true, force: true });
});


async function provision(deviceId: string, wifi: typeof TWIN_WIFI | null = TWIN_WIFI): Promise<TwinDevice> {
  const device = await provisionDevice(target, root, bundle, deviceId, {
    ntp: ntp.spec,
    wifi,
    extra: {
      [ConfigKey.hmacKid]: "k1",
      [ConfigKey.hmacKey]: new Uint8Array(deriveTelemetryKey(fleetSecret, deviceId, "k1")).buffer,
      [PERIOD_KEY]: 200,
    },
  });
  devices.push(device);
  return device;
}

/** The `count`-th event named `name` (counting from the start) that satisfies `where`. */
function nth(device: TwinDevice, name: string, count: number, where: (e: DeviceEvent) => boolean = () => true, timeoutMs = 30_000): Promise<DeviceEvent> {
  return device.waitForEvent(name, { timeoutMs, where: (e) => where(e) && device.events.filter((x) => x.name === name && where(x)).indexOf(e) === count - 1 });
}

function seqs(device: TwinDevice, name: string): number[] {
  return device.events.filter((e) => e.name === name && (name !== "published" || e.detail.topic === `devices/${device.name}/telemetry`))
    .map((e) => e.detail.seq as number);
}

async function until(what: string, condition: () => boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

test("radio cut during telemetry: every reading signed while it was down reaches the broker once it is back", async () => {
  const device = await provision("net-telemetry");
  device.start();
  const telemetry = (e: DeviceEvent) => e.detail.topic === `devices/${device.name}/telemetry`;
  await nth(device, "published", 3, telemetry);

  await device.radio.cut();
  assert.equal(device.radio.state, "down");
  const down = await device.waitForEvent("wifi-down", { where: (e) => e.detail.reason === "lost" });
  assert.equal(down.detail.ssid, TWIN_WIFI.ssid);
  const signedBefore = seqs(device, "telemetry").length;
  // readings keep being signed into the outbox while there is no network
  await nth(device, "telemetry", signedBefore + 5);
  assert.ok(!device.events.some((e) => e.name === "wifi-up" && device.events.indexOf(e) > device.events.indexOf(down)), "no network while the radio is cut");

  await device.radio.restore();
  await nth(device, "wifi-up", 2);
  await nth(device, "broker-reached", 2);
  const signed = seqs(device, "telemetry");
  const mine = () => new Set(received.filter((m) => m.topic === `devices/${device.name}/telemetry`).map((m) => m.seq));
  await until("every signed reading at the broker", () => signed.every((seq) => mine().has(seq)));
  assert.equal(device.events.filter((e) => e.name === "outbox-dropped").length, 0, "the outbox held every reading");
  assert.equal(device.boots, 1, "losing the network is not a reason to reboot");
  // the link noticed the network, not a keepalive timeout: it went down with the radio and came back with it
  const linkDowns = device.events.filter((e) => e.name === "link-down").map((e) => e.detail.reason);
  assert.ok(linkDowns.every((reason) => reason === "lost"), `link-down reasons: ${linkDowns.join(", ")}`);
});

test("booting with the radio cut: joins, fails with backoff, and reaches the broker once the radio is back", async () => {
  const device = await provision("net-boot-down");
  await device.radio.cut();
  device.start();
  const failed = await nth(device, "wifi-down", 2);
  assert.equal(failed.detail.reason, "join-failed");
  assert.ok(Number(failed.detail.retryMs) > 0, "after every network failed, the next round waits");
  assert.ok(!device.events.some((e) => e.name === "link-down"), "no broker attempt without a network");
  await device.radio.restore();
  const up = await device.waitForEvent("wifi-up");
  assert.deepEqual(up.detail, { ip: "10.42.0.2", ssid: TWIN_WIFI.ssid });
  await device.waitForEvent("subscribed");
});

test("no Wi-Fi provisioned: the device reports it and does not try to join", async () => {
  const device = await provision("net-no-wifi", null);
  device.start();
  const event = await device.waitForEvent("wifi-unprovisioned");
  assert.equal(event.detail.key, "wifi_ssid");
  assert.match(String(event.detail.message), /espguard device provision --wifi-ssid/);
  // telemetry still starts (it signs into the outbox); only the network is missing
  await nth(device, "telemetry", 3);
  assert.ok(!device.events.some((e) => e.name === "wifi-joining" || e.name === "link-down" || e.name === "clock"));
  assert.equal(device.running, true);
});

test("a radio cut while the boot is still starting reaches it: the boot never sees a network", async () => {
  const device = await provision("net-cut-at-start");
  device.start();
  await device.radio.cut();
  const failed = await device.waitForEvent("wifi-down");
  assert.equal(failed.detail.reason, "join-failed");
  assert.ok(!device.events.some((e) => e.name === "wifi-up"));
  await device.radio.restore();
  await device.waitForEvent("subscribed");
});
