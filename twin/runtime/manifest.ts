// Reads manifest.json, the single source of firmware module specifiers. The twin's resolve hook,
// the firmware bundler and the TypeScript `paths` are all derived from what this returns.
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const PROJECT_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

export class ManifestError extends Error {
  constructor(readonly file: string, problem: string, fix: string) {
    super(`${file}: ${problem}. ${fix}`);
    this.name = "ManifestError";
  }
}

export interface FirmwareManifest {
  readonly file: string;
  readonly include: readonly string[];
  /** project specifier → absolute path of its TypeScript source */
  readonly modules: ReadonlyMap<string, string>;
  readonly preload: readonly string[];
  readonly config: Readonly<Record<string, unknown>>;
  /** resource name (file name with extension, as Moddable registers it) → absolute path */
  readonly resources: ReadonlyMap<string, string>;
}

function asStringList(value: unknown, file: string, field: string): string[] {
  if (value === undefined) return [];
  const list = typeof value === "string" ? [value] : value;
  if (!Array.isArray(list) || list.some((v) => typeof v !== "string"))
    throw new ManifestError(file, `"${field}" must be a string or a list of strings`, `Fix the "${field}" section.`);
  return list as string[];
}

/** Moddable registers `"*": "./main"` under the file's own name. */
function specifierOf(key: string, path: string): string {
  return key === "*" ? path.slice(path.lastIndexOf("/") + 1) : key;
}

export function loadManifest(file = join(PROJECT_ROOT, "manifest.json")): FirmwareManifest {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, "utf8"));
  } catch (error) {
    const why = (error as NodeJS.ErrnoException).code === "ENOENT" ? "file not found" : `does not parse as JSON (${(error as Error).message})`;
    throw new ManifestError(file, why, "Restore manifest.json from git or fix its syntax.");
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw))
    throw new ManifestError(file, "top level is not an object", "A Moddable manifest is a JSON object.");
  const root = dirname(file);
  const manifest = raw as Record<string, unknown>;
  const modules = new Map<string, string>();
  const declared = manifest.modules ?? {};
  if (typeof declared !== "object" || declared === null || Array.isArray(declared))
    throw new ManifestError(file, `"modules" is not an object`, "Map each specifier to a path, e.g. \"link/session\": \"./modules/link/session\".");
  for (const [key, value] of Object.entries(declared)) {
    if (typeof value !== "string" || !value.startsWith("./"))
      throw new ManifestError(file, `module "${key}" must map to one relative path ("./…"), got ${JSON.stringify(value)}`,
        "Map each project module by its path-like name; wildcard lists register modules by file name only and break relative imports.");
    const source = join(root, `${value}.ts`);
    if (!existsSync(source))
      throw new ManifestError(file, `module "${key}" points at ${value}, but ${source} does not exist`, "Create the file or fix the path.");
    modules.set(specifierOf(key, value), source);
  }
  const config = manifest.config ?? {};
  if (typeof config !== "object" || config === null || Array.isArray(config))
    throw new ManifestError(file, `"config" is not an object`, "Fix the \"config\" section.");
  const preload = asStringList(manifest.preload, file, "preload");
  for (const name of preload)
    if (!modules.has(name))
      throw new ManifestError(file, `preload names "${name}", which is not a project module`, "Preload only modules listed under \"modules\".");
  const resources = new Map<string, string>();
  const declaredResources = manifest.resources ?? {};
  if (typeof declaredResources !== "object" || declaredResources === null || Array.isArray(declaredResources))
    throw new ManifestError(file, `"resources" is not an object`, "Map a target to paths, e.g. \"*\": [\"./data/ca\"].");
  for (const [key, value] of Object.entries(declaredResources)) {
    if (key !== "*")
      throw new ManifestError(file, `resource target "${key}" is not supported`, "List resources under \"*\"; they are registered by file name.");
    for (const path of asStringList(value, file, "resources")) {
      const source = join(root, path);
      if (!path.startsWith("./") || !existsSync(source))
        throw new ManifestError(file, `resource ${JSON.stringify(path)} is not an existing relative path`, "Point it at a file in the project.");
      resources.set(path.slice(path.lastIndexOf("/") + 1), source);
    }
  }
  return {
    file,
    resources,
    include: asStringList(manifest.include, file, "include"),
    modules,
    preload,
    config: config as Record<string, unknown>,
  };
}
