// The back end's check of one received telemetry message: the envelope (form, header, signature
// in constant time, via modules/telemetry/envelope), then what only the back end can know: that
// `dev` is the device whose topic carried it, that `ts` is near the verifier's clock, and that
// `seq` was not accepted before. The replay claim comes last, so a refused message changes no state.
import { type KeyLookup, type RejectReason as EnvelopeReason, type VerifiedEnvelope, verifyEnvelope } from "../modules/telemetry/envelope.ts";
import type { ReplayStore } from "./replay-store.ts";

export type RejectReason = EnvelopeReason | "bad-topic" | "dev-mismatch" | "skew" | "replay";

export const REJECT_REASONS: readonly RejectReason[] = [
  "oversize", "malformed", "missing-sig", "bad-header", "non-canonical", "unknown-kid", "bad-sig",
  "bad-topic", "dev-mismatch", "skew", "replay",
];

export type Verdict =
  | { readonly ok: true; readonly topic: string; readonly envelope: VerifiedEnvelope }
  | { readonly ok: false; readonly reason: RejectReason; readonly detail: string; readonly dev?: string; readonly seq?: number };

export interface VerifierOptions {
  /** the key for a device's kid: a Keyring's lookup, which refuses kids the fleet does not use */
  readonly keys: KeyLookup;
  readonly replay: ReplayStore;
  /** most seconds a message's `ts` may differ from the verifier's clock */
  readonly maxSkewS: number;
  /** the verifier's clock, unix seconds */
  readonly now?: () => number;
}

const TOPIC_PREFIX = "devices/";
const TOPIC_SUFFIX = "/telemetry";

/** Whether `topic` is devices/<id>/telemetry for some id. */
function isTelemetryTopic(topic: string): boolean {
  return topic.length > TOPIC_PREFIX.length + TOPIC_SUFFIX.length && topic.startsWith(TOPIC_PREFIX) && topic.endsWith(TOPIC_SUFFIX) &&
    topic.indexOf("/", TOPIC_PREFIX.length) === topic.length - TOPIC_SUFFIX.length;
}

/** Whether the telemetry topic `topic` is the one of device `dev` (compared in place: this runs on every message). */
function isTopicOf(topic: string, dev: string): boolean {
  return topic.length === TOPIC_PREFIX.length + dev.length + TOPIC_SUFFIX.length && topic.startsWith(dev, TOPIC_PREFIX.length);
}

export class TelemetryVerifier {
  readonly #options: VerifierOptions;
  readonly #now: () => number;
  accepted = 0;
  readonly rejected: Record<RejectReason, number> = Object.fromEntries(REJECT_REASONS.map((r) => [r, 0])) as Record<RejectReason, number>;

  constructor(options: VerifierOptions) {
    this.#options = options;
    this.#now = options.now ?? (() => Date.now() / 1000);
  }

  check(topic: string, payload: string): Verdict {
    const verdict = this.#check(topic, payload);
    if (verdict.ok) this.accepted++;
    else this.rejected[verdict.reason]++;
    return verdict;
  }

  #check(topic: string, payload: string): Verdict {
    if (!isTelemetryTopic(topic)) return { ok: false, reason: "bad-topic", detail: `${JSON.stringify(topic)} is not devices/<id>/telemetry` };
    const result = verifyEnvelope(payload, this.#options.keys);
    if (!result.ok) return { ok: false, reason: result.reason, detail: result.detail, ...(result.header ? { dev: result.header.dev, seq: result.header.seq } : {}) };
    const { dev, seq, ts } = result.envelope.header;
    if (!isTopicOf(topic, dev)) {
      const device = topic.slice(TOPIC_PREFIX.length, topic.length - TOPIC_SUFFIX.length);
      return { ok: false, reason: "dev-mismatch", detail: `dev "${dev}" arrived on the topic of "${device}"`, dev, seq };
    }
    if (ts !== undefined) {
      const skew = ts - this.#now();
      if (Math.abs(skew) > this.#options.maxSkewS)
        return { ok: false, reason: "skew", detail: `ts is ${Math.round(skew)} s from the verifier's clock (limit ${this.#options.maxSkewS} s)`, dev, seq };
    }
    const claim = this.#options.replay.claim(dev, seq);
    if (!claim.ok) return { ok: false, reason: "replay", detail: claim.detail, dev, seq };
    return { ok: true, topic, envelope: result.envelope };
  }
}
