// After a Moddable preload the linker freezes the built-ins (xs/tools/xsl.c, fxFreezeBuiltIns):
// firmware that patches a prototype, or shadows an inherited property by assignment
// (`this.name = …` in an Error subclass), throws on the board. The twin device process freezes
// the ECMAScript built-ins the same way before the firmware runs; Node's own globals stay as
// they are (the twin's stand-ins live on them).
const STANDARD_GLOBALS = [
  "Object", "Function", "Array", "Number", "parseFloat", "parseInt", "Boolean", "String", "Symbol", "Date", "Promise",
  "RegExp", "Error", "AggregateError", "EvalError", "RangeError", "ReferenceError", "SyntaxError", "TypeError",
  "URIError", "JSON", "Math", "Intl", "ArrayBuffer", "SharedArrayBuffer", "Atomics", "Uint8Array", "Int8Array",
  "Uint16Array", "Int16Array", "Uint32Array", "Int32Array", "Float32Array", "Float64Array", "Uint8ClampedArray",
  "BigUint64Array", "BigInt64Array", "DataView", "Map", "BigInt", "Set", "WeakMap", "WeakSet", "Proxy", "Reflect",
  "FinalizationRegistry", "WeakRef", "decodeURI", "decodeURIComponent", "encodeURI", "encodeURIComponent",
  "escape", "unescape", "eval", "isFinite", "isNaN",
] as const;

function hiddenIntrinsics(): object[] {
  return [
    Object.getPrototypeOf(function* () {}),
    Object.getPrototypeOf(async function () {}),
    Object.getPrototypeOf(async function* () {}),
    Object.getPrototypeOf((function* () {})()),
    Object.getPrototypeOf((async function* () {})()),
    Object.getPrototypeOf([][Symbol.iterator]()),
    Object.getPrototypeOf(""[Symbol.iterator]()),
    Object.getPrototypeOf(new Map()[Symbol.iterator]()),
    Object.getPrototypeOf(new Set()[Symbol.iterator]()),
    Object.getPrototypeOf("".matchAll(/x/g)),
    Object.getPrototypeOf(Uint8Array),
  ];
}

export function freezeBuiltins(): void {
  const seen = new Set<unknown>();
  const freeze = (value: unknown): void => {
    if ((typeof value !== "object" && typeof value !== "function") || value === null || value === globalThis || seen.has(value)) return;
    seen.add(value);
    Object.freeze(value);
    for (const key of Reflect.ownKeys(value as object)) {
      const property = Object.getOwnPropertyDescriptor(value, key)!;
      if ("value" in property) freeze(property.value);
      else {
        freeze(property.get);
        freeze(property.set);
      }
    }
    freeze(Object.getPrototypeOf(value));
  };
  for (const value of [...hiddenIntrinsics(), ...STANDARD_GLOBALS.map((name) => (globalThis as Record<string, unknown>)[name])]) freeze(value);
}
