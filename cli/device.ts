// `espguard device provision <id>`: the device's whole identity as an ESP-IDF NVS partition
// image for the `nvs` partition of partitions.csv, plus the esptool command that flashes it. Issues
// the device certificate when the PKI folder has none yet. The image holds secrets (device key,
// telemetry key, Wi-Fi passphrase): written 0600, never printed.
import { Command } from "commander";
import { X509Certificate } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { isIP } from "node:net";
import { join, resolve } from "node:path";
import { writeAll, type OutputFile } from "../certs/atomic-files.ts";
import { spkiPin } from "../certs/pins.ts";
import { issueDeviceCert, serialNumberHex, type Issued } from "../certs/pki.ts";
import { buildIdentityImage, type DeviceIdentity } from "../certs/provision-image.ts";
import { assertCurrent, DEFAULT_PKI_DIR, identityFiles, PkiStore, validityDays } from "../certs/store.ts";
import { assertKeyId, DEFAULT_KID, deriveTelemetryKey, loadFleetSecret } from "../certs/telemetry-key.ts";
import { checkWifiNetwork, WifiConfigError, type WifiNetwork } from "../certs/wifi.ts";
import { toDeviceId } from "../modules/identity/device-id.ts";
import { DEFAULT_PARTITIONS_CSV, PartitionTable } from "../twin/flash/partition-table.ts";
import { loadManifest } from "../twin/runtime/manifest.ts";
import { loadPublicKey } from "../ota/keystore.ts";
import { parseServers, SntpError } from "../modules/time/sntp.ts";
import { positiveInteger } from "./certs.ts";
import { CliError } from "./errors.ts";

/** Environment variables for passphrases: the command line is visible to every local user in `ps`. */
export const WIFI_PASS_ENV = "ESPGUARD_WIFI_PASS";
export const WIFI2_PASS_ENV = "ESPGUARD_WIFI2_PASS";
const TIME_FLOOR_MAX = 0x7fffffff;
/** Where `espguard ota keygen` puts the public key by default. */
const DEFAULT_OTA_KEY = ".espguard/ota/ota-signing.pub.der";
const HOST_NAME = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

interface ProvisionOptions {
  dir: string;
  out?: string;
  brokerHost: string;
  brokerPort: number;
  wifiSsid: string;
  wifiPassFile?: string;
  wifi2Ssid?: string;
  wifi2PassFile?: string;
  kid: string;
  fleetSecret?: string;
  otaKey?: string;
  ntp?: string;
  timeFloor?: string;
  partitions: string;
  days: number;
  selfTest?: boolean;
  force?: boolean;
}

export function deviceCommand(): Command {
  const device = new Command("device").description("per-device provisioning");
  device.command("provision <id>")
    .description("write the device's identity, broker, pins, telemetry key, time floor and Wi-Fi as an NVS partition image")
    .option("--dir <dir>", "PKI folder (git-ignored)", DEFAULT_PKI_DIR)
    .option("-o, --out <file>", "NVS image to write (default: <dir>/devices/<id>/nvs.bin)")
    .requiredOption("--broker-host <host>", "broker host name or IP address, as the broker certificate names it")
    .option("--broker-port <port>", "broker TLS port", positiveInteger("--broker-port", 65535), 8883)
    .requiredOption("--wifi-ssid <ssid>", "Wi-Fi network name")
    .option("--wifi-pass-file <file>", `file holding the Wi-Fi passphrase (else $${WIFI_PASS_ENV})`)
    .option("--wifi2-ssid <ssid>", "fallback Wi-Fi network name")
    .option("--wifi2-pass-file <file>", `file holding the fallback passphrase (else $${WIFI2_PASS_ENV})`)
    .option("--kid <kid>", "telemetry key id", DEFAULT_KID)
    .option("--fleet-secret <file>", "fleet secret the telemetry key derives from (default: <dir>/fleet.secret)")
    .option("--ota-key <file>", `public key (PEM or DER) that signs firmware (default: ${DEFAULT_OTA_KEY} if it exists)`)
    .option("--ntp <servers>", "NTP servers, \"host[:port] ...\" (default: the firmware manifest's list)")
    .option("--time-floor <when>", "earliest time the device clock may show: ISO date or Unix seconds (default: now)")
    .option("--partitions <csv>", "partition table the image is sized for", DEFAULT_PARTITIONS_CSV)
    .option("--days <n>", "lifetime of a newly issued device certificate, in days", positiveInteger("--days"), 3650)
    .option("--self-test", "burn-in: the device reads its own telemetry back (needs broker config --echo)")
    .option("--force", "replace an existing image")
    .action(async (id: string, options: ProvisionOptions) => provision(id, options));
  return device;
}

async function provision(id: string, options: ProvisionOptions): Promise<void> {
  const deviceId = toDeviceId(id);
  const store = new PkiStore(options.dir);
  const out = resolve(options.out ?? join(store.device(deviceId).dir, "nvs.bin"));
  assertKeyId(options.kid);
  if (isIP(options.brokerHost) === 0 && !HOST_NAME.test(options.brokerHost)) {
    throw new CliError(`--broker-host ${JSON.stringify(options.brokerHost)} is neither a host name nor an IP address`);
  }
  const wifi = checkWifiNetwork({ ssid: options.wifiSsid, passphrase: passphrase(options.wifiPassFile, WIFI_PASS_ENV, "--wifi-pass-file") }, "Wi-Fi");
  let fallbackWifi: WifiNetwork | undefined;
  if (options.wifi2Ssid !== undefined) {
    fallbackWifi = checkWifiNetwork({ ssid: options.wifi2Ssid, passphrase: passphrase(options.wifi2PassFile, WIFI2_PASS_ENV, "--wifi2-pass-file") }, "fallback Wi-Fi");
  } else if (options.wifi2PassFile !== undefined) {
    throw new CliError("--wifi2-pass-file needs --wifi2-ssid");
  }
  const timeFloor = parseTimeFloor(options.timeFloor);
  if (options.ntp !== undefined) parseNtp(options.ntp);
  const nvs = PartitionTable.load(options.partitions).require("nvs");
  const domain = firmwareDomain();

  const now = new Date();
  const ca = store.loadCa(now);
  const { server, backupKeyPkcs8Der } = store.loadServer();
  const serverCert = new X509Certificate(server.certPem);
  // The device matches the broker name against SAN entries only: catch a mismatch here, not in the field.
  const named = isIP(options.brokerHost) === 0 ? serverCert.checkHost(options.brokerHost, { subject: "never" }) !== undefined : serverCert.checkIP(options.brokerHost) !== undefined;
  if (!named) {
    throw new CliError(`the broker certificate ${store.serverPem} does not name ${options.brokerHost} (${serverCert.subjectAltName ?? "no SAN"}), so the device would refuse the broker; ` +
      `re-issue it with: espguard certs server --force --dns/--ip ...`);
  }
  const fleetSecret = loadFleetSecret(options.fleetSecret ?? store.fleetSecret);
  const otaKeyPath = options.otaKey ?? (existsSync(DEFAULT_OTA_KEY) ? DEFAULT_OTA_KEY : undefined);
  const otaKeySpki = otaKeyPath === undefined ? undefined : loadPublicKey(otaKeyPath, "--ota-key");

  const files: OutputFile[] = [];
  let cert = store.loadDevice(deviceId);
  if (cert === undefined) {
    cert = await issueDeviceCert(ca, { deviceId, ...validityDays(options.days, now.getTime()) });
    files.push(...identityFiles(cert, store.device(deviceId)));
  } else {
    assertUsable(store, deviceId, cert, ca, now);
  }

  const identity: DeviceIdentity = {
    deviceId,
    brokerHost: options.brokerHost,
    brokerPort: options.brokerPort,
    caDer: ca.certDer,
    certDer: cert.certDer,
    keyPkcs8Der: cert.keyPkcs8Der,
    pins: [spkiPin({ certPem: server.certPem }), spkiPin({ keyPkcs8Der: backupKeyPkcs8Der })],
    hmacKid: options.kid,
    hmacKey: deriveTelemetryKey(fleetSecret, deviceId, options.kid),
    timeFloor,
    wifi,
    ...(fallbackWifi === undefined ? {} : { fallbackWifi }),
    selfTest: options.selfTest === true,
    ...(otaKeySpki === undefined ? {} : { otaKeySpki }),
    ...(options.ntp === undefined ? {} : { ntp: options.ntp.trim() }),
  };
  const image = buildIdentityImage(identity, nvs.size, domain);
  files.push({ path: out, data: image, mode: 0o600 });
  writeAll(files, options.force === true);

  const say = (line: string): void => void process.stdout.write(`${line}\n`);
  say(`wrote ${out}: ${image.length}-byte NVS image (partition "nvs", namespace "${domain}") for device ${deviceId}`);
  say(`  certificate serial ${serialNumberHex(cert)}${files.length > 1 ? " (newly issued)" : ""}; broker ${options.brokerHost}:${options.brokerPort}; 2 broker pins`);
  say(`  telemetry key id ${options.kid} (HKDF-SHA256 from the fleet secret); time floor ${new Date(timeFloor * 1000).toISOString()}`);
  say(`  Wi-Fi "${wifi.ssid}"${fallbackWifi === undefined ? "" : `, fallback "${fallbackWifi.ssid}"`}`);
  if (otaKeySpki === undefined) say(`  no OTA signing key (--ota-key, or ${DEFAULT_OTA_KEY} from \`espguard ota keygen\`): this device will refuse every update`);
  else say(`  OTA signing key ${otaKeyPath}`);
  say("flash it with:");
  say(`  esptool.py --chip esp32 write_flash 0x${nvs.offset.toString(16)} ${out}`);
}

function passphrase(file: string | undefined, env: string, option: string): string {
  if (file !== undefined) {
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch (error) {
      throw new WifiConfigError(`cannot read the passphrase file ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
    }
    return text.replace(/\r?\n$/, "");
  }
  const value = process.env[env];
  if (value === undefined) throw new WifiConfigError(`no Wi-Fi passphrase: pass ${option} <file> or set $${env}`);
  return value;
}

function parseTimeFloor(text: string | undefined): number {
  const seconds = text === undefined ? Math.floor(Date.now() / 1000)
    : /^[0-9]+$/.test(text) ? Number(text) : Math.floor(Date.parse(text) / 1000);
  if (!Number.isSafeInteger(seconds) || seconds < 1 || seconds > TIME_FLOOR_MAX) {
    throw new CliError(`--time-floor ${JSON.stringify(text)} must be an ISO date or Unix seconds between 1970 and 2038-01-19 (the device stores it as a 32-bit integer)`);
  }
  return seconds;
}

// The firmware's own parser: what it would refuse at boot is refused here instead.
function parseNtp(text: string): void {
  try {
    parseServers(text);
  } catch (error) {
    if (error instanceof SntpError) throw new CliError(`--ntp: ${error.message}`);
    throw error;
  }
}

function firmwareDomain(): string {
  const domain = (loadManifest().config.espguard as { domain?: unknown } | undefined)?.domain;
  if (typeof domain !== "string") throw new CliError("manifest.json config.espguard.domain is missing: the NVS namespace the firmware reads");
  return domain;
}

function assertUsable(store: PkiStore, deviceId: string, cert: Issued, ca: Issued, now: Date): void {
  const x509 = new X509Certificate(cert.certPem);
  const reissue = `issue a new one with: espguard certs device ${deviceId} --force --dir ${store.dir}`;
  if (!x509.checkIssued(new X509Certificate(ca.certPem)) || !x509.verify(new X509Certificate(ca.certPem).publicKey)) {
    throw new CliError(`device ${deviceId}'s certificate was not issued by the current CA; ${reissue}`);
  }
  if (x509.subject !== `CN=${deviceId}`) throw new CliError(`device ${deviceId}'s certificate names ${x509.subject}; ${reissue}`);
  assertCurrent(x509, `device ${deviceId}'s certificate`, store.device(deviceId).certPem, now, reissue);
  const serial = serialNumberHex(cert);
  if (store.loadRevocations().some((entry) => entry.serial === serial)) throw new CliError(`device ${deviceId}'s certificate (serial ${serial}) is revoked; ${reissue}`);
}
