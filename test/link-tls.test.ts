// Twin devices (real processes running main.ts) against a real mosquitto: the link reaches a
// correctly pinned broker with trusted time, and refuses every broker the device must not talk to,
// each with its typed reason and without ever reporting the broker reached. (A leaf-only chain
// cannot be staged with mosquitto, which completes the chain from its cafile: the twin's TLS
// socket refuses one in test/twin-socket-tls.test.ts, and the link maps that failure to
// untrusted-chain in test/link-units.test.ts.)
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { requireMosquitto, startTestBroker, type TestBroker } from "../broker/mosquitto.ts";
import { createCa, issueServerCert, type Issued } from "../certs/pki.ts";
import { spkiPin } from "../modules/pins/spki-pin.ts";
import type { TwinDevice } from "../twin/device/supervisor.ts";
import { bundleFirmware } from "../twin/runtime/bundle.ts";
import { type LinkProvisioning, brokerPin, provisionDevice, serveCertificate } from "./support/link-device.ts";
import { type NtpServer, startNtpServer } from "./support/ntp-server.ts";

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;
const stateRoot = mkdtempSync(join(tmpdir(), "espguard-link-tls-"));
const brokers: TestBroker[] = [];
const devices: TwinDevice[] = [];
const ntpServers: NtpServer[] = [];
let ca: Issued;
let bundle: string;
let ntp: NtpServer;
/** a pin no broker key has */
const strangerPin = Buffer.alloc(32, 7).toString("base64");

before(async () => {
  requireMosquitto();
  ca = await createCa({ commonName: "espguard link CA" });
  bundle = await bundleFirmware({ format: "esm" });
  ntp = await startNtpServer();
  ntpServers.push(ntp);
});

after(async () => {
  await Promise.all(devices.map((device) => device.stop()));
  await Promise.all(brokers.map((broker) => broker.stop()));
  await Promise.all(ntpServers.map((server) => server.stop()));
  rmSync(stateRoot, { recursive: true, force: true });
});

async function broker(): Promise<TestBroker> {
  const started = await startTestBroker({ ca, echo: true });
  brokers.push(started);
  return started;
}

const floorSeconds = (ms: number): number => Math.floor(ms / 1000);

async function boot(target: TestBroker, deviceId: string, link: LinkProvisioning): Promise<TwinDevice> {
  const device = await provisionDevice(target, stateRoot, bundle, deviceId, link);
  devices.push(device);
  device.start();
  return device;
}

/** Boots a device that must be refused; returns the reason of its first link-down. */
async function refusal(target: TestBroker, deviceId: string, link: LinkProvisioning): Promise<string> {
  const device = await boot(target, deviceId, { ntp: ntp.spec, timeFloor: floorSeconds(Date.now() - DAY_MS), ...link });
  const down = await device.waitForEvent("link-down");
  await device.stop();
  assert.equal(device.events.some((e) => e.name === "broker-reached"), false, `${deviceId} reached the broker`);
  assert.equal(device.events.some((e) => e.name === "abort"), false, `${deviceId} aborted`);
  return String(down.detail.reason);
}

describe("secure link: twin devices against mosquitto", () => {
  test("happy path: SNTP time, pinned broker, mutual TLS, CONNACK, subscriptions, QoS 1 round trip", async () => {
    const target = await broker();
    const device = await provisionDevice(target, stateRoot, bundle, "link-happy", {
      ntp: ntp.spec, timeFloor: floorSeconds(Date.now() - DAY_MS), pins: [brokerPin(target), strangerPin],
    });
    devices.push(device);
    device.start();
    const clock = await device.waitForEvent("clock");
    assert.equal(clock.detail.source, "sntp");
    assert.ok(Math.abs(Number(clock.detail.now) - Date.now()) < HOUR_MS, "the device clock follows the NTP server");
    const boot = await device.waitForEvent("boot");
    assert.equal(boot.detail.pinned, true);
    await device.waitForEvent("broker-reached");
    const subscribed = await device.waitForEvent("subscribed");
    assert.equal(subscribed.detail.granted, "1,1");
    await device.stop();
  });

  test("the device clock starts unknown: no NTP answer and no floor → clock-unknown, no 1970 handshake", async () => {
    const target = await broker();
    const device = await boot(target, "link-noclock", { pins: [brokerPin(target)] });
    const clock = await device.waitForEvent("clock");
    assert.equal(clock.detail.source, "unknown");
    assert.ok(Number(clock.detail.now) < DAY_MS, `device clock ${clock.detail.now} ms is not near the epoch`);
    const down = await device.waitForEvent("link-down");
    assert.equal(down.detail.reason, "clock-unknown");
    assert.ok(Number(down.detail.retryMs) > 0);
    await device.stop();
    assert.equal(device.events.some((e) => e.name === "broker-reached"), false);
  });

  test("with no NTP answer the time floor is enough for a certificate issued before it", async () => {
    const target = await broker();
    const device = await boot(target, "link-floor", { pins: [brokerPin(target)], timeFloor: floorSeconds(Date.now() - HOUR_MS / 2) });
    const clock = await device.waitForEvent("clock");
    assert.equal(clock.detail.source, "floor");
    await device.waitForEvent("broker-reached");
    await device.stop();
  });

  test("rogue CA → untrusted-chain", async () => {
    const target = await broker();
    const rogue = await createCa({ commonName: "espguard link CA" });
    const server = await issueServerCert(rogue, { commonName: "localhost", dnsNames: ["localhost"], ipAddresses: ["127.0.0.1"] });
    await serveCertificate(target, server, rogue);
    assert.equal(await refusal(target, "link-rogue", {}), "untrusted-chain");
  });

  test("a broker key outside the pin set → pin-mismatch", async () => {
    const target = await broker();
    assert.equal(await refusal(target, "link-pinned-away", { pins: [strangerPin] }), "pin-mismatch");
  });

  test("key rotation: a device holding the backup pin follows the broker to its new key; one without it is refused", async () => {
    const target = await broker();
    const next = await issueServerCert(ca, { commonName: "localhost", dnsNames: ["localhost"], ipAddresses: ["127.0.0.1"] });
    const link = { ntp: ntp.spec, timeFloor: floorSeconds(Date.now() - DAY_MS) };
    const ready = await boot(target, "link-rotate-ready", { ...link, pins: [brokerPin(target), spkiPin(next.certDer)] });
    const stale = await boot(target, "link-rotate-stale", { ...link, pins: [brokerPin(target)] });
    await ready.waitForEvent("broker-reached");
    await stale.waitForEvent("broker-reached");
    await serveCertificate(target, next, ca);
    const lost = await ready.waitForEvent("link-down");
    assert.equal(lost.detail.reason, "lost");
    await ready.waitForEvent("broker-reached", { where: (e) => ready.events.indexOf(e) > ready.events.indexOf(lost), timeoutMs: 30_000 });
    const refused = await stale.waitForEvent("link-down", { where: (e) => e.detail.reason !== "lost" && e.detail.reason !== "refused", timeoutMs: 30_000 });
    assert.equal(refused.detail.reason, "pin-mismatch");
    await Promise.all([ready.stop(), stale.stop()]);
  });

  test("an expired broker certificate → expired", async () => {
    const target = await broker();
    const server = await issueServerCert(ca, {
      commonName: "localhost", dnsNames: ["localhost"], ipAddresses: ["127.0.0.1"],
      notBefore: new Date(Date.now() - 10 * DAY_MS), notAfter: new Date(Date.now() - DAY_MS),
    });
    await serveCertificate(target, server, ca);
    assert.equal(await refusal(target, "link-expired", { pins: [spkiPin(server.certDer)] }), "expired");
  });

  test("a broker certificate for another name → name-mismatch", async () => {
    const target = await broker();
    const server = await issueServerCert(ca, { commonName: "localhost", dnsNames: ["broker.example.net"], ipAddresses: ["10.9.8.7"] });
    await serveCertificate(target, server, ca);
    assert.equal(await refusal(target, "link-wrong-san", { pins: [spkiPin(server.certDer)] }), "name-mismatch");
  });

  test("a device clock before the certificates' notBefore → clock-unknown", async () => {
    const target = await broker();
    const behind = await startNtpServer(() => Date.now() - 2 * HOUR_MS);
    ntpServers.push(behind);
    const reason = await refusal(target, "link-behind", { ntp: behind.spec, timeFloor: floorSeconds(Date.now() - 3 * DAY_MS), pins: [brokerPin(target)] });
    assert.equal(reason, "clock-unknown");
  });

  test("an NTP reply before the time floor is refused: the clock is not wound back", async () => {
    const target = await broker();
    const rewound = await startNtpServer(() => Date.now() - 30 * DAY_MS);
    ntpServers.push(rewound);
    const device = await boot(target, "link-rewound", { ntp: rewound.spec, timeFloor: floorSeconds(Date.now() - HOUR_MS / 2), pins: [brokerPin(target)] });
    const clock = await device.waitForEvent("clock");
    assert.equal(clock.detail.source, "floor");
    assert.ok(Number(clock.detail.rejected) < Date.now() - 29 * DAY_MS);
    assert.ok(Number(clock.detail.now) >= Date.now() - HOUR_MS);
    await device.waitForEvent("broker-reached");
    await device.stop();
  });
});
