// OTA on a twin device (the firmware's real updater in a twin device process, against mosquitto and
// the `ota serve` HTTPS server, set up as the OTA device tests set it up: test/fixtures/ota-device/rig.ts).
// Each trial: a raw HTTPS download of the image file by Node over loopback (the baseline), then the
// same file announced to the device as the next release. Download-to-verified = the updater's first
// request to its "ota-installed" (image verified, complete() switched the slot), before the reboot.
// Boot-to-valid = the old boot's process exit (the reset) to the new image's "ota-valid" (the boot
// guard confirmed it after reaching the broker). Event times are taken as the device's lines arrive.
import { get } from "node:https";
import { bundleFirmware } from "../twin/runtime/bundle.ts";
import { OtaRig, twinImage } from "../test/fixtures/ota-device/rig.ts";
import type { DeviceEvent } from "../twin/device/supervisor.ts";
import type { Row } from "./report.ts";
import { median } from "./stats.ts";

// The size of a real ESP32 application image, padded onto the twin bundle as a trailing comment.
const IMAGE_BYTES = 1.5 * 1024 * 1024;
const STEP_TIMEOUT_MS = 60_000;

export interface OtaTwinResult {
  readonly imageBytes: number;
  readonly updates: number;
  readonly rawDownloadMs: readonly number[];
  readonly downloadToVerifiedMs: readonly number[];
  readonly bootToValidMs: readonly number[];
  readonly rows: readonly Row[];
}

function download(url: string, ca: string): Promise<number> {
  return new Promise((resolve, reject) => {
    let bytes = 0;
    get(url, { ca, agent: false }, (response) => {
      response.on("data", (chunk: Buffer) => (bytes += chunk.length));
      response.on("end", () => resolve(bytes));
      response.on("error", reject);
    }).on("error", reject);
  });
}

function padded(bundle: string): string {
  return `${bundle}\n//${"x".repeat(Math.max(0, IMAGE_BYTES - 512 - bundle.length))}\n`;
}

interface Stamped {
  readonly event: DeviceEvent;
  readonly at: number;
}

export async function runOtaTwinBench(updates: number, progress: (line: string) => void): Promise<OtaTwinResult> {
  const [rig, bundle] = await Promise.all([OtaRig.start(), bundleFirmware({ format: "esm" }).then(padded)]);
  try {
    const device = await rig.device("bench-ota", twinImage(bundle, "1.0.0", 1, rig.signer));
    const stamps: Stamped[] = [];
    const exits: { boot: number; at: number }[] = [];
    device.on("event", (event: DeviceEvent) => stamps.push({ event, at: performance.now() }));
    device.on("exit", (exit: { boot: number }) => exits.push({ boot: exit.boot, at: performance.now() }));
    const stamp = (name: string, boot: number, after = 0) => stamps.find((s) => s.event.name === name && s.event.boot === boot && s.at >= after)!.at;
    device.start();
    await device.waitForEvent("subscribed", { timeoutMs: STEP_TIMEOUT_MS });

    const rawDownloadMs: number[] = [];
    const downloadToVerifiedMs: number[] = [];
    const bootToValidMs: number[] = [];
    let imageBytes = 0;
    for (let i = 1; i <= updates; i++) {
      const image = twinImage(bundle, `1.${i}.0`, i + 1, rig.signer);
      imageBytes = image.length;
      const url = rig.serve(image);
      const start = performance.now();
      const got = await download(url, rig.ca.certPem);
      if (got !== image.length) throw new Error(`raw download got ${got} of ${image.length} bytes`);
      rawDownloadMs.push(performance.now() - start);

      const boot = device.boots;
      const announced = performance.now();
      await rig.announce(device, image, url);
      await device.waitForEvent("ota-installed", { fromBoot: boot, timeoutMs: STEP_TIMEOUT_MS, where: (e) => e.detail.version === `1.${i}.0` });
      downloadToVerifiedMs.push(stamp("ota-installed", boot, announced) - stamp("ota-request", boot, announced));
      const valid = await device.waitForEvent("ota-valid", { fromBoot: boot + 1, timeoutMs: STEP_TIMEOUT_MS });
      bootToValidMs.push(stamp("ota-valid", valid.boot) - exits.find((exit) => exit.boot === valid.boot - 1)!.at);
      await device.waitForEvent("subscribed", { fromBoot: valid.boot, timeoutMs: STEP_TIMEOUT_MS });
      progress(`update ${i}/${updates}: raw download ${rawDownloadMs.at(-1)!.toFixed(0)} ms, ` +
        `download-to-verified ${downloadToVerifiedMs.at(-1)!.toFixed(0)} ms, boot-to-valid ${bootToValidMs.at(-1)!.toFixed(0)} ms`);
    }
    const twin = median(downloadToVerifiedMs);
    const raw = median(rawDownloadMs);
    return {
      imageBytes, updates, rawDownloadMs, downloadToVerifiedMs, bootToValidMs,
      rows: [
        { suite: "OTA in the twin", metric: `download-to-verified, ${(imageBytes / 1048576).toFixed(1)} MiB (median)`,
          value: `${twin.toFixed(0)} ms`, baseline: `${raw.toFixed(0)} ms raw HTTPS download`, ratio: twin / raw, target: "≤ 1.5" },
        { suite: "OTA in the twin", metric: `boot-to-valid after an update, p50 / max of ${updates}`,
          value: `${median(bootToValidMs).toFixed(0)} / ${Math.max(...bootToValidMs).toFixed(0)} ms` },
      ],
    };
  } finally {
    await rig.close();
  }
}
