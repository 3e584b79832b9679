// Evaluated in the xsnap worker before the firmware bundle (not a module shim: no specifier maps
// here). It turns xsnap's XS into the runtime a Moddable board gives firmware:
// - adds the XS globals Moddable builds have and xsnap's build lacks, and only those (the
//   completion value reports which were native, added or replaced). xsnap builds XS with
//   mxCESU8, which compiles out ArrayBuffer.fromString and String.fromArrayBuffer; its trace
//   writes where the worker's protocol cannot carry it;
// - removes the globals only xsnap has, so firmware cannot come to depend on them;
// - freezes the built-ins the way Moddable's linker does after preload (xs/tools/xsl.c,
//   fxFreezeBuiltIns): built-in prototypes, namespace objects and all built-in functions;
// - leaves `__espguardXsHost` behind for the bundle wrapper, which takes it off the global object
//   and hands it to the module shims: their only path to the host.
"use strict";
(function preload() {
  const { issueCommand, currentMeterLimit, resetMeter } = globalThis;
  const encoder = new TextEncoder();
  const decoder = new TextDecoder("utf-8", { fatal: true });
  const native = [];
  const added = [];
  const replaced = [];

  function utf8(text) {
    return encoder.encode(text);
  }

  function copyOf(value) {
    if (value instanceof ArrayBuffer) return new Uint8Array(value.slice(0));
    return new Uint8Array(value.buffer.slice(value.byteOffset, value.byteOffset + value.byteLength));
  }

  function summarize(key, value) {
    if (value instanceof ArrayBuffer || ArrayBuffer.isView(value)) return { byteLength: value.byteLength };
    if (typeof value === "function") return `[function ${value.name}]`;
    if (typeof value === "bigint") return value.toString();
    return value;
  }

  // Built-in error types come back as themselves; the twin's own (CryptStateError, …) as an Error
  // carrying their name.
  const errorTypes = { Error, TypeError, RangeError, SyntaxError, ReferenceError };
  function hostError({ name, message }) {
    const type = errorTypes[name];
    if (type) return new type(message);
    const error = new Error(message);
    Object.defineProperty(error, "name", { value: name, writable: true, configurable: true });
    return error;
  }

  // Wire format, both ways: u32 big-endian header length, UTF-8 JSON header, then the binary
  // blobs the header's `blobs` lists by length. Binary values inside the header itself travel
  // as their length only.
  function call(op, args, blobs = []) {
    const parts = blobs.map(copyOf);
    const header = utf8(JSON.stringify({ ...args, call: op, blobs: parts.map((part) => part.length) }, summarize));
    const message = new Uint8Array(4 + header.length + parts.reduce((sum, part) => sum + part.length, 0));
    new DataView(message.buffer).setUint32(0, header.length);
    message.set(header, 4);
    let offset = 4 + header.length;
    for (const part of parts) {
      message.set(part, offset);
      offset += part.length;
    }
    const reply = new Uint8Array(issueCommand(message.buffer));
    const length = new DataView(reply.buffer).getUint32(0);
    const answer = JSON.parse(decoder.decode(reply.subarray(4, 4 + length)));
    if (answer.error) throw hostError(answer.error);
    offset = 4 + length;
    const out = answer.blobs.map((size) => reply.slice(offset, (offset += size)).buffer);
    return { value: answer.value, blobs: out };
  }

  // Objects of the stand-ins that forward to the twin's Node implementations (crypto): each XS
  // object is tied to a handle naming the twin object on the host.
  const handles = new WeakMap();
  const objects = new Map();
  const classes = new Map();

  function encode(value, blobs) {
    if (value === undefined) return { u: 1 };
    if (typeof value === "bigint") return { b: value.toString() };
    if (typeof value === "number" && !Number.isFinite(value)) return { n: String(value) };
    if (value === null || typeof value !== "object") return typeof value === "function" ? { o: "Function" } : { v: value };
    if (handles.has(value)) return { h: handles.get(value) };
    if (value instanceof ArrayBuffer) return { a: blobs.push(value) - 1 };
    if (ArrayBuffer.isView(value)) return { w: value.constructor.name, i: blobs.push(value) - 1 };
    if (Array.isArray(value)) return { l: value.map((item) => encode(item, blobs)) };
    return { o: value.constructor?.name ?? "Object" };
  }

  const views = { Uint8Array, Int8Array, Uint8ClampedArray, Uint16Array, Int16Array, Uint32Array, Int32Array, Float32Array, Float64Array, BigInt64Array, BigUint64Array, DataView };
  function decode(value, blobs) {
    if ("u" in value) return undefined;
    if ("v" in value) return value.v;
    if ("b" in value) return BigInt(value.b);
    if ("n" in value) return Number(value.n);
    if ("a" in value) return blobs[value.a];
    if ("w" in value) return new views[value.w](blobs[value.i]);
    if ("l" in value) return value.l.map((item) => decode(item, blobs));
    if (objects.has(value.h)) return objects.get(value.h);
    const object = Object.create(classes.get(`${value.m}#${value.c}`).prototype);
    tie(object, value.h);
    return object;
  }

  function tie(object, handle) {
    handles.set(object, handle);
    objects.set(handle, object);
  }

  function forward(op, args, values) {
    const blobs = [];
    const encoded = values.map((value) => encode(value, blobs));
    const { value, blobs: out } = call(op, { ...args, args: encoded }, blobs);
    return decode(value, out);
  }

  function handleOf(object, member) {
    if (!handles.has(object)) throw new TypeError(`${member}: not called on an object of this class`);
    return handles.get(object);
  }

  function describe(error) {
    if (error instanceof Error) return { name: error.name, message: error.message, stack: String(error.stack ?? "") };
    return { name: "thrown value", message: String(error), stack: "" };
  }

  // What the stand-ins spend talking to the host, and the JavaScript standing in for a board's
  // native functions, exist only here: they are taken off xsnap's compute meter, so the meter
  // counts the firmware's own JavaScript.
  function unmetered(work) {
    const wrapper = function (...args) {
      const limit = currentMeterLimit();
      const start = resetMeter(limit, 0);
      try {
        return work.apply(this, args);
      } finally {
        resetMeter(limit, start);
      }
    };
    Object.defineProperty(wrapper, "name", { value: work.name });
    return wrapper;
  }

  let clock = 0;
  let turn;
  const host = Object.freeze({
    call: unmetered(call),
    /** wraps a stand-in for what is native code on a board, so the meter leaves it out */
    native: unmetered,
    /** records what firmware asked a module for; buffers are summarized by their length */
    record: unmetered((module, op, detail) => {
      call("io", { module, op, detail });
    }),
    /** an exception escaped to the engine: on a board the VM aborts and the device reboots */
    uncaught: unmetered((phase, error) => {
      call("uncaught", { phase, error: describe(error) });
    }),
    /** milliseconds since boot, on the virtual clock the timer shim advances */
    now() {
      return clock;
    },
    advance(to) {
      if (to > clock) clock = to;
    },
    /** the timer shim registers how to run the next due timer */
    onTurn(run) {
      if (turn) throw new Error("a second timer module registered itself");
      turn = run;
    },
    /** a forwarding class: `module`'s export `name`, so results of that class come back as one */
    register(module, name, type) {
      classes.set(`${module}#${name}`, type);
    },
    construct: unmetered((module, name, self, args) => {
      tie(self, forward("twin.new", { module, export: name }, args));
    }),
    invoke: unmetered((self, method, args) => forward("twin.call", { handle: handleOf(self, method), method }, args)),
    read: unmetered((self, property) => forward("twin.get", { handle: handleOf(self, property), property }, [])),
    invokeStatic: unmetered((module, name, method, args) => forward("twin.static", { module, export: name, method }, args)),
  });

  // xsnap calls the global handleCommand for each `?` command: one turn of the device's loop.
  Object.defineProperty(globalThis, "handleCommand", {
    value(request) {
      const { op } = JSON.parse(decoder.decode(new Uint8Array(request)));
      if (op !== "turn") throw new Error(`handleCommand: unknown op ${op}`);
      const state = turn ? turn() : { fired: false, pending: 0 };
      return utf8(JSON.stringify({ ...state, now: clock })).buffer;
    },
  });

  // Moddable's trace writes each argument's string form, with no separator; this one sends it to
  // the host.
  Object.defineProperty(globalThis, "trace", {
    value: unmetered(function trace(...parts) {
      call("trace", { text: parts.map(String).join("") });
    }),
    writable: true,
    configurable: true,
  });
  replaced.push("trace");

  // XS keeps strings in its own UTF-8 variant: U+0000 and unpaired surrogates come out of a
  // board's fromString as other bytes than standard UTF-8, so such strings are refused.
  function hasDivergentCharacters(text) {
    for (let i = 0; i < text.length; i++) {
      const unit = text.charCodeAt(i);
      if (unit === 0) return true;
      if (unit >= 0xd800 && unit <= 0xdbff) {
        const next = text.charCodeAt(i + 1);
        if (next >= 0xdc00 && next <= 0xdfff) i++;
        else return true;
      } else if (unit >= 0xdc00 && unit <= 0xdfff) return true;
    }
    return false;
  }

  if (typeof ArrayBuffer.fromString === "function") native.push("ArrayBuffer.fromString");
  else {
    Object.defineProperty(ArrayBuffer, "fromString", {
      value: unmetered(function fromString(text) {
        const string = String(text);
        if (hasDivergentCharacters(string))
          throw new TypeError("ArrayBuffer.fromString: the string holds U+0000 or an unpaired surrogate, which a board encodes differently from UTF-8");
        return encoder.encode(string).buffer;
      }),
      writable: true,
      configurable: true,
    });
    added.push("ArrayBuffer.fromString");
  }
  if (typeof String.fromArrayBuffer === "function") native.push("String.fromArrayBuffer");
  else {
    // Moddable throws on malformed UTF-8; so does the fatal decoder.
    Object.defineProperty(String, "fromArrayBuffer", {
      value: unmetered(function fromArrayBuffer(buffer) {
        if (!(buffer instanceof ArrayBuffer)) throw new TypeError("String.fromArrayBuffer: argument must be an ArrayBuffer");
        return decoder.decode(new Uint8Array(buffer));
      }),
      writable: true,
      configurable: true,
    });
    added.push("String.fromArrayBuffer");
  }
  const probe = Object.freeze({ inner: {} }, true);
  if (!Object.isFrozen(probe.inner))
    throw new Error("this XS lacks the deep Object.freeze(value, true) Moddable firmware relies on: update @agoric/xsnap");
  native.push("Object.freeze(value, true)");

  // xsnap's host globals, none of which a Moddable build defines (Moddable has TextDecoder,
  // TextEncoder and Base64 only as importable modules, and ships without harden).
  for (const name of ["setImmediate", "gc", "print", "issueCommand", "performance", "currentMeterLimit",
    "resetMeter", "TextDecoder", "TextEncoder", "Base64", "harden"])
    delete globalThis[name];

  const frozen = new Set();
  function freezeBuiltIn(value) {
    if ((typeof value !== "object" && typeof value !== "function") || value === null || value === globalThis || frozen.has(value)) return;
    frozen.add(value);
    Object.freeze(value);
    for (const key of Reflect.ownKeys(value)) {
      const property = Object.getOwnPropertyDescriptor(value, key);
      if ("value" in property) freezeBuiltIn(property.value);
      else {
        freezeBuiltIn(property.get);
        freezeBuiltIn(property.set);
      }
    }
    freezeBuiltIn(Object.getPrototypeOf(value));
  }
  const hidden = [
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
  const globals = Object.getOwnPropertyNames(globalThis).filter((name) => name !== "globalThis" && name !== "global");
  for (const value of [...hidden, ...globals.map((name) => globalThis[name])]) freezeBuiltIn(value);

  Object.defineProperty(globalThis, "__espguardXsHost", { value: host, configurable: true });
  return utf8(JSON.stringify({ native, added, replaced })).buffer;
})();
