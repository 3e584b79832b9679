// Installs the firmware resolve hook in this Node process (after tsx, so TypeScript still loads).
import { register } from "node:module";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { PROJECT_ROOT } from "./manifest.ts";
import { moduleUrls } from "./module-map.ts";

let registered = false;

/** Registers once per process; `firmwareRoots` are extra folders whose files are firmware (e.g. a bundle). */
export function registerFirmwareModules(firmwareRoots: string[] = []): void {
  if (registered) throw new Error("firmware module hook is already registered in this process");
  registered = true;
  const roots = [join(PROJECT_ROOT, "modules") + "/", join(PROJECT_ROOT, "main.ts"), ...firmwareRoots]
    .map((path) => pathToFileURL(path).href);
  register("./resolve-hook.ts", import.meta.url, { data: { urls: moduleUrls(), firmwareRoots: roots } });
}
