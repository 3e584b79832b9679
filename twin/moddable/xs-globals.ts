// The XS globals firmware relies on, added to Node's built-ins: trace, ArrayBuffer.fromString,
// String.fromArrayBuffer, and Object.freeze's deep form.
const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

export type TraceSink = (text: string) => void;
let sink: TraceSink = (text) => process.stdout.write(text);

/** Where `trace()` output goes (the device process sends it to its supervisor). */
export function setTraceSink(next: TraceSink): void {
  sink = next;
}

function deepFreeze(value: unknown, seen = new Set<unknown>()): void {
  if ((typeof value !== "object" && typeof value !== "function") || value === null || seen.has(value)) return;
  seen.add(value);
  nativeFreeze(value);
  for (const key of Reflect.ownKeys(value as object)) {
    const descriptor = Object.getOwnPropertyDescriptor(value, key);
    if (descriptor && "value" in descriptor) deepFreeze(descriptor.value, seen);
  }
}

const nativeFreeze = Object.freeze;

let installed = false;

export function installXsGlobals(): void {
  if (installed) return;
  installed = true;
  const trace = (...parts: unknown[]) => sink(parts.map(String).join(""));
  Object.defineProperty(globalThis, "trace", { value: trace, writable: false, configurable: false });
  Object.defineProperty(ArrayBuffer, "fromString", {
    value: (text: string): ArrayBuffer => {
      const bytes = encoder.encode(text);
      return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
    },
  });
  Object.defineProperty(String, "fromArrayBuffer", {
    // XS throws on malformed UTF-8; so does the fatal decoder.
    value: (buffer: ArrayBufferLike): string => decoder.decode(new Uint8Array(buffer)),
  });
  Object.defineProperty(Object, "freeze", {
    value: function freeze<T>(value: T, deep?: boolean | number): T {
      if (deep) deepFreeze(value);
      else nativeFreeze(value);
      return value;
    },
    writable: false,
  });
}
