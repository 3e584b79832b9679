// Bundles the firmware (main.ts and the project modules manifest.json names) into one script,
// the form a twin device boots from a flash slot and the XS engine check evaluates.
import { build, type Plugin } from "esbuild";
import { join } from "node:path";
import { type FirmwareManifest, loadManifest, PROJECT_ROOT } from "./manifest.ts";
import { BUILTINS } from "../moddable/builtins.ts";

export interface BundleOptions {
  /** entry module; defaults to main.ts */
  entry?: string;
  /** "esm" for the Node twin (built-ins stay imports), "iife" for engines without modules */
  format: "esm" | "iife";
  /** iife only: specifier → file providing that built-in inside the target engine */
  builtinShims?: Readonly<Record<string, string>>;
  manifest?: FirmwareManifest;
  /** extra text prepended to the bundle (e.g. a build stamp) */
  banner?: string;
}

export class FirmwareBundleError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "FirmwareBundleError";
  }
}

function firmwareResolver(manifest: FirmwareManifest, shims: Readonly<Record<string, string>> | undefined): Plugin {
  return {
    name: "espguard-firmware-modules",
    setup(pluginBuild) {
      pluginBuild.onResolve({ filter: /.*/ }, (args) => {
        if (args.kind === "entry-point") return undefined;
        const project = manifest.modules.get(args.path);
        if (project) return { path: project };
        if (args.path in BUILTINS) {
          if (!shims) return { path: args.path, external: true };
          const shim = shims[args.path];
          if (shim) return { path: shim };
          return { errors: [{ text: `no ${args.path} shim for this engine: add one to the shim table` }] };
        }
        if (args.path.startsWith("node:"))
          return { errors: [{ text: `"${args.path}" imported by ${args.importer}: Node modules do not exist on the ESP32; use a Moddable module` }] };
        if (args.path.startsWith(".") || args.path.startsWith("/"))
          return { errors: [{ text: `relative import "${args.path}": import project modules by their manifest.json name` }] };
        return {
          errors: [{
            text: `unknown module specifier "${args.path}": add it to "modules" in manifest.json (project code) ` +
              `or to twin/moddable/builtins.ts (a Moddable module the twin implements)`,
          }],
        };
      });
    },
  };
}

/** Returns the bundle's source text. */
export async function bundleFirmware(options: BundleOptions): Promise<string> {
  const manifest = options.manifest ?? loadManifest();
  const entry = options.entry ?? join(PROJECT_ROOT, "main.ts");
  try {
    const result = await build({
      entryPoints: [entry],
      bundle: true,
      write: false,
      format: options.format,
      platform: "neutral",
      target: "es2022",
      logLevel: "silent",
      charset: "utf8",
      banner: options.banner ? { js: options.banner } : undefined,
      plugins: [firmwareResolver(manifest, options.format === "iife" ? options.builtinShims ?? {} : undefined)],
    });
    return result.outputFiles[0]!.text;
  } catch (error) {
    const failure = error as { errors?: { text: string; location?: { file: string; line: number } | null }[] };
    if (!failure.errors) throw error;
    const lines = failure.errors.map((e) => (e.location ? `${e.location.file}:${e.location.line}: ` : "") + e.text);
    throw new FirmwareBundleError(`firmware bundle failed:\n  ${lines.join("\n  ")}`);
  }
}
