// One verifier instance for the scaling bench: its own process, the verifier `espguard verify`
// runs (TelemetryVerifier, the file replay state shared through --state-dir), fed the messages a
// shared subscription would hand it: every `stride`-th message from `offset`, read from a file.
// Run with the twin's resolver (--import twin/register.ts): firmware modules import Moddable names.
// Protocol on stdio: prints "ready" once loaded; each "go <state-dir>" line on stdin checks every
// message of its share against that state folder, then prints "done <ms> <accepted>".
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { EnvelopeKey } from "../modules/telemetry/envelope-key.ts";
import { FileReplayStore } from "../verifier/replay-store.ts";
import { TelemetryVerifier } from "../verifier/verifier.ts";

export interface InstanceConfig {
  readonly messagesFile: string;
  readonly secretHex: string;
  readonly offset: number;
  readonly stride: number;
  readonly now: number;
}

const config = JSON.parse(process.argv[2]!) as InstanceConfig;
const key = new EnvelopeKey(Buffer.from(config.secretHex, "hex"));
const lines = readFileSync(config.messagesFile, "latin1").split("\n").filter((line) => line.length > 0);
const share: { topic: string; wire: string }[] = [];
for (let i = config.offset; i < lines.length; i += config.stride) {
  const tab = lines[i]!.indexOf("\t");
  share.push({ topic: lines[i]!.slice(0, tab), wire: lines[i]!.slice(tab + 1) });
}

process.stdout.write("ready\n");
for await (const line of createInterface({ input: process.stdin })) {
  const [command, stateDir] = line.split(" ");
  if (command !== "go") continue;
  const replay = new FileReplayStore(stateDir!, 64);
  const verifier = new TelemetryVerifier({ keys: () => key, replay, maxSkewS: 300, now: () => config.now });
  const start = performance.now();
  for (const { topic, wire } of share) verifier.check(topic, wire);
  const ms = performance.now() - start;
  replay.close();
  process.stdout.write(`done ${ms} ${verifier.accepted}\n`);
}
