// The fleet run: N device sessions over mutual TLS through mosquitto, spread over a few worker
// processes (bench/fleet-worker.ts), each signing with the firmware's envelope modules; one
// verifier (this process: the service account's shared-subscription client, TelemetryVerifier
// with the provisioning keyring and replay state) checks every message. Rounds of the signed fleet
// and of the unsigned mosquitto_pub/mosquitto_sub baseline alternate; a round's msg/s counts from
// its first message received to its last (connections are set up before, on both sides); the
// table shows the median round.
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface, type Interface } from "node:readline";
import mqtt from "mqtt";
import { startTestBroker } from "../broker/mosquitto.ts";
import { toHex } from "../modules/ota/bytes.ts";
import { PROJECT_ROOT } from "../twin/runtime/manifest.ts";
import { Keyring } from "../verifier/keyring.ts";
import { MemoryReplayStore } from "../verifier/replay-store.ts";
import { TelemetryVerifier } from "../verifier/verifier.ts";
import { runBaselineRound } from "./fleet-baseline.ts";
import { fleetIdentities } from "./fleet-identities.ts";
import type { WorkerConfig } from "./fleet-worker.ts";
import type { Row } from "./report.ts";
import { median, percentile } from "./stats.ts";

export interface FleetOptions {
  readonly devices: number;
  readonly messagesPerDevice: number;
  readonly rounds: number;
  readonly workers: number;
  readonly baselinePublishers: number;
}

export interface FleetResult {
  readonly options: FleetOptions;
  readonly signed: { readonly msgPerS: readonly number[]; readonly sent: number; readonly accepted: number; readonly rejected: number; readonly lost: number;
    readonly latencyMs: { readonly p50: number; readonly p99: number; readonly max: number } };
  readonly baseline: { readonly msgPerS: readonly number[]; readonly sent: number; readonly received: number };
  readonly rows: readonly Row[];
}

const KID = "k1";
const STRAGGLER_MS = 10_000;
const ROUND_TIMEOUT_MS = 120_000;

interface Worker {
  readonly child: ChildProcess;
  readonly lines: Interface;
}

function nextLine(worker: Worker, expected: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onLine = (line: string) => {
      if (line !== expected) return;
      worker.lines.off("line", onLine);
      worker.child.off("exit", onExit);
      resolve();
    };
    const onExit = (code: number | null) => reject(new Error(`fleet worker exited (${code}) before "${expected}"`));
    worker.lines.on("line", onLine);
    worker.child.once("exit", onExit);
  });
}

export async function runFleetBench(options: FleetOptions, progress: (line: string) => void): Promise<FleetResult> {
  const ids = await fleetIdentities(options.devices + options.baselinePublishers, progress);
  const [verifierAccount, baselineAccount] = ids.services;
  const broker = await startTestBroker({ ca: ids.ca, services: { verifier: [verifierAccount!.id, baselineAccount!.id] } });
  const dir = mkdtempSync(join(tmpdir(), "espguard-bench-fleet-"));
  const workers: Worker[] = [];
  const secret = randomBytes(32);
  const url = `mqtts://127.0.0.1:${broker.broker.port}`;
  try {
    const verifier = new TelemetryVerifier({ keys: new Keyring(secret, [KID]).lookup, replay: new MemoryReplayStore(64), maxSkewS: 300 });
    const latencies: number[] = [];
    let firstAccepted = 0;
    let lastAccepted = 0;
    const client = await mqtt.connectAsync(url, {
      ca: ids.ca.certPem, cert: verifierAccount!.certPem, key: verifierAccount!.keyPem, clientId: verifierAccount!.id, clean: true, reconnectPeriod: 0,
    });
    client.on("message", (topic, payload) => {
      const verdict = verifier.check(topic, payload.toString());
      if (!verdict.ok) return;
      const now = performance.timeOrigin + performance.now();
      latencies.push(now - (verdict.envelope.body.sent as number));
      lastAccepted = performance.now();
      if (firstAccepted === 0) firstAccepted = lastAccepted;
    });
    // Subscribed only during signed rounds: the baseline's unsigned messages would cost it CPU and count as rejects.
    const FILTER = "$share/bench/devices/+/telemetry";

    const devices = ids.devices.slice(0, options.devices);
    progress(`connecting ${devices.length} devices over mutual TLS from ${options.workers} worker processes`);
    for (let w = 0; w < options.workers; w++) {
      const config: WorkerConfig = {
        url, caPem: ids.ca.certPem, devices: devices.filter((_, i) => i % options.workers === w), fleetSecretHex: toHex(secret), kid: KID, messages: options.messagesPerDevice,
      };
      const file = join(dir, `worker-${w}.json`);
      writeFileSync(file, JSON.stringify(config), { mode: 0o600 });
      const child = spawn(process.execPath, ["--import", "tsx", join(PROJECT_ROOT, "bench", "fleet-worker.ts"), file], { cwd: PROJECT_ROOT, stdio: ["pipe", "pipe", "inherit"] });
      workers.push({ child, lines: createInterface({ input: child.stdout! }) });
    }
    await Promise.all(workers.map((worker) => nextLine(worker, "ready")));

    const perRound = devices.length * options.messagesPerDevice;
    const baselineSetup = { dir, port: broker.broker.port, caPem: ids.ca.certPem, subscriber: baselineAccount!, publishers: ids.devices.slice(options.devices) };
    const signedRates: number[] = [];
    const baselineRates: number[] = [];
    let baselineReceived = 0;
    // Round 0 warms up both sides (JIT, TLS sessions, the broker's queues) and is not timed; its
    // messages still count towards loss.
    for (let round = 0; round <= options.rounds; round++) {
      const base = await runBaselineRound(baselineSetup, perRound, 5_000);
      baselineReceived += base.received;
      if (round > 0) baselineRates.push(base.received / base.seconds);

      await client.subscribeAsync(FILTER, { qos: 1 });
      const target = verifier.accepted + perRound;
      firstAccepted = 0;
      const done = Promise.all(workers.map((worker) => nextLine(worker, "done")));
      for (const worker of workers) worker.child.stdin!.write("go\n");
      const finished = await Promise.race([done.then(() => true), new Promise<false>((resolve) => setTimeout(() => resolve(false), ROUND_TIMEOUT_MS))]);
      if (!finished) progress(`round ${round}: the device sessions had not sent everything after ${ROUND_TIMEOUT_MS / 1000} s`);
      const deadline = performance.now() + STRAGGLER_MS;
      while (verifier.accepted < target && performance.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
      await client.unsubscribeAsync(FILTER);
      const signedRate = (perRound - (target - verifier.accepted)) / ((lastAccepted - firstAccepted) / 1000);
      const baseRate = base.received / base.seconds;
      if (round > 0) signedRates.push(signedRate);
      progress(`${round === 0 ? "warm-up round" : `round ${round}/${options.rounds}`}: unsigned ${Math.round(baseRate)} msg/s, signed ${Math.round(signedRate)} msg/s`);
    }
    await client.endAsync();

    const sent = perRound * (options.rounds + 1);
    const rejected = Object.values(verifier.rejected).reduce((a, b) => a + b, 0);
    const signed = {
      msgPerS: signedRates, sent, accepted: verifier.accepted, rejected, lost: sent - verifier.accepted,
      latencyMs: { p50: percentile(latencies, 50), p99: percentile(latencies, 99), max: percentile(latencies, 100) },
    };
    const signedRate = median(signedRates);
    const baselineRate = median(baselineRates);
    const suite = `fleet, ${devices.length} devices`;
    return {
      options,
      signed,
      baseline: { msgPerS: baselineRates, sent, received: baselineReceived },
      rows: [
        { suite, metric: "signed + verified msg/s (median round)", value: `${Math.round(signedRate)} msg/s`,
          baseline: `${Math.round(baselineRate)} msg/s unsigned mosquitto_pub×${options.baselinePublishers}`, ratio: signedRate / baselineRate, target: "≥ 0.5" },
        { suite, metric: "loss (sent − accepted), rejected", value: `${signed.lost} of ${sent}, ${rejected} rejected`, baseline: `${sent - baselineReceived} lost unsigned`,
          target: "0", pass: signed.lost === 0 && rejected === 0 },
        { suite, metric: "latency publish → verified p50 / p99", value: `${signed.latencyMs.p50.toFixed(1)} / ${signed.latencyMs.p99.toFixed(1)} ms` },
      ],
    };
  } finally {
    for (const worker of workers) worker.child.stdin!.end();
    await Promise.all(workers.map((worker) => worker.child.exitCode !== null ? undefined : new Promise((resolve) => worker.child.once("exit", resolve))));
    await broker.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
