// The Wi-Fi connection manager: joins the provisioned networks with Moddable's `wifi` and keeps the
// station joined for the life of the boot. A failed join moves on to the next network (the
// fallback, if provisioned); once every network has failed in a row, the next round waits a
// capped, fully jittered backoff, so a device out of range does not hammer the radio. A lost
// association rejoins at once, primary first. Moddable's own retries cover only the first
// association of a connect(), never a later loss (modules/network/wifi/esp32/xs6wifi.c), which is
// why this exists instead of relying on setup/network (docs/wifi.md).
import Timer from "timer";
import config from "mc/config";
import WiFi from "wifi";
import Net from "net";
import { Backoff, type BackoffPolicy } from "link/backoff";
import type { WifiNetwork } from "net/credentials";

export type NetState = "idle" | "joining" | "up" | "down";

export type NetDownReason =
  /** the network was not found or the association failed */
  | "join-failed"
  /** the access point refused the passphrase (4-way handshake) */
  | "auth-refused"
  /** neither an address nor a failure within joinTimeoutMs */
  | "join-timeout"
  /** the association (or the address) was lost after it was up */
  | "lost";

export interface NetListener {
  onJoining?(ssid: string, attempt: number): void;
  onUp?(ip: string, ssid: string): void;
  /** the next join starts in `retryMs` */
  onDown?(reason: NetDownReason, ssid: string, retryMs: number): void;
}

export interface NetSettings {
  readonly joinTimeoutMs: number;
  readonly backoff: BackoffPolicy;
}

export class NetSettingsError extends Error {
  override name = "NetSettingsError";
}

/** The manager's settings from the manifest's config.espguard.wifi. */
export function netSettings(): NetSettings {
  const wifi = (config.espguard as { wifi?: unknown } | undefined)?.wifi as { joinTimeoutMs?: unknown; backoff?: Partial<BackoffPolicy> } | undefined;
  const joinTimeoutMs = wifi?.joinTimeoutMs;
  if (typeof joinTimeoutMs !== "number" || !(joinTimeoutMs > 0)) throw new NetSettingsError("manifest config.espguard.wifi.joinTimeoutMs must be a positive number");
  const backoff = wifi?.backoff;
  return Object.freeze({
    joinTimeoutMs,
    backoff: Object.freeze({ baseMs: Number(backoff?.baseMs), capMs: Number(backoff?.capMs), floorMs: Number(backoff?.floorMs) }),
  });
}

export class NetManager {
  readonly #networks: readonly WifiNetwork[];
  readonly #settings: NetSettings;
  readonly #backoff: Backoff;
  #listeners: NetListener[] = [];
  #monitor: WiFi | undefined;
  #state: NetState = "idle";
  /** the network being joined, or joined */
  #index = 0;
  /** joins failed in a row in this round of the networks */
  #failedInRound = 0;
  /** joins since the network was last up */
  #attempts = 0;
  #timer: ReturnType<typeof Timer.set> | undefined;
  #ip: string | undefined;

  constructor(networks: readonly WifiNetwork[], settings: NetSettings = netSettings(), random: () => number = Math.random) {
    if (networks.length === 0) throw new NetSettingsError("NetManager needs at least one network (net/credentials readWifiNetworks)");
    this.#networks = networks;
    this.#settings = settings;
    this.#backoff = new Backoff(settings.backoff, random);
  }

  get state(): NetState {
    return this.#state;
  }

  /** The station's address while the network is up. */
  get ip(): string | undefined {
    return this.#ip;
  }

  /** Adds a listener; returns a function that removes it. */
  subscribe(listener: NetListener): () => void {
    this.#listeners.push(listener);
    return () => {
      const index = this.#listeners.indexOf(listener);
      if (index >= 0) this.#listeners.splice(index, 1);
    };
  }

  start(): void {
    if (this.#monitor) return;
    this.#monitor = new WiFi(undefined, (message, reason) => this.#notify(message, reason));
    this.#join();
  }

  stop(): void {
    if (!this.#monitor) return;
    this.#clearTimer();
    this.#monitor.close();
    this.#monitor = undefined;
    this.#state = "idle";
    this.#ip = undefined;
    WiFi.disconnect();
  }

  #each(call: (listener: NetListener) => void): void {
    for (const listener of this.#listeners.slice()) call(listener);
  }

  #clearTimer(): void {
    if (this.#timer !== undefined) Timer.clear(this.#timer);
    this.#timer = undefined;
  }

  #join(): void {
    this.#timer = undefined;
    const network = this.#networks[this.#index]!;
    this.#state = "joining";
    this.#attempts++;
    this.#each((l) => l.onJoining?.(network.ssid, this.#attempts));
    if (this.#state !== "joining") return;
    // a silent join (no address, no failure) must not hold the manager forever
    this.#timer = Timer.set(() => this.#failed("join-timeout"), this.#settings.joinTimeoutMs);
    WiFi.connect({ ssid: network.ssid, password: network.password });
  }

  #notify(message: string, reason: number | undefined): void {
    if (message === WiFi.gotIP) {
      if (this.#state !== "joining") return;
      const ip = Net.get("IP");
      if (ip === undefined) return this.#failed("join-failed");
      this.#clearTimer();
      this.#state = "up";
      this.#ip = ip;
      this.#backoff.reset();
      this.#failedInRound = 0;
      this.#attempts = 0;
      const ssid = this.#networks[this.#index]!.ssid;
      this.#each((l) => l.onUp?.(ip, ssid));
    } else if (message === WiFi.disconnected || message === WiFi.lostIP) {
      if (this.#state === "joining") this.#failed(reason === -1 ? "auth-refused" : "join-failed");
      else if (this.#state === "up") this.#lost();
    }
  }

  #failed(reason: NetDownReason): void {
    if (this.#state !== "joining") return;
    this.#clearTimer();
    if (reason === "join-timeout") WiFi.disconnect();
    const ssid = this.#networks[this.#index]!.ssid;
    this.#index = (this.#index + 1) % this.#networks.length;
    this.#failedInRound++;
    let retryMs = 0;
    if (this.#failedInRound >= this.#networks.length) {
      this.#failedInRound = 0;
      retryMs = this.#backoff.next();
    }
    this.#down(reason, ssid, retryMs);
  }

  #lost(): void {
    const ssid = this.#networks[this.#index]!.ssid;
    this.#index = 0;
    this.#failedInRound = 0;
    this.#down("lost", ssid, 0);
  }

  #down(reason: NetDownReason, ssid: string, retryMs: number): void {
    this.#state = "down";
    this.#ip = undefined;
    this.#timer = Timer.set(() => this.#join(), retryMs);
    this.#each((l) => l.onDown?.(reason, ssid, retryMs));
  }
}
