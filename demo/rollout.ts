// One release to the whole fleet: the image goes on the `ota serve` HTTPS server, the signed
// release message goes to each device's retained OTA topic (`ota publish`), and each device's
// own reports drive its progress bar until the outcome the caller waits for.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { publishRelease } from "../ota/publish.ts";
import { releaseForImage, signRelease } from "../ota/release-sign.ts";
import type { OtaServer } from "../ota/serve.ts";
import type { SigningKey } from "../ota/signing-key.ts";
import type { DeviceEvent, TwinDevice } from "../twin/device/supervisor.ts";
import type { Progress } from "./progress.ts";

export interface Publisher {
  readonly broker: string;
  readonly ca: string;
  readonly cert: string;
  readonly key: string;
}

export interface Release {
  readonly version: string;
  readonly image: Uint8Array;
  readonly signer: SigningKey;
  readonly server: OtaServer;
  readonly imageDir: string;
  readonly publisher: Publisher;
}

/** Serves the image, signs the release for its URL and publishes it; returns the URL. */
export async function publish(release: Release, devices: readonly TwinDevice[]): Promise<string> {
  const name = `espguard-${release.version}.bin`;
  writeFileSync(join(release.imageDir, name), release.image);
  const url = release.server.url(`/${name}`);
  const message = signRelease(releaseForImage(release.image, url, release.signer), release.signer);
  await publishRelease({ message, ...release.publisher, deviceIds: devices.map((device) => device.name) });
  return url;
}

/** Where an OTA step puts the bar, out of 100: the download is most of the way. */
function position(event: DeviceEvent): { value: number; note: string } | undefined {
  const detail = event.detail;
  if (event.name === "ota-status") {
    if (detail.state === "downloading") return { value: Math.round(Number(detail.percent) * 0.8), note: `downloading ${String(detail.version)}` };
    if (detail.state === "verifying") return { value: 85, note: "verifying the signature" };
    if (detail.state === "rebooting") return { value: 90, note: "signature good, slot switched, rebooting" };
    if (detail.state === "valid") return { value: 100, note: `${String(detail.version)} confirmed valid` };
    if (detail.state === "rolled-back") return { value: 100, note: `rolled back to ${String(detail.running)} (${String(detail.reason)})` };
    if (detail.state === "rejected") return { value: 100, note: `rejected: ${String(detail.reason)}` };
  }
  if (event.name === "firmware") return { value: 95, note: `booted ${String(detail.version)} (${String(detail.ota)})` };
  if (event.name === "boot-guard") return { value: 95, note: `waiting for the broker, deadline ${Number(detail.deadlineMs) / 1000} s` };
  if (event.name === "boot-guard-expired") return { value: 97, note: "deadline passed without the broker: giving the image up" };
  return undefined;
}

/** Mirrors each device's OTA events on its bar until `stop` is called. */
export function followProgress(devices: readonly TwinDevice[], progress: Progress): () => void {
  const listeners = devices.map((device) => {
    // A bar never moves back: the boot after a rollback is a step forward in the story.
    let value = 0;
    const listener = (event: DeviceEvent) => {
      const at = position(event);
      if (at === undefined) return;
      value = Math.max(value, at.value);
      progress.update(device.name, value, at.note);
    };
    device.on("event", listener);
    return () => device.off("event", listener);
  });
  return () => {
    for (const off of listeners) off();
  };
}
