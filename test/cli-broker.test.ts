// `espguard broker config` run as a child process, then mosquitto launched on exactly the folder it
// wrote: a provisioned device gets in (MQTT and WebSockets), a twin device flashed with its
// `device provision` image reaches it, and no client cert, another CA, a revoked or expired
// certificate, or TLS 1.3 gets in; a bridge carries device topics to a gateway broker one way each.
// Bad input is refused with nothing written.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { ConnectionOptions } from "node:tls";
import mqtt, { type IClientOptions, type MqttClient } from "mqtt";
import { freeLoopbackPort, launchMosquitto, requireMosquitto, type RunningBroker } from "../broker/mosquitto.ts";
import { createCa, issueDeviceCert } from "../certs/pki.ts";
import { PkiStore } from "../certs/store.ts";
import type { TwinDevice } from "../twin/device/supervisor.ts";
import { bundleFirmware } from "../twin/runtime/bundle.ts";
import { brokerFiles } from "../cli/broker.ts";
import { espguard, espguardOk, treeFingerprint } from "./support/espguard-cli.ts";
import { factoryTwin } from "./support/provisioned-twin.ts";
import { within } from "./support/mqtt-peer.ts";

const root = mkdtempSync(join(tmpdir(), "espguard-cli-broker-"));
const project = join(root, "project");
const pki = join(project, ".espguard", "pki");
const out = join(project, ".espguard", "broker");
const clients = new Set<MqttClient>();
const devices: TwinDevice[] = [];
let broker: RunningBroker;
let port: number;
let wsPort: number;
let configStdout: string;

const identity = (kind: "devices" | "services", name: string) => ({
  cert: readFileSync(join(pki, kind, name, "cert.pem"), "utf8"),
  key: readFileSync(join(pki, kind, name, "key.pem"), "utf8"),
});

before(async () => {
  requireMosquitto();
  mkdirSync(project);
  await espguardOk(project, ["certs", "init"]);
  await espguardOk(project, ["certs", "server", "--dns", "localhost", "--ip", "127.0.0.1"]);
  await Promise.all([
    espguardOk(project, ["certs", "device", "dev-a"]),
    espguardOk(project, ["certs", "device", "dev-b"]),
    espguardOk(project, ["certs", "service", "svc.verifier"]),
  ]);
  await espguardOk(project, ["certs", "revoke", "dev-b"]);
  [port, wsPort] = [await freeLoopbackPort(), await freeLoopbackPort()];
  ({ stdout: configStdout } = await espguardOk(project, ["broker", "config", "--host", "127.0.0.1", "--port", String(port),
    "--websockets-port", String(wsPort), "--verifier", "svc.verifier", "--echo"]));
  const files = brokerFiles(out);
  broker = await launchMosquitto({
    confPath: files.conf,
    opensslConfPath: files.opensslConf,
    host: "127.0.0.1",
    port,
    cafile: files.ca,
    // mosquitto drops root before reading them: every folder on the way must be its to traverse.
    brokerFiles: [root, join(project, ".espguard"), out, ...readdirSync(out).map((name) => join(out, name))],
  });
});

after(async () => {
  for (const client of clients) client.end(true);
  await Promise.all(devices.map((device) => device.stop()));
  await broker?.stop();
  rmSync(root, { recursive: true, force: true });
});

type ClientOptions = IClientOptions & Pick<ConnectionOptions, "minVersion" | "maxVersion">;

function connect(options: ClientOptions & { cert?: string; key?: string }, url = `mqtts://127.0.0.1:${port}`): Promise<MqttClient> {
  const client = mqtt.connect(url, { ca: readFileSync(join(pki, "ca.pem"), "utf8"), rejectUnauthorized: true, reconnectPeriod: 0, connectTimeout: 10_000, ...options });
  clients.add(client);
  return within(new Promise((resolve, reject) => {
    client.once("connect", () => resolve(client));
    client.on("error", (error) => {
      client.end(true);
      reject(error);
    });
    client.once("close", () => reject(new Error("connection closed before CONNACK")));
  }), 15_000, "the broker's answer");
}

async function refused(options: ClientOptions & { cert?: string; key?: string }): Promise<void> {
  await assert.rejects(connect(options));
}

describe("mosquitto on the broker config folder", () => {
  test("the output says how to run it, with OPENSSL_CONF", () => {
    assert.match(configStdout, new RegExp(`OPENSSL_CONF=${join(out, "openssl.cnf")} mosquitto -c ${join(out, "mosquitto.conf")}`));
    const conf = readFileSync(join(out, "mosquitto.conf"), "utf8");
    assert.deepEqual(conf.match(/^listener .*$/gm), [`listener ${port} 127.0.0.1`, `listener ${wsPort} 127.0.0.1`]);
    assert.match(conf, new RegExp(`^listener ${wsPort} 127\\.0\\.0\\.1\\nprotocol websockets\\n`, "m"));
  });

  test("a device certificate from the store connects over TLS 1.2, publishes its telemetry and reads it back", async () => {
    const client = await connect(identity("devices", "dev-a"));
    assert.equal((client.stream as import("node:tls").TLSSocket).getProtocol(), "TLSv1.2");
    await client.subscribeAsync("devices/dev-a/telemetry", { qos: 1 });
    const received = new Promise<string>((resolve) => client.once("message", (topic, payload) => resolve(`${topic} ${payload}`)));
    await client.publishAsync("devices/dev-a/telemetry", "21.5", { qos: 1 });
    assert.equal(await within(received, 10_000, "the echoed message"), "devices/dev-a/telemetry 21.5");
    await client.endAsync();
  });

  test("the verifier account named by --verifier reads every device's telemetry", async () => {
    const verifier = await connect(identity("services", "svc.verifier"));
    const a = await connect(identity("devices", "dev-a"));
    await verifier.subscribeAsync("devices/+/telemetry", { qos: 1 });
    const seen = new Promise<string>((resolve) => verifier.once("message", (topic) => resolve(topic)));
    await a.publishAsync("devices/dev-a/telemetry", "1", { qos: 1 });
    assert.equal(await within(seen, 10_000, "the verifier's message"), "devices/dev-a/telemetry");
    await Promise.all([verifier.endAsync(), a.endAsync()]);
  });

  test("MQTT over TLS WebSockets takes the same client certificate", async () => {
    const client = await connect(identity("devices", "dev-a"), `wss://127.0.0.1:${wsPort}`);
    assert.ok(client.connected);
    await client.endAsync();
    await assert.rejects(connect({}, `wss://127.0.0.1:${wsPort}`));
  });

  test("refuses no certificate, another CA's, a revoked one, an expired one, and TLS 1.3", async () => {
    await refused({});
    const stranger = await createCa({ commonName: "stranger" });
    const foreign = await issueDeviceCert(stranger, { deviceId: "dev-a" });
    await refused({ cert: foreign.certPem, key: foreign.keyPem });
    await refused(identity("devices", "dev-b"));
    const ca = new PkiStore(pki).loadCa();
    const expired = await issueDeviceCert(ca, { deviceId: "dev-a", notBefore: new Date(Date.now() - 2 * 86_400_000), notAfter: new Date(Date.now() - 86_400_000) });
    await refused({ cert: expired.certPem, key: expired.keyPem });
    await refused({ ...identity("devices", "dev-a"), minVersion: "TLSv1.3", maxVersion: "TLSv1.3" });
  });

  test("a twin device flashed with its `device provision` image reaches the broker and reads its own message back", async () => {
    const twin = factoryTwin("dev-t", join(root, "twin-dev-t"), await bundleFirmware({ format: "esm" }));
    writeFileSync(join(root, "ota.der"), twin.otaKeySpki);
    await espguardOk(project, ["device", "provision", "dev-t", "--broker-host", "127.0.0.1", "--broker-port", String(port),
      "--wifi-ssid", "lab", "--ota-key", join(root, "ota.der"), "--self-test"], { ESPGUARD_WIFI_PASS: "lab-passphrase" });
    twin.flashNvs(new Uint8Array(readFileSync(join(pki, "devices/dev-t/nvs.bin"))));
    devices.push(twin.device);
    twin.device.start();
    await twin.device.waitForEvent("broker-reached", { timeoutMs: 30_000 });
    await twin.device.waitForEvent("message", { timeoutMs: 30_000, where: (event) => event.detail.topic === "devices/dev-t/telemetry" });
    await twin.device.stop();
  });
});

describe("broker config: bridge section", () => {
  test("device topics cross to the gateway under the remote prefix, one way each, and nothing comes back", async () => {
    const dir = join(root, "bridge");
    const gatewayDir = join(root, "gateway");
    mkdirSync(gatewayDir);
    const [mqttPort, gatewayPort] = [await freeLoopbackPort(), await freeLoopbackPort()];
    // Copies the broker account can read after dropping root; the PKI folder stays private.
    const bridgeCert = join(gatewayDir, "bridge-cert.pem");
    const bridgeKey = join(gatewayDir, "bridge-key.pem");
    writeFileSync(bridgeCert, identity("services", "svc.verifier").cert);
    writeFileSync(bridgeKey, identity("services", "svc.verifier").key, { mode: 0o600 });
    await espguardOk(project, ["broker", "config", "--out", dir, "--host", "127.0.0.1", "--port", String(mqttPort), "--verifier", "svc.verifier",
      "--bridge-host", "127.0.0.1", "--bridge-port", String(gatewayPort), "--bridge-prefix", "site/berlin",
      "--bridge-cafile", join(gatewayDir, "ca.pem"), "--bridge-certfile", bridgeCert, "--bridge-keyfile", bridgeKey]);
    const conf = readFileSync(join(dir, "mosquitto.conf"), "utf8");
    assert.deepEqual(conf.slice(conf.indexOf("connection gateway")).match(/^topic .*$/gm), [
      "topic +/telemetry out 1 devices/ site/berlin/devices/",
      "topic +/status out 1 devices/ site/berlin/devices/",
      "topic +/ota/status out 1 devices/ site/berlin/devices/",
      "topic +/cmd in 1 devices/ site/berlin/devices/",
      "topic +/ota in 1 devices/ site/berlin/devices/",
    ]);

    // The gateway: any broker with a TLS listener and client certificates; this one has no ACL.
    const files = brokerFiles(dir);
    writeFileSync(join(gatewayDir, "mosquitto.conf"), [
      "per_listener_settings false", "allow_anonymous false", "persistence false", "log_dest stderr",
      `listener ${gatewayPort} 127.0.0.1`, `cafile ${files.ca}`, `certfile ${files.chain}`, `keyfile ${files.key}`,
      "require_certificate true", "use_identity_as_username true", "",
    ].join("\n"));
    writeFileSync(join(gatewayDir, "ca.pem"), readFileSync(files.ca));
    const owned = [dir, gatewayDir, ...[dir, gatewayDir].flatMap((folder) => readdirSync(folder).map((name) => join(folder, name)))];
    const gateway = await launchMosquitto({ confPath: join(gatewayDir, "mosquitto.conf"), opensslConfPath: files.opensslConf,
      host: "127.0.0.1", port: gatewayPort, cafile: files.ca, brokerFiles: owned });
    const local = await launchMosquitto({ confPath: files.conf, opensslConfPath: files.opensslConf, host: "127.0.0.1", port: mqttPort, cafile: files.ca, brokerFiles: owned });
    try {
      const url = (p: number) => `mqtts://127.0.0.1:${p}`;
      const device = await connect(identity("devices", "dev-a"), url(mqttPort));
      const upstream = await connect(identity("services", "svc.verifier"), url(gatewayPort));
      const watcher = await connect(identity("services", "svc.verifier"), url(mqttPort));
      const upstreamSees: string[] = [];
      const deviceSees: string[] = [];
      const localTelemetry: string[] = [];
      watcher.on("message", (topic, payload) => localTelemetry.push(`${topic} ${payload}`));
      await watcher.subscribeAsync("devices/+/telemetry", { qos: 1 });
      upstream.on("message", (topic, payload) => upstreamSees.push(`${topic} ${payload}`));
      device.on("message", (topic, payload) => deviceSees.push(`${topic} ${payload}`));
      await upstream.subscribeAsync("site/berlin/#", { qos: 1 });
      await device.subscribeAsync("devices/dev-a/cmd", { qos: 1 });
      // The bridge connects on its own schedule: publish until the first message crosses.
      const deadline = Date.now() + 20_000;
      while (!upstreamSees.some((line) => line.startsWith("site/berlin/devices/dev-a/telemetry"))) {
        assert.ok(Date.now() < deadline, `no telemetry reached the gateway within 20 s\n${local.logs()}`);
        await device.publishAsync("devices/dev-a/telemetry", "out", { qos: 1 });
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
      await upstream.publishAsync("site/berlin/devices/dev-a/cmd", "in", { qos: 1 });
      // A gateway-side telemetry message must not flow back down: that direction is out only.
      await upstream.publishAsync("site/berlin/devices/dev-a/telemetry", "echo?", { qos: 1 });
      await within((async () => {
        while (!deviceSees.includes("devices/dev-a/cmd in")) await new Promise((resolve) => setTimeout(resolve, 50));
      })(), 10_000, "the command from the gateway");
      await new Promise((resolve) => setTimeout(resolve, 500));
      assert.deepEqual(deviceSees, ["devices/dev-a/cmd in"]);
      assert.ok(localTelemetry.length > 0 && localTelemetry.every((line) => line === "devices/dev-a/telemetry out"), localTelemetry.join("\n"));
      assert.equal(upstreamSees.filter((line) => line.endsWith(" in")).length, 1, "the command came back up the bridge");
      await Promise.all([device.endAsync(), upstream.endAsync(), watcher.endAsync()]);
    } finally {
      await Promise.all([local.stop(), gateway.stop()]);
    }
  });
});

describe("broker config: bad input is refused and nothing is written", () => {
  async function refusedConfig(cwd: string, args: string[], message: RegExp): Promise<void> {
    const before = treeFingerprint(cwd);
    const result = await espguard(cwd, ["broker", "config", ...args]);
    assert.notEqual(result.code, 0, `broker config ${args.join(" ")} succeeded:\n${result.stdout}`);
    assert.match(result.stderr, message);
    assert.equal(treeFingerprint(cwd), before);
  }

  test("missing CA, missing broker certificate, expired CA", async () => {
    const empty = join(root, "empty");
    mkdirSync(empty);
    await refusedConfig(empty, [], /no CA in .*espguard certs init/);
    const caOnly = join(root, "ca-only");
    mkdirSync(caOnly);
    await espguardOk(caOnly, ["certs", "init"]);
    await refusedConfig(caOnly, [], /no broker certificate .*espguard certs server/);
    const old = await createCa({ commonName: "old", notBefore: new Date(Date.now() - 3 * 86_400_000), notAfter: new Date(Date.now() - 86_400_000) });
    writeFileSync(join(caOnly, ".espguard/pki/ca.pem"), old.certPem);
    writeFileSync(join(caOnly, ".espguard/pki/ca.key"), old.keyPem);
    await refusedConfig(caOnly, [], /expired on/);
  });

  test("existing output without --force, and bad flags", async () => {
    await Promise.all([
      refusedConfig(project, [], /already exist.*Pass --force/),
      refusedConfig(project, ["--out", join(root, "x"), "--verifier", "verifier"], /invalid service account name "verifier"/),
      refusedConfig(project, ["--out", join(root, "x"), "--websockets-port", "8883"], /websockets port 8883 is the MQTT port/),
      refusedConfig(project, ["--out", join(root, "x"), "--bridge-prefix", "site"], /configure a bridge: also pass --bridge-host/),
      refusedConfig(project, ["--out", join(root, "x"), "--bridge-host", "gw.example.net"], /a bridge needs --bridge-prefix, --bridge-cafile/),
      refusedConfig(project, ["--out", join(root, "x"), "--bridge-host", "gw", "--bridge-prefix", "a/#", "--bridge-cafile", "c", "--bridge-certfile", "c", "--bridge-keyfile", "k"], /remote prefix "a\/#"/),
      refusedConfig(project, ["--out", join(root, "x"), "--port", "0"], /--port must be a whole number/),
      refusedConfig(project, ["--out", join(root, "x"), "--host", "not a host"], /neither an IP address nor a host name/),
    ]);
  });
});
