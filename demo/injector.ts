// The demo's attacker: holding one device's certificate and key, it publishes through mosquitto on
// that device's own telemetry topic (the only one its ACL allows) a genuine message with one
// digit of a reading changed, and a genuine message sent a second time. The broker lets one
// connection per identity, so the real device is pushed off for a moment and reconnects.
import mqtt from "mqtt";
import type { Issued } from "../certs/pki.ts";

export class InjectionError extends Error {
  override name = "InjectionError";
}

const HEADER_FIELDS = new Set(["dev", "kid", "seq", "ts", "sig"]);

/**
 * Changes the last digit of the first reading (a body field outside the signed header), keeping
 * the wire canonical, so only the signature can tell.
 */
export function tamper(wire: string): { wire: string; field: string; from: string; to: string } {
  const body = JSON.parse(wire) as Record<string, unknown>;
  const field = Object.keys(body).find((key) => !HEADER_FIELDS.has(key) && typeof body[key] === "number");
  if (field === undefined) throw new InjectionError(`no numeric reading to tamper with in ${wire}`);
  const match = new RegExp(`"${field}":(-?[0-9.e+-]+)`).exec(wire);
  if (match === null) throw new InjectionError(`reading ${field} not found in ${wire}`);
  const from = match[1]!;
  const last = from.at(-1)!;
  const to = from.slice(0, -1) + (last === "9" ? "8" : String(Number(last) + 1));
  return { wire: wire.slice(0, match.index) + `"${field}":${to}` + wire.slice(match.index + match[0].length), field, from, to };
}

export async function inject(url: string, caPem: string, identity: Issued, topic: string, messages: readonly string[]): Promise<void> {
  // MQTT 5: with 3.1.1 mosquitto acknowledges a publish its ACL denied, and the demo would claim
  // an injection that never travelled; mqtt.js rejects a publish whose PUBACK carries an error.
  const client = await mqtt.connectAsync(url, {
    ca: caPem, cert: identity.certPem, key: identity.keyPem, protocolVersion: 5, clean: true, reconnectPeriod: 0, connectTimeout: 10_000,
  });
  try {
    for (const message of messages) {
      await client.publishAsync(topic, message, { qos: 1 }).catch((error: Error) => {
        throw new InjectionError(`the broker refused the injected publish on ${topic}: ${error.message}`);
      });
    }
  } finally {
    await client.endAsync();
  }
}
