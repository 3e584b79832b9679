// `espguard demo`: the whole story on loopback, in one process and its children. A fresh CA and
// mosquitto, three provisioned twin devices on a signed v1, their signed telemetry through the
// verifier, a tampered and a replayed message injected through the broker and rejected, a signed v2
// rolled out over HTTPS, a broken v3 rolled back at the boot deadline, and a summary table.
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { findMosquitto, startTestBroker, type TestBroker } from "../broker/mosquitto.ts";
import { chainPem, issueServerCert } from "../certs/pki.ts";
import { startOtaServer } from "../ota/serve.ts";
import { generateSigningKey } from "../ota/signing-key.ts";
import type { DeviceEvent, TwinDevice } from "../twin/device/supervisor.ts";
import { bundleFirmware } from "../twin/runtime/bundle.ts";
import { PROJECT_ROOT } from "../twin/runtime/manifest.ts";
import { type DemoDevice, type FleetOptions, provisionDevice, twinImage } from "./fleet.ts";
import { inject, tamper } from "./injector.ts";
import { progressBars } from "./progress.ts";
import { followProgress, publish, type Release } from "./rollout.ts";
import { startNtpServer } from "../twin/runtime/sntp-server.ts";
import { summaryTable } from "./summary.ts";
import type { Teardown } from "./teardown.ts";
import { VerifierTap } from "./verifier-tap.ts";

export interface DemoOptions {
  /** bound on each device step (boot, update, rollback) */
  readonly stepTimeoutMs: number;
  /** the boot-guard deadline provisioned for the demo (the firmware's default is 30 s) */
  readonly bootDeadlineMs: number;
}

/** A step of the story did not happen in time; the message says which and what was seen. */
export class DemoStepError extends Error {
  override name = "DemoStepError";
}

const DEVICE_IDS = ["demo-1", "demo-2", "demo-3"];
const VERIFIER = "svc.verifier";
const PUBLISHER = "svc.ota";
const TELEMETRY_PERIOD_MS = 1000;

function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

function step(n: number, title: string): void {
  say(`\n[${n}/8] ${title}`);
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

function eventAfter(device: TwinDevice, name: string, fromBoot: number, timeoutMs: number, where: (e: DeviceEvent) => boolean = () => true): Promise<DeviceEvent> {
  return device.waitForEvent(name, { fromBoot, timeoutMs, where });
}

export async function runDemo(options: DemoOptions, teardown: Teardown): Promise<void> {
  const started = Date.now();
  // Fail before creating anything when the broker is not there: the message says how to install it.
  findMosquitto();
  const root = mkdtempSync(join(tmpdir(), "espguard-demo-"));
  teardown.add("remove the demo folder", () => rmSync(root, { recursive: true, force: true }));
  say(`espguard demo: ${DEVICE_IDS.length} twin devices, one mosquitto, all on 127.0.0.1. Ctrl-C stops everything.`);
  say(`  working folder ${root} (removed at exit)`);

  step(1, "a fresh private CA, broker certificate and mosquitto configuration");
  let broker: TestBroker | undefined;
  const brokerStarting = startTestBroker({ services: { verifier: [VERIFIER], otaPublisher: [PUBLISHER] } });
  teardown.add("stop mosquitto", async () => (broker ?? await brokerStarting.catch(() => undefined))?.stop());
  broker = await brokerStarting;
  teardown.check();
  const url = `mqtts://${broker.broker.host}:${broker.broker.port}`;
  say("  CA \"espguard test CA\" (fresh RSA key), broker certificate for localhost and 127.0.0.1, served with its chain");
  say(`  mosquitto pid ${broker.broker.pid()} listening on ${broker.broker.host}:${broker.broker.port}: TLS 1.2 only, client certificates required, per-device ACL, no plain listener`);
  say(`  broker folder ${broker.dir} (removed at exit)`);

  const ntp = await startNtpServer();
  teardown.add("stop the SNTP responder", () => ntp.stop());

  step(2, "firmware: v1 and v2 from main.ts, a broken v3, each signed with a fresh P-256 release key");
  const signer = generateSigningKey();
  const [goodBundle, v2Bundle, brokenBundle] = await Promise.all([
    bundleFirmware({ format: "esm" }),
    bundleFirmware({ format: "esm", banner: "// espguard demo build 2.0.0" }),
    bundleFirmware({ format: "esm", entry: join(PROJECT_ROOT, "demo", "broken-v3-main.ts") }),
  ]);
  const v1 = twinImage(goodBundle, "1.0.0", 1, signer);
  const v2 = twinImage(v2Bundle, "2.0.0", 2, signer);
  const v3 = twinImage(brokenBundle, "3.0.0", 3, signer);
  say(`  v1.0.0 ${v1.length} bytes, v2.0.0 ${v2.length} bytes, v3.0.0 ${v3.length} bytes (dials the broker one port off)`);
  teardown.check();

  step(3, `provisioning and booting ${DEVICE_IDS.length} twin devices on v1`);
  const fleetSecret = randomBytes(32);
  const tap = new VerifierTap();
  const verifierAccount = await broker.issueService(VERIFIER);
  teardown.add("stop the verifier", async () => {
    const lockDir = await tap.stop();
    if (lockDir !== undefined) rmSync(lockDir, { recursive: true, force: true });
  });
  await tap.start({
    url, ca: broker.ca.certPem, cert: verifierAccount.certPem, key: verifierAccount.keyPem, clientId: VERIFIER,
    fleetSecret, stateDir: join(root, "verifier"),
  });
  say(`  verifier subscribed to $share/demo/devices/+/telemetry as ${VERIFIER}: HMAC keys derived from a fresh fleet secret`);
  const fleet: FleetOptions = {
    broker, stateDir: root, fleetSecret, signer, image: v1, ntp: ntp.spec,
    bootDeadlineMs: options.bootDeadlineMs, telemetryPeriodMs: TELEMETRY_PERIOD_MS,
  };
  const members: DemoDevice[] = [];
  for (const id of DEVICE_IDS) {
    const member = await provisionDevice(id, fleet);
    teardown.check();
    members.push(member);
    teardown.add(`stop ${id}`, () => member.device.stop());
    say(`  ${id}: RSA-2048 certificate CN=${id}, telemetry key, broker pin, OTA key and a ${seconds(options.bootDeadlineMs)} boot deadline in NVS; signed v1 in ota_0`);
  }
  const devices = members.map((member) => member.device);
  for (const device of devices) device.start();
  await Promise.all(devices.map(async (device) => {
    const firmware = await eventAfter(device, "firmware", 1, options.stepTimeoutMs);
    await eventAfter(device, "subscribed", 1, options.stepTimeoutMs);
    say(`  ${device.name}: booted ${String(firmware.detail.version)}, clock set over SNTP, mutual TLS to the pinned broker, subscribed`);
  }));

  step(4, "signed telemetry through the verifier");
  await liveCounts(tap, (tallies) => DEVICE_IDS.every((id) => (tallies.get(id)?.accepted ?? 0) >= 3), options.stepTimeoutMs);

  step(5, "an attacker with demo-2's certificate injects a tampered and a replayed message through mosquitto");
  const victim = members[1]!;
  const genuine = tap.tally(victim.device.name).lastGenuine!;
  const forged = tamper(genuine);
  say(`  genuine   ${genuine}`);
  say(`  tampered  "${forged.field}": ${forged.from} → ${forged.to}, signature left as it was`);
  say("  replayed  the genuine message, byte for byte");
  const bootsBefore = victim.device.boots;
  const seenBefore = victim.device.events.length;
  const rejects = waitForRejects(tap, victim.device.name, ["bad-sig", "replay"], options.stepTimeoutMs);
  await inject(url, broker.ca.certPem, victim.identity, `devices/${victim.device.name}/telemetry`, [forged.wire, genuine]);
  for (const [reason, detail] of await rejects) say(`  verifier rejected the ${reason === "bad-sig" ? "tampered" : "replayed"} message: ${reason} (${detail})`);
  // The broker allows one connection per identity: the real device was pushed off and reconnects.
  await victim.device.waitForEvent("subscribed", { fromBoot: bootsBefore, timeoutMs: options.stepTimeoutMs, where: (e) => victim.device.events.indexOf(e) >= seenBefore });
  say(`  ${victim.device.name} was pushed off while the attacker held its identity, and reconnected`);
  say(`  ${counts(tap)}`);

  step(6, "signed v2 rolled out over HTTPS");
  const imageDir = join(root, "images");
  mkdirSync(imageDir);
  const httpsCert = await issueServerCert(broker.ca, { commonName: "ota.demo", dnsNames: ["localhost"], ipAddresses: ["127.0.0.1"] });
  const server = await startOtaServer({ dir: imageDir, cert: chainPem(httpsCert, broker.ca), key: httpsCert.keyPem });
  teardown.add("stop the OTA server", () => server.close());
  const publisherAccount = await broker.issueService(PUBLISHER);
  const release = (version: string, image: Uint8Array): Release => ({
    version, image, signer, server, imageDir,
    publisher: { broker: url, ca: broker!.ca.certPem, cert: publisherAccount.certPem, key: publisherAccount.keyPem },
  });
  const outcomes = new Map<string, string[]>(DEVICE_IDS.map((id) => [id, []]));
  await rollout(release("2.0.0", v2), devices, async (device, fromBoot) => {
    const valid = await eventAfter(device, "ota-status", fromBoot, options.stepTimeoutMs, (e) => e.detail.state === "valid" && e.detail.version === "2.0.0");
    await eventAfter(device, "subscribed", valid.boot, options.stepTimeoutMs);
    outcomes.get(device.name)!.push("v2 installed, valid");
  });
  say(`  all ${devices.length} devices report v2.0.0 valid. ${counts(tap)}`);

  step(7, `broken v3 (never reaches the broker) with the demo's boot deadline of ${seconds(options.bootDeadlineMs)} (firmware default 30 s; NVS key boot_deadline)`);
  await rollout(release("3.0.0", v3), devices, async (device, fromBoot) => {
    const booted = await eventAfter(device, "firmware", fromBoot + 1, options.stepTimeoutMs, (e) => e.detail.version === "3.0.0");
    await eventAfter(device, "boot-guard-expired", booted.boot, options.stepTimeoutMs + options.bootDeadlineMs);
    const back = await eventAfter(device, "firmware", booted.boot + 1, options.stepTimeoutMs);
    const rolled = await eventAfter(device, "ota-status", back.boot, options.stepTimeoutMs, (e) => e.detail.state === "rolled-back");
    outcomes.get(device.name)!.push(`v3 rolled back (${String(rolled.detail.reason)})`);
  });
  say(`  all ${devices.length} devices gave v3 up at the deadline and run v2.0.0 again. ${counts(tap)}`);

  step(8, "summary");
  say(summaryTable(devices.map((device) => {
    const firmware = [...device.events].reverse().find((e) => e.name === "firmware");
    const valid = [...device.events].reverse().find((e) => e.name === "ota-status" && e.detail.state === "valid" && e.boot === firmware?.boot);
    return {
      device: device.name,
      version: String(firmware?.detail.version ?? "?"),
      state: valid === undefined ? String(firmware?.detail.ota ?? "?") : "valid",
      tally: tap.tally(device.name),
      ota: outcomes.get(device.name)!,
    };
  })));
  say(`\ndone in ${seconds(Date.now() - started)}; stopping devices, verifier and mosquitto and removing the temp folders`);
}

function counts(tap: VerifierTap): string {
  const { accepted, rejected } = tap.totals();
  return `verifier: ${accepted} accepted, ${rejected} rejected`;
}

/** Live counts until `done` holds: redrawn in place on a terminal, a line every few seconds otherwise. */
async function liveCounts(tap: VerifierTap, done: (tallies: VerifierTap["tallies"]) => boolean, timeoutMs: number): Promise<void> {
  const tty = process.stdout.isTTY === true;
  const line = () => `  ${counts(tap)}  (${DEVICE_IDS.map((id) => `${id} ${tap.tally(id).accepted}`).join(", ")})`;
  const deadline = Date.now() + timeoutMs;
  let printed = 0;
  while (!done(tap.tallies)) {
    if (Date.now() > deadline) throw new DemoStepError(`the verifier did not accept telemetry from every device within ${timeoutMs} ms: ${counts(tap)}`);
    if (tty) process.stdout.write(`\r\x1b[K${line()}`);
    else if (Date.now() - printed > 2000) {
      say(line());
      printed = Date.now();
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  if (tty) process.stdout.write("\r\x1b[K");
  say(line());
}

/** Resolves with [reason, detail] once the verifier has rejected one message of `device` for each reason. */
function waitForRejects(tap: VerifierTap, device: string, reasons: readonly string[], timeoutMs: number): Promise<[string, string][]> {
  return new Promise((resolve, reject) => {
    const found = new Map<string, string>();
    const timer = setTimeout(() => {
      tap.off("verdict", listener);
      reject(new DemoStepError(`the verifier did not reject the injected messages within ${timeoutMs} ms (saw: ${[...found.keys()].join(", ") || "none"})`));
    }, timeoutMs);
    const listener = (from: string, verdict: { ok: boolean; reason?: string; detail?: string }) => {
      if (from !== device || verdict.ok || verdict.reason === undefined || !reasons.includes(verdict.reason) || found.has(verdict.reason)) return;
      found.set(verdict.reason, verdict.detail ?? "");
      if (found.size < reasons.length) return;
      clearTimeout(timer);
      tap.off("verdict", listener);
      resolve(reasons.map((reason) => [reason, found.get(reason)!]));
    };
    tap.on("verdict", listener);
  });
}

async function rollout(release: Release, devices: readonly TwinDevice[],
  outcome: (device: TwinDevice, fromBoot: number) => Promise<void>): Promise<void> {
  const progress = progressBars(`v${release.version}`, devices.map((device) => device.name), 100);
  const stop = followProgress(devices, progress);
  try {
    const boots = new Map(devices.map((device) => [device, device.boots]));
    const imageUrl = await publish(release, devices);
    progress.log(`  image at ${imageUrl}; signed release published (retained, QoS 1) to devices/<id>/ota as ${PUBLISHER}`);
    await Promise.all(devices.map((device) => outcome(device, boots.get(device)!)));
  } finally {
    stop();
    progress.stop();
  }
}
