// One boot of a twin device (a child process of the supervisor): the twin bootloader picks the
// app slot, checks its image, and the firmware bundle in it runs on the twin's Moddable modules.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { freezeBuiltins } from "../moddable/preload-freeze.ts";
import { installXsGlobals } from "../moddable/xs-globals.ts";
import { registerFirmwareModules } from "../runtime/register.ts";
import { BootExit } from "./boot-exit.ts";
import { readBootImage } from "./bootloader.ts";

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

let image;
try {
  image = readBootImage(flashPath);
} catch (error) {
  fail(BootExit.noBootableImage, (error as Error).message);
}
mkdirSync(runDir, { recursive: true });
const app = join(runDir, `app-${image.slot}-${image.sha256.slice(0, 16)}.mjs`);
writeFileSync(app, image.bundle);
installXsGlobals();
registerFirmwareModules([runDir + "/"]);
freezeBuiltins();
await import(pathToFileURL(app).href);
