// Verifier scaling: the same verifier as one instance, then as two instances on two cores, each
// handed every other message as mosquitto's shared subscription hands them out (round robin, not
// by device), both sharing one replay state folder as `espguard verify --state-dir` instances do.
// The broker and TLS are left out on purpose: on this 2-core machine they would take the second
// core's time from the second instance; the fleet run measures the path through mosquitto.
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface, type Interface } from "node:readline";
import { EnvelopeKey } from "../modules/telemetry/envelope-key.ts";
import { type EnvelopeBody, signEnvelope } from "../modules/telemetry/envelope.ts";
import { FileReplayStore } from "../verifier/replay-store.ts";
import { PROJECT_ROOT } from "../twin/runtime/manifest.ts";
import type { Row } from "./report.ts";
import { median } from "./stats.ts";
import type { InstanceConfig } from "./verifier-instance.ts";

const DEVICES = 200;

export interface VerifierScalingResult {
  readonly messages: number;
  readonly oneInstanceMsgPerS: readonly number[];
  readonly twoInstancesMsgPerS: readonly number[];
  readonly rows: readonly Row[];
}

interface Instance {
  readonly child: ChildProcess;
  readonly lines: Interface;
  next(): Promise<string>;
}

function startInstance(config: InstanceConfig): Instance {
  const child = spawn(process.execPath,
    ["--import", "tsx", "--import", join(PROJECT_ROOT, "twin", "register.ts"), join(PROJECT_ROOT, "bench", "verifier-instance.ts"), JSON.stringify(config)],
    { cwd: PROJECT_ROOT, stdio: ["pipe", "pipe", "inherit"] });
  const lines = createInterface({ input: child.stdout! });
  const iterator = lines[Symbol.asyncIterator]();
  return {
    child, lines,
    next: async () => {
      const { value, done } = await iterator.next();
      if (done) throw new Error("a verifier instance exited early");
      return value as string;
    },
  };
}

/** Runs every instance on a fresh state folder at once; msg/s over the slowest one's time. */
async function round(instances: readonly Instance[], root: string, trial: string, messages: number): Promise<number> {
  const stateDir = join(root, `state-${trial}`);
  try {
    for (const instance of instances) instance.child.stdin!.write(`go ${stateDir}\n`);
    const results = await Promise.all(instances.map((instance) => instance.next()));
    let accepted = 0;
    let slowest = 0;
    for (const line of results) {
      const [, ms, count] = line.split(" ");
      slowest = Math.max(slowest, Number(ms));
      accepted += Number(count);
    }
    if (accepted !== messages) throw new Error(`the instances accepted ${accepted} of ${messages}`);
    return Math.round(messages / (slowest / 1000));
  } finally {
    rmSync(new FileReplayStore(stateDir, 64).lockDir, { recursive: true, force: true });
    rmSync(stateDir, { recursive: true, force: true });
  }
}

export async function runVerifierScalingBench(messages: number, trials: number): Promise<VerifierScalingResult> {
  const secret = randomBytes(32);
  const key = new EnvelopeKey(secret);
  const now = Math.floor(Date.now() / 1000);
  const root = mkdtempSync(join(tmpdir(), "espguard-scaling-"));
  const instances: Instance[] = [];
  try {
    const lines: string[] = [];
    for (let i = 0; i < messages; i++) {
      const dev = `esp32-${String(i % DEVICES).padStart(3, "0")}`;
      const body = { dev, kid: "k1", seq: 1 + Math.floor(i / DEVICES), ts: now, temp: Math.round((20 + (i % 97) / 10) * 10) / 10 };
      lines.push(`devices/${dev}/telemetry\t${signEnvelope(body as unknown as EnvelopeBody, key)}`);
    }
    const messagesFile = join(root, "messages.tsv");
    writeFileSync(messagesFile, `${lines.join("\n")}\n`);
    const base = { messagesFile, secretHex: secret.toString("hex"), now };
    const single = startInstance({ ...base, offset: 0, stride: 1 });
    const pair = [startInstance({ ...base, offset: 0, stride: 2 }), startInstance({ ...base, offset: 1, stride: 2 })];
    instances.push(single, ...pair);
    for (const instance of instances) if ((await instance.next()) !== "ready") throw new Error("a verifier instance did not start");
    // an untimed round each first, so both have compiled their hot paths
    await round([single], root, "warm-1", messages);
    await round(pair, root, "warm-2", messages);
    const one: number[] = [];
    const two: number[] = [];
    for (let trial = 0; trial < trials; trial++) {
      one.push(await round([single], root, `1-${trial}`, messages));
      two.push(await round(pair, root, `2-${trial}`, messages));
    }
    const oneRate = median(one);
    const twoRate = median(two);
    return {
      messages, oneInstanceMsgPerS: one, twoInstancesMsgPerS: two,
      rows: [{
        suite: "verifier scaling", metric: "two instances, shared file replay state (median)", value: `${twoRate} msg/s`,
        baseline: `${oneRate} msg/s one instance`, ratio: twoRate / oneRate, target: "≥ 1.8",
      }],
    };
  } finally {
    for (const instance of instances) instance.child.kill();
    rmSync(root, { recursive: true, force: true });
  }
}
