// The telemetry verifier the demo runs: the `espguard verify` service (shared subscription, QoS 1,
// replay state on disk) in this process, counting each verdict per device so the demo can show
// live counts, keep the last genuine message it saw, and wait for the rejects it provoked.
import { EventEmitter } from "node:events";
import { Writable } from "node:stream";
import { Keyring } from "../verifier/keyring.ts";
import { FileReplayStore } from "../verifier/replay-store.ts";
import { VerifierService } from "../verifier/service.ts";
import { type RejectReason, TelemetryVerifier, type Verdict } from "../verifier/verifier.ts";
import { DEFAULT_KID } from "../certs/telemetry-key.ts";

export interface DeviceTally {
  accepted: number;
  rejected: Partial<Record<RejectReason, number>>;
  /** the last message accepted from this device, exactly as it travelled */
  lastGenuine?: string;
}

export interface TapOptions {
  readonly url: string;
  readonly ca: string;
  readonly cert: string;
  readonly key: string;
  readonly clientId: string;
  readonly fleetSecret: Uint8Array;
  readonly stateDir: string;
}

/** Emits "verdict" (device, verdict) for every message checked. */
export class VerifierTap extends EventEmitter {
  readonly tallies = new Map<string, DeviceTally>();
  #service: VerifierService | undefined;
  #replay: FileReplayStore | undefined;

  tally(device: string): DeviceTally {
    let tally = this.tallies.get(device);
    if (tally === undefined) {
      tally = { accepted: 0, rejected: {} };
      this.tallies.set(device, tally);
    }
    return tally;
  }

  totals(): { accepted: number; rejected: number } {
    let accepted = 0;
    let rejected = 0;
    for (const tally of this.tallies.values()) {
      accepted += tally.accepted;
      rejected += Object.values(tally.rejected).reduce((a, b) => a + b, 0);
    }
    return { accepted, rejected };
  }

  async start(options: TapOptions): Promise<void> {
    const discard = new Writable({ write: (_chunk, _encoding, done) => done() });
    const service = new VerifierService(discard, discard);
    this.#service = service;
    const tap = this;
    class CountingVerifier extends TelemetryVerifier {
      override check(topic: string, payload: string): Verdict {
        const verdict = super.check(topic, payload);
        tap.#record(topic, payload, verdict);
        return verdict;
      }
    }
    await service.start({ url: options.url, ca: options.ca, cert: options.cert, key: options.key, clientId: options.clientId, group: "demo", summaryMs: 3_600_000 }, () => {
      this.#replay = new FileReplayStore(options.stateDir, 64);
      return new CountingVerifier({ keys: new Keyring(options.fleetSecret, [DEFAULT_KID]).lookup, replay: this.#replay, maxSkewS: 300 });
    });
  }

  /** Stops the service; the replay store's lock folder may live outside stateDir (in /dev/shm). */
  async stop(): Promise<string | undefined> {
    await this.#service?.stop();
    this.#replay?.close();
    return this.#replay?.lockDir;
  }

  #record(topic: string, payload: string, verdict: Verdict): void {
    const device = topic.split("/")[1] ?? topic;
    const tally = this.tally(device);
    if (verdict.ok) {
      tally.accepted++;
      tally.lastGenuine = payload;
    } else {
      tally.rejected[verdict.reason] = (tally.rejected[verdict.reason] ?? 0) + 1;
    }
    this.emit("verdict", device, verdict);
  }
}
