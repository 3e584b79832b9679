// One map from every firmware specifier to the file that implements it on Node: project modules
// from manifest.json, Moddable built-ins from the twin. Used by the resolve hook and the bundler.
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { BUILTINS } from "../moddable/builtins.ts";
import { type FirmwareManifest, loadManifest, PROJECT_ROOT } from "./manifest.ts";

export class UnknownModuleError extends Error {
  constructor(readonly specifier: string, readonly importer: string | undefined) {
    super(`unknown module specifier "${specifier}"${importer ? ` imported by ${importer}` : ""}: ` +
      `add it to "modules" in manifest.json (project code) or to twin/moddable/builtins.ts (a Moddable module the twin implements)`);
    this.name = "UnknownModuleError";
  }
}

export interface ModuleMap {
  /** project specifier → absolute source path */
  readonly project: ReadonlyMap<string, string>;
  /** Moddable specifier → absolute path of the twin implementation */
  readonly builtins: ReadonlyMap<string, string>;
}

const TWIN_MODDABLE = join(PROJECT_ROOT, "twin", "moddable");

export function moduleMap(manifest: FirmwareManifest = loadManifest()): ModuleMap {
  const builtins = new Map<string, string>();
  for (const [specifier, { twin }] of Object.entries(BUILTINS)) builtins.set(specifier, join(TWIN_MODDABLE, twin));
  return { project: manifest.modules, builtins };
}

/** file: URLs keyed by specifier, the form the resolve hook receives across threads. */
export function moduleUrls(map: ModuleMap = moduleMap()): Record<string, string> {
  const urls: Record<string, string> = {};
  for (const [specifier, path] of [...map.project, ...map.builtins]) urls[specifier] = pathToFileURL(path).href;
  return urls;
}

/** The `paths` of tsconfig.firmware.json, as manifest.json implies them. */
export function typescriptPaths(manifest: FirmwareManifest = loadManifest()): Record<string, string[]> {
  const paths: Record<string, string[]> = {};
  for (const [specifier, path] of [...manifest.modules].sort(([a], [b]) => a.localeCompare(b)))
    paths[specifier] = [`./${path.slice(PROJECT_ROOT.length + 1)}`];
  return paths;
}
