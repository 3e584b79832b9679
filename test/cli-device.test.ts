// `espguard device provision` run as a child process: the NVS image it writes holds the device's
// whole identity, mounts cleanly (strict) in our ESP-IDF NVS reader, carries a telemetry key equal
// to OpenSSL's HKDF of the fleet secret, boots a twin device that reads it as its config, and every
// bad input is refused with nothing written.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { ProvisionKey } from "../certs/provision-image.ts";
import { createCa } from "../certs/pki.ts";
import { MemoryFlash } from "../twin/flash/flash-file.ts";
import { NvsPartition, type NvsTypedValue } from "../twin/flash/nvs.ts";
import { PartitionTable } from "../twin/flash/partition-table.ts";
import { firmwareDomain } from "../twin/device/provision.ts";
import type { TwinDevice } from "../twin/device/supervisor.ts";
import { bundleFirmware } from "../twin/runtime/bundle.ts";
import { espguard, espguardOk, treeFingerprint } from "./support/espguard-cli.ts";
import { factoryTwin, type FactoryFlash } from "./support/provisioned-twin.ts";

const root = mkdtempSync(join(tmpdir(), "espguard-cli-device-"));
const project = join(root, "project");
const pki = join(project, ".espguard", "pki");
const PASS = "correct horse battery";
const PASS2 = "fallback-pass-42";
const devices: TwinDevice[] = [];
let factory: FactoryFlash;

before(async () => {
  mkdirSync(project);
  await espguardOk(project, ["certs", "init"]);
  await espguardOk(project, ["certs", "server", "--dns", "localhost", "--ip", "127.0.0.1"]);
  writeFileSync(join(root, "wifi.pass"), `${PASS}\n`, { mode: 0o600 });
  writeFileSync(join(root, "wifi2.pass"), PASS2, { mode: 0o600 });
  factory = factoryTwin("dev-a", join(root, "twin-dev-a"), await bundleFirmware({ format: "esm" }));
  writeFileSync(join(root, "ota.der"), factory.otaKeySpki);
});

after(async () => {
  await Promise.all(devices.map((device) => device.stop()));
  rmSync(root, { recursive: true, force: true });
});

const TIME_FLOOR = "2026-01-01T00:00:00Z";

function provisionArgs(id: string, ...extra: string[]): string[] {
  return ["device", "provision", id, "--broker-host", "localhost", "--wifi-ssid", "Shop floor", "--wifi-pass-file", join(root, "wifi.pass"), ...extra];
}

function mount(image: Uint8Array): NvsPartition {
  return NvsPartition.open(new MemoryFlash(image), { strict: true });
}

function value(nvs: NvsPartition, key: string): NvsTypedValue["value"] | undefined {
  return nvs.get(firmwareDomain(), key)?.value;
}

describe("device provision", () => {
  let image: Uint8Array;
  let stdout: string;

  before(async () => {
    ({ stdout } = await espguardOk(project, provisionArgs("dev-a", "--broker-port", "18883", "--kid", "k2", "--time-floor", TIME_FLOOR,
      "--wifi2-ssid", "Backup AP", "--wifi2-pass-file", join(root, "wifi2.pass"), "--ota-key", join(root, "ota.der"), "--ntp", "pool.ntp.org 10.0.0.1:1123")));
    image = new Uint8Array(readFileSync(join(pki, "devices/dev-a/nvs.bin")));
  });

  test("writes an NVS image the size of the nvs partition, mode 0600, and prints the esptool command for its offset", () => {
    const nvs = PartitionTable.load().require("nvs");
    assert.equal(image.length, nvs.size);
    assert.equal(statSync(join(pki, "devices/dev-a/nvs.bin")).mode & 0o777, 0o600);
    assert.match(stdout, new RegExp(`esptool\\.py --chip esp32 write_flash 0x${nvs.offset.toString(16)} ${join(pki, "devices/dev-a/nvs.bin")}`));
    assert.equal(nvs.offset, 0x9000);
  });

  test("the image mounts strictly and holds the whole identity", async () => {
    const nvs = mount(image);
    assert.deepEqual(nvs.issues, []);
    assert.deepEqual(nvs.namespaces(), [firmwareDomain()]);
    const dev = join(pki, "devices/dev-a");
    assert.equal(value(nvs, ProvisionKey.deviceId), "dev-a");
    assert.equal(value(nvs, ProvisionKey.brokerHost), "localhost");
    assert.equal(value(nvs, ProvisionKey.brokerPort), 18883);
    assert.deepEqual(value(nvs, ProvisionKey.ca), new Uint8Array(readFileSync(join(pki, "ca.der"))));
    assert.deepEqual(value(nvs, ProvisionKey.cert), new Uint8Array(readFileSync(join(dev, "cert.der"))));
    assert.deepEqual(value(nvs, ProvisionKey.key), new Uint8Array(readFileSync(join(dev, "key.der"))));
    assert.deepEqual(value(nvs, ProvisionKey.otaKey), factory.otaKeySpki);
    const pins = JSON.parse((await espguardOk(project, ["certs", "pins", "--json"])).stdout) as { current: string; backup: string };
    assert.equal(value(nvs, ProvisionKey.pins), `${pins.current} ${pins.backup}`);
    assert.equal(value(nvs, ProvisionKey.hmacKid), "k2");
    assert.equal(value(nvs, ProvisionKey.timeFloor), Date.parse(TIME_FLOOR) / 1000);
    assert.equal(value(nvs, ProvisionKey.wifiSsid), "Shop floor");
    assert.equal(value(nvs, ProvisionKey.wifiPass), PASS);
    assert.equal(value(nvs, ProvisionKey.wifiSsid2), "Backup AP");
    assert.equal(value(nvs, ProvisionKey.wifiPass2), PASS2);
    assert.equal(value(nvs, ProvisionKey.ntp), "pool.ntp.org 10.0.0.1:1123");
    assert.equal(value(nvs, ProvisionKey.selfTest), undefined);
    assert.equal(nvs.get(firmwareDomain(), ProvisionKey.brokerPort)?.type, "i32");
    assert.equal(nvs.get(firmwareDomain(), ProvisionKey.timeFloor)?.type, "i32");
  });

  test("the telemetry key is HKDF-SHA256 of the fleet secret, as OpenSSL derives it for the back end", () => {
    const secret = readFileSync(join(pki, "fleet.secret"), "utf8").trim();
    const expected = execFileSync("openssl", ["kdf", "-keylen", "32", "-kdfopt", "digest:SHA256", "-kdfopt", `hexkey:${secret}`,
      "-kdfopt", "info:espguard/telemetry-hmac/v1/dev-a/k2", "HKDF"], { encoding: "utf8", timeout: 20_000 }).trim().replaceAll(":", "").toLowerCase();
    const key = value(mount(image), ProvisionKey.hmacKey) as Uint8Array;
    assert.equal(Buffer.from(key).toString("hex"), expected);
  });

  test("prints no secret", () => {
    const key = value(mount(image), ProvisionKey.hmacKey) as Uint8Array;
    for (const secret of [PASS, PASS2, Buffer.from(key).toString("hex"), readFileSync(join(pki, "fleet.secret"), "utf8").trim(),
      readFileSync(join(pki, "devices/dev-a/key.pem"), "utf8").split("\n")[1]!]) {
      assert.ok(!stdout.includes(secret), "a secret was printed");
    }
  });

  test("a twin device flashed with the image boots and reads it as its config", async () => {
    factory.flashNvs(image);
    devices.push(factory.device);
    factory.device.start();
    const boot = await factory.device.waitForEvent("boot", { timeoutMs: 30_000 });
    assert.equal(boot.detail.device, "dev-a");
    assert.equal(boot.detail.broker, "localhost:18883");
    assert.equal(factory.device.events.some((event) => event.name === "unprovisioned"), false);
    await factory.device.stop();
  });

  test("reuses a certificate issued earlier, takes the passphrase from the environment, and leaves the fallback out when not given", async () => {
    await espguardOk(project, ["certs", "device", "dev-b"]);
    const cert = readFileSync(join(pki, "devices/dev-b/cert.der"));
    const { stdout: out } = await espguardOk(project, ["device", "provision", "dev-b", "--broker-host", "127.0.0.1", "--wifi-ssid", "Shop floor", "--self-test"],
      { ESPGUARD_WIFI_PASS: PASS });
    assert.doesNotMatch(out, /newly issued/);
    const nvs = mount(new Uint8Array(readFileSync(join(pki, "devices/dev-b/nvs.bin"))));
    assert.deepEqual(value(nvs, ProvisionKey.cert), new Uint8Array(cert));
    assert.equal(value(nvs, ProvisionKey.wifiPass), PASS);
    assert.equal(value(nvs, ProvisionKey.wifiSsid2), undefined);
    assert.equal(value(nvs, ProvisionKey.selfTest), 1);
    assert.equal(value(nvs, ProvisionKey.hmacKid), "k1");
  });
});

describe("device provision: bad input is refused and nothing is written", () => {
  async function refused(args: string[], message: RegExp, env: Record<string, string> = {}, cwd = project): Promise<void> {
    const before = treeFingerprint(cwd);
    const result = await espguard(cwd, args, env);
    assert.notEqual(result.code, 0, `espguard ${args.join(" ")} succeeded:\n${result.stdout}`);
    assert.match(result.stderr, message);
    assert.equal(treeFingerprint(cwd), before, `espguard ${args.join(" ")} changed the folder`);
    for (const secret of [PASS, PASS2, "x".repeat(64)]) assert.ok(!result.stderr.includes(secret), "a passphrase was printed");
  }

  test("invalid device id", async () => {
    await Promise.all(["Dev-A", "dev a", "a".repeat(33), "svc.x"].map((id) => refused(provisionArgs(id), /invalid device id/)));
  });

  test("bad Wi-Fi values", async () => {
    const file = (name: string, text: string) => {
      writeFileSync(join(root, name), text);
      return join(root, name);
    };
    const base = ["device", "provision", "dev-c", "--broker-host", "localhost"];
    await Promise.all([
      refused([...base, "--wifi-ssid", "", "--wifi-pass-file", join(root, "wifi.pass")], /Wi-Fi SSID is empty/),
      refused([...base, "--wifi-ssid", "s".repeat(33), "--wifi-pass-file", join(root, "wifi.pass")], /is 33 bytes; an SSID holds at most 32/),
      refused([...base, "--wifi-ssid", "net"], /no Wi-Fi passphrase: pass --wifi-pass-file <file> or set \$ESPGUARD_WIFI_PASS/),
      refused([...base, "--wifi-ssid", "net", "--wifi-pass-file", file("short", "1234567\n")], /passphrase is 7 characters; WPA2 needs 8 to 63/),
      refused([...base, "--wifi-ssid", "net", "--wifi-pass-file", file("long", "x".repeat(64))], /passphrase is 64 characters/),
      refused([...base, "--wifi-ssid", "net", "--wifi-pass-file", file("utf8", "pässwörter")], /outside printable ASCII/),
      refused([...base, "--wifi-ssid", "net"], /passphrase is 0 characters/, { ESPGUARD_WIFI_PASS: "" }),
      refused([...base, "--wifi-ssid", "net", "--wifi-pass-file", join(root, "missing.pass")], /cannot read the passphrase file .*ENOENT/),
      refused([...base, "--wifi-ssid", "net", "--wifi-pass-file", join(root, "wifi.pass"), "--wifi2-ssid", "second"], /no Wi-Fi passphrase: pass --wifi2-pass-file/),
      refused([...base, "--wifi-ssid", "net", "--wifi-pass-file", join(root, "wifi.pass"), "--wifi2-ssid", "", "--wifi2-pass-file", join(root, "wifi2.pass")], /fallback Wi-Fi SSID is empty/),
      refused([...base, "--wifi-pass-file", join(root, "wifi.pass")], /required option '--wifi-ssid <ssid>' not specified/),
    ]);
  });

  test("existing image without --force; --force replaces it", async () => {
    await refused(provisionArgs("dev-a", "--ota-key", join(root, "ota.der")), /nvs\.bin already exists; nothing was written. Pass --force/);
  });

  test("missing or expired CA, unreadable keys and secrets", async () => {
    const empty = join(root, "empty");
    mkdirSync(empty);
    await refused(provisionArgs("dev-c"), /no CA in .*espguard certs init/, {}, empty);

    const expired = join(root, "expired");
    mkdirSync(join(expired, ".espguard"), { recursive: true });
    execFileSync("cp", ["-r", pki, join(expired, ".espguard")]);
    const old = await createCa({ commonName: "old", notBefore: new Date(Date.now() - 3 * 86_400_000), notAfter: new Date(Date.now() - 86_400_000) });
    writeFileSync(join(expired, ".espguard/pki/ca.pem"), old.certPem);
    writeFileSync(join(expired, ".espguard/pki/ca.key"), old.keyPem);
    await refused(provisionArgs("dev-c"), /expired on/, {}, expired);

    await Promise.all([
      refused(provisionArgs("dev-c", "--fleet-secret", join(root, "nope")), /cannot read the fleet secret .*ENOENT/),
      refused(provisionArgs("dev-c", "--fleet-secret", join(root, "wifi.pass")), /is not a fleet secret: it must hold at least 32 bytes as hex/),
      refused(provisionArgs("dev-c", "--ota-key", join(root, "wifi.pass")), /--ota-key/),
    ]);
    const badKey = join(root, "bad-key");
    mkdirSync(join(badKey, ".espguard"), { recursive: true });
    execFileSync("cp", ["-r", pki, join(badKey, ".espguard")]);
    writeFileSync(join(badKey, ".espguard/pki/devices/dev-b/key.pem"), "not a key");
    await refused(provisionArgs("dev-b"), /key\.pem is not an unencrypted RSA private key/, {}, badKey);
  });

  test("broker and identity arguments", async () => {
    await espguardOk(project, ["certs", "device", "dev-r"]);
    await espguardOk(project, ["certs", "revoke", "dev-r"]);
    await Promise.all([
      refused(provisionArgs("dev-c", "--broker-host", "mqtt.example.net"), /does not name mqtt\.example\.net .*the device would refuse the broker/),
      refused(provisionArgs("dev-c", "--broker-host", "bad host"), /neither a host name nor an IP address/),
      refused(provisionArgs("dev-c", "--broker-port", "70000"), /--broker-port must be a whole number from 1 to 65535/),
      refused(provisionArgs("dev-c", "--kid", "K/1"), /invalid telemetry key id/),
      refused(provisionArgs("dev-c", "--time-floor", "yesterday"), /--time-floor .* must be an ISO date or Unix seconds/),
      refused(provisionArgs("dev-c", "--time-floor", "2040-01-01"), /2038/),
      refused(provisionArgs("dev-c", "--ntp", " "), /--ntp: no NTP servers/),
      refused(provisionArgs("dev-c", "--ntp", "pool.ntp.org:0"), /--ntp: NTP server "pool\.ntp\.org:0"/),
      refused(provisionArgs("dev-r"), /certificate \(serial [0-9a-f]+\) is revoked; issue a new one/),
    ]);
  });
});
