// One MQTT session over mutually authenticated TLS to the provisioned broker, built from
// Moddable's ECMA-419 TCP socket, TLS socket, DNS resolver and MQTT client. It ends once, with a
// typed reason; link.ts makes the next one.
import Timer from "timer";
import UDP from "embedded:io/socket/udp";
import Resolver from "embedded:network/dns/resolver/udp";
import MQTTClient from "embedded:network/mqtt/client";
import { ConnectionWatch } from "link/contained-tcp";
import type { DeviceConfig } from "link/device-config";
import { type LinkReason, describeFailure, tlsReason } from "link/reasons";

export type QoS = 0 | 1;

export interface SessionOptions {
  readonly keepaliveMs: number;
  readonly dnsServers: readonly string[];
  /** TCP + TLS + CONNACK must complete within this */
  readonly connectTimeoutMs: number;
  /** last will: published by the broker when the session dies without a DISCONNECT */
  readonly will: { readonly topic: string; readonly message: string };
}

export interface SessionHandlers {
  /** TLS verified and CONNACK accepted */
  onReached(): void;
  onMessage(topic: string, payload: ArrayBuffer): void;
  onSubscribed(id: number, granted: readonly number[]): void;
  onPublished(id: number): void;
  /** the session is over, once; make a new one to reconnect */
  onDown(reason: LinkReason, detail: string): void;
}

interface Inbound {
  topic: string;
  parts: ArrayBuffer[];
}

export class LinkSession {
  #client: MQTTClient | undefined;
  #handlers: SessionHandlers;
  #watch: ConnectionWatch;
  #inbound: Inbound | undefined;
  #reached = false;
  #deadline: ReturnType<typeof Timer.set> | undefined;
  #timedOut = false;
  /** a close() that came while the name was resolving */
  #closeAfterError: (() => void) | undefined;

  constructor(device: DeviceConfig, options: SessionOptions, handlers: SessionHandlers) {
    this.#handlers = handlers;
    const session = this;
    this.#watch = new ConnectionWatch((error) => session.#tlsFailed(error), (error) => session.#writeFailed(error));
    this.#deadline = Timer.set(() => session.#expire(), options.connectTimeoutMs);
    this.#client = new MQTTClient({
      host: device.brokerHost,
      port: device.brokerPort,
      id: device.deviceId,
      keepalive: options.keepaliveMs,
      clean: true,
      will: { topic: options.will.topic, message: options.will.message, QoS: 1, retain: true },
      dns: { io: Resolver, servers: options.dnsServers, socket: { io: UDP } },
      socket: {
        io: this.#watch.tls(),
        TCP: { io: this.#watch.tcp() },
        secure: {
          certificate: device.caDer,
          clientCertificates: [device.certDer],
          clientKey: device.keyDer,
          // a resumed handshake skips certificate verification
          cache: false,
          ...(device.pins ? { pins: device.pins } : {}),
        },
      },
      onControl(message) {
        session.#control(message.operation, message.id ?? 0, message.payload ?? []);
      },
      onReadable(count, readable) {
        session.#readable(this, count, readable.topic, readable.more);
      },
      onError() {
        session.#clientError();
      },
    });
  }

  get reached(): boolean {
    return this.#reached;
  }

  /** Returns false when the session could not send it (it is then down or going down). */
  subscribe(id: number, topics: readonly string[]): boolean {
    return this.#write(null, { operation: MQTTClient.SUBSCRIBE, id, items: topics.map((topic) => ({ topic, QoS: 1 })) });
  }

  /** Returns false when the socket has no room for it now, or the session is going down (the caller keeps it and retries). */
  publish(topic: string, payload: ArrayBuffer, options: { qos: QoS; id?: number; retain?: boolean; duplicate?: boolean }): boolean {
    return this.#write(payload, {
      topic, QoS: options.qos, retain: options.retain ?? false,
      ...(options.id === undefined ? {} : { id: options.id }),
      ...(options.duplicate ? { duplicate: true } : {}),
    });
  }

  // A write can fail because the connection died under it (the peer's close is read after the
  // PUBACK that triggered the write): that ends the session, the message stays with the caller.
  #write(data: ArrayBuffer | null, options: Parameters<MQTTClient["write"]>[1]): boolean {
    const client = this.#client;
    // an earlier write may have ended the session: the socket reports its failure from inside the write
    if (!client || !this.#reached) return false;
    try {
      client.write(data, options);
      return this.#reached;
    } catch (error) {
      if ((error as Error).message === "overflow") return false;
      this.#down("lost", `write failed: ${describeFailure(error)}`);
      Timer.set(() => client.close());
      return false;
    }
  }

  /**
   * Ends the session without a report. Closing the client while the broker's name still
   * resolves crashes the board (the resolver calls back into the closed client), so then the
   * close waits for the resolution, or for the client's own DNS failure.
   */
  close(): void {
    this.#stopDeadline();
    const client = this.#client;
    this.#client = undefined;
    if (!client) return;
    if (this.#watch.resolved) return client.close();
    const closeLater = (): void => void Timer.set(() => client.close());
    this.#watch.onResolved = closeLater;
    this.#closeAfterError = closeLater;
  }

  #control(operation: number, id: number, payload: readonly number[]): void {
    if (operation === MQTTClient.CONNACK) {
      this.#stopDeadline();
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

  /** A TLS failure, thrown inside a socket callback or by the TLS socket's constructor. */
  #tlsFailed(error: unknown): void {
    const client = this.#client;
    if (!client) return;
    this.#down(tlsReason(error), describeFailure(error));
    // close outside the socket callback that is unwinding
    Timer.set(() => client.close());
  }

  /** The socket refused a write the MQTT client made on its own (an ack, a keepalive). */
  #writeFailed(error: unknown): void {
    const client = this.#client;
    if (!client) return;
    this.#down(this.#reached ? "lost" : "refused", `write failed: ${describeFailure(error)}`);
    Timer.set(() => client.close());
  }

  #clientError(): void {
    const client = this.#client;
    if (!client) return this.#closeAfterError?.();
    const watch = this.#watch;
    const reason: LinkReason = this.#reached ? "lost"
      : !watch.resolved ? "dns"
      : this.#timedOut ? "timeout"
      : "refused";
    this.#down(reason, watch.connected || this.#reached ? "the broker closed the connection" : "no connection");
    Timer.set(() => client.close());
  }

  // While the broker's name still resolves the client must not be closed (see close()): the
  // client's own DNS failure or connect timeout then ends the session, reported as a timeout.
  #expire(): void {
    this.#deadline = undefined;
    if (this.#reached || !this.#client) return;
    this.#timedOut = true;
    if (!this.#watch.resolved) return;
    const client = this.#client;
    this.#down("timeout", "no CONNACK within the connect deadline");
    client.close();
  }

  #stopDeadline(): void {
    if (this.#deadline !== undefined) Timer.clear(this.#deadline);
    this.#deadline = undefined;
  }

  #down(reason: LinkReason, detail: string): void {
    if (!this.#client) return;
    this.#stopDeadline();
    this.#client = undefined;
    this.#reached = false;
    this.#handlers.onDown(reason, detail);
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
