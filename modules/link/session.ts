// One MQTT session over mutually authenticated TLS to the provisioned broker, built from
// Moddable's ECMA-419 TCP socket, TLS socket, DNS resolver and MQTT client.
import Timer from "timer";
import UDP from "embedded:io/socket/udp";
import TLSSocket from "embedded:io/socket/tcp/tls";
import Resolver from "embedded:network/dns/resolver/udp";
import MQTTClient from "embedded:network/mqtt/client";
import config from "mc/config";
import { containedTcp, failureReason } from "link/contained-tcp";
import type { DeviceConfig } from "link/device-config";

export type QoS = 0 | 1 | 2;

export interface SessionHandlers {
  /** TLS verified and CONNACK accepted */
  onReached(): void;
  onMessage(topic: string, payload: ArrayBuffer): void;
  onSubscribed(id: number, granted: readonly number[]): void;
  onPublished(id: number): void;
  /** the session is over; make a new one to reconnect */
  onDown(reason: string): void;
}

interface Inbound {
  topic: string;
  parts: ArrayBuffer[];
}

export class LinkSession {
  #client: MQTTClient | undefined;
  #handlers: SessionHandlers;
  #inbound: Inbound | undefined;
  #reached = false;

  constructor(device: DeviceConfig, handlers: SessionHandlers) {
    this.#handlers = handlers;
    const espguard = config.espguard as { keepaliveMs: number; dnsServers: string[] };
    const session = this;
    this.#client = new MQTTClient({
      host: device.brokerHost,
      port: device.brokerPort,
      id: device.deviceId,
      keepalive: espguard.keepaliveMs,
      clean: true,
      dns: { io: Resolver, servers: espguard.dnsServers, socket: { io: UDP } },
      socket: {
        io: TLSSocket,
        TCP: { io: containedTcp((error) => session.#fail(error)) },
        secure: {
          certificate: device.caDer,
          clientCertificates: [device.certDer],
          clientKey: device.keyDer,
          // a resumed handshake skips certificate verification
          cache: false,
        },
      },
      onControl(message) {
        session.#control(message.operation, message.id ?? 0, message.payload ?? []);
      },
      onReadable(count, options) {
        session.#readable(this, count, options.topic, options.more);
      },
      onError() {
        session.#down(session.#reached ? "connection lost" : "connect failed");
      },
    });
  }

  get reached(): boolean {
    return this.#reached;
  }

  subscribe(topics: readonly string[], qos: QoS = 1): void {
    this.#live().write(null, { operation: MQTTClient.SUBSCRIBE, items: topics.map((topic) => ({ topic, QoS: qos })) });
  }

  /** Returns false when the socket has no room for it now (the caller keeps it and retries). */
  publish(topic: string, payload: ArrayBuffer, qos: QoS, retain = false): boolean {
    try {
      this.#live().write(payload, { topic, QoS: qos, retain });
      return true;
    } catch (error) {
      if ((error as Error).message === "overflow") return false;
      throw error;
    }
  }

  close(): void {
    const client = this.#client;
    this.#client = undefined;
    client?.close();
  }

  #live(): MQTTClient {
    if (!this.#client || !this.#reached) throw new Error("link session is not connected");
    return this.#client;
  }

  #control(operation: number, id: number, payload: readonly number[]): void {
    if (operation === MQTTClient.CONNACK) {
      this.#reached = true;
      this.#handlers.onReached();
    } else if (operation === MQTTClient.SUBACK) this.#handlers.onSubscribed(id, payload);
    else if (operation === MQTTClient.PUBACK) this.#handlers.onPublished(id);
  }

  #readable(client: MQTTClient, count: number, topic: string | undefined, more: boolean): void {
    if (topic !== undefined) this.#inbound = { topic, parts: [] };
    const inbound = this.#inbound;
    const part = client.read(count);
    if (!inbound || !part) return;
    inbound.parts.push(part);
    if (more) return;
    this.#inbound = undefined;
    this.#handlers.onMessage(inbound.topic, concat(inbound.parts));
  }

  /** A TLS failure thrown inside a socket callback: close outside that callback, then report. */
  #fail(error: unknown): void {
    const client = this.#client;
    if (!client) return;
    this.#down(`tls ${failureReason(error)}`);
    Timer.set(() => client.close());
  }

  #down(reason: string): void {
    if (!this.#client) return;
    this.#client = undefined;
    this.#reached = false;
    this.#handlers.onDown(reason);
  }
}

function concat(parts: readonly ArrayBuffer[]): ArrayBuffer {
  if (parts.length === 1) return parts[0]!;
  const total = parts.reduce((sum, part) => sum + part.byteLength, 0);
  const out = new Uint8Array(total);
  let offset = 0;
  for (const part of parts) {
    out.set(new Uint8Array(part), offset);
    offset += part.byteLength;
  }
  return out.buffer;
}
