// `espguard verify`: the telemetry verifier service (docs/verifier.md). Start several with the
// same --group and --state-dir to share the load: they split the messages and share replay state.
import { Command } from "commander";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { assertKeyId, DEFAULT_KID, loadFleetSecret } from "../certs/telemetry-key.ts";
import { DEFAULT_PKI_DIR } from "../certs/store.ts";
import { Keyring } from "../verifier/keyring.ts";
import { FileReplayStore, MAX_FILE_WINDOW } from "../verifier/replay-store.ts";
import { DEFAULT_REORDER_WINDOW } from "../verifier/replay-window.ts";
import { VerifierService } from "../verifier/service.ts";
import { TelemetryVerifier } from "../verifier/verifier.ts";
import { positiveInteger } from "./certs.ts";
import { CliError } from "./errors.ts";

interface VerifyOptions {
  broker: string;
  ca: string;
  cert: string;
  key: string;
  clientId: string;
  group: string;
  fleetSecret: string;
  kids: string;
  stateDir: string;
  window: number;
  maxSkew: number;
  summary: number;
}

function pem(path: string, what: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (error) {
    throw new CliError(`cannot read the ${what} ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
}

async function run(options: VerifyOptions): Promise<void> {
  const kids = options.kids.split(",").map((kid) => kid.trim());
  for (const kid of kids) assertKeyId(kid);
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(options.group)) throw new CliError(`--group ${JSON.stringify(options.group)}: 1–64 of A–Z a–z 0–9 _ -`);
  const tls = { ca: pem(options.ca, "CA certificate"), cert: pem(options.cert, "service certificate"), key: pem(options.key, "service key") };
  const fleetSecret = loadFleetSecret(options.fleetSecret);
  const service = new VerifierService(process.stdout, process.stderr);
  await service.start({ url: options.broker, ...tls, clientId: options.clientId, group: options.group, summaryMs: options.summary * 1000 }, () =>
    new TelemetryVerifier({
      keys: new Keyring(fleetSecret, kids).lookup,
      replay: new FileReplayStore(options.stateDir, options.window),
      maxSkewS: options.maxSkew,
    }));
  await new Promise<void>((resolve) => {
    process.once("SIGINT", resolve);
    process.once("SIGTERM", resolve);
  });
  await service.stop();
}

export function verifyCommand(): Command {
  return new Command("verify")
    .description("verify device telemetry from the broker: JSONL of accepted messages on stdout, a summary on stderr")
    .requiredOption("--broker <url>", "broker URL, e.g. mqtts://127.0.0.1:8883")
    .requiredOption("--ca <pem>", "CA certificate the broker's certificate chains to")
    .requiredOption("--cert <pem>", "the verifier service account's certificate: one account per instance")
    .requiredOption("--key <pem>", "the verifier service account's private key")
    .option("--client-id <id>", "MQTT client id (a broker from espguard broker config uses the certificate CN instead)", `svc.verifier-${process.pid}`)
    .option("--group <name>", "shared subscription group: instances in one group split the messages", "verifiers")
    .option("--fleet-secret <file>", "fleet secret the device keys derive from", join(DEFAULT_PKI_DIR, "fleet.secret"))
    .option("--kids <list>", "key ids in use, comma separated", DEFAULT_KID)
    .option("--state-dir <dir>", "replay state shared by every instance on this machine", ".espguard/verifier")
    .option("--window <n>", "reorder window: how far below the highest accepted seq a late message may arrive", positiveInteger("--window", MAX_FILE_WINDOW), DEFAULT_REORDER_WINDOW)
    .option("--max-skew <s>", "most seconds a message's ts may differ from this clock", positiveInteger("--max-skew"), 300)
    .option("--summary <s>", "seconds between summary lines", positiveInteger("--summary"), 10)
    .action((options: VerifyOptions) => run(options));
}
