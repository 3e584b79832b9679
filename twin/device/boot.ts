// One boot of a twin device (a child process of the supervisor): the twin bootloader picks the
// app slot from otadata and verifies the signed image there, and the firmware bundle in it runs on
// the twin's Moddable modules.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { installDeviceClock } from "../moddable/device-clock.ts";
import { freezeBuiltins } from "../moddable/preload-freeze.ts";
import { installXsGlobals } from "../moddable/xs-globals.ts";
import { registerFirmwareModules } from "../runtime/register.ts";
import { BootExit } from "./boot-exit.ts";
import { listenForRadioControl } from "./radio.ts";
import { RUNNING_SLOT_ENV, RUNNING_VERSION_ENV } from "./running-slot.ts";
import { feedWatchdog } from "./watchdog.ts";

function fail(code: number, message: string): never {
  process.stderr.write(JSON.stringify({ espguard: "boot-failed", message }) + "\n");
  process.exit(code);
}

const flashPath = process.env.ESPGUARD_TWIN_FLASH;
const runDir = process.env.ESPGUARD_TWIN_RUN;
if (!flashPath || !runDir) fail(2, "boot.ts runs under the twin supervisor (ESPGUARD_TWIN_FLASH and ESPGUARD_TWIN_RUN unset)");

// An uncaught exception aborts the XS VM, which resets the board.
process.on("uncaughtException", (error) => {
  process.stderr.write(JSON.stringify({ espguard: "abort", message: String(error?.stack ?? error) }) + "\n");
  process.exit(1);
});

// first, so a radio change made while this boot starts is not lost
listenForRadioControl();

// The bootloader verifies images with the firmware's own OTA modules, which import Moddable
// built-ins by bare name: the resolve hook comes first.
registerFirmwareModules([runDir + "/"]);
const { readBootImage } = await import("./bootloader.ts");
let image;
try {
  image = readBootImage(flashPath);
} catch (error) {
  fail(BootExit.noBootableImage, (error as Error).message);
}
process.stdout.write(JSON.stringify({ espguard: "bootloader", slot: image.slot, version: image.version, counter: image.counter }) + "\n");
process.env[RUNNING_SLOT_ENV] = image.slot;
process.env[RUNNING_VERSION_ENV] = image.version;
mkdirSync(runDir, { recursive: true });
const app = join(runDir, `app-${image.slot}-${image.sha256.slice(0, 16)}.mjs`);
writeFileSync(app, image.bundle);
installXsGlobals();
installDeviceClock();
freezeBuiltins();
feedWatchdog();
await import(pathToFileURL(app).href);
