// `espguard telemetry sign|verify`: one message at a time, for debugging a device or a back end
// by hand. The same envelope code as the firmware and the verifier; nothing is written to disk.
import { Command, InvalidArgumentError } from "commander";
import { readFileSync } from "node:fs";
import { deriveTelemetryKey, loadFleetSecret } from "../certs/telemetry-key.ts";
import { CanonicalJsonError, isPlainObject } from "../modules/telemetry/canonical-json.ts";
import { signEnvelope, verifyEnvelope, EnvelopeSizeError, type EnvelopeBody } from "../modules/telemetry/envelope.ts";
import { EnvelopeHeaderError } from "../modules/telemetry/envelope-header.ts";
import { EnvelopeKey, EnvelopeKeyError, MIN_KEY_BYTES } from "../modules/telemetry/envelope-key.ts";
import { CliError } from "./errors.ts";

/** A telemetry key file: the key as hex digits on one line (as `espguard device provision` derives it). */
export function loadKeyFile(path: string): EnvelopeKey {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    throw new CliError(`cannot read the key file ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  const hex = text.trim();
  if (!/^(?:[0-9a-fA-F]{2})+$/.test(hex) || hex.length < 2 * MIN_KEY_BYTES)
    throw new CliError(`${path} is not a telemetry key: it must hold at least ${MIN_KEY_BYTES} bytes as hex digits on one line`);
  try {
    return new EnvelopeKey(Buffer.from(hex, "hex"));
  } catch (error) {
    if (error instanceof EnvelopeKeyError) throw new CliError(error.message);
    throw error;
  }
}

function integer(flag: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^[0-9]+$/.test(value) || !Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError(`${flag} must be an integer from 1 to 2^53 − 1`);
    return n;
  };
}

interface SignOptions { keyFile?: string; fleetSecret?: string; dev: string; kid: string; seq: number; ts?: number | true }
interface VerifyOptions { keyFile?: string; fleetSecret?: string; topic?: string }

function keyFor(options: { keyFile?: string; fleetSecret?: string }, dev: string, kid: string): EnvelopeKey {
  if ((options.keyFile === undefined) === (options.fleetSecret === undefined))
    throw new CliError("give exactly one of --key-file (the device's key, hex) or --fleet-secret (derive it from the device id and kid)");
  if (options.keyFile !== undefined) return loadKeyFile(options.keyFile);
  return new EnvelopeKey(deriveTelemetryKey(loadFleetSecret(options.fleetSecret!), dev, kid));
}

function sign(bodyText: string, options: SignOptions): void {
  let reading: unknown;
  try {
    reading = JSON.parse(bodyText);
  } catch (error) {
    throw new CliError(`the reading is not JSON (${(error as Error).message}); quote it for the shell, e.g. '{"temp":23.5}'`);
  }
  if (!isPlainObject(reading)) throw new CliError(`the reading must be a JSON object of fields, e.g. '{"temp":23.5}'`);
  for (const field of ["dev", "kid", "seq", "ts"])
    if (Object.hasOwn(reading, field)) throw new CliError(`the reading has a "${field}" field: pass it as --${field}`);
  const ts = options.ts === true ? Math.floor(Date.now() / 1000) : options.ts;
  const body = { ...reading, dev: options.dev, kid: options.kid, seq: options.seq, ...(ts === undefined ? {} : { ts }) } as EnvelopeBody;
  const key = keyFor(options, options.dev, options.kid);
  try {
    process.stdout.write(`${signEnvelope(body, key)}\n`);
  } catch (error) {
    if (error instanceof EnvelopeHeaderError || error instanceof CanonicalJsonError || error instanceof EnvelopeSizeError) throw new CliError(error.message);
    throw error;
  }
}

function verify(wire: string, options: VerifyOptions): void {
  const result = verifyEnvelope(wire, (dev, kid) => keyFor(options, dev, kid));
  if (!result.ok) throw new CliError(`rejected (${result.reason}): ${result.detail}`, 1);
  const { header, body } = result.envelope;
  if (options.topic !== undefined && options.topic !== `devices/${header.dev}/telemetry`)
    throw new CliError(`rejected (dev-mismatch): dev "${header.dev}" does not belong on ${options.topic}`, 1);
  process.stdout.write(`${JSON.stringify(body)}\n`);
  process.stderr.write(`ok: dev ${header.dev}, kid ${header.kid}, seq ${header.seq}, ${header.ts === undefined ? "no ts (clock untrusted)" : `ts ${new Date(header.ts * 1000).toISOString()}`}\n`);
}

export function telemetryCommand(): Command {
  const telemetry = new Command("telemetry").description("sign or verify one telemetry message (docs/telemetry-envelope.md)");
  telemetry.command("sign <reading>")
    .description("sign a reading (a JSON object) as a device would; prints the wire message")
    .option("--key-file <file>", "the device's telemetry key, hex")
    .option("--fleet-secret <file>", "derive the device's key from the fleet secret instead")
    .requiredOption("--dev <id>", "device id")
    .requiredOption("--kid <kid>", "key id")
    .requiredOption("--seq <n>", "message counter", integer("--seq"))
    .option("--ts [seconds]", "unix seconds from a trusted clock (without a value: now)", integer("--ts"))
    .action((reading: string, options: SignOptions) => sign(reading, options));
  telemetry.command("verify <wire>")
    .description("check one wire message; prints its fields, or the reject reason with exit code 1")
    .option("--key-file <file>", "the device's telemetry key, hex")
    .option("--fleet-secret <file>", "derive the device's key from the fleet secret instead")
    .option("--topic <topic>", "the topic it arrived on: also check that dev matches it")
    .action((wire: string, options: VerifyOptions) => verify(wire, options));
  return telemetry;
}
