// The device's trusted clock. A board boots at the epoch with no RTC; certificate dates can only
// be checked once the time is known. Sources, best first:
// - SNTP, accepted only at or after the time floor (a forged or stale reply cannot wind the clock
//   back into a revoked certificate's validity);
// - the time floor itself (NVS), a lower bound set at provisioning: the device connects with it
//   when no NTP server answers, and a certificate issued after it then reads as "clock-unknown".
// The floor moves forward only with time a verified TLS session to the pinned broker has
// accepted (confirm()), never with a bare SNTP reply, so a forged reply far in the future cannot
// lock the device out for good.
import Preference from "preference";
import Time from "time";
import { SntpQuery, type SntpServer } from "time/sntp";

export type ClockSource = "unknown" | "floor" | "sntp";

export interface ClockOptions {
  /** Preference domain and key of the floor (seconds since the epoch, an int32) */
  readonly domain: string;
  readonly floorKey: string;
  readonly servers: readonly SntpServer[];
  readonly dnsServers: readonly string[];
  readonly timeoutMs: number;
  readonly attempts: number;
  /** the floor is rewritten only when it advances this much (NVS wear) */
  readonly floorStepS: number;
}

export interface ClockResult {
  readonly source: ClockSource;
  /** the SNTP reply refused for being before the floor, ms; absent when none was */
  readonly rejectedMs?: number;
  readonly server?: string;
}

export class ClockError extends Error {
  override name = "ClockError";
}

export class TrustedClock {
  #options: ClockOptions;
  #source: ClockSource = "unknown";
  #query: SntpQuery | undefined;

  constructor(options: ClockOptions) {
    this.#options = options;
  }

  get source(): ClockSource {
    return this.#source;
  }

  /** The provisioned lower bound, ms since the epoch; 0 when none is provisioned. */
  floorMs(): number {
    const value = Preference.get(this.#options.domain, this.#options.floorKey);
    if (value === undefined) return 0;
    if (typeof value !== "number" || !Number.isInteger(value) || value < 0)
      throw new ClockError(`time floor "${this.#options.floorKey}" is not a count of seconds; provision it as an integer (espguard device provision)`);
    return value * 1000;
  }

  /** Runs SNTP unless it already succeeded this boot, then reports the clock's source. */
  acquire(done: (result: ClockResult) => void): void {
    if (this.#source === "sntp") return done({ source: "sntp" });
    if (this.#query) throw new ClockError("acquire() while a previous acquire() is still running");
    const floor = this.floorMs();
    let rejectedMs: number | undefined;
    const fallBack = (): void => {
      this.#query = undefined;
      if (floor > 0 && Date.now() < floor) Time.set(Math.ceil(floor / 1000));
      if (floor > 0) this.#source = "floor";
      done(rejectedMs === undefined ? { source: this.#source } : { source: this.#source, rejectedMs });
    };
    if (this.#options.servers.length === 0) return fallBack();
    this.#query = new SntpQuery({
      servers: this.#options.servers,
      dnsServers: this.#options.dnsServers,
      timeoutMs: this.#options.timeoutMs,
      attempts: this.#options.attempts,
      onTime: (epochMs, server) => {
        if (epochMs < floor) {
          rejectedMs = epochMs;
          return fallBack();
        }
        this.#query = undefined;
        Time.set(Math.floor(epochMs / 1000));
        this.#source = "sntp";
        done({ source: "sntp", server: `${server.host}:${server.port}` });
      },
      onFail: fallBack,
    });
  }

  /** The current time survived a verified TLS handshake: let the floor follow it. */
  confirm(): void {
    if (this.#source === "unknown") return;
    const nowS = Math.floor(Date.now() / 1000);
    if (nowS - this.floorMs() / 1000 >= this.#options.floorStepS) Preference.set(this.#options.domain, this.#options.floorKey, nowS);
  }

  close(): void {
    this.#query?.close();
    this.#query = undefined;
  }
}
