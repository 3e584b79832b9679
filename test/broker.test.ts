// The hardened broker, against a real mosquitto over real TLS, with mqtt.js as the client.
//
// Proving that a message is NOT delivered needs no timer: mosquitto handles one connection's
// packets in order and queues deliveries to a subscriber in order. So a forbidden publish is
// acknowledged (QoS 1) before an allowed "marker" is published; if the forbidden message had been
// routed, the subscriber would receive it before the marker.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync, readlinkSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { connect as tcpConnect, createServer } from "node:net";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ConnectionOptions, TLSSocket } from "node:tls";
import mqtt from "mqtt";
import type { IClientOptions, MqttClient } from "mqtt";
import { chainPem, createCa, issueDeviceCert, InvalidServiceNameError } from "../certs/pki.ts";
import { DeviceIdError } from "../modules/identity/device-id.ts";
import type { Issued } from "../certs/pki.ts";
import { BROKER_CIPHERS, MosquittoConfigError, deviceTopics, mosquittoConfig } from "../broker/mosquitto-config.ts";
import type { MosquittoConfigOptions } from "../broker/mosquitto-config.ts";
import {
  INSTALL_COMMAND, MosquittoMissingError, MosquittoPortInUseError, MosquittoStartError, freeLoopbackPort, requireMosquitto, startMosquitto, startTestBroker,
} from "../broker/mosquitto.ts";
import type { RunningBroker, TestBroker } from "../broker/mosquitto.ts";

const T = { timeout: 30_000 };
const A = "dev-a";
const B = "dev-b";
const VERIFIER = "svc.verifier";
const OTA = "svc.ota";

let tb: TestBroker;
let devA: Issued;
let devB: Issued;
let verifier: Issued;
let ota: Issued;
let expiredA: Issued;
let foreignA: Issued;
const clients = new Set<MqttClient>();

before(async (t) => {
  requireMosquitto(t);
  const [ca, otherCa] = await Promise.all([createCa({ commonName: "espguard test CA" }), createCa({ commonName: "a stranger's CA" })]);
  tb = await startTestBroker({ ca, echo: true, services: { verifier: [VERIFIER], otaPublisher: [OTA] } });
  const day = 86_400_000;
  [devA, devB, verifier, ota, expiredA, foreignA] = await Promise.all([
    tb.issueDevice(A),
    tb.issueDevice(B),
    tb.issueService(VERIFIER),
    tb.issueService(OTA),
    tb.issueDevice(A, { notBefore: new Date(Date.now() - 3 * day), notAfter: new Date(Date.now() - day) }),
    issueDeviceCert(otherCa, { deviceId: A }),
  ]);
});

after(async () => {
  await Promise.all([...clients].map((client) => client.endAsync(true)));
  await tb?.stop();
});

type ClientOptions = IClientOptions & Pick<ConnectionOptions, "minVersion" | "maxVersion" | "ciphers">;

function connect(broker: RunningBroker, identity: Issued | undefined, extra: ClientOptions = {}): Promise<MqttClient> {
  const client = mqtt.connect({
    protocol: "mqtts",
    host: broker.host,
    port: broker.port,
    ca: broker.caPem,
    rejectUnauthorized: true,
    reconnectPeriod: 0,
    connectTimeout: 10_000,
    ...(identity === undefined ? {} : { cert: identity.certPem, key: identity.keyPem }),
    ...extra,
  });
  clients.add(client);
  return new Promise((resolve, reject) => {
    client.once("connect", () => resolve(client));
    client.on("error", (error) => {
      client.end(true);
      reject(error);
    });
    client.once("close", () => reject(new Error("connection closed before CONNACK")));
  });
}

async function refusal(identity: Issued | undefined, extra: ClientOptions = {}, broker: RunningBroker = tb.broker): Promise<string> {
  try {
    await connect(broker, identity, extra);
  } catch (error) {
    return (error as Error).message;
  }
  assert.fail("the broker accepted a connection it must refuse");
}

/** Messages in arrival order until `count` markers (payloads starting with "marker") have arrived. */
function collectUntilMarkers(client: MqttClient, count: number): Promise<string[]> {
  return new Promise((resolve) => {
    const seen: string[] = [];
    let markers = 0;
    const onMessage = (topic: string, payload: Buffer): void => {
      seen.push(`${topic} ${payload.toString()}`);
      if (payload.toString().startsWith("marker") && ++markers === count) {
        client.off("message", onMessage);
        resolve(seen);
      }
    };
    client.on("message", onMessage);
  });
}

test("a device connects over TLS 1.2 with the device's cipher, publishes telemetry and reads it back", T, async () => {
  const a = await connect(tb.broker, devA);
  const socket = a.stream as TLSSocket;
  assert.equal(socket.getProtocol(), "TLSv1.2");
  assert.equal(socket.getCipher().name, BROKER_CIPHERS[0]);
  const own = deviceTopics(A);
  assert.deepEqual(await a.subscribeAsync(own.telemetry, { qos: 1 }), [{ topic: own.telemetry, qos: 1 }]);
  const received = collectUntilMarkers(a, 1);
  await a.publishAsync(own.telemetry, "marker: 21.5 C", { qos: 1 });
  assert.deepEqual(await received, [`${own.telemetry} marker: 21.5 C`]);
  await a.endAsync();
});

test("a device's publishes to another device's topics and to its own read-only topics are dropped", T, async () => {
  const [a, b, otaClient] = await Promise.all([connect(tb.broker, devA), connect(tb.broker, devB), connect(tb.broker, ota)]);
  const ownA = deviceTopics(A);
  const ownB = deviceTopics(B);
  await a.subscribeAsync([ownA.telemetry, ownA.cmd, ownA.ota], { qos: 1 });
  await b.subscribeAsync([ownB.telemetry, ownB.cmd, ownB.ota], { qos: 1 });
  const bSees = collectUntilMarkers(b, 2);
  const aSees = collectUntilMarkers(a, 1);

  // MQTT 3.1.1 has no way to refuse a publish: mosquitto acknowledges it and drops it.
  for (const topic of [ownB.telemetry, ownB.status, ownB.otaStatus, ownB.cmd, ownB.ota, ownA.cmd, ownA.ota]) {
    await a.publishAsync(topic, "forged", { qos: 1 });
  }
  assert.ok(a.connected);
  await otaClient.publishAsync(ownB.ota, "marker: ota for b", { qos: 1 });
  await b.publishAsync(ownB.telemetry, "marker: b's own reading", { qos: 1 });
  await a.publishAsync(ownA.telemetry, "marker: a's own reading", { qos: 1 });

  assert.deepEqual(await bSees, [`${ownB.ota} marker: ota for b`, `${ownB.telemetry} marker: b's own reading`]);
  assert.deepEqual(await aSees, [`${ownA.telemetry} marker: a's own reading`]);
  await Promise.all([a.endAsync(), b.endAsync(), otaClient.endAsync()]);
});

test("a device's subscriptions beyond its own topics deliver nothing of others", T, async () => {
  const [a, b, otaClient] = await Promise.all([connect(tb.broker, devA), connect(tb.broker, devB), connect(tb.broker, ota)]);
  const ownA = deviceTopics(A);
  const ownB = deviceTopics(B);
  const filters = [ownB.telemetry, ownB.cmd, ownB.ota, "devices/+/telemetry", "devices/#", "#", "$SYS/#"];
  // mosquitto 2.0's ACL file does not check SUBSCRIBE (it grants every filter, never SUBACK 0x80);
  // read rights are enforced per message at delivery, which is what this test proves.
  const granted = await a.subscribeAsync(filters, { qos: 1 });
  assert.deepEqual(granted.map((grant) => grant.topic), filters);
  const aSees = collectUntilMarkers(a, 1);

  await b.publishAsync(ownB.telemetry, "b's reading", { qos: 1 });
  await b.publishAsync(ownB.status, "online", { qos: 1 });
  await otaClient.publishAsync(ownB.ota, "update for b", { qos: 1 });
  await a.publishAsync(ownA.telemetry, "marker: a's own reading", { qos: 1 });

  // a's own reading matches several of a's filters; every copy is a's own topic, nothing of b's.
  const seen = await aSees;
  assert.deepEqual(seen, [`${ownA.telemetry} marker: a's own reading`]);
  await Promise.all([a.endAsync(), b.endAsync(), otaClient.endAsync()]);
});

test("service accounts: the verifier reads every device's telemetry (shared subscriptions too), the OTA publisher writes OTA topics", T, async () => {
  const [a, v, otaClient] = await Promise.all([connect(tb.broker, devA), connect(tb.broker, verifier), connect(tb.broker, ota)]);
  const ownA = deviceTopics(A);
  await v.subscribeAsync(["devices/+/telemetry", "$share/verifiers/devices/+/status", ownA.ota], { qos: 1 });
  await a.subscribeAsync(ownA.ota, { qos: 1 });
  const vSees = collectUntilMarkers(v, 2);
  const aSees = collectUntilMarkers(a, 1);

  await a.publishAsync(ownA.status, "not readable by the verifier", { qos: 1 });
  await v.publishAsync(ownA.ota, "forged update from the verifier", { qos: 1 });
  await a.publishAsync(ownA.telemetry, "marker: reading 1", { qos: 1 });
  await otaClient.publishAsync(ownA.ota, "marker: real update", { qos: 1 });
  await a.publishAsync(ownA.telemetry, "marker: reading 2", { qos: 1 });

  assert.deepEqual(await vSees, [`${ownA.telemetry} marker: reading 1`, `${ownA.telemetry} marker: reading 2`]);
  assert.deepEqual(await aSees, [`${ownA.ota} marker: real update`]);
  await Promise.all([a.endAsync(), v.endAsync(), otaClient.endAsync()]);
});

test("a device cannot evict another device's session by claiming its client id", T, async () => {
  const b = await connect(tb.broker, devB, { clientId: B });
  const a = await connect(tb.broker, devA, { clientId: B });
  // mosquitto evicts a clashing client id while handling CONNECT, before answering it; b being
  // able to complete a QoS 1 round trip afterwards shows it was not evicted.
  await b.publishAsync(deviceTopics(B).telemetry, "still here", { qos: 1 });
  assert.ok(b.connected);
  await Promise.all([a.endAsync(), b.endAsync()]);
});

test("TLS refusals: no client certificate, a foreign CA, an expired certificate", T, async () => {
  assert.match(await refusal(undefined), /alert handshake failure.*SSL alert number 40/s);
  assert.match(await refusal(foreignA), /alert unknown ca.*SSL alert number 48/s);
  assert.match(await refusal(expiredA), /alert certificate expired.*SSL alert number 45/s);
});

test("TLS refusals: TLS 1.3 only, TLS 1.1 only, and DHE key exchange", T, async () => {
  assert.match(await refusal(devA, { minVersion: "TLSv1.3", maxVersion: "TLSv1.3" }), /alert protocol version.*SSL alert number 70/s);
  // SECLEVEL=0 lets this client offer TLS 1.1 at all, so the refusal is the broker's.
  assert.match(await refusal(devA, { minVersion: "TLSv1.1", maxVersion: "TLSv1.1", ciphers: "DEFAULT:@SECLEVEL=0" }), /alert protocol version.*SSL alert number 70/s);
  assert.match(await refusal(devA, { maxVersion: "TLSv1.2", ciphers: "DHE-RSA-AES128-GCM-SHA256" }), /alert handshake failure.*SSL alert number 40/s);
  // plain RSA key exchange (no forward secrecy), though the device offers it too
  assert.match(await refusal(devA, { maxVersion: "TLSv1.2", ciphers: "AES128-SHA:AES256-SHA256" }), /alert handshake failure.*SSL alert number 40/s);
});

test("a revoked device certificate is refused once the CRL lists it; others still connect", T, async () => {
  const own = await startTestBroker({ ca: tb.ca });
  try {
    (await connect(own.broker, devA)).end(true);
    await own.revoke(devA);
    assert.match(await refusal(devA, {}, own.broker), /alert certificate revoked.*SSL alert number 44/s);
    await (await connect(own.broker, devB)).endAsync();
  } finally {
    await own.stop();
  }
});

test("nothing listens on 1883: the broker's only socket is its TLS listener", T, async () => {
  const error = await new Promise<NodeJS.ErrnoException>((resolve, reject) => {
    const socket = tcpConnect({ host: "127.0.0.1", port: 1883 });
    socket.once("connect", () => {
      socket.destroy();
      reject(new Error("something accepts plain TCP on 127.0.0.1:1883"));
    });
    socket.once("error", resolve);
  });
  assert.equal(error.code, "ECONNREFUSED");
  const pid = tb.broker.pid();
  assert.ok(pid !== undefined);
  assert.deepEqual(listeningSockets(pid), [`127.0.0.1:${tb.broker.port}`]);
});

test("startMosquitto reports a broker that cannot start, with mosquitto's own words", T, async () => {
  const dir = await mkdtemp(join(tmpdir(), "espguard-broken-"));
  try {
    await writeFile(join(dir, "ca.pem"), tb.ca.certPem);
    const config: MosquittoConfigOptions = {
      host: "127.0.0.1",
      port: await freeLoopbackPort(),
      files: { cafile: join(dir, "ca.pem"), certfile: join(dir, "missing-chain.pem"), keyfile: join(dir, "missing.key"), aclFile: join(dir, "acl") },
    };
    await assert.rejects(startMosquitto({ dir, config }), (error: unknown) => {
      assert.ok(error instanceof MosquittoStartError);
      assert.match(error.message, /mosquitto exited during start-up/);
      assert.match(error.message, /Unable to load server certificate "[^"]*missing-chain\.pem"/);
      return true;
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("startMosquitto tells a taken port apart from other start-up failures", T, async () => {
  const dir = await mkdtemp(join(tmpdir(), "espguard-taken-"));
  const squatter = createServer();
  try {
    await new Promise<void>((resolve) => squatter.listen(0, "127.0.0.1", resolve));
    const port = (squatter.address() as AddressInfo).port;
    await writeFile(join(dir, "ca.pem"), tb.ca.certPem);
    await writeFile(join(dir, "chain.pem"), chainPem(tb.server, tb.ca));
    await writeFile(join(dir, "server.key"), tb.server.keyPem, { mode: 0o600 });
    const config: MosquittoConfigOptions = {
      host: "127.0.0.1",
      port,
      files: { cafile: join(dir, "ca.pem"), certfile: join(dir, "chain.pem"), keyfile: join(dir, "server.key"), aclFile: join(dir, "acl") },
    };
    await assert.rejects(startMosquitto({ dir, config }), (error: unknown) =>
      error instanceof MosquittoPortInUseError && error.message.includes(`port ${port} is taken`));
  } finally {
    squatter.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test("a missing mosquitto is a failure that names the install command", () => {
  assert.equal(INSTALL_COMMAND, "apt-get update && apt-get install -y mosquitto");
  assert.match(new MosquittoMissingError().message, /apt-get update && apt-get install -y mosquitto/);
  assert.match(requireMosquitto(), /\/mosquitto$/);
});

const files = { cafile: "/etc/espguard/ca.pem", certfile: "/etc/espguard/chain.pem", keyfile: "/etc/espguard/server.key", aclFile: "/etc/espguard/acl" };

test("the generated mosquitto.conf is a TLS-only, certificate-only listener", () => {
  const { conf, opensslConf } = mosquittoConfig({ files: { ...files, crlfile: "/etc/espguard/crl.pem" } });
  const lines = conf.split("\n").filter((line) => line !== "" && !line.startsWith("#"));
  assert.deepEqual(lines, [
    "per_listener_settings false",
    "allow_anonymous false",
    "acl_file /etc/espguard/acl",
    "persistence false",
    "max_queued_messages 100000",
    "log_dest stderr",
    "log_type error",
    "log_type warning",
    "log_type notice",
    "log_type information",
    "connection_messages true",
    "listener 8883",
    "protocol mqtt",
    "cafile /etc/espguard/ca.pem",
    "certfile /etc/espguard/chain.pem",
    "keyfile /etc/espguard/server.key",
    "crlfile /etc/espguard/crl.pem",
    "tls_version tlsv1.2",
    "ciphers ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-SHA256",
    "require_certificate true",
    "use_identity_as_username true",
    "use_username_as_clientid true",
  ]);
  assert.doesNotMatch(lines.join("\n"), /[ :]DHE-|1883|^port /m);
  assert.match(opensslConf, /^MaxProtocol = TLSv1\.2$/m);
  assert.match(opensslConf, /^MinProtocol = TLSv1\.2$/m);

  const custom = mosquittoConfig({ files, host: "127.0.0.1", port: 18883, persistenceDir: "/var/lib/espguard", clientIdFromCertificate: false }).conf;
  assert.match(custom, /^listener 18883 127\.0\.0\.1$/m);
  assert.match(custom, /^persistence true\npersistence_location \/var\/lib\/espguard\/$/m);
  assert.match(custom, /^use_username_as_clientid false$/m);
  assert.doesNotMatch(custom, /crlfile/);
});

test("the generated ACL confines devices to their own topics and grants service accounts their roles", () => {
  const plain = mosquittoConfig({ files, services: { verifier: ["svc.verifier", "svc.verifier-2"], otaPublisher: ["svc.ota"] } }).acl;
  assert.deepEqual(plain.split("\n").filter((line) => line !== "" && !line.startsWith("#")), [
    "pattern write devices/%u/telemetry",
    "pattern write devices/%u/status",
    "pattern write devices/%u/ota/status",
    "pattern read devices/%u/cmd",
    "pattern read devices/%u/ota",
    "user svc.verifier",
    "topic read devices/+/telemetry",
    "user svc.verifier-2",
    "topic read devices/+/telemetry",
    "user svc.ota",
    "topic write devices/+/ota",
  ]);
  assert.match(mosquittoConfig({ files, echo: true }).acl, /^pattern read devices\/%u\/telemetry$/m);
  assert.doesNotMatch(plain, /pattern read devices\/%u\/telemetry/);
});

test("bad configuration input is refused with typed errors", () => {
  assert.throws(() => mosquittoConfig({ files: { ...files, keyfile: "server.key" } }), (error: unknown) =>
    error instanceof MosquittoConfigError && /keyfile path "server.key" is relative/.test(error.message));
  assert.throws(() => mosquittoConfig({ files: { ...files, aclFile: "/tmp/acl\nlistener 1883" } }), /control characters/);
  assert.throws(() => mosquittoConfig({ files, port: 70000 }), /is not a TCP port/);
  assert.throws(() => mosquittoConfig({ files, host: "bad host" }), /neither an IP address nor a host name/);
  assert.throws(() => mosquittoConfig({ files, services: { verifier: ["dev-a"] } }), InvalidServiceNameError);
  assert.throws(() => deviceTopics("dev/+"), DeviceIdError);
  assert.deepEqual(deviceTopics("dev-7"), {
    telemetry: "devices/dev-7/telemetry", status: "devices/dev-7/status", otaStatus: "devices/dev-7/ota/status",
    cmd: "devices/dev-7/cmd", ota: "devices/dev-7/ota",
  });
});

/** `address:port` of every TCP socket the process listens on, from /proc. */
function listeningSockets(pid: number): string[] {
  const inodes = new Set(readdirSync(`/proc/${pid}/fd`).flatMap((fd) => {
    try {
      return [/^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`))?.[1]].filter((inode) => inode !== undefined);
    } catch {
      return [];
    }
  }));
  const listening: string[] = [];
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    for (const row of readFileSync(table, "utf8").trim().split("\n").slice(1)) {
      const [, local = "", , state, , , , , , inode = ""] = row.trim().split(/\s+/);
      if (state === "0A" && inodes.has(inode)) listening.push(decodeProcAddress(local));
    }
  }
  return listening.sort();
}

// /proc/net/tcp prints addresses as little-endian hex words: 0100007F:1F90 is 127.0.0.1:8080.
function decodeProcAddress(field: string): string {
  const [hex = "", port = ""] = field.split(":");
  const words = hex.match(/.{8}/g) ?? [];
  const bytes = words.flatMap((word) => (word.match(/../g) ?? []).reverse().map((byte) => parseInt(byte, 16)));
  const address = bytes.length === 4 ? bytes.join(".") : (bytes.map((byte) => byte.toString(16).padStart(2, "0")).join("").match(/.{4}/g) ?? []).join(":");
  return `${address}:${parseInt(port, 16)}`;
}
