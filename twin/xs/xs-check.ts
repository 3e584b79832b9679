// The XS engine check: bundles the firmware with XS-side stand-ins for the Moddable built-ins
// (twin/xs/shims), evaluates it in a real XS engine (an @agoric/xsnap worker) whose built-ins are
// frozen as after a Moddable preload, then runs a bounded number of timer turns. Firmware that
// leans on something a board lacks or forbids fails here with the XS error, where in the firmware
// it happened, and what to do instead.
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { BUILTINS } from "../moddable/builtins.ts";
import { bundleFirmware } from "../runtime/bundle.ts";
import { loadManifest, PROJECT_ROOT } from "../runtime/manifest.ts";
import { type CrankMeter, type CrankResult, TOO_MUCH_COMPUTATION, XsnapExitError, XsnapTimeoutError, XsnapWorker, XsnapWorkerError } from "./xsnap-runner.ts";

const SHIM_DIR = join(dirname(fileURLToPath(import.meta.url)), "shims");

/** The XS stand-in for a Moddable built-in: `embedded:io/socket/tcp` → shims/embedded-io-socket-tcp.js. */
export function xsShimPath(specifier: string): string {
  return join(SHIM_DIR, `${specifier.replace(/[:/]/g, "-")}.js`);
}

/** Built-ins (from twin/moddable/builtins.ts) that have no XS stand-in yet. */
export function missingXsShims(): string[] {
  return Object.keys(BUILTINS).filter((specifier) => !existsSync(xsShimPath(specifier)));
}

function shimTable(): Record<string, string> {
  return Object.fromEntries(Object.keys(BUILTINS).map((s) => [s, xsShimPath(s)]).filter(([, path]) => existsSync(path!)));
}

export type PreferenceSeed = boolean | number | string | ArrayBuffer | Uint8Array;

export interface XsRunOptions {
  /** firmware entry module; defaults to main.ts */
  entry?: string;
  /** NVS contents at boot: domain → key → value */
  preferences?: Readonly<Record<string, Readonly<Record<string, PreferenceSeed>>>>;
  /** resources the image would carry, by path */
  resources?: Readonly<Record<string, Uint8Array>>;
  /** most timer turns to run after boot (default 50); the run ends earlier when no timer is left */
  turns?: number;
  /** XS compute allowed per crank (boot, or one turn) before the engine stops: catches endless loops */
  computeLimit?: number;
  /** wall-clock bound per crank, in ms (default 10 000) */
  timeoutMs?: number;
}

export interface XsMeter {
  /** compute of the firmware's top-level evaluation (module bodies, as at boot) */
  readonly boot: number;
  /** compute of each timer turn, in order */
  readonly turns: readonly number[];
  /** boot plus every turn: the figure to divide by the work done, e.g. messages signed */
  readonly compute: number;
  /** XS heap slots in use after the last metered crank */
  readonly heapCount: number;
}

/** What firmware asked a module for (DNS lookups, connections, the wall clock). */
export interface XsIoRecord {
  readonly module: string;
  readonly op: string;
  readonly detail: Readonly<Record<string, unknown>>;
}

export type PreferenceValue = boolean | number | string | Uint8Array;

export interface XsRunResult {
  readonly ok: boolean;
  readonly error?: XsFirmwareError;
  /** trace() output, split into lines */
  readonly traces: readonly string[];
  readonly meter: XsMeter;
  readonly io: readonly XsIoRecord[];
  /** NVS contents after the run */
  readonly preferences: Readonly<Record<string, Readonly<Record<string, PreferenceValue>>>>;
  /** timer turns run, and timers still scheduled when the run ended */
  readonly turns: number;
  readonly pendingTimers: number;
  /** XS globals of a Moddable build the preload found native, had to add, or had to replace */
  readonly engine: { readonly native: readonly string[]; readonly added: readonly string[]; readonly replaced: readonly string[] };
}

export class XsCheckOptionError extends Error {
  constructor(problem: string, fix: string) {
    super(`XS engine check: ${problem}; ${fix}`);
    this.name = "XsCheckOptionError";
  }
}

export interface XsSourceLocation {
  /** the firmware (or shim) file, relative to the project */
  readonly file: string;
  /** the line of bundled code that was running */
  readonly code: string;
}

export type XsFailureKind = "uncaught" | "unhandled-rejection" | "compute-limit" | "timeout";

export class XsFirmwareError extends Error {
  constructor(
    readonly kind: XsFailureKind,
    /** the XS error as the engine reported it, e.g. "TypeError: f: no function" */
    readonly xsError: string,
    readonly phase: "boot" | "timer" | "promise job",
    readonly location: XsSourceLocation | undefined,
    fix: string,
  ) {
    const where = location ? `\n  at ${location.file}: ${location.code}` : "";
    super(`firmware failed in XS (${phase}): ${xsError}${where}\n  ${fix}`);
    this.name = "XsFirmwareError";
  }
}

const GLOBAL_HINTS: Readonly<Record<string, string>> = {
  Buffer: "use ArrayBuffer / Uint8Array, with ArrayBuffer.fromString and String.fromArrayBuffer for text",
  setTimeout: 'use Timer.set from "timer"',
  setInterval: 'use Timer.repeat from "timer"',
  clearTimeout: 'use Timer.clear from "timer"',
  clearInterval: 'use Timer.clear from "timer"',
  setImmediate: 'use Timer.set(callback) from "timer"',
  queueMicrotask: "use Promise.resolve().then(callback)",
  process: 'read settings from "mc/config" or "preference"',
  require: "use an import of a module named in manifest.json",
  structuredClone: 'Moddable has it only as a module: import structuredClone from "structuredClone" (and add it to the manifest and the twin)',
  console: "use trace()",
  performance: 'use Time.ticks from "time"',
  TextEncoder: "use ArrayBuffer.fromString",
  TextDecoder: "use String.fromArrayBuffer",
};

function fixFor(xsError: string): string {
  const global = /get (\w+): undefined variable/.exec(xsError)?.[1];
  if (global)
    return `"${global}" is not a global on a Moddable board: ${GLOBAL_HINTS[global] ?? "use a Moddable module instead"}`;
  if (/set .+: not (extensible|writable)/.test(xsError))
    return "built-ins are frozen on a board (Moddable's preload freezes every built-in prototype and function): do not add to or patch them; " +
      "an own property that a frozen prototype also defines (such as `name` in an Error subclass) cannot be assigned either: declare it as a class field or with Object.defineProperty";
  if (/Dynamic require of/.test(xsError))
    return "a board has no require(): import a module named in manifest.json (or a Moddable built-in)";
  if (/: no function/.test(xsError))
    return "the code calls something that is not a function in XS: a method newer than ES2022 (Array.prototype.toSorted, Object.groupBy, …) or a Node API; see the line above";
  return "fix the firmware at the line above; on a board this exception aborts the VM and reboots the device";
}

const BUNDLE_FIRST_LINE = 4;

/** `bundle` runs as strict code (as modules do), gets the host bridge and reports what escapes it. */
function wrap(bundle: string): string {
  return `"use strict";
(function (__espguardXsHost) {
  try {
${bundle}
  } catch (error) {
    __espguardXsHost.uncaught("boot", error);
    throw error;
  }
})((() => { const host = globalThis.__espguardXsHost; delete globalThis.__espguardXsHost; return host; })());
`;
}

// XS names evaluated scripts #0, #1, … in order: the preload is #0, the wrapped bundle #1.
const BUNDLE_SCRIPT = "#1";

function locate(stack: string, bundle: string[]): XsSourceLocation | undefined {
  const locations: XsSourceLocation[] = [];
  for (const match of stack.matchAll(new RegExp(`\\(${BUNDLE_SCRIPT}:(\\d+)\\)`, "g"))) {
    const line = Number(match[1]) - BUNDLE_FIRST_LINE;
    if (line < 0 || line >= bundle.length) continue;
    let file = "bundle";
    for (let i = line; i >= 0; i--) {
      const marker = /^ {2}\/\/ (\S.*\.[jt]s)$/.exec(bundle[i]!);
      if (marker) {
        file = relative(PROJECT_ROOT, resolve(process.cwd(), marker[1]!));
        break;
      }
    }
    locations.push({ file, code: bundle[line]!.trim() });
  }
  // A stand-in that rejects its options, or an esbuild helper (before the first module marker),
  // throws from inside itself; the firmware line that called it is what to fix.
  return locations.find((l) => l.file !== "bundle" && !l.file.startsWith("twin/xs/shims/")) ?? locations[0];
}

// Host-call wire format, both ways: u32 big-endian header length, UTF-8 JSON header, then the
// binary blobs the header's `blobs` lists by length.
function encodeReply(header: object, blobs: readonly Uint8Array[] = []): Uint8Array {
  const json = Buffer.from(JSON.stringify({ ...header, blobs: blobs.map((blob) => blob.byteLength) }), "utf8");
  const head = Buffer.alloc(4);
  head.writeUInt32BE(json.length, 0);
  return Buffer.concat([head, json, ...blobs]);
}

function decodeRequest(request: Uint8Array): { header: Record<string, unknown>; blobs: Uint8Array[] } {
  const view = Buffer.from(request.buffer, request.byteOffset, request.byteLength);
  const length = view.readUInt32BE(0);
  const header = JSON.parse(view.subarray(4, 4 + length).toString("utf8")) as Record<string, unknown>;
  let offset = 4 + length;
  const blobs = (header.blobs as number[]).map((size) => new Uint8Array(view.subarray(offset, (offset += size))));
  return { header, blobs };
}

/** An error the XS side receives as a thrown error of the same name and message. */
class HostRefusal extends Error {
  constructor(readonly xsName: string, message: string) {
    super(message);
  }
}

// ESP-IDF NVS limits (and Moddable's modules/files/preference/esp32/modPreference.c).
const NVS_NAME_MAX = 15;
const NVS_STRING_MAX = 4000;
const NVS_BLOB_MAX = 508_000;

function checkNvsName(what: "domain" | "key", name: string): void {
  const bytes = Buffer.byteLength(name);
  if (bytes === 0 || bytes > NVS_NAME_MAX)
    throw new HostRefusal("RangeError", `Preference: ${what} "${name}" must be 1–${NVS_NAME_MAX} UTF-8 bytes (ESP32 NVS)`);
}

function checkNvsValue(value: PreferenceValue, where: string): PreferenceValue {
  if (typeof value === "number" && (!Number.isInteger(value) || value < -0x80000000 || value > 0x7fffffff))
    throw new HostRefusal("RangeError", `Preference ${where}: ${value} is not a 32-bit integer (ESP32 NVS stores i32; Moddable rejects floats)`);
  if (typeof value === "string" && Buffer.byteLength(value) + 1 > NVS_STRING_MAX)
    throw new HostRefusal("RangeError", `Preference ${where}: strings are limited to ${NVS_STRING_MAX - 1} bytes in NVS; store bytes as an ArrayBuffer`);
  if (value instanceof Uint8Array && value.length > NVS_BLOB_MAX)
    throw new HostRefusal("RangeError", `Preference ${where}: blobs are limited to ${NVS_BLOB_MAX} bytes in NVS`);
  return value;
}

function seedPreferences(seed: XsRunOptions["preferences"]): Map<string, Map<string, PreferenceValue>> {
  const store = new Map<string, Map<string, PreferenceValue>>();
  for (const [domain, entries] of Object.entries(seed ?? {})) {
    const keys = new Map<string, PreferenceValue>();
    for (const [key, raw] of Object.entries(entries)) {
      const value = raw instanceof ArrayBuffer ? new Uint8Array(raw.slice(0)) : raw instanceof Uint8Array ? new Uint8Array(raw) : raw;
      try {
        checkNvsName("domain", domain);
        checkNvsName("key", key);
        keys.set(key, checkNvsValue(value, `${domain}/${key}`));
      } catch (error) {
        if (!(error instanceof HostRefusal)) throw error;
        throw new XsCheckOptionError(`preferences: ${error.message}`, "seed only values a device could hold");
      }
    }
    store.set(domain, keys);
  }
  return store;
}

/** What a shim's host calls may address: the twin modules its classes forward to. */
type TwinModules = ReadonlyMap<string, Readonly<Record<string, unknown>>>;

// Shims whose classes forward to the twin say so with host.register("<specifier>", …); those
// twin modules are imported before the run, since host calls are answered synchronously.
async function loadForwardedTwins(): Promise<TwinModules> {
  const twins = new Map<string, Readonly<Record<string, unknown>>>();
  for (const specifier of Object.keys(shimTable())) {
    if (!/host\.register\(/.test(readFileSync(xsShimPath(specifier), "utf8"))) continue;
    const file = join(PROJECT_ROOT, "twin/moddable", BUILTINS[specifier]!.twin);
    twins.set(specifier, (await import(pathToFileURL(file).href)) as Record<string, unknown>);
  }
  return twins;
}

type Encoded =
  | { u: 1 } | { v: unknown } | { b: string } | { n: string } | { a: number } | { w: string; i: number }
  | { l: Encoded[] } | { h: number; m?: string; c?: string } | { o: string };

const VIEWS: Readonly<Record<string, new (buffer: ArrayBuffer) => ArrayBufferView>> = {
  Uint8Array, Int8Array, Uint8ClampedArray, Uint16Array, Int16Array, Uint32Array, Int32Array, Float32Array, Float64Array,
  BigInt64Array, BigUint64Array, DataView,
};

/** The twin objects XS-side stand-ins hold handles to, and the encoding of values between them. */
class TwinObjects {
  readonly #modules: TwinModules;
  readonly #objects: object[] = [];
  readonly #handles = new WeakMap<object, number>();
  readonly #classes = new Map<unknown, { m: string; c: string }>();

  constructor(modules: TwinModules) {
    this.#modules = modules;
    for (const [specifier, exports] of modules)
      for (const [name, value] of Object.entries(exports))
        if (typeof value === "function") this.#classes.set(value, { m: specifier, c: name });
  }

  dispatch(op: string, args: Record<string, unknown>, blobs: Uint8Array[]): { value: Encoded; blobs: Uint8Array[] } {
    const values = (args.args as Encoded[]).map((value) => this.#decode(value, blobs));
    const out: Uint8Array[] = [];
    let result: unknown;
    try {
      if (op === "twin.new") {
        const type = this.#export(String(args.module), String(args.export)) as new (...a: unknown[]) => object;
        result = this.#handle(new type(...values));
      } else if (op === "twin.static") {
        const type = this.#export(String(args.module), String(args.export)) as Record<string, (...a: unknown[]) => unknown>;
        result = type[String(args.method)]!(...values);
      } else {
        const target = this.#objects[Number(args.handle)] as Record<string, unknown>;
        if (op === "twin.get") result = target[String(args.property)];
        else result = (target[String(args.method)] as (...a: unknown[]) => unknown).apply(target, values);
      }
    } catch (error) {
      // What the twin throws is the module's behaviour: firmware in XS gets it as thrown there.
      if (!(error instanceof Error)) throw error;
      throw new HostRefusal(error.name, error.message);
    }
    return { value: this.#encode(result, out), blobs: out };
  }

  #export(specifier: string, name: string): unknown {
    const value = this.#modules.get(specifier)?.[name];
    if (typeof value !== "function") throw new Error(`XS engine check: the twin's "${specifier}" has no class export ${name}`);
    return value;
  }

  #handle(object: object): number {
    let handle = this.#handles.get(object);
    if (handle === undefined) {
      handle = this.#objects.push(object) - 1;
      this.#handles.set(object, handle);
    }
    return handle;
  }

  #encode(value: unknown, blobs: Uint8Array[]): Encoded {
    if (value === undefined) return { u: 1 };
    if (typeof value === "bigint") return { b: value.toString() };
    if (typeof value === "number" && !Number.isFinite(value)) return { n: String(value) };
    if (value === null || typeof value !== "object") return { v: value };
    if (value instanceof ArrayBuffer) return { a: blobs.push(new Uint8Array(value.slice(0))) - 1 };
    if (ArrayBuffer.isView(value)) {
      const type = value instanceof Buffer ? "Uint8Array" : value.constructor.name;
      return { w: type, i: blobs.push(Uint8Array.from(new Uint8Array(value.buffer, value.byteOffset, value.byteLength))) - 1 };
    }
    if (Array.isArray(value)) return { l: value.map((item) => this.#encode(item, blobs)) };
    const type = this.#classes.get(value.constructor);
    if (!type) throw new Error(`XS engine check: a twin returned a ${value.constructor.name}, which has no XS stand-in class`);
    return { h: this.#handle(value), ...type };
  }

  #decode(value: Encoded, blobs: Uint8Array[]): unknown {
    if ("u" in value) return undefined;
    if ("v" in value) return value.v;
    if ("b" in value) return BigInt(value.b);
    if ("n" in value) return Number(value.n);
    if ("a" in value) return blobs[value.a]!.slice().buffer;
    if ("w" in value) return new VIEWS[value.w]!(blobs[value.i]!.slice().buffer);
    if ("l" in value) return value.l.map((item) => this.#decode(item, blobs));
    if ("h" in value) return this.#objects[value.h];
    // An object the host cannot hold (a Map, a plain object, …): the twin sees its kind and refuses it.
    return Object.create({ constructor: { name: value.o } });
  }
}

interface Uncaught {
  readonly phase: "boot" | "timer";
  readonly error: { name: string; message: string; stack: string };
}

/** The host side of the shims' calls; keeps what the result reports. */
class XsHost {
  readonly io: XsIoRecord[] = [];
  readonly preferences: Map<string, Map<string, PreferenceValue>>;
  uncaught: Uncaught | undefined;
  #trace = "";
  readonly #resources: Readonly<Record<string, Uint8Array>>;
  readonly #config = loadManifest().config;
  readonly #twins: TwinObjects;

  constructor(options: XsRunOptions, twins: TwinModules) {
    this.preferences = seedPreferences(options.preferences);
    this.#resources = options.resources ?? {};
    this.#twins = new TwinObjects(twins);
  }

  get traces(): string[] {
    const lines = this.#trace.split("\n");
    if (lines.at(-1) === "") lines.pop();
    return lines;
  }

  handle(request: Uint8Array): Uint8Array {
    const { header, blobs } = decodeRequest(request);
    try {
      const { value, blobs: out } = this.#dispatch(String(header.call), header, blobs);
      return encodeReply({ value: value ?? null }, out);
    } catch (error) {
      if (!(error instanceof HostRefusal)) throw error;
      return encodeReply({ error: { name: error.xsName, message: error.message } });
    }
  }

  #dispatch(op: string, args: Record<string, unknown>, blobs: Uint8Array[]): { value?: unknown; blobs?: Uint8Array[] } {
    switch (op) {
      case "trace":
        this.#trace += String(args.text);
        return {};
      case "io":
        this.io.push({ module: String(args.module), op: String(args.op), detail: (args.detail ?? {}) as Record<string, unknown> });
        return {};
      case "uncaught":
        this.uncaught ??= args as unknown as Uncaught;
        return {};
      case "config":
        return { value: this.#config };
      case "resource.exists":
        return { value: Object.hasOwn(this.#resources, String(args.path)) };
      case "resource.read": {
        const path = String(args.path);
        if (!Object.hasOwn(this.#resources, path))
          throw new HostRefusal("Error", `Resource "${path}" not found: add it to the manifest's "resources" (and to the XS check's resources option)`);
        return { blobs: [this.#resources[path]!] };
      }
      case "preference.get":
        return this.#preferenceGet(String(args.domain), String(args.key));
      case "preference.set":
        return this.#preferenceSet(String(args.domain), String(args.key), String(args.type), args.value, blobs[0]);
      case "preference.delete":
        checkNvsName("domain", String(args.domain));
        checkNvsName("key", String(args.key));
        this.preferences.get(String(args.domain))?.delete(String(args.key));
        return {};
      case "preference.keys":
        checkNvsName("domain", String(args.domain));
        return { value: [...(this.preferences.get(String(args.domain))?.keys() ?? [])] };
      case "twin.new":
      case "twin.call":
      case "twin.get":
      case "twin.static":
        return this.#twins.dispatch(op, args, blobs);
      default:
        throw new Error(`XS engine check: a shim made an unknown host call "${op}"`);
    }
  }

  #preferenceGet(domain: string, key: string): { value?: unknown; blobs?: Uint8Array[] } {
    checkNvsName("domain", domain);
    checkNvsName("key", key);
    const value = this.preferences.get(domain)?.get(key);
    if (value === undefined) return {};
    if (value instanceof Uint8Array) return { value: { type: "bytes" }, blobs: [value] };
    return { value: { type: typeof value, value } };
  }

  #preferenceSet(domain: string, key: string, type: string, raw: unknown, bytes: Uint8Array | undefined): object {
    checkNvsName("domain", domain);
    checkNvsName("key", key);
    let value: PreferenceValue;
    if (type === "bytes" && bytes) value = new Uint8Array(bytes);
    else if (type === "boolean" || type === "number" || type === "string") value = raw as PreferenceValue;
    else throw new HostRefusal("Error", `Preference.set ${domain}/${key}: unsupported type ${type} (boolean, integer, string or ArrayBuffer)`);
    checkNvsValue(value, `${domain}/${key}`);
    let keys = this.preferences.get(domain);
    if (!keys) this.preferences.set(domain, (keys = new Map()));
    keys.set(key, value);
    return {};
  }
}

const PRELOAD = join(SHIM_DIR, "_preload.js");
const DEFAULT_TURNS = 50;
const DEFAULT_TIMEOUT_MS = 10_000;

function unhandledRejections(stderr: string): string[] {
  return [...stderr.matchAll(/^Unhandled exception (.*)$/gm)].map((m) => m[1]!);
}

const TURN = Buffer.from(JSON.stringify({ op: "turn" }));

/** Bundles the firmware, boots it in XS and runs its timers; see XsRunResult. */
export async function runFirmwareInXs(options: XsRunOptions = {}): Promise<XsRunResult> {
  const bundle = await bundleFirmware({ format: "iife", builtinShims: shimTable(), entry: options.entry });
  const bundleLines = bundle.split("\n");
  const host = new XsHost(options, await loadForwardedTwins());
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const maxTurns = options.turns ?? DEFAULT_TURNS;
  const worker = XsnapWorker.start({ name: "espguard-xs-check", computeLimit: options.computeLimit, onHostCall: (request) => host.handle(request) });
  let bootMeter: CrankMeter | undefined;
  const turnMeters: CrankMeter[] = [];
  let phase: "boot" | "timer" = "boot";
  let turnsRun = 0;
  let pendingTimers = 0;
  let error: XsFirmwareError | undefined;

  const failed = (result: CrankResult & { ok: false }): XsFirmwareError => {
    const uncaught = host.uncaught;
    const xsError = uncaught ? `${uncaught.error.name}: ${uncaught.error.message}` : result.message;
    return new XsFirmwareError("uncaught", xsError, uncaught?.phase ?? phase, uncaught ? locate(uncaught.error.stack, bundleLines) : undefined, fixFor(xsError));
  };

  try {
    const setup = await worker.evaluate(readFileSync(PRELOAD, "utf8"), timeoutMs);
    if (!setup.ok) throw new XsnapWorkerError(`the preload failed: ${setup.message}`, "fix twin/xs/shims/_preload.js");
    const engine = JSON.parse(Buffer.from(setup.reply).toString("utf8")) as XsRunResult["engine"];

    try {
      const booted = await worker.evaluate(wrap(bundle), timeoutMs);
      if (booted.ok) bootMeter = booted.meter;
      else error = failed(booted);
      phase = "timer";
      while (!error && turnsRun < maxTurns) {
        const turn = await worker.command(TURN, timeoutMs);
        if (turn.ok) {
          const state = JSON.parse(Buffer.from(turn.reply).toString("utf8")) as { fired: boolean; pending: number };
          pendingTimers = state.pending;
          if (!state.fired) break;
          turnMeters.push(turn.meter);
        } else error = failed(turn);
        turnsRun += 1;
      }
    } catch (failure) {
      if (phase === "timer") turnsRun += 1;
      if (failure instanceof XsnapExitError && failure.code === TOO_MUCH_COMPUTATION)
        error = new XsFirmwareError("compute-limit", "too much computation", phase, undefined,
          `one ${phase === "boot" ? "boot" : "timer turn"} computed more than the limit: look for an unbounded loop (a board's watchdog would reset the device)`);
      else if (failure instanceof XsnapTimeoutError)
        error = new XsFirmwareError("timeout", failure.message, phase, undefined, "the firmware blocked the engine; a board's watchdog would reset the device");
      else throw failure;
    }
    await worker.close(timeoutMs);
    const rejection = unhandledRejections(worker.stderr)[0];
    if (!error && rejection !== undefined)
      error = new XsFirmwareError("unhandled-rejection", rejection, "promise job", undefined,
        "a promise rejected with no handler: a board drops it silently and the work it carried never finishes; add a catch");

    // Cranks that end in an exception carry no meter (xsnap sends none with an error reply).
    const boot = bootMeter?.compute ?? 0;
    const turns = turnMeters.map((m) => m.compute);
    const last = turnMeters.at(-1) ?? bootMeter;
    return {
      ok: error === undefined,
      ...(error ? { error } : {}),
      traces: host.traces,
      meter: {
        boot,
        turns,
        compute: turns.reduce((sum, compute) => sum + compute, boot),
        heapCount: last?.currentHeapCount ?? 0,
      },
      io: host.io,
      preferences: Object.fromEntries([...host.preferences].map(([domain, keys]) => [domain, Object.fromEntries(keys)])),
      turns: turnsRun,
      pendingTimers,
      engine,
    };
  } finally {
    worker.kill();
  }
}
