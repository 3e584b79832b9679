// ESP-IDF NVS: byte format, round trips, power cuts at every flash operation, corruption, capacity,
// and a model-based property test.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { inspect } from "node:util";
import { crc32 as zlibCrc32 } from "node:zlib";
import fc from "fast-check";
import { MemoryFlash, PowerCut } from "../twin/flash/flash-file.ts";
import {
  buildNvsImage,
  espCrc32Le,
  NvsCorruptError,
  NvsFormatError,
  NvsFullError,
  NvsNameError,
  NvsPartition,
  NvsValueError,
  preferenceItem,
  type NvsTypedValue,
  type NvsValue,
} from "../twin/flash/nvs.ts";

const PAGE = 4096;
const bytes = (n: number, seed = 1) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed * 7 + (i >> 8)) & 0xff);
const mount = (image: Uint8Array, strict = false) => NvsPartition.open(new MemoryFlash(image, { strictBits: true }), { strict });
const fresh = (pages = 6) => {
  const flash = new MemoryFlash(pages * PAGE, { strictBits: true });
  return { flash, nvs: NvsPartition.open(flash) };
};

/** nvs_partition_gen.py computes every NVS CRC as zlib.crc32(data, 0xFFFFFFFF). */
const genCrc = (data: Uint8Array) => zlibCrc32(data, 0xffffffff) >>> 0;

/**
 * An NVS writer built from the format description alone (as nvs_partition_gen.py lays pages out):
 * items in order, a page marked full when the next item does not fit, blobs split into chunks that
 * fill the page's tailroom, then their index.
 */
class SpecWriter {
  readonly image: Uint8Array;
  #page = -1;
  #entry = 0;
  #namespaces = new Map<string, number>();

  constructor(pages: number) {
    this.image = new Uint8Array(pages * PAGE).fill(0xff);
    this.#newPage();
  }

  #dv(): DataView {
    return new DataView(this.image.buffer);
  }

  #newPage(): void {
    if (this.#page >= 0) this.#dv().setUint32(this.#page * PAGE, 0xfffffffc, true);
    this.#page++;
    this.#entry = 0;
    const base = this.#page * PAGE;
    this.#dv().setUint32(base, 0xfffffffe, true);
    this.#dv().setUint32(base + 4, this.#page, true);
    this.image[base + 8] = 0xfe;
    this.#dv().setUint32(base + 28, genCrc(this.image.subarray(base + 4, base + 28)), true);
  }

  #put(entries: Uint8Array[]): void {
    if (this.#entry + entries.length > 126) this.#newPage();
    for (const entry of entries) {
      const base = this.#page * PAGE;
      this.image.set(entry, base + 64 + this.#entry * 32);
      const bit = base + 32 + (this.#entry >> 2);
      this.image[bit] = this.image[bit]! & ~(0b01 << ((this.#entry & 3) * 2)); // 0b11 -> 0b10
      this.#entry++;
    }
  }

  #header(ns: number, type: number, span: number, chunk: number, key: string, data: Uint8Array): Uint8Array {
    const entry = new Uint8Array(32).fill(0xff);
    entry.set([ns, type, span, chunk]);
    entry.fill(0, 8, 24);
    entry.set(new TextEncoder().encode(key), 8);
    entry.set(data, 24);
    const crcInput = new Uint8Array(28);
    crcInput.set(entry.subarray(0, 4));
    crcInput.set(entry.subarray(8, 32), 4);
    new DataView(entry.buffer).setUint32(4, genCrc(crcInput), true);
    return entry;
  }

  #ns(name: string): number {
    let index = this.#namespaces.get(name);
    if (index === undefined) {
      index = this.#namespaces.size + 1;
      this.#namespaces.set(name, index);
      this.#put([this.#header(0, 0x01, 1, 0xff, name, Uint8Array.of(index))]);
    }
    return index;
  }

  #variable(ns: number, type: number, key: string, data: Uint8Array, chunk: number): Uint8Array[] {
    const meta = new Uint8Array(8).fill(0xff);
    new DataView(meta.buffer).setUint16(0, data.length, true);
    new DataView(meta.buffer).setUint32(4, genCrc(data), true);
    const body = new Uint8Array(Math.ceil(data.length / 32) * 32).fill(0xff);
    body.set(data);
    const entries = [this.#header(ns, type, 1 + body.length / 32, chunk, key, meta)];
    for (let i = 0; i < body.length; i += 32) entries.push(body.slice(i, i + 32));
    return entries;
  }

  primitive(namespace: string, key: string, type: number, value: Uint8Array): this {
    this.#put([this.#header(this.#ns(namespace), type, 1, 0xff, key, value)]);
    return this;
  }

  string(namespace: string, key: string, value: string): this {
    const data = new Uint8Array([...new TextEncoder().encode(value), 0]);
    this.#put(this.#variable(this.#ns(namespace), 0x21, key, data, 0xff));
    return this;
  }

  blob(namespace: string, key: string, data: Uint8Array): this {
    const ns = this.#ns(namespace);
    let offset = 0;
    let chunks = 0;
    do {
      const tailroom = (126 - this.#entry - 1) * 32;
      const size = Math.min(tailroom, data.length - offset);
      this.#put(this.#variable(ns, 0x42, key, data.subarray(offset, offset + size), chunks++));
      offset += size;
      if (offset < data.length) this.#newPage();
    } while (offset < data.length);
    const index = new Uint8Array(8).fill(0xff);
    new DataView(index.buffer).setUint32(0, data.length, true);
    index[4] = chunks;
    index[5] = 0;
    this.#put([this.#header(ns, 0x48, 1, 0xff, key, index)]);
    return this;
  }
}

function same(actual: NvsTypedValue | undefined, expected: NvsTypedValue | undefined, label = ""): void {
  assert.deepEqual(
    actual && { type: actual.type, value: actual.value instanceof Uint8Array ? [...actual.value] : actual.value },
    expected && { type: expected.type, value: expected.value instanceof Uint8Array ? [...expected.value] : expected.value },
    label,
  );
}

/** Index of the entry whose key is `key`, as page/entry, by scanning raw bytes. */
function entryOf(image: Uint8Array, key: string, type: number): { page: number; entry: number; offset: number } {
  const wanted = new TextEncoder().encode(key);
  for (let page = 0; page < image.length / PAGE; page++)
    for (let entry = 0; entry < 126; entry++) {
      const offset = page * PAGE + 64 + entry * 32;
      const state = (image[page * PAGE + 32 + (entry >> 2)]! >> ((entry & 3) * 2)) & 3;
      if (state === 0b10 && image[offset + 1] === type && wanted.every((b, i) => image[offset + 8 + i] === b) && image[offset + 8 + wanted.length] === 0)
        return { page, entry, offset };
    }
  throw new Error(`no written entry for ${key}`);
}

describe("CRC", () => {
  test("espCrc32Le is esp_rom_crc32_le: seeded with 0xFFFFFFFF it equals zlib.crc32(data, 0xFFFFFFFF), as nvs_partition_gen.py computes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (data) => {
        assert.equal(espCrc32Le(0xffffffff, data), genCrc(data));
      }),
    );
  });

  test("seeded with 0 it is the standard CRC-32 (check value 0xCBF43926), and calls chain", () => {
    const check = new TextEncoder().encode("123456789");
    assert.equal(espCrc32Le(0, check), 0xcbf43926);
    assert.equal(espCrc32Le(0xffffffff, check), zlibCrc32(check, 0xffffffff) >>> 0);
    // A bit-at-a-time reference, straight from the ROM routine: crc = ~crc; per bit shift/xor 0xEDB88320; return ~crc.
    const reference = (crc: number, data: Uint8Array) => {
      let c = ~crc >>> 0;
      for (const byte of data) {
        c ^= byte;
        for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xedb88320 : c >>> 1;
      }
      return ~c >>> 0;
    };
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 100 }), fc.uint8Array({ maxLength: 100 }), (a, b) => {
        assert.equal(espCrc32Le(0xffffffff, a), reference(0xffffffff, a));
        assert.equal(espCrc32Le(espCrc32Le(0xffffffff, a), b), espCrc32Le(0xffffffff, new Uint8Array([...a, ...b])));
      }),
    );
  });
});

describe("format", () => {
  test("an image is byte-identical to one laid out from the format description", () => {
    const blob = bytes(5000);
    const spec = new SpecWriter(6)
      .primitive("espguard", "flag", 0x01, Uint8Array.of(1))
      .primitive("espguard", "port", 0x14, Uint8Array.of(0xb3, 0x22, 0, 0))
      .string("espguard", "host", "broker.example")
      .blob("espguard", "cert", blob)
      .primitive("other", "n", 0x02, Uint8Array.of(0x34, 0x12));
    const image = buildNvsImage(6 * PAGE, [
      { namespace: "espguard", key: "flag", value: true },
      { namespace: "espguard", key: "port", value: 8883 },
      { namespace: "espguard", key: "host", value: "broker.example" },
      { namespace: "espguard", key: "cert", value: blob.slice().buffer },
      { namespace: "other", key: "n", value: { type: "u16", value: 0x1234 } },
    ]);
    assert.deepEqual(image, spec.image);
    const nvs = mount(spec.image, true);
    same(nvs.get("espguard", "cert"), { type: "blob", value: blob });
    assert.deepEqual(nvs.issues, []);
  });

  test("page header, entry bitmap and entry layout", () => {
    const { flash, nvs } = fresh(3);
    assert.equal(flash.operations, 0, "mounting a blank partition writes nothing");
    nvs.set("app", "b", { type: "u8", value: 7 });
    const image = flash.snapshot();
    const dv = new DataView(image.buffer);
    assert.equal(dv.getUint32(0, true), 0xfffffffe, "active");
    assert.equal(dv.getUint32(4, true), 0, "sequence number");
    assert.equal(image[8], 0xfe, "format version 2");
    assert.ok(image.subarray(9, 28).every((b) => b === 0xff));
    assert.equal(dv.getUint32(28, true), genCrc(image.subarray(4, 28)));
    assert.equal(image[32], 0b11111010, "entries 0 and 1 written (0b10), the rest empty (0b11)");
    assert.ok(image.subarray(33, 64).every((b) => b === 0xff));
    const ns = image.subarray(64, 96);
    assert.deepEqual([...ns.subarray(0, 4)], [0, 0x01, 1, 0xff]);
    assert.deepEqual([...ns.subarray(8, 24)], [...new TextEncoder().encode("app"), ...new Array(13).fill(0)]);
    assert.deepEqual([...ns.subarray(24, 32)], [1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    const item = image.subarray(96, 128);
    assert.deepEqual([...item.subarray(0, 4)], [1, 0x01, 1, 0xff]);
    assert.equal(item[24], 7);
    assert.equal(dv.getUint32(96 + 4, true), genCrc(new Uint8Array([...item.subarray(0, 4), ...item.subarray(8, 32)])));
    assert.ok(image.subarray(PAGE).every((b) => b === 0xff), "other pages stay erased");
  });

  test("every type round-trips through the writer and a fresh reader", () => {
    const values: [string, NvsValue, NvsTypedValue][] = [
      ["u8", { type: "u8", value: 255 }, { type: "u8", value: 255 }],
      ["i8", { type: "i8", value: -128 }, { type: "i8", value: -128 }],
      ["u16", { type: "u16", value: 65535 }, { type: "u16", value: 65535 }],
      ["i16", { type: "i16", value: -32768 }, { type: "i16", value: -32768 }],
      ["u32", { type: "u32", value: 0xffffffff }, { type: "u32", value: 0xffffffff }],
      ["i32", { type: "i32", value: -0x80000000 }, { type: "i32", value: -0x80000000 }],
      ["u64", { type: "u64", value: 0xffffffffffffffffn }, { type: "u64", value: 0xffffffffffffffffn }],
      ["i64", { type: "i64", value: -0x8000000000000000n }, { type: "i64", value: -0x8000000000000000n }],
      ["bool", false, { type: "u8", value: 0 }],
      ["int", 0x7fffffff, { type: "i32", value: 0x7fffffff }],
      ["empty", "", { type: "string", value: "" }],
      ["unicode", "Grüße, 世界 🙂", { type: "string", value: "Grüße, 世界 🙂" }],
      ["longest", "x".repeat(3999), { type: "string", value: "x".repeat(3999) }],
      ["blob0", new ArrayBuffer(0), { type: "blob", value: new Uint8Array(0) }],
      ["blob31", bytes(31).buffer, { type: "blob", value: bytes(31) }],
      ["blob32", { type: "blob", value: bytes(32) }, { type: "blob", value: bytes(32) }],
      ["blob33", { type: "blob", value: bytes(33) }, { type: "blob", value: bytes(33) }],
      ["key", { type: "blob", value: bytes(1218, 2) }, { type: "blob", value: bytes(1218, 2) }],
      ["blob4000", { type: "blob", value: bytes(4000, 3) }, { type: "blob", value: bytes(4000, 3) }],
      ["blob9000", { type: "blob", value: bytes(9000, 4) }, { type: "blob", value: bytes(9000, 4) }],
    ];
    const { flash, nvs } = fresh(8);
    for (const [key, value] of values) nvs.set("types", key, value);
    for (const [key, , expected] of values) same(nvs.get("types", key), expected, key);
    const again = mount(flash.snapshot(), true);
    for (const [key, , expected] of values) same(again.get("types", key), expected, key);
    assert.deepEqual(again.keys("types"), values.map(([key]) => key));
    assert.deepEqual(again.entries("types").slice(0, 2), [{ key: "u8", type: "u8" }, { key: "i8", type: "i8" }]);
    assert.deepEqual(again.namespaces(), ["types"]);
    same(again.get("types", "int", "i32"), { type: "i32", value: 0x7fffffff });
    assert.equal(again.get("types", "int", "u8"), undefined, "typed reads see only their type, as nvs_get_u8 does");
    assert.equal(again.get("types", "missing"), undefined);
    assert.equal(again.get("nowhere", "u8"), undefined);
    assert.deepEqual(again.keys("nowhere"), []);
  });

  test("rewrites replace across types, keep keys unique, and skip identical values", () => {
    const { flash, nvs } = fresh();
    nvs.set("a", "k", "text");
    nvs.set("a", "k", 5);
    nvs.set("a", "k", { type: "blob", value: bytes(5000) });
    nvs.set("a", "k", { type: "blob", value: bytes(5000, 9) });
    same(nvs.get("a", "k"), { type: "blob", value: bytes(5000, 9) });
    const ops = flash.operations;
    nvs.set("a", "k", { type: "blob", value: bytes(5000, 9) });
    assert.equal(flash.operations, ops, "an identical value is not written again");
    nvs.set("a", "k", true);
    assert.deepEqual(nvs.keys("a"), ["k"]);
    const again = mount(flash.snapshot(), true);
    same(again.get("a", "k"), { type: "u8", value: 1 });
    assert.equal(again.stats().usedEntries, 2, "namespace entry + the one item");
    assert.equal(again.delete("a", "k"), true);
    assert.equal(again.delete("a", "k"), false);
    assert.equal(again.delete("b", "k"), false);
    assert.deepEqual(again.keys("a"), []);
  });

  test("names and values NVS cannot hold are refused with the reason", () => {
    const { nvs } = fresh(3);
    const cases: [() => unknown, typeof NvsNameError | typeof NvsValueError, RegExp][] = [
      [() => nvs.set("a", "sixteen-bytes-xx", 1), NvsNameError, /"sixteen-bytes-xx" is 16 bytes; ESP-IDF holds at most 15 .*shorten it/],
      [() => nvs.set("namespace-too-long", "k", 1), NvsNameError, /NVS namespace .* is 18 bytes/],
      [() => nvs.set("a", "ééééééééé", 1), NvsNameError, /18 bytes/],
      [() => nvs.set("a", "", 1), NvsNameError, /key is empty/],
      [() => nvs.set("a", "a\0b", 1), NvsNameError, /contains NUL/],
      [() => nvs.get("a", 5 as unknown as string), NvsNameError, /must be a string, not number/],
      [() => nvs.set("a", "k", 1.5), NvsValueError, /not an integer: Preference stores numbers as 32-bit integers \("float unsupported"/],
      [() => nvs.set("a", "k", 2 ** 31), NvsValueError, /does not fit in 32 bits/],
      [() => nvs.set("a", "k", NaN), NvsValueError, /not an integer/],
      [() => nvs.set("a", "k", new Uint8Array(4) as unknown as ArrayBuffer), NvsValueError, /cannot store a Uint8Array \(pass its .buffer/],
      [() => nvs.set("a", "k", null as unknown as string), NvsValueError, /cannot store null/],
      [() => nvs.set("a", "k", { type: "u8", value: 256 }), NvsValueError, /u8 value 256 is not an integer in 0..255/],
      [() => nvs.set("a", "k", { type: "i64", value: 1 as unknown as bigint }), NvsValueError, /not a bigint/],
      [() => nvs.set("a", "k", "x".repeat(4000)), NvsValueError, /4000 UTF-8 bytes; ESP-IDF strings hold at most 3999 plus the NUL: use a blob/],
      [() => nvs.set("a", "k", "a\0b"), NvsValueError, /contains NUL/],
      [() => nvs.set("a", "k", "\ud800"), NvsValueError, /lone surrogate/],
      [() => nvs.set("a", "k", { type: "blob", value: new Uint8Array(8001) }), NvsValueError, /3-page partition holds blobs of at most 8000/],
      [() => nvs.get("a", "k", "f32" as "u8"), NvsValueError, /unknown NVS type "f32"/],
    ];
    for (const [action, type, message] of cases) assert.throws(action, (error: unknown) => error instanceof type && message.test((error as Error).message), message.source);
    assert.deepEqual(nvs.namespaces(), [], "nothing was written");
  });
});

/** Runs `action` with power cut before each of its flash operations in turn, reboots, and checks. */
function everyCut(base: Uint8Array, action: (nvs: NvsPartition) => void, check: (nvs: NvsPartition, cut: number, total: number) => void): number {
  const probe = new MemoryFlash(base, { strictBits: true });
  const probeNvs = NvsPartition.open(probe);
  const start = probe.operations;
  action(probeNvs);
  const total = probe.operations - start;
  for (let cut = 0; cut <= total; cut++) {
    const flash = new MemoryFlash(base, { strictBits: true });
    const nvs = NvsPartition.open(flash);
    flash.cutPowerBefore(flash.operations + cut);
    if (cut < total) {
      assert.throws(() => action(nvs), PowerCut);
      assert.throws(() => nvs.keys("a"), /unusable after a failed flash operation/);
    } else action(nvs);
    const rebooted = new MemoryFlash(flash.snapshot(), { strictBits: true });
    check(NvsPartition.open(rebooted), cut, total);
    const clean = NvsPartition.open(new MemoryFlash(rebooted.snapshot()), { strict: true });
    assert.deepEqual(clean.issues, [], `cut ${cut}: the first mount after the cut repaired everything`);
  }
  return total;
}

describe("power cuts", () => {
  test("the newer copy wins when power fails between writing it and erasing the old one", () => {
    const { flash, nvs } = fresh(3);
    nvs.set("a", "k", 1);
    const base = flash.snapshot();
    const cutFlash = new MemoryFlash(base, { strictBits: true });
    const cutNvs = NvsPartition.open(cutFlash);
    cutFlash.cutPowerBefore(cutFlash.operations + 2); // entry write, its state, then [cut] the old entry's erase
    assert.throws(() => cutNvs.set("a", "k", 2), PowerCut);
    const image = cutFlash.snapshot();
    const states = [0, 1, 2].map((e) => (image[32]! >> (e * 2)) & 3);
    assert.deepEqual(states, [0b10, 0b10, 0b10], "namespace, old and new copy all marked written");
    const rebooted = new MemoryFlash(image, { strictBits: true });
    const nvs2 = NvsPartition.open(rebooted);
    same(nvs2.get("a", "k"), { type: "i32", value: 2 });
    assert.match(nvs2.issues.join("\n"), /older copy of the item .*power cut before the old copy was erased/);
    assert.throws(() => mount(image, true), NvsCorruptError, "strict mode reports it instead");
    assert.deepEqual(mount(rebooted.snapshot(), true).issues, []);
  });

  const scenarios: [string, NvsValue, NvsValue][] = [
    ["i32 -> i32", 1, 2],
    ["string -> string", "old value", "a new value that spans a few entries"],
    ["u8 -> blob", true, { type: "blob", value: bytes(3000) }],
    ["blob -> blob across pages", { type: "blob", value: bytes(5000) }, { type: "blob", value: bytes(6000, 5) }],
  ];
  for (const [name, before, afterValue] of scenarios)
    test(`set ${name}: after a cut at any operation the key holds the old or the new value, never neither`, () => {
      const { flash, nvs } = fresh(6);
      nvs.set("a", "other", "untouched");
      nvs.set("a", "k", before);
      nvs.set("b", "k", { type: "blob", value: bytes(2000, 8) });
      const old = preferenceOrTyped(before);
      const next = preferenceOrTyped(afterValue);
      const total = everyCut(flash.snapshot(), (n) => n.set("a", "k", afterValue), (n, cut, total) => {
        const value = n.get("a", "k");
        if (cut === total) same(value, next);
        else assert.ok(sameValue(value, old) || sameValue(value, next), `cut ${cut}/${total}: ${inspect(value)}`);
        same(n.get("a", "other"), { type: "string", value: "untouched" });
        same(n.get("b", "k"), { type: "blob", value: bytes(2000, 8) });
      });
      assert.ok(total >= 3);
    });

  test("delete: the key is there or gone, and a cut mid blob erase leaves no orphan chunks", () => {
    const { flash, nvs } = fresh(6);
    nvs.set("a", "k", { type: "blob", value: bytes(7000) });
    everyCut(flash.snapshot(), (n) => n.delete("a", "k"), (n, cut, total) => {
      const value = n.get("a", "k");
      assert.ok(value === undefined || sameValue(value, { type: "blob", value: bytes(7000) }), `cut ${cut}`);
      if (cut === total) assert.equal(value, undefined);
      assert.ok(n.stats().usedEntries === 1 || value !== undefined, "only the namespace entry once the blob is gone");
    });
  });

  test("a cut during garbage collection loses nothing", () => {
    const { flash, nvs } = fresh(3);
    for (let i = 0; i < 8; i++) nvs.set("a", `k${i}`, `value ${i}`);
    const freeSectors = (image: Uint8Array) => [0, 1, 2].filter((p) => image.subarray(p * PAGE, (p + 1) * PAGE).every((b) => b === 0xff)).join();
    let collected = false;
    for (let round = 0; round < 400 && !collected; round++) {
      const before = flash.snapshot();
      const probe = NvsPartition.open(new MemoryFlash(before, { strictBits: true }));
      const probeFlash = new MemoryFlash(before, { strictBits: true });
      NvsPartition.open(probeFlash).set("a", "k0", round);
      collected = freeSectors(before) !== freeSectors(probeFlash.snapshot()) && probe.stats().freePages === 1;
      if (!collected) nvs.set("a", "k0", round);
      else
        everyCut(before, (n) => n.set("a", "k0", round), (n, cut, total) => {
          const value = n.get("a", "k0");
          if (cut === total) same(value, { type: "i32", value: round });
          else assert.ok(sameValue(value, { type: "i32", value: round }) || sameValue(value, { type: "i32", value: round - 1 }), `cut ${cut}: ${inspect(value)}`);
          for (let i = 1; i < 8; i++) same(n.get("a", `k${i}`), { type: "string", value: `value ${i}` }, `k${i} after cut ${cut}`);
          assert.equal(n.stats().freePages, 1);
        });
    }
    assert.ok(collected, "the scenario reached a garbage collection");
  });
});

function preferenceOrTyped(value: NvsValue): NvsTypedValue {
  return typeof value === "object" && !(value instanceof ArrayBuffer) ? value : preferenceItem(value);
}

function sameValue(a: NvsTypedValue | undefined, b: NvsTypedValue | undefined): boolean {
  try {
    same(a, b);
    return true;
  } catch {
    return false;
  }
}

describe("corruption", () => {
  const base = () => {
    const { flash, nvs } = fresh(4);
    nvs.set("a", "keep", 1);
    nvs.set("a", "text", "some text that is long enough");
    nvs.set("a", "blob", { type: "blob", value: bytes(4500) });
    nvs.set("a", "last", 2);
    return flash.snapshot();
  };

  test("an entry whose CRC fails is erased on mount (strict mode throws)", () => {
    const image = base();
    image[entryOf(image, "last", 0x14).offset + 24] ^= 0x01;
    assert.throws(() => mount(image, true), (error: unknown) => error instanceof NvsCorruptError && /entry CRC mismatch/.test(error.message));
    const flash = new MemoryFlash(image, { strictBits: true });
    const nvs = NvsPartition.open(flash);
    assert.equal(nvs.get("a", "last"), undefined);
    same(nvs.get("a", "keep"), { type: "i32", value: 1 });
    assert.match(nvs.issues[0]!, /page \d entry \d+: entry CRC mismatch; marked erased/);
    assert.deepEqual(mount(flash.snapshot(), true).issues, [], "the repair was written back");
  });

  test("a page whose header CRC fails is dropped whole and erased before reuse", () => {
    const image = base();
    const { page } = entryOf(image, "last", 0x14);
    image[page * PAGE + 4] ^= 0x80;
    assert.throws(() => mount(image, true), /header CRC mismatch/);
    const flash = new MemoryFlash(image, { strictBits: true });
    const nvs = NvsPartition.open(flash);
    assert.equal(nvs.get("a", "last"), undefined);
    assert.match(nvs.issues.join("\n"), /header CRC mismatch; the page and its items are dropped/);
    for (let i = 0; i < 300; i++) nvs.set("a", "churn", i);
    same(NvsPartition.open(new MemoryFlash(flash.snapshot())).get("a", "churn"), { type: "i32", value: 299 });
  });

  test("a string or blob whose data CRC fails reads as missing and is erased", () => {
    const image = base();
    image[entryOf(image, "text", 0x21).offset + 32 + 3] ^= 0x10;
    const chunk = entryOf(image, "blob", 0x42);
    image[chunk.offset + 32 + 100] ^= 0x04;
    assert.throws(() => mount(image, true), /data CRC mismatch/);
    const flash = new MemoryFlash(image, { strictBits: true });
    const nvs = NvsPartition.open(flash);
    assert.equal(nvs.get("a", "text"), undefined);
    assert.equal(nvs.get("a", "blob"), undefined);
    assert.deepEqual(nvs.keys("a"), ["keep", "last"]);
    assert.match(nvs.issues.join("\n"), /data CRC mismatch; erased, reads as missing/);
    assert.deepEqual(mount(flash.snapshot(), true).issues, []);
  });

  test("a blob index without all its chunks is erased with them", () => {
    const image = base();
    const chunk = entryOf(image, "blob", 0x42);
    image[chunk.page * PAGE + 32 + (chunk.entry >> 2)] &= ~(0b11 << ((chunk.entry & 3) * 2)); // mark erased
    const nvs = mount(image);
    assert.equal(nvs.get("a", "blob"), undefined);
    assert.match(nvs.issues.join("\n"), /blob "blob": index does not match its chunks/);
  });

  test("data in a page whose header says erased marks it corrupt", () => {
    const image = new Uint8Array(3 * PAGE).fill(0xff);
    image[PAGE + 500] = 0;
    assert.throws(() => mount(image, true), /page 1: header erased but the page holds data/);
    const nvs = mount(image);
    nvs.set("a", "k", 1);
    assert.match(nvs.issues[0]!, /treated as corrupt/);
  });

  test("no free page, a newer format, or a partition too small: ESP-IDF would not start", () => {
    const spec = new SpecWriter(3);
    for (let i = 0; i < 3 * 126 - 4; i++) spec.primitive("a", `k${i}`, 0x01, Uint8Array.of(1));
    assert.throws(() => mount(spec.image), (error: unknown) => error instanceof NvsFormatError && /no free page \(ESP_ERR_NVS_NO_FREE_PAGES\).*Moddable's startup aborts/.test(error.message));
    const newer = new SpecWriter(3).primitive("a", "k", 0x01, Uint8Array.of(1)).image;
    newer[8] = 0xfd;
    new DataView(newer.buffer).setUint32(28, genCrc(newer.subarray(4, 28)), true);
    assert.throws(() => mount(newer), /format version 0xfd, newer than this reader's 0xfe \(ESP_ERR_NVS_NEW_VERSION_FOUND\)/);
    assert.throws(() => mount(new Uint8Array(2 * PAGE).fill(0xff)), /at least 3; this one is 8192 bytes/);
  });
});

describe("capacity", () => {
  test("filling the partition ends in NvsFullError with earlier values intact and one page free", () => {
    const { flash, nvs } = fresh(3);
    const stored: string[] = [];
    assert.throws(() => {
      for (let i = 0; ; i++) {
        nvs.set("a", `b${i}`, { type: "blob", value: bytes(1500, i) });
        stored.push(`b${i}`);
      }
    }, (error: unknown) => error instanceof NvsFullError && /no room for blob "b\d+"/.test(error.message));
    assert.ok(stored.length >= 4);
    assert.equal(nvs.stats().freePages, 1);
    const again = mount(flash.snapshot(), true);
    stored.forEach((key, i) => same(again.get("a", key), { type: "blob", value: bytes(1500, i) }, key));
    assert.deepEqual(again.keys("a"), stored);
  });

  test("buildNvsImage: a device identity fits the 6-page partition with room to keep updating", () => {
    const identity = [
      { namespace: "espguard", key: "id", value: "device-0001" },
      { namespace: "espguard", key: "cert", value: bytes(1150, 1).buffer },
      { namespace: "espguard", key: "key", value: bytes(1219, 2).buffer },
      { namespace: "espguard", key: "ca", value: bytes(1900, 3).buffer },
      { namespace: "espguard", key: "pins", value: "A".repeat(44) + "," + "B".repeat(44) },
      { namespace: "espguard", key: "host", value: "broker.example.net" },
      { namespace: "espguard", key: "port", value: 8883 },
      { namespace: "espguard", key: "hmacId", value: "k1" },
      { namespace: "espguard", key: "hmac", value: bytes(32, 4).buffer },
      { namespace: "espguard", key: "timeFloor", value: 1_700_000_000 },
    ] as const;
    const image = buildNvsImage(0x6000, identity);
    const nvs = NvsPartition.open(new MemoryFlash(image, { strictBits: true }), { strict: true });
    assert.ok(nvs.stats().freePages >= 1);
    for (const { key, value } of identity) same(nvs.get("espguard", key), preferenceItem(value), key);
    for (let t = 0; t < 2000; t++) nvs.set("espguard", "timeFloor", 1_700_000_000 + t);
    same(nvs.get("espguard", "cert"), { type: "blob", value: bytes(1150, 1) });
    assert.throws(() => buildNvsImage(0x6000, [identity[0], identity[0]]), /lists espguard\/id twice/);
    assert.throws(() => buildNvsImage(0x5800, []), NvsFormatError);
    const blob = { type: "blob", value: bytes(5000) } as const;
    assert.throws(() => buildNvsImage(0x3000, [{ namespace: "a", key: "x", value: blob }, { namespace: "a", key: "y", value: blob }]), NvsFullError);
  });
});

describe("model", () => {
  const keyArb = fc.record({ ns: fc.constantFrom("a", "b"), key: fc.constantFrom("k0", "k1", "k2", "k3", "k4", "k5") });
  const valueArb: fc.Arbitrary<NvsValue> = fc.oneof(
    fc.boolean(),
    fc.integer({ min: -0x80000000, max: 0x7fffffff }),
    fc.string({ maxLength: 60, unit: "grapheme" }).filter((s) => !s.includes("\0")),
    fc.uint8Array({ maxLength: 600 }).map((b) => b.slice().buffer as ArrayBuffer),
    fc.uint8Array({ minLength: 3000, maxLength: 6000 }).map((value): NvsValue => ({ type: "blob", value })),
    fc.integer({ min: 0, max: 0xffff }).map((value): NvsValue => ({ type: "u16", value })),
    fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }).map((value): NvsValue => ({ type: "i64", value })),
  );
  const opArb = fc.oneof(
    { weight: 6, arbitrary: fc.record({ op: fc.constant("set" as const), at: keyArb, value: valueArb }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant("delete" as const), at: keyArb }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant("reboot" as const) }) },
  );

  test("random set/delete/reboot sequences agree with a Map", () => {
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 50 }), (ops) => {
        let flash = new MemoryFlash(6 * PAGE, { strictBits: true });
        let nvs = NvsPartition.open(flash);
        const model = new Map<string, NvsTypedValue>();
        for (const op of ops) {
          if (op.op === "reboot") {
            flash = new MemoryFlash(flash.snapshot(), { strictBits: true });
            nvs = NvsPartition.open(flash, { strict: true });
          } else if (op.op === "delete") {
            assert.equal(nvs.delete(op.at.ns, op.at.key), model.delete(`${op.at.ns}/${op.at.key}`));
          } else {
            try {
              nvs.set(op.at.ns, op.at.key, op.value);
              model.set(`${op.at.ns}/${op.at.key}`, preferenceOrTyped(op.value));
            } catch (error) {
              if (!(error instanceof NvsFullError)) throw error;
            }
          }
          if (op.op !== "reboot") same(nvs.get(op.at.ns, op.at.key), model.get(`${op.at.ns}/${op.at.key}`));
        }
        const final = NvsPartition.open(new MemoryFlash(flash.snapshot()), { strict: true });
        for (const ns of ["a", "b"]) {
          const keys = [...model.keys()].filter((k) => k.startsWith(`${ns}/`)).map((k) => k.slice(2));
          assert.deepEqual(final.keys(ns).sort(), keys.sort());
          for (const key of keys) same(final.get(ns, key), model.get(`${ns}/${key}`));
        }
        assert.ok(final.stats().freePages >= 1);
      }),
      { numRuns: 120 },
    );
  });

  test("a power cut at a random operation of a random sequence keeps every other key and the old or new value", () => {
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 30 }), keyArb, valueArb, fc.nat(), (ops, at, value, seed) => {
        const flash = new MemoryFlash(6 * PAGE, { strictBits: true });
        const nvs = NvsPartition.open(flash);
        const model = new Map<string, NvsTypedValue>();
        for (const op of ops) {
          if (op.op === "delete") {
            nvs.delete(op.at.ns, op.at.key);
            model.delete(`${op.at.ns}/${op.at.key}`);
          } else if (op.op === "set") {
            try {
              nvs.set(op.at.ns, op.at.key, op.value);
              model.set(`${op.at.ns}/${op.at.key}`, preferenceOrTyped(op.value));
            } catch (error) {
              if (!(error instanceof NvsFullError)) throw error;
            }
          }
        }
        const base = flash.snapshot();
        const probe = new MemoryFlash(base);
        try {
          NvsPartition.open(probe).set(at.ns, at.key, value);
        } catch (error) {
          if (!(error instanceof NvsFullError)) throw error;
        }
        if (probe.operations === 0) return;
        const cutFlash = new MemoryFlash(base, { strictBits: true });
        const cutNvs = NvsPartition.open(cutFlash);
        cutFlash.cutPowerBefore(seed % probe.operations);
        assert.throws(() => cutNvs.set(at.ns, at.key, value), PowerCut);
        const after = NvsPartition.open(new MemoryFlash(cutFlash.snapshot(), { strictBits: true }));
        const id = `${at.ns}/${at.key}`;
        const got = after.get(at.ns, at.key);
        assert.ok(sameValue(got, model.get(id)) || sameValue(got, preferenceOrTyped(value)), `${id}: ${inspect(got)}`);
        for (const [key, expected] of model) if (key !== id) same(after.get(key.slice(0, 1), key.slice(2)), expected, key);
        assert.ok(after.stats().freePages >= 1);
      }),
      { numRuns: 150 },
    );
  });
});
