// One fleet worker process: many device sessions in one Node process, each its own mutual-TLS
// MQTT connection with its own device certificate, signing readings with the firmware's envelope
// modules (signEnvelope, EnvelopeKey, the key provisioning derives) and publishing them at QoS 1
// one after another, as the device outbox does (next message once the broker acknowledged the last).
// Protocol on stdio: config JSON path in argv; prints "ready" once every device is connected;
// each "go" line on stdin sends `messages` per device, then prints "done".
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import mqtt, { type MqttClient } from "mqtt";
import { deriveTelemetryKey } from "../certs/telemetry-key.ts";
import { fromHex } from "../modules/ota/bytes.ts";
import type { Credentials } from "./fleet-identities.ts";

export interface WorkerConfig {
  readonly url: string;
  readonly caPem: string;
  readonly devices: readonly Credentials[];
  readonly fleetSecretHex: string;
  readonly kid: string;
  readonly messages: number;
}

// Firmware modules import Moddable names: install the twin's resolver first.
await import("../twin/register.ts");
const { signEnvelope } = await import("../modules/telemetry/envelope.ts");
const { EnvelopeKey } = await import("../modules/telemetry/envelope-key.ts");
type Key = InstanceType<typeof EnvelopeKey>;

const config = JSON.parse(readFileSync(process.argv[2]!, "utf8")) as WorkerConfig;
const secret = fromHex(config.fleetSecretHex);
const CONNECTING_AT_ONCE = 16;

interface Session {
  readonly id: string;
  readonly client: MqttClient;
  readonly key: Key;
  seq: number;
}

const sessions: Session[] = [];
for (let at = 0; at < config.devices.length; at += CONNECTING_AT_ONCE) {
  sessions.push(...await Promise.all(config.devices.slice(at, at + CONNECTING_AT_ONCE).map(async (device) => ({
    id: device.id,
    client: await mqtt.connectAsync(config.url, {
      ca: config.caPem, cert: device.certPem, key: device.keyPem, clientId: device.id, clean: true, reconnectPeriod: 0, connectTimeout: 30_000,
    }),
    key: new EnvelopeKey(deriveTelemetryKey(secret, device.id, config.kid)),
    seq: 0,
  }))));
}

async function report(session: Session): Promise<void> {
  const topic = `devices/${session.id}/telemetry`;
  for (let i = 0; i < config.messages; i++) {
    const sentAt = performance.timeOrigin + performance.now();
    const body = {
      dev: session.id, kid: config.kid, seq: ++session.seq, ts: Math.floor(sentAt / 1000),
      temp: Math.round(200 + Math.random() * 100) / 10, hum: Math.round(400 + Math.random() * 200) / 10, sent: Math.round(sentAt * 1000) / 1000,
    };
    await session.client.publishAsync(topic, signEnvelope(body as unknown as Parameters<typeof signEnvelope>[0], session.key), { qos: 1 });
  }
}

process.stdout.write("ready\n");
for await (const line of createInterface({ input: process.stdin })) {
  if (line !== "go") break;
  await Promise.all(sessions.map(report));
  process.stdout.write("done\n");
}
await Promise.all(sessions.map((session) => session.client.endAsync()));
