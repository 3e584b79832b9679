// `espguard verify` at run time: one member of a shared subscription on every device's telemetry
// topic, as the verifier service account over mutual TLS. Each accepted message is one JSON line
// on `out`; rejects are counted by reason; a summary line goes to `log` every `summaryMs` and at
// the end. QoS 1: mosquitto redelivers what an instance received but did not acknowledge, and the
// replay state turns a redelivery of an accepted message into a counted "replay", not a duplicate.
import mqtt, { type MqttClient } from "mqtt";
import type { Writable } from "node:stream";
import { type TelemetryVerifier, REJECT_REASONS } from "./verifier.ts";

export interface ServiceOptions {
  readonly url: string;
  readonly ca: string;
  readonly cert: string;
  readonly key: string;
  readonly clientId: string;
  /** shared subscription group: instances in one group split the messages between them */
  readonly group: string;
  readonly summaryMs: number;
}

export const TELEMETRY_FILTER = "devices/+/telemetry";

export class VerifierServiceError extends Error {
  override name = "VerifierServiceError";
}

export class VerifierService {
  readonly #out: Writable;
  readonly #log: Writable;
  #verifier: TelemetryVerifier | undefined;
  #client: MqttClient | undefined;
  #summary: ReturnType<typeof setInterval> | undefined;

  constructor(out: Writable, log: Writable) {
    this.#out = out;
    this.#log = log;
  }

  /**
   * Connects, then makes the verifier (so a broker that cannot be reached leaves no replay state
   * behind), then subscribes. Once connected, a lost connection is retried every second.
   */
  async start(options: ServiceOptions, makeVerifier: () => TelemetryVerifier): Promise<void> {
    let client: MqttClient;
    try {
      client = await mqtt.connectAsync(options.url, {
        ca: options.ca, cert: options.cert, key: options.key, clientId: options.clientId,
        clean: true, reconnectPeriod: 0, connectTimeout: 10_000,
      }, false);
    } catch (error) {
      throw new VerifierServiceError(`cannot connect to ${options.url} as the verifier account: ${(error as Error).message}; ` +
        "check the broker address, its CA (--ca) and the account's certificate and key (--cert, --key)");
    }
    this.#client = client;
    client.options.reconnectPeriod = 1000;
    client.on("error", (error) => this.#log.write(`verify: broker: ${error.message}\n`));
    client.on("offline", () => this.#log.write("verify: broker connection lost, retrying\n"));
    const verifier = makeVerifier();
    this.#verifier = verifier;
    client.on("message", (topic, payload) => this.#receive(verifier, topic, payload));
    const filter = `$share/${options.group}/${TELEMETRY_FILTER}`;
    const granted = await client.subscribeAsync(filter, { qos: 1 });
    if (granted.some((g) => g.qos !== 1)) {
      await client.endAsync();
      throw new VerifierServiceError(`the broker refused ${filter} (granted ${granted.map((g) => g.qos).join(",")}): check the verifier account's ACL`);
    }
    this.#log.write(`verify: subscribed to ${filter} as ${options.clientId}\n`);
    this.#summary = setInterval(() => this.#log.write(`${this.summary()}\n`), options.summaryMs);
    this.#summary.unref();
  }

  summary(): string {
    const verifier = this.#verifier;
    if (!verifier) return "verify: not started";
    const rejects = REJECT_REASONS.filter((r) => verifier.rejected[r] > 0).map((r) => `${r} ${verifier.rejected[r]}`);
    return `verify: accepted ${verifier.accepted}, rejected ${rejects.length === 0 ? "0" : rejects.join(", ")}`;
  }

  async stop(): Promise<void> {
    if (this.#summary !== undefined) clearInterval(this.#summary);
    await this.#client?.endAsync();
    this.#log.write(`${this.summary()}\n`);
  }

  #receive(verifier: TelemetryVerifier, topic: string, payload: Buffer): void {
    const verdict = verifier.check(topic, payload.toString("latin1"));
    if (verdict.ok) this.#out.write(`${JSON.stringify({ topic, body: verdict.envelope.body })}\n`);
  }
}
