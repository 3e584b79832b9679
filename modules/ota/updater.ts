// The device updater (docs/ota-image.md §3): a signed release with a higher counter → download
// the image over HTTPS (trusting only the provisioned CA), verify it on the fly with ImageVerifier
// while it streams into the inactive slot through `embedded:update`, and only once the signature,
// key, counter and target have passed call complete(), which switches the boot slot. Any failure
// closes the update (the boot slot stays) and is reported. A connection lost mid-download resumes
// where it stopped with an HTTP Range request.
import Timer from "timer";
import UDP from "embedded:io/socket/udp";
import Resolver from "embedded:network/dns/resolver/udp";
import HTTPClient from "embedded:network/http/client";
import Flash from "embedded:storage/flash";
import OTA, { type Update } from "embedded:update";
import { emit } from "diag/events";
import { ConnectionWatch } from "link/contained-tcp";
import type { DeviceConfig } from "link/device-config";
import type { PayloadType, TargetChip } from "ota/image-format";
import { ImageVerifier } from "ota/image-verifier";
import { acceptedCounter, raiseAcceptedCounter, readOtaKey, setPendingImage } from "ota/ota-config";
import { OtaRejected } from "ota/rejected";
import { type ReleaseManifest, verifyReleaseMessage } from "ota/release";
import type { OtaStatus } from "ota/status";

export interface UpdaterOptions {
  readonly device: DeviceConfig;
  readonly dnsServers: readonly string[];
  readonly target: TargetChip;
  readonly report: (status: OtaStatus) => void;
  /** false while the running image is itself unconfirmed: ESP-IDF refuses to begin an update then */
  readonly mayUpdate: () => boolean;
  /** the new image is installed and selected; the caller restarts */
  readonly onInstalled: (release: ReleaseManifest) => void;
  /** download attempts before giving up (the first one included) */
  readonly attempts?: number;
}

const PAYLOAD_TYPES: Readonly<Record<TargetChip, PayloadType>> = Object.freeze({ esp32: "esp32-app", twin: "twin-bundle" });
const PROGRESS_STEP = 25;

interface Target {
  readonly host: string;
  readonly port: number;
  readonly path: string;
}

function parseUrl(url: string): Target {
  const rest = url.slice("https://".length);
  const slash = rest.indexOf("/");
  const authority = slash < 0 ? rest : rest.slice(0, slash);
  const colon = authority.lastIndexOf(":");
  const port = colon < 0 ? 443 : Number(authority.slice(colon + 1));
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new OtaRejected("bad-release", `the url's port in ${url} is not a TCP port`);
  return { host: colon < 0 ? authority : authority.slice(0, colon), port, path: slash < 0 ? "/" : rest.slice(slash) };
}

/** One release being installed. */
class Install {
  readonly release: ReleaseManifest;
  readonly #options: UpdaterOptions;
  readonly #target: Target;
  readonly #verifier: ImageVerifier;
  readonly #update: Update;
  readonly #onEnd: () => void;
  #client: HTTPClient | undefined;
  #attempt = 0;
  #reported = -1;
  #retry: ReturnType<typeof Timer.set> | undefined;
  #over = false;

  constructor(release: ReleaseManifest, options: UpdaterOptions, onEnd: () => void) {
    this.release = release;
    this.#options = options;
    this.#onEnd = onEnd;
    this.#target = parseUrl(release.url);
    this.#verifier = new ImageVerifier({
      keys: [readOtaKey()], target: options.target, payloadTypes: [PAYLOAD_TYPES[options.target]], acceptedCounter: acceptedCounter(), release,
    });
    this.#update = OTA.open({ partition: Flash.open({ path: "nextota" }) });
    this.#request();
  }

  #request(): void {
    this.#retry = undefined;
    this.#attempt++;
    const install = this;
    const from = this.#verifier.received;
    const watch = new ConnectionWatch((error) => Timer.set(() => install.#lost(client, String(error))));
    const client = new HTTPClient({
      host: this.#target.host,
      port: this.#target.port,
      dns: { io: Resolver, servers: this.#options.dnsServers, socket: { io: UDP } },
      socket: {
        io: watch.tls(),
        TCP: { io: watch.tcp() },
        secure: { certificate: this.#options.device.caDer, cache: false },
      },
      onError(error) {
        install.#lost(client, error?.message ?? "connection failed");
      },
    });
    this.#client = client;
    emit("ota-request", { from, attempt: this.#attempt });
    client.request({
      method: "GET",
      path: this.#target.path,
      headers: new Map(from > 0 ? [["range", `bytes=${from}-`]] : []),
      onHeaders(status, headers) {
        install.#headers(client, from, status, headers);
      },
      onReadable(count) {
        const bytes = this.read(count);
        if (bytes) install.#take(client, bytes);
      },
      onDone(error) {
        if (error) install.#lost(client, error.message);
        else install.#done(client);
      },
    });
  }

  #headers(client: HTTPClient, from: number, status: number, headers: Map<string, string>): void {
    if (client !== this.#client) return;
    const expected = from > 0 ? 206 : 200;
    const range = headers.get("content-range");
    if (status !== expected || (from > 0 && (range === undefined || range.indexOf(`bytes ${from}-`) !== 0)))
      this.#fail("download-failed", `HTTP ${status}${range ? ` (${range})` : ""} for ${from > 0 ? `bytes ${from}-` : "the image"}; the server must answer ${expected}`);
  }

  #take(client: HTTPClient, bytes: ArrayBuffer): void {
    if (client !== this.#client) return;
    let payload: Uint8Array;
    try {
      payload = this.#verifier.write(bytes);
    } catch (error) {
      return this.#failWith(error);
    }
    try {
      this.#update.write(this.#options.target === "esp32" ? payload : bytes);
    } catch (error) {
      return this.#fail("write-failed", (error as Error).message);
    }
    const percent = Math.floor((100 * this.#verifier.received) / this.release.size / PROGRESS_STEP) * PROGRESS_STEP;
    if (percent > this.#reported && percent < 100) {
      this.#reported = percent;
      this.#options.report({ state: "downloading", version: this.release.version, percent });
    }
  }

  #done(client: HTTPClient): void {
    if (client !== this.#client) return;
    // the response was complete: a short image is truncated, not interrupted
    this.#closeClient();
    this.#options.report({ state: "verifying", version: this.release.version });
    try {
      this.#verifier.finish();
    } catch (error) {
      return this.#failWith(error);
    }
    setPendingImage({ counter: this.release.counter, version: this.release.version });
    try {
      this.#update.complete();
    } catch (error) {
      setPendingImage(undefined);
      return this.#fail("install-failed", (error as Error).message);
    }
    raiseAcceptedCounter(this.release.counter);
    this.#over = true;
    this.#onEnd();
    emit("ota-installed", { version: this.release.version, counter: this.release.counter });
    this.#options.report({ state: "rebooting", version: this.release.version });
    this.#options.onInstalled(this.release);
  }

  #lost(client: HTTPClient | undefined, why: string): void {
    if (client !== this.#client || this.#over) return;
    this.#closeClient();
    const attempts = this.#options.attempts ?? 5;
    emit("ota-interrupted", { received: this.#verifier.received, attempt: this.#attempt, why });
    if (this.#attempt >= attempts) return this.#fail("download-failed", `${why} (after ${this.#attempt} attempts)`);
    this.#retry = Timer.set(() => this.#request(), 1000 * this.#attempt);
  }

  #closeClient(): void {
    const client = this.#client;
    this.#client = undefined;
    if (client) Timer.set(() => client.close());
  }

  #failWith(error: unknown): void {
    if (error instanceof OtaRejected) this.#fail(error.reason, error.message);
    else throw error;
  }

  #fail(reason: string, detail: string): void {
    if (this.#over) return;
    this.#over = true;
    this.#closeClient();
    if (this.#retry !== undefined) Timer.clear(this.#retry);
    this.#update.close();
    this.#onEnd();
    emit("ota-rejected", { version: this.release.version, reason, detail });
    this.#options.report({ state: "rejected", version: this.release.version, reason, detail });
  }
}

export class OtaUpdater {
  readonly #options: UpdaterOptions;
  #install: Install | undefined;

  constructor(options: UpdaterOptions) {
    this.#options = options;
  }

  get busy(): boolean {
    return this.#install !== undefined;
  }

  /** A message on devices/<id>/ota (or the fleet topic). */
  offer(message: ArrayBuffer): void {
    const options = this.#options;
    let release: ReleaseManifest;
    const accepted = acceptedCounter();
    try {
      release = verifyReleaseMessage(message, {
        keys: [readOtaKey()], target: options.target, payloadTypes: [PAYLOAD_TYPES[options.target]], acceptedCounter: accepted,
      });
    } catch (error) {
      if (!(error instanceof OtaRejected)) throw error;
      // the retained announcement of what is already installed is not news
      if (error.reason === "downgrade" && this.#announcedCounter(message) === accepted) return;
      emit("ota-rejected", { reason: error.reason, detail: error.message });
      options.report({ state: "rejected", version: "", reason: error.reason, detail: error.message });
      return;
    }
    if (this.#install?.release.sha256 === release.sha256) return;
    if (this.#install) {
      options.report({ state: "rejected", version: release.version, reason: "busy", detail: `installing ${this.#install.release.version}; announce again later` });
      return;
    }
    if (!options.mayUpdate()) {
      options.report({ state: "rejected", version: release.version, reason: "unconfirmed", detail: "the running image is not confirmed yet; announce again once it reports valid" });
      return;
    }
    emit("ota-accepted", { version: release.version, counter: release.counter, size: release.size });
    try {
      this.#install = new Install(release, options, () => (this.#install = undefined));
    } catch (error) {
      this.#install = undefined;
      if (error instanceof OtaRejected) options.report({ state: "rejected", version: release.version, reason: error.reason, detail: error.message });
      else options.report({ state: "rejected", version: release.version, reason: "begin-failed", detail: (error as Error).message });
    }
  }

  #announcedCounter(message: ArrayBuffer): number | undefined {
    try {
      const counter = (JSON.parse(String.fromArrayBuffer(message)) as { counter?: unknown }).counter;
      return typeof counter === "number" ? counter : undefined;
    } catch {
      return undefined;
    }
  }
}
