// End to end: twin devices sign telemetry with keys provisioned into their NVS, publish it QoS 1
// through a real mosquitto, and two `espguard verify` processes in one shared-subscription group
// check it against keys derived from the fleet secret, sharing one replay-state folder. One device
// loses power mid-run, the other reboots: neither reuses a seq, nothing is rejected, and each
// accepted message is accepted exactly once. Afterwards every captured message is replayed.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { after, before, test } from "node:test";
import mqtt from "mqtt";
import { requireMosquitto, startTestBroker, type TestBroker } from "../broker/mosquitto.ts";
import { deriveTelemetryKey } from "../certs/telemetry-key.ts";
import { ConfigKey } from "../modules/link/device-config.ts";
import { PERIOD_KEY } from "../modules/telemetry/reporter.ts";
import { provisionDevice } from "./support/link-device.ts";
import type { TwinDevice } from "../twin/device/supervisor.ts";
import { PROJECT_ROOT } from "../twin/runtime/manifest.ts";
import { bundleFirmware } from "../twin/runtime/bundle.ts";
import { Keyring } from "../verifier/keyring.ts";
import { FileReplayStore } from "../verifier/replay-store.ts";
import { TelemetryVerifier } from "../verifier/verifier.ts";
import { startNtpServer, type NtpServer } from "./support/ntp-server.ts";

const root = mkdtempSync(join(tmpdir(), "espguard-verify-e2e-"));
const stateDir = join(root, "replay");
const fleetSecret = randomBytes(32);
const SEQ_BLOCK = 256;
const PER_BOOT = 4;
let target: TestBroker;
let ntp: NtpServer;
let bundle: string;
const devices: TwinDevice[] = [];
const verifiers: ChildProcess[] = [];

before(async () => {
  requireMosquitto();
  // one account per instance: the broker makes the certificate CN the client id, so two
  // connections with one certificate would evict each other
  target = await startTestBroker({ services: { verifier: ["svc.verifier-a", "svc.verifier-b", "svc.watch"] } });
  ntp = await startNtpServer();
  bundle = await bundleFirmware({ format: "esm" });
  writeFileSync(join(root, "fleet.secret"), `${fleetSecret.toString("hex")}\n`);
  writeFileSync(join(root, "ca.pem"), target.ca.certPem);
  for (const name of ["svc.verifier-a", "svc.verifier-b", "svc.watch"]) {
    const service = await target.issueService(name);
    writeFileSync(join(root, `${name}.pem`), service.certPem);
    writeFileSync(join(root, `${name}.key`), service.keyPem);
  }
});

after(async () => {
  await Promise.all(devices.map((device) => device.stop()));
  for (const child of verifiers) if (child.exitCode === null) child.kill("SIGKILL");
  await ntp?.stop();
  await target?.stop();
  rmSync(new FileReplayStore(stateDir, 64).lockDir, { recursive: true, force: true });
  rmSync(root, { recursive: true, force: true });
});


async function provision(deviceId: string): Promise<TwinDevice> {
  const device = await provisionDevice(target, root, bundle, deviceId, {
    ntp: ntp.spec,
    extra: {
      [ConfigKey.hmacKid]: "k1",
      [ConfigKey.hmacKey]: new Uint8Array(deriveTelemetryKey(fleetSecret, deviceId, "k1")).buffer,
      [PERIOD_KEY]: 100,
    },
  });
  devices.push(device);
  return device;
}

interface Verifier {
  readonly child: ChildProcess;
  readonly accepted: { topic: string; body: Record<string, unknown> }[];
  readonly stderr: string[];
}

async function startVerifier(name: string): Promise<Verifier> {
  const child = spawn(process.execPath, [join(PROJECT_ROOT, "bin", "espguard.js"), "verify",
    "--broker", `mqtts://127.0.0.1:${target.broker.port}`, "--ca", join(root, "ca.pem"),
    "--cert", join(root, `${name}.pem`), "--key", join(root, `${name}.key`), "--client-id", name,
    "--fleet-secret", join(root, "fleet.secret"), "--state-dir", stateDir, "--summary", "3600"], { stdio: ["ignore", "pipe", "pipe"] });
  verifiers.push(child);
  const verifier: Verifier = { child, accepted: [], stderr: [] };
  createInterface({ input: child.stdout! }).on("line", (line) => verifier.accepted.push(JSON.parse(line)));
  const subscribed = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} did not subscribe: ${verifier.stderr.join("\n")}`)), 20_000);
    createInterface({ input: child.stderr! }).on("line", (line) => {
      verifier.stderr.push(line);
      if (line.includes("subscribed to")) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  await subscribed;
  return verifier;
}

function telemetryOf(device: TwinDevice, boot: number) {
  const from = device.events.find((e) => e.name === "telemetry-on" && e.boot === boot)?.detail.from;
  const signed = device.events.filter((e) => e.name === "telemetry" && e.boot === boot).map((e) => e.detail.seq as number);
  const delivered = device.events.filter((e) => e.name === "published" && e.boot === boot && e.detail.topic === `devices/${device.name}/telemetry`).length;
  return { from, signed, delivered };
}

function delivered(device: TwinDevice, boot: number, count: number): Promise<unknown> {
  let seen = 0;
  return device.waitForEvent("published", {
    fromBoot: boot, timeoutMs: 30_000,
    where: (e) => e.boot === boot && e.detail.topic === `devices/${device.name}/telemetry` && ++seen >= count,
  });
}

async function until(what: string, condition: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

test("twin devices → mosquitto → two verifiers: all accepted once, seq never reused across a power cut or a reboot", async () => {
  const a = await startVerifier("svc.verifier-a");
  const b = await startVerifier("svc.verifier-b");
  const watch = await mqtt.connectAsync(`mqtts://127.0.0.1:${target.broker.port}`, {
    ca: target.ca.certPem, cert: readFileSync(join(root, "svc.watch.pem"), "utf8"), key: readFileSync(join(root, "svc.watch.key"), "utf8"),
    clientId: "svc.watch", reconnectPeriod: 0,
  });
  const captured: { topic: string; wire: string }[] = [];
  watch.on("message", (topic, payload) => captured.push({ topic, wire: payload.toString("latin1") }));
  await watch.subscribeAsync("devices/+/telemetry", { qos: 1 });
  try {
    const cut = await provision("tm-cut");
    const reboot = await provision("tm-reboot");
    cut.start();
    reboot.start();
    await Promise.all([delivered(cut, 1, PER_BOOT), delivered(reboot, 1, PER_BOOT)]);
    await cut.powerCut();
    await reboot.stop();
    cut.start();
    reboot.start();
    await Promise.all([delivered(cut, 2, PER_BOOT), delivered(reboot, 2, PER_BOOT)]);
    await Promise.all([cut.stop(), reboot.stop()]);

    for (const device of [cut, reboot]) {
      const first = telemetryOf(device, 1);
      const second = telemetryOf(device, 2);
      assert.equal(first.from, 1);
      assert.equal(second.from, SEQ_BLOCK + 1, "the second boot starts above the block the first reserved");
      assert.ok(Math.min(...second.signed) > Math.max(...first.signed));
      assert.ok(device.events.some((e) => e.name === "clock" && e.detail.source === "sntp"), "the clock was trusted, so messages carry ts");
    }
    const expectedAtLeast = [cut, reboot].flatMap((d) => [telemetryOf(d, 1).delivered, telemetryOf(d, 2).delivered]).reduce((x, y) => x + y);
    const all = () => [...a.accepted, ...b.accepted];
    await until("every delivered message to be accepted", () => all().length >= expectedAtLeast && captured.length >= all().length);

    for (const child of [a.child, b.child]) child.kill("SIGTERM");
    await Promise.all([once(a.child, "exit"), once(b.child, "exit")]);
    const accepted = all();
    assert.ok(a.accepted.length > 0 && b.accepted.length > 0, `the shared subscription split the messages between both instances: ${a.accepted.length} + ${b.accepted.length}; ${[...a.stderr, ...b.stderr].join(" | ")}`);
    for (const device of [cut, reboot]) {
      const signed = new Set([...telemetryOf(device, 1).signed, ...telemetryOf(device, 2).signed]);
      const seqs = accepted.filter((m) => m.topic === `devices/${device.name}/telemetry`).map((m) => m.body.seq as number);
      assert.equal(new Set(seqs).size, seqs.length, "no message accepted twice");
      for (const seq of seqs) assert.ok(signed.has(seq), `accepted seq ${seq} was signed by ${device.name}`);
      // a reading taken before SNTP answered in that boot has no ts; later ones have one
      assert.ok(accepted.some((m) => m.body.dev === device.name && typeof m.body.ts === "number"), `${device.name} sent ts once its clock was trusted`);
    }
    assert.equal(captured.length, accepted.length, "every message the broker carried was accepted");
    const summaries = [a, b].map((v) => v.stderr.at(-1)!);
    const counted = summaries.map((line) => Number(/accepted (\d+), rejected 0$/.exec(line)?.[1]));
    assert.deepEqual(counted, [a.accepted.length, b.accepted.length], `summaries: ${summaries.join(" | ")}`);

    const state = () => readdirSync(stateDir).sort().map((name) => `${name} ${readFileSync(join(stateDir, name), "utf8")}`);
    const before = state();
    const again = new TelemetryVerifier({ keys: new Keyring(fleetSecret, ["k1"]).lookup, replay: new FileReplayStore(stateDir, 64), maxSkewS: 300 });
    for (const { topic, wire } of captured) {
      const verdict = again.check(topic, wire);
      assert.equal(verdict.ok ? "accepted" : verdict.reason, "replay", `replaying ${wire}`);
    }
    assert.deepEqual(state(), before, "replays left the shared state as it was");
  } finally {
    await watch.endAsync();
  }
});
