// `ota publish`: hands a signed release message to the broker, retained with QoS 1 on each device's
// `devices/<id>/ota` topic, so a device that is offline now finds it when it next connects. MQTT 5
// is used for its PUBACK reason codes: with 3.1.1 mosquitto acknowledges a publish its ACL denied,
// and a release that silently reached no one would look published.
import mqtt, { type MqttClient } from "mqtt";
import { resolve } from "node:path";
import { deviceTopics } from "../broker/mosquitto-config.ts";
import { DEFAULT_PKI_DIR, PkiStore } from "../certs/store.ts";
import { isDeviceId, toDeviceId } from "../modules/identity/device-id.ts";
import { parseReleaseMessage, type ReleaseManifest } from "../modules/ota/release.ts";
import { readTextInput } from "./files.ts";

export class OtaPublishError extends Error {
  readonly name = "OtaPublishError";
}

export interface PublishOptions {
  /** The release message exactly as `ota release` wrote it. */
  readonly message: string;
  /** mqtts://host:port */
  readonly broker: string;
  /** PEM: the CA the broker's certificate chains to. */
  readonly ca: string;
  /** PEM certificate and key of a service account the broker lets write devices/+/ota. */
  readonly cert: string;
  readonly key: string;
  readonly deviceIds: readonly string[];
  /** Bound on connecting and on each acknowledgement; default 10 s. */
  readonly timeoutMs?: number;
  readonly onPublished?: (deviceId: string, topic: string) => void;
}

/** Checks the release before anyone is told about it; the message is published byte for byte. */
export function checkReleaseMessage(message: string): ReleaseManifest {
  return parseReleaseMessage(message).release;
}

function brokerAddress(url: string): { host: string; port: number } {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new OtaPublishError(`--broker ${JSON.stringify(url)} is not a URL: give mqtts://host:port`);
  }
  if (parsed.protocol !== "mqtts:")
    throw new OtaPublishError(`--broker ${url}: only mqtts:// (MQTT over TLS) is allowed, the broker has no plain listener`);
  if (parsed.pathname !== "" && parsed.pathname !== "/" || parsed.username !== "" || parsed.search !== "")
    throw new OtaPublishError(`--broker ${url}: give only mqtts://host:port, identity comes from --cert/--key`);
  return { host: parsed.hostname.replace(/^\[(.*)\]$/, "$1"), port: parsed.port === "" ? 8883 : Number(parsed.port) };
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new OtaPublishError(`no answer from the broker within ${ms} ms while ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export async function publishRelease(options: PublishOptions): Promise<void> {
  checkReleaseMessage(options.message);
  const ids = options.deviceIds.map((id) => toDeviceId(id));
  if (ids.length === 0) throw new OtaPublishError("no devices to publish to: the device list is empty");
  const { host, port } = brokerAddress(options.broker);
  const timeoutMs = options.timeoutMs ?? 10_000;
  const client: MqttClient = mqtt.connect({
    protocol: "mqtts", host, port, protocolVersion: 5, clean: true,
    ca: options.ca, cert: options.cert, key: options.key, rejectUnauthorized: true,
    reconnectPeriod: 0, connectTimeout: timeoutMs,
  });
  try {
    await withTimeout(new Promise<void>((resolve, reject) => {
      client.once("connect", () => resolve());
      client.once("error", (error) => reject(new OtaPublishError(`cannot connect to ${options.broker}: ${error.message}`)));
      client.once("close", () => reject(new OtaPublishError(`${options.broker} closed the connection before accepting it ` +
        "(check that --cert is a service account certificate issued by the broker's CA and not revoked)")));
    }), timeoutMs, `connecting to ${options.broker}`);
    for (const id of ids) {
      const topic = deviceTopics(id).ota;
      await withTimeout(client.publishAsync(topic, options.message, { qos: 1, retain: true }).catch((error: Error) => {
        throw new OtaPublishError(`the broker refused the release on ${topic}: ${error.message} ` +
          "(the service account needs write access to devices/+/ota: list it in the broker's services.otaPublisher)");
      }), timeoutMs, `publishing to ${topic}`);
      options.onPublished?.(id, topic);
    }
  } finally {
    await client.endAsync(true).catch(() => undefined);
  }
}

/** Device ids from a list file: one per line, `#` starts a comment, blank lines ignored. */
export function deviceIdsFromFile(path: string): string[] {
  const ids = new Set<string>();
  readTextInput(path, "--devices (the device list)").split("\n").forEach((line, index) => {
    const id = line.replace(/#.*/, "").trim();
    if (id === "") return;
    if (!isDeviceId(id)) throw new OtaPublishError(`--devices ${path} line ${index + 1}: ${JSON.stringify(id)} is not a device id`);
    ids.add(id);
  });
  return [...ids];
}

/** Device ids of the PKI store `espguard certs` keeps: every device it issued a certificate to. */
export function deviceIdsFromPki(dir = DEFAULT_PKI_DIR): string[] {
  const ids = new PkiStore(dir).deviceIds();
  if (ids.length === 0)
    throw new OtaPublishError(`--fleet needs the device list: ${resolve(dir, "devices")} holds no device certificates; ` +
      "give --devices <file> (one device id per line), or --pki <dir> where `espguard certs` keeps the fleet");
  return ids;
}
