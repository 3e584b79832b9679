// `espguard ota`: make, sign, check, serve and announce OTA images (docs/ota-image.md,
// docs/runbooks/shipping-a-release.md). Each verb is a thin layer over one module in ota/.
import { Command, Option } from "commander";
import { mkdirSync } from "node:fs";
import { resolve } from "node:path";
import { toHex } from "../modules/ota/bytes.ts";
import { DIGEST_SIZE, isTargetChip, type SecurityCounter, type TargetChip, toFirmwareVersion, toSecurityCounter, TRAILER_SIZE } from "../modules/ota/image-format.ts";
import { OtaRejected } from "../modules/ota/rejected.ts";
import { ESP_IMAGE_MAGIC } from "../ota/esp32-app-image.ts";
import { checkInput, checkOutput, readInput, readTextInput, writeOutput } from "../ota/files.ts";
import { attachSignature, buildUnsignedImage, readUnsignedImage, signImage } from "../ota/image-build.ts";
import { keyFiles, loadPublicKey, loadSigningKey, writeNewKey } from "../ota/keystore.ts";
import { checkReleaseMessage, deviceIdsFromFile, deviceIdsFromPki, publishRelease } from "../ota/publish.ts";
import { releaseForImage, signRelease } from "../ota/release-sign.ts";
import { startOtaServer } from "../ota/serve.ts";
import { rawSignature } from "../ota/signature-file.ts";
import { PAYLOAD_TYPE_FOR, verifyImageFile } from "../ota/verify-file.ts";
import { DEFAULT_PKI_DIR } from "../certs/store.ts";
import { CliError } from "./errors.ts";

const DEFAULT_KEY_DIR = ".espguard/ota";
const REJECTED_EXIT_CODE = 1;

function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

function parseCounter(text: string, option: string): SecurityCounter {
  if (!/^(0|[1-9][0-9]{0,9})$/.test(text) || Number(text) > 0xffffffff)
    throw new CliError(`${option} ${JSON.stringify(text)} is not a security counter: give an integer from 0 to 4294967295`);
  return toSecurityCounter(Number(text));
}

function parseTarget(text: string | undefined): TargetChip | undefined {
  if (text === undefined || isTargetChip(text)) return text;
  throw new CliError(`--target ${JSON.stringify(text)}: give esp32 (an app image from mcconfig / idf.py) or twin (a bundle from \`espguard firmware bundle\`)`);
}

function parsePort(text: string): number {
  if (!/^[0-9]{1,5}$/.test(text) || Number(text) > 65535) throw new CliError(`--port ${JSON.stringify(text)} is not a TCP port (0 to 65535)`);
  return Number(text);
}

function differentFiles(input: string, output: string): void {
  if (resolve(input) === resolve(output)) throw new CliError(`--out ${output} is the input file: write the result to a new file`);
}

const forceOption = (): Option => new Option("--force", "replace output files that already exist").default(false);

function keygenCommand(): Command {
  return new Command("keygen")
    .description("make a P-256 signing key: private key PEM (mode 0600), public key as PEM and DER for devices, and its key id")
    .option("--out <dir>", "folder for the key files (created mode 0700 if missing)", DEFAULT_KEY_DIR)
    .option("--name <name>", "file name stem", "ota-signing")
    .addOption(forceOption())
    .action((options: { out: string; name: string; force: boolean }) => {
      if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(options.name)) throw new CliError(`--name ${JSON.stringify(options.name)}: use letters, digits, . _ -`);
      mkdirSync(options.out, { recursive: true, mode: 0o700 });
      const files = keyFiles(options.out, options.name);
      const key = writeNewKey(files, options.force);
      say(`private key  ${files.privatePem} (mode 0600: keep it offline, never copy it to a device)`);
      say(`public key   ${files.publicPem}, ${files.publicDer} (DER SubjectPublicKeyInfo: what devices trust)`);
      say(`key id       ${key.keyId}`);
    });
}

function buildCommand(): Command {
  return new Command("build")
    .description("wrap firmware in an unsigned OTA image (header ‖ payload) and print the digest to sign")
    .requiredOption("--firmware <file>", "xs_esp32.bin (ESP32 app image) or a twin bundle (.mjs from `espguard firmware bundle`)")
    .requiredOption("--version <semver>", "firmware version; for ESP32 it must equal the app image's esp_app_desc_t version")
    .requiredOption("--counter <n>", "security counter: devices install only a counter above the one they run")
    .option("--target <chip>", "esp32 or twin (default: esp32 if the file is an app image, twin otherwise)")
    .option("--build-id <id>", "build id, e.g. a git commit (default: 16 hex digits of the payload's SHA-256)")
    .requiredOption("--out <file>", "the unsigned image to write")
    .addOption(forceOption())
    .action((options: { firmware: string; version: string; counter: string; target?: string; buildId?: string; out: string; force: boolean }) => {
      const counter = parseCounter(options.counter, "--counter");
      toFirmwareVersion(options.version);
      const named = parseTarget(options.target);
      differentFiles(options.firmware, options.out);
      checkOutput(options.out, options.force, "--out");
      const payload = readInput(options.firmware, "--firmware");
      const target = named ?? (payload[0] === ESP_IMAGE_MAGIC ? "esp32" : "twin");
      const unsigned = buildUnsignedImage({
        payload, payloadType: PAYLOAD_TYPE_FOR[target], target, version: options.version, counter,
        ...(options.buildId === undefined ? {} : { buildId: options.buildId }),
      });
      writeOutput(options.out, unsigned.bytes, "--out", { force: options.force });
      say(`wrote ${options.out}: ${target} ${PAYLOAD_TYPE_FOR[target]} ${unsigned.header.version}, counter ${unsigned.header.counter}, ` +
        `build ${unsigned.header.buildId}, payload ${payload.length} bytes`);
      say(`digest ${unsigned.digest}`);
    });
}

function digestCommand(): Command {
  return new Command("digest")
    .description("print the digest of an unsigned image: the value a signer on another machine or an HSM signs")
    .requiredOption("--in <file>", "the unsigned image")
    .option("--out <file>", "also write the digest as 32 binary bytes (for `openssl pkeyutl -sign`)")
    .addOption(forceOption())
    .action((options: { in: string; out?: string; force: boolean }) => {
      const unsigned = readUnsignedImage(readInput(options.in, "--in (the unsigned image)"));
      if (options.out !== undefined) {
        differentFiles(options.in, options.out);
        writeOutput(options.out, Buffer.from(unsigned.digest, "hex"), "--out", { force: options.force });
      }
      say(unsigned.digest);
    });
}

function signCommand(): Command {
  return new Command("sign")
    .description("sign an unsigned image with a private key on this machine")
    .requiredOption("--key <pem>", "P-256 private key (mode 0600)")
    .requiredOption("--in <file>", "the unsigned image")
    .requiredOption("--out <file>", "the signed image to write")
    .addOption(forceOption())
    .action((options: { key: string; in: string; out: string; force: boolean }) => {
      differentFiles(options.in, options.out);
      checkOutput(options.out, options.force, "--out");
      const key = loadSigningKey(options.key, "--key");
      const unsigned = readUnsignedImage(readInput(options.in, "--in (the unsigned image)"));
      writeOutput(options.out, signImage(unsigned, key), "--out", { force: options.force });
      say(`wrote ${options.out}: signed by key ${key.keyId}`);
    });
}

function attachCommand(): Command {
  return new Command("attach")
    .description("complete an unsigned image with a signature made elsewhere (raw r ‖ s or DER), checked as a device checks it")
    .requiredOption("--in <file>", "the unsigned image")
    .requiredOption("--signature <file>", "signature over the image digest: 64 bytes raw r ‖ s, or DER")
    .requiredOption("--pubkey <file>", "the signer's public key, PEM or DER")
    .requiredOption("--out <file>", "the signed image to write")
    .addOption(forceOption())
    .action((options: { in: string; signature: string; pubkey: string; out: string; force: boolean }) => {
      differentFiles(options.in, options.out);
      checkOutput(options.out, options.force, "--out");
      const spki = loadPublicKey(options.pubkey, "--pubkey");
      const unsigned = readUnsignedImage(readInput(options.in, "--in (the unsigned image)"));
      const signature = rawSignature(readInput(options.signature, "--signature"));
      writeOutput(options.out, attachSignature(unsigned, signature, spki), "--out", { force: options.force });
      say(`wrote ${options.out}: signature verified`);
    });
}

function verifyCommand(): Command {
  return new Command("verify")
    .description("check a signed image exactly as a device does; exit code 1 and the reason when a device would refuse it")
    .argument("<image>", "the signed image")
    .requiredOption("--pubkey <file>", "the public key devices trust, PEM or DER")
    .option("--counter <n>", "the security counter devices run now: the image must be above it")
    .option("--target <chip>", "the devices' chip, esp32 or twin (default: the one the header names)")
    .action(async (image: string, options: { pubkey: string; counter?: string; target?: string }) => {
      const target = parseTarget(options.target);
      const acceptedCounter = options.counter === undefined ? undefined : parseCounter(options.counter, "--counter");
      const spki = loadPublicKey(options.pubkey, "--pubkey");
      checkInput(image, "<image>");
      try {
        const verified = await verifyImageFile(image, {
          spki, ...(target === undefined ? {} : { target }), ...(acceptedCounter === undefined ? {} : { acceptedCounter }),
        });
        const h = verified.header;
        say(`OK ${image}: ${h.target} ${h.payloadType} ${h.version}, counter ${h.counter}, build ${h.buildId}, ${verified.imageSize} bytes`);
        say(`digest ${verified.digest}`);
        say(`key id ${verified.keyId}`);
      } catch (error) {
        if (error instanceof OtaRejected) throw new CliError(`rejected ${image}: ${error.message}`, REJECTED_EXIT_CODE);
        throw error;
      }
    });
}

function serveCommand(): Command {
  return new Command("serve")
    .description("serve signed images over HTTPS with Range support, set up for the device's TLS; Ctrl-C stops")
    .requiredOption("--dir <dir>", "folder of signed images; a file dir/a/b.bin is https://host:port/a/b.bin")
    .requiredOption("--cert <pem>", "server certificate (RSA, with the host name in its SAN) followed by its CA chain")
    .requiredOption("--key <pem>", "the server certificate's private key")
    .option("--port <port>", "TCP port (0: any free port)", "8443")
    .option("--host <address>", "address to listen on", "0.0.0.0")
    .action(async (options: { dir: string; cert: string; key: string; port: string; host: string }) => {
      const port = parsePort(options.port);
      const server = await startOtaServer({
        dir: options.dir,
        cert: readTextInput(options.cert, "--cert"),
        key: readTextInput(options.key, "--key"),
        port, host: options.host,
        log: (line) => say(`${new Date().toISOString()} ${line}`),
      });
      say(`serving ${resolve(options.dir)} on https://${options.host}:${server.port}/`);
      await new Promise<void>((done) => {
        const stop = (): void => {
          process.off("SIGINT", stop);
          process.off("SIGTERM", stop);
          void server.close().then(done);
        };
        process.on("SIGINT", stop);
        process.on("SIGTERM", stop);
      });
    });
}

function releaseCommand(): Command {
  return new Command("release")
    .description("make the signed release message that announces a signed image at a URL")
    .requiredOption("--image <file>", "the signed image devices will download")
    .requiredOption("--url <https-url>", "where `ota serve` (or any HTTPS server) offers it")
    .requiredOption("--key <pem>", "release signing key (P-256, mode 0600), trusted by the devices")
    .requiredOption("--out <file>", "the release message (JSON) to write")
    .addOption(forceOption())
    .action((options: { image: string; url: string; key: string; out: string; force: boolean }) => {
      differentFiles(options.image, options.out);
      checkOutput(options.out, options.force, "--out");
      const key = loadSigningKey(options.key, "--key");
      const image = readInput(options.image, "--image");
      const release = releaseForImage(image, options.url, key);
      const digestField = image.subarray(image.length - TRAILER_SIZE, image.length - TRAILER_SIZE + DIGEST_SIZE);
      if (toHex(digestField) !== release.sha256)
        throw new CliError(`--image ${options.image} is damaged: its digest field does not match its header and payload; ` +
          "rebuild and re-sign it, and check it with `espguard ota verify`");
      writeOutput(options.out, `${signRelease(release, key)}\n`, "--out", { force: options.force });
      say(`wrote ${options.out}: ${release.target} ${release.version}, counter ${release.counter}, ${release.size} bytes at ${release.url}`);
    });
}

function publishCommand(): Command {
  return new Command("publish")
    .description("publish a release message, retained with QoS 1, to devices/<id>/ota of one device or of the fleet")
    .requiredOption("--release <file>", "the release message `ota release` wrote")
    .requiredOption("--broker <url>", "mqtts://host:port")
    .requiredOption("--ca <pem>", "CA certificate the broker's certificate chains to")
    .requiredOption("--cert <pem>", "service account certificate (allowed to write devices/+/ota)")
    .requiredOption("--key <pem>", "service account private key")
    .option("--device <id>", "publish to this device")
    .option("--fleet", "publish to every device: ids from --devices, else every device of the PKI store")
    .option("--devices <file>", "with --fleet: device ids, one per line (# comments)")
    .option("--pki <dir>", "with --fleet and no --devices: the PKI store of `espguard certs`", DEFAULT_PKI_DIR)
    .option("--timeout <ms>", "bound on connecting and on each acknowledgement", "10000")
    .action(async (options: {
      release: string; broker: string; ca: string; cert: string; key: string; device?: string; fleet?: boolean; devices?: string; pki: string;
      timeout: string;
    }) => {
      if ((options.device === undefined) === (options.fleet !== true))
        throw new CliError("give exactly one of --device <id> or --fleet");
      if (options.devices !== undefined && options.fleet !== true) throw new CliError("--devices goes with --fleet");
      const timeoutMs = Number(options.timeout);
      if (!Number.isInteger(timeoutMs) || timeoutMs < 1) throw new CliError(`--timeout ${JSON.stringify(options.timeout)} is not a number of milliseconds`);
      const message = readTextInput(options.release, "--release").trim();
      const release = checkReleaseMessage(message);
      const deviceIds = options.device !== undefined ? [options.device]
        : options.devices !== undefined ? deviceIdsFromFile(options.devices) : deviceIdsFromPki(options.pki);
      await publishRelease({
        message, broker: options.broker, deviceIds, timeoutMs,
        ca: readTextInput(options.ca, "--ca"),
        cert: readTextInput(options.cert, "--cert"),
        key: readTextInput(options.key, "--key"),
        onPublished: (_id, topic) => say(`published ${release.version} (counter ${release.counter}) to ${topic}`),
      });
      say(`release ${release.version} published to ${deviceIds.length} device${deviceIds.length === 1 ? "" : "s"}`);
    });
}

export function otaCommand(): Command {
  return new Command("ota")
    .description("signed OTA images: keygen → build → sign (or digest + attach) → verify → serve → release → publish")
    .addCommand(keygenCommand())
    .addCommand(buildCommand())
    .addCommand(digestCommand())
    .addCommand(signCommand())
    .addCommand(attachCommand())
    .addCommand(verifyCommand())
    .addCommand(serveCommand())
    .addCommand(releaseCommand())
    .addCommand(publishCommand());
}
