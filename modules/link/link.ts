// The device's link to its broker, kept up for the life of the boot: trusted time first, then
// one LinkSession after another with capped, fully jittered backoff between them. On each
// CONNACK it publishes the retained "online" status (the will publishes "offline"), subscribes to
// the device's command and OTA topics, and re-sends every QoS 1 message still waiting for its
// PUBACK. Other modules learn that the broker was reached, and why the link went down, through
// subscribe(). The connection manager (net/manager) tells it when the network goes and comes
// back: without a network no attempt is made (each would only fail and widen the backoff), and
// when it returns the link connects at once instead of sitting out a backoff window.
import Timer from "timer";
import config from "mc/config";
import { Backoff, type BackoffPolicy } from "link/backoff";
import type { DeviceConfig } from "link/device-config";
import { ConfigKey, configDomain } from "link/device-config";
import { Outbox } from "link/outbox";
import type { LinkReason } from "link/reasons";
import { LinkSession, type QoS } from "link/session";
import { ClockError, TrustedClock, type ClockResult } from "time/clock";

export interface LinkListener {
  /** TLS verified (chain, name, pins, dates) and CONNACK accepted */
  onReached?(): void;
  /** the link is down; the next attempt starts in `retryMs` */
  onDown?(reason: LinkReason, detail: string, retryMs: number): void;
  onClock?(result: ClockResult): void;
  onMessage?(topic: string, payload: ArrayBuffer): void;
  onSubscribed?(granted: readonly number[]): void;
  /** a QoS 1 message reached the broker */
  onDelivered?(topic: string): void;
  /** the outbox was full and dropped its oldest message; `dropped` counts all drops since boot */
  onDropped?(topic: string, dropped: number): void;
}

export interface LinkSettings {
  readonly keepaliveMs: number;
  readonly dnsServers: readonly string[];
  readonly connectTimeoutMs: number;
  readonly backoff: BackoffPolicy;
  /** QoS 1 messages kept while the link is down */
  readonly outboxCapacity: number;
  /** QoS 1 messages sent and not yet acknowledged, per session */
  readonly inflight: number;
  readonly sntpTimeoutMs: number;
  readonly sntpAttempts: number;
  /** seconds the time floor must advance before it is rewritten (NVS wear) */
  readonly floorStepS: number;
}

export class LinkSettingsError extends Error {
  override name = "LinkSettingsError";
}

/** The link's settings from the manifest's config.espguard. */
export function linkSettings(): LinkSettings {
  const espguard = (config.espguard ?? {}) as Record<string, unknown>;
  const number = (key: string): number => {
    const value = espguard[key];
    if (typeof value !== "number" || !(value > 0)) throw new LinkSettingsError(`manifest config.espguard.${key} must be a positive number`);
    return value;
  };
  const backoff = espguard.backoff as Partial<BackoffPolicy> | undefined;
  const dnsServers = espguard.dnsServers;
  if (!Array.isArray(dnsServers)) throw new LinkSettingsError("manifest config.espguard.dnsServers must list IPv4 addresses");
  return Object.freeze({
    keepaliveMs: number("keepaliveMs"),
    dnsServers: dnsServers.map(String),
    connectTimeoutMs: number("connectTimeoutMs"),
    backoff: Object.freeze({ baseMs: Number(backoff?.baseMs), capMs: Number(backoff?.capMs), floorMs: Number(backoff?.floorMs) }),
    outboxCapacity: number("outboxCapacity"),
    inflight: number("inflight"),
    sntpTimeoutMs: number("sntpTimeoutMs"),
    sntpAttempts: number("sntpAttempts"),
    floorStepS: number("floorStepS"),
  });
}

export function statusTopic(device: DeviceConfig): string {
  return `devices/${device.deviceId}/status`;
}

export class Link {
  readonly device: DeviceConfig;
  #settings: LinkSettings;
  #listeners: LinkListener[] = [];
  #topics: string[];
  #clock: TrustedClock;
  #backoff: Backoff;
  #outbox: Outbox;
  #session: LinkSession | undefined;
  #retry: ReturnType<typeof Timer.set> | undefined;
  /** ids of outbox messages sent in this session */
  #inflight: number[] = [];
  #subscribeId = 0;
  #statusId = 0;
  #stopped = true;
  #offline = false;
  /** bumped when the network goes down: a clock query started before then is stale */
  #epoch = 0;

  constructor(device: DeviceConfig, settings: LinkSettings = linkSettings(), random: () => number = Math.random) {
    this.device = device;
    this.#settings = settings;
    this.#topics = [`devices/${device.deviceId}/cmd`, `devices/${device.deviceId}/ota`];
    this.#backoff = new Backoff(settings.backoff, random);
    this.#outbox = new Outbox(settings.outboxCapacity);
    this.#clock = new TrustedClock({
      domain: configDomain(),
      floorKey: ConfigKey.timeFloor,
      servers: device.ntpServers,
      dnsServers: settings.dnsServers,
      timeoutMs: settings.sntpTimeoutMs,
      attempts: settings.sntpAttempts,
      floorStepS: settings.floorStepS,
    });
  }

  /** Adds a listener; returns a function that removes it. */
  subscribe(listener: LinkListener): () => void {
    this.#listeners.push(listener);
    return () => {
      const index = this.#listeners.indexOf(listener);
      if (index >= 0) this.#listeners.splice(index, 1);
    };
  }

  /** Another topic filter to subscribe to on every session (before start()). */
  follow(topic: string): void {
    if (!this.#topics.includes(topic)) this.#topics.push(topic);
  }

  get up(): boolean {
    return this.#session?.reached === true;
  }

  get queued(): number {
    return this.#outbox.size;
  }

  get dropped(): number {
    return this.#outbox.dropped;
  }

  start(): void {
    if (!this.#stopped) return;
    this.#stopped = false;
    this.#attempt();
  }

  /**
   * QoS 1: queued until the broker acknowledges it, across link loss. QoS 0: sent only while the
   * link is up; returns whether it was.
   */
  publish(topic: string, payload: ArrayBuffer, qos: QoS, retain = false): boolean {
    if (qos === 0) return this.up && this.#session!.publish(topic, payload, { qos: 0, retain });
    const dropped = this.#outbox.add(topic, payload, retain);
    if (dropped) this.#each((l) => l.onDropped?.(dropped.topic, this.#outbox.dropped));
    this.#pump();
    return true;
  }

  /** The network is gone: end the session now and make no attempt until networkUp(). */
  networkDown(): void {
    if (this.#offline) return;
    this.#offline = true;
    this.#epoch++;
    this.#inflight = [];
    if (this.#retry !== undefined) Timer.clear(this.#retry);
    this.#retry = undefined;
    this.#clock.close();
    const session = this.#session;
    this.#session = undefined;
    session?.close();
  }

  /** The network is back: connect at once, with the backoff starting over. */
  networkUp(): void {
    if (!this.#offline) return;
    this.#offline = false;
    this.#backoff.reset();
    if (!this.#stopped) this.#attempt();
  }

  /** Ends the link for good (before a reboot). */
  stop(): void {
    this.#stopped = true;
    if (this.#retry !== undefined) Timer.clear(this.#retry);
    this.#retry = undefined;
    this.#clock.close();
    const session = this.#session;
    this.#session = undefined;
    session?.close();
  }

  #each(call: (listener: LinkListener) => void): void {
    for (const listener of this.#listeners.slice()) call(listener);
  }

  #attempt(): void {
    this.#retry = undefined;
    if (this.#stopped || this.#offline) return;
    const epoch = this.#epoch;
    try {
      this.#clock.acquire((result) => {
        if (this.#stopped || epoch !== this.#epoch) return;
        this.#each((l) => l.onClock?.(result));
        if (this.#stopped) return;
        if (result.source === "unknown") return this.#down("clock-unknown", "no NTP server answered and no time floor is provisioned");
        this.#connect();
      });
    } catch (error) {
      // a malformed floor in NVS: report it and retry (a re-provisioned floor is read next time)
      if (!(error instanceof ClockError)) throw error;
      this.#down("clock-unknown", error.message);
    }
  }

  #connect(): void {
    const link = this;
    const settings = this.#settings;
    this.#inflight = [];
    this.#session = new LinkSession(this.device, {
      keepaliveMs: settings.keepaliveMs,
      dnsServers: settings.dnsServers,
      connectTimeoutMs: settings.connectTimeoutMs,
      will: { topic: statusTopic(this.device), message: "offline" },
    }, {
      onReached() {
        link.#reached();
      },
      onMessage(topic, payload) {
        link.#each((l) => l.onMessage?.(topic, payload));
      },
      onSubscribed(id, granted) {
        if (id === link.#subscribeId) link.#each((l) => l.onSubscribed?.(granted));
      },
      onPublished(id) {
        link.#acknowledged(id);
      },
      onDown(reason, detail) {
        link.#session = undefined;
        link.#down(reason, detail);
      },
    });
  }

  #reached(): void {
    const session = this.#session!;
    this.#backoff.reset();
    this.#clock.confirm();
    this.#statusId = this.#outbox.allocateId();
    this.#subscribeId = this.#outbox.allocateId();
    this.#each((l) => l.onReached?.());
    // each write may find the connection gone, which ends the session
    session.publish(statusTopic(this.device), ArrayBuffer.fromString("online"), { qos: 1, id: this.#statusId, retain: true });
    if (session.reached) session.subscribe(this.#subscribeId, this.#topics);
    this.#pump();
  }

  #acknowledged(id: number): void {
    if (id === this.#statusId) return;
    const entry = this.#outbox.entries().find((candidate) => candidate.id === id);
    const index = this.#inflight.indexOf(id);
    if (index >= 0) this.#inflight.splice(index, 1);
    if (!entry || !this.#outbox.acknowledge(id)) return;
    this.#each((l) => l.onDelivered?.(entry.topic));
    this.#pump();
  }

  /** Sends waiting messages, oldest first, keeping at most `inflight` unacknowledged. */
  #pump(): void {
    const session = this.#session;
    if (!session?.reached) return;
    for (const entry of this.#outbox.entries()) {
      if (this.#inflight.length >= this.#settings.inflight) return;
      if (this.#inflight.includes(entry.id)) continue;
      if (!session.publish(entry.topic, entry.payload, { qos: 1, id: entry.id, retain: entry.retain, duplicate: entry.sent })) return;
      entry.sent = true;
      this.#inflight.push(entry.id);
    }
  }

  #down(reason: LinkReason, detail: string): void {
    this.#inflight = [];
    if (this.#stopped || this.#offline) return;
    const retryMs = this.#backoff.next();
    this.#retry = Timer.set(() => this.#attempt(), retryMs);
    this.#each((l) => l.onDown?.(reason, detail, retryMs));
  }
}
