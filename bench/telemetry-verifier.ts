// Verifier throughput on one core, against the two baselines TARGETS.md names, measured on the
// same messages in the same run: the seed's Python verify_payload (json + hmac, in python3), and
// Node's createHmac alone over the same signed bytes (the ceiling: what is left when parsing,
// canonical form and replay checks cost nothing). Also bytes per message against the seed's format.
import { spawnSync } from "node:child_process";
import { createHmac, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EnvelopeKey } from "../modules/telemetry/envelope-key.ts";
import { signEnvelope, type EnvelopeBody, parseEnvelope } from "../modules/telemetry/envelope.ts";
import { FileReplayStore, MemoryReplayStore, type ReplayStore } from "../verifier/replay-store.ts";
import { TelemetryVerifier } from "../verifier/verifier.ts";
import { PROJECT_ROOT } from "../twin/runtime/manifest.ts";
import type { Row } from "./report.ts";

// Short rounds, many of them, interleaved, keeping each contender's fastest: on a shared machine
// the minimum is the run least disturbed by other load, and interleaving gives each the same chances.
const MESSAGES = 2_000;
const DEVICES = 100;
const ROUNDS = 80;

export interface Rate {
  readonly name: string;
  readonly msgPerS: number;
}

export interface TelemetryVerifierResult {
  readonly messages: number;
  readonly rates: readonly Rate[];
  readonly ratios: Readonly<Record<string, number>>;
  readonly bytes: { readonly ours: number; readonly seed: number; readonly added: number };
  readonly rows: readonly Row[];
}

// The seed's verify_payload, unchanged but for the key, and its sign_payload for the byte count.
const CLASSIC_PYTHON = join(PROJECT_ROOT, "test", "fixtures", "telemetry", "classic_hmac_json.py");

/** The fastest of `rounds` runs of each contender, taken in turns; seconds per run. */
function bestOf(rounds: number, contenders: Readonly<Record<string, () => void>>): Record<string, number> {
  const best: Record<string, number> = Object.fromEntries(Object.keys(contenders).map((name) => [name, Infinity]));
  for (let i = 0; i < rounds; i++) {
    for (const [name, run] of Object.entries(contenders)) {
      const start = process.hrtime.bigint();
      run();
      best[name] = Math.min(best[name]!, Number(process.hrtime.bigint() - start) / 1e9);
    }
  }
  return best;
}

export function runTelemetryVerifierBench(): TelemetryVerifierResult {
  // One key for every device, so the seed's single-key verifier accepts every message too.
  const secret = randomBytes(32);
  const key = new EnvelopeKey(secret);
  const now = Math.floor(Date.now() / 1000);
  const messages: { topic: string; wire: string; signed: string }[] = [];
  for (let i = 0; i < MESSAGES; i++) {
    const dev = `esp32-${String(i % DEVICES).padStart(3, "0")}`;
    const seq = 1000 + Math.floor(i / DEVICES);
    const body = { dev, kid: "k1", seq, ts: now, temp: Math.round((20 + (i % 97) / 10) * 10) / 10, hum: Math.round((40 + (i % 53) / 3) * 10) / 10 };
    const wire = signEnvelope(body as unknown as EnvelopeBody, key);
    messages.push({ topic: `devices/${dev}/telemetry`, wire, signed: parseEnvelope(wire).signed });
  }

  const dir = mkdtempSync(join(tmpdir(), "espguard-bench-"));
  try {
    writeFileSync(join(dir, "messages.jsonl"), messages.map((m) => m.wire).join("\n") + "\n");
    const python = spawnSync("python3", [CLASSIC_PYTHON, "bench", secret.toString("hex"), join(dir, "messages.jsonl"), String(ROUNDS)], { encoding: "utf8" });
    if (python.status !== 0) throw new Error(`python3 failed: ${python.stderr}`);
    const py = JSON.parse(python.stdout) as { accepted: number; seconds: number; seedBytes: number };
    if (py.accepted !== MESSAGES) throw new Error(`the seed's verifier accepted ${py.accepted} of ${MESSAGES}`);

    const keys = () => key;
    const verify = (store: () => ReplayStore) => () => {
      const verifier = new TelemetryVerifier({ keys, replay: store(), maxSkewS: 300, now: () => now });
      for (const m of messages) verifier.check(m.topic, m.wire);
      if (verifier.accepted !== MESSAGES) throw new Error(`our verifier accepted ${verifier.accepted} of ${MESSAGES}`);
    };
    const { raw, memory } = bestOf(ROUNDS, {
      raw: () => {
        for (const m of messages) createHmac("sha256", secret).update(m.signed).digest();
      },
      memory: verify(() => new MemoryReplayStore(64)),
    });
    const fileStores: FileReplayStore[] = [];
    const { file } = bestOf(3, { file: verify(() => fileStores[fileStores.push(new FileReplayStore(join(dir, `state-${fileStores.length}`), 64)) - 1]!) });
    for (const store of fileStores) {
      store.close();
      rmSync(store.lockDir, { recursive: true, force: true });
    }
    const rate = (name: string, seconds: number | undefined): Rate => ({ name, msgPerS: Math.round(MESSAGES / seconds!) });
    const rates = [
      rate("python verify_payload (seed)", py.seconds),
      rate("node createHmac over signed bytes", raw),
      rate("espguard verifier, memory replay state", memory),
      rate("espguard verifier, shared file replay state", file),
    ];
    const ours = messages.reduce((sum, m) => sum + m.wire.length, 0) / MESSAGES;
    const seed = py.seedBytes / MESSAGES;
    const suite = "telemetry verifier, one core";
    const msgPerS = (seconds: number) => `${Math.round(MESSAGES / seconds)} msg/s`;
    return {
      messages: MESSAGES,
      rates,
      ratios: {
        "verifier / python (target ≥ 2)": py.seconds / memory!,
        "verifier / raw createHmac (target ≥ 0.6)": raw! / memory!,
        "verifier with file state / python": py.seconds / file!,
        "verifier with file state / raw createHmac": raw! / file!,
      },
      bytes: { ours, seed, added: ours - seed },
      rows: [
        { suite, metric: "verifier (memory replay state)", value: msgPerS(memory!), baseline: `${msgPerS(py.seconds)} python seed`, ratio: py.seconds / memory!, target: "≥ 2" },
        { suite, metric: "verifier (memory replay state)", value: msgPerS(memory!), baseline: `${msgPerS(raw!)} raw createHmac`, ratio: raw! / memory!, target: "≥ 0.6" },
        { suite, metric: "verifier (shared file replay state)", value: msgPerS(file!), baseline: `${msgPerS(py.seconds)} python seed`, ratio: py.seconds / file! },
        { suite: "bytes per message", metric: "signed envelope vs seed format", value: `${ours.toFixed(1)} B`, baseline: `${seed.toFixed(1)} B seed (hex sig)`,
          target: "≤ +40 B", pass: ours - seed <= 40 },
      ],
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
