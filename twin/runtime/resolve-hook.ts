// Node module hook (runs on the loader thread): resolves firmware specifiers the way mcconfig
// does, and refuses what a board could not load.
interface HookData {
  urls: Record<string, string>;
  firmwareRoots: string[];
}
interface ResolveContext {
  parentURL?: string;
}
type NextResolve = (specifier: string, context: ResolveContext) => Promise<{ url: string }>;

let data: HookData = { urls: {}, firmwareRoots: [] };

export function initialize(init: HookData): void {
  data = init;
}

function isFirmware(parentURL: string | undefined): boolean {
  return parentURL !== undefined && data.firmwareRoots.some((root) => parentURL.startsWith(root));
}

function isBare(specifier: string): boolean {
  return !/^(\.{1,2}\/|\/|[a-z][a-z0-9+.-]*:\/\/|data:|file:)/i.test(specifier) || specifier.startsWith("embedded:");
}

export async function resolve(specifier: string, context: ResolveContext, next: NextResolve) {
  const url = data.urls[specifier];
  // Hand the mapped file to the next hook so tsx still compiles TypeScript sources.
  if (url) return next(url, context);
  if (isFirmware(context.parentURL) && isBare(specifier)) {
    const where = context.parentURL ?? "firmware";
    if (specifier.startsWith("node:"))
      throw new Error(`firmware module ${where} imports "${specifier}": Node modules do not exist on the ESP32; use a Moddable module`);
    throw new Error(`unknown module specifier "${specifier}" imported by ${where}: add it to "modules" in manifest.json ` +
      `(project code) or to twin/moddable/builtins.ts (a Moddable module the twin implements)`);
  }
  return next(specifier, context);
}
