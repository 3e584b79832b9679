// ESP-IDF NVS (non-volatile storage), format version 2, read and written the way ESP-IDF's
// nvs_flash library does it, over any FlashRegion: a partition of a twin device's flash file, or an
// in-memory image that `buildNvsImage` hands to the provisioning command.
//
// Page (4096 bytes): header (32) | entry state bitmap (32) | 126 entries of 32 bytes.
//   header: state u32 | seq u32 | version u8 (0xFE = v2) | 19 × 0xFF | crc32 u32 over bytes 4..27
//   page states: 0xFFFFFFFF erased, 0xFFFFFFFE active, 0xFFFFFFFC full, 0xFFFFFFF8 freeing
//   bitmap: 2 bits per entry, entry i at bits 2(i%16) of little-endian word i/16:
//           0b11 empty, 0b10 written, 0b00 erased
// Entry: ns u8 | type u8 | span u8 | chunkIndex u8 | crc32 u32 over bytes 0..3 and 8..31 |
//        key char[16] NUL-padded | data 8 bytes
//   primitive data: the value little-endian, rest 0xFF
//   string / blob chunk data: size u16 | 0xFFFF | crc32 of the data, which fills the next span-1 entries
//   blob index data: size u32 | chunkCount u8 | chunkStart u8 (0x00 or 0x80, toggled per rewrite)
// Namespaces are u8 items in namespace 0: key = name, value = the index (1..254) items carry.
//
// What happens on a power cut, and what open() does about it, follows ESP-IDF's PageManager::load,
// Page::load and Storage::init: a new copy is written before the old one is erased and the newer
// copy wins; half-written entries are marked erased; a page header or entry whose CRC fails is
// dropped (the page is treated as free and erased before reuse, the entry is marked erased); blob
// chunks without a complete index are erased; a page caught mid garbage collection (FREEING) is
// copied again. Those repairs are written back, as nvs_flash_init does at boot, and listed in
// `issues`. With `strict: true` (checking an image before it is flashed) any of them throws
// NvsCorruptError instead. A string or blob whose data CRC fails reads as missing and is erased,
// as nvs_get_str / nvs_get_blob do.
//
// Capacity: the partition always keeps one free page for garbage collection (ESP-IDF refuses to
// start without one). When the current page is full and only that page is free, the page with the
// most erased entries is compacted into it; if no page has any, or the item still does not fit,
// writes throw NvsFullError. Strings hold at most 4000 bytes with their NUL, blobs at most
// min(508000, (pages - 1) × 4000) bytes.
//
// One deliberate difference: `set` replaces an item of any type under the same key. nvs_set_*
// replaces only an item of the same type and leaves the other (the ESP-IDF behaviour
// modPreference.c works around by erasing first), so keys here are unique within a namespace.
import { isErased, MemoryFlash, type FlashRegion } from "./flash-file.ts";

export const NVS_PAGE_SIZE = 4096;
/** NVS_KEY_NAME_MAX_SIZE - 1: keys and namespace names, in UTF-8 bytes. */
export const NVS_MAX_KEY_BYTES = 15;
/** nvs_partition_gen.py's minimum: two pages of data and the free one. */
export const NVS_MIN_PAGES = 3;
export const NVS_MAX_STRING_BYTES = 4000;

const ENTRY_SIZE = 32;
const ENTRY_COUNT = 126;
const BITMAP_OFFSET = 32;
const ENTRIES_OFFSET = 64;
const CHUNK_MAX_SIZE = ENTRY_SIZE * (ENTRY_COUNT - 1);
const MAX_BLOB_SIZE = 508_000;
/** chunk indexes of one blob version stay below the other version's range (and 0xFF, "any") */
const MAX_BLOB_CHUNKS = 127;
const VERSION_2 = 0xfe;
const NS_INDEX = 0;
const CHUNK_ANY = 0xff;
const VER_0 = 0x00;
const VER_1 = 0x80;

const PAGE_UNINITIALIZED = 0xffffffff;
const PAGE_ACTIVE = 0xfffffffe;
const PAGE_FULL = 0xfffffffc;
const PAGE_FREEING = 0xfffffff8;

const EMPTY = 0b11;
const WRITTEN = 0b10;
const ERASED = 0b00;
const ILLEGAL = 0b01;

const SZ = 0x21;
const BLOB = 0x41;
const BLOB_DATA = 0x42;
const BLOB_IDX = 0x48;

type IntegerType = "u8" | "i8" | "u16" | "i16" | "u32" | "i32";
type BigIntegerType = "u64" | "i64";
export type NvsType = IntegerType | BigIntegerType | "string" | "blob";
export type NvsTypedValue =
  | { readonly type: IntegerType; readonly value: number }
  | { readonly type: BigIntegerType; readonly value: bigint }
  | { readonly type: "string"; readonly value: string }
  | { readonly type: "blob"; readonly value: Uint8Array };
/** What Moddable's Preference.set takes. */
export type PreferenceValue = boolean | number | string | ArrayBuffer;
/** A typed NVS item, or a Preference value stored as Preference stores it (see `preferenceItem`). */
export type NvsValue = NvsTypedValue | PreferenceValue;

const INTEGERS: Readonly<Record<IntegerType, { code: number; bytes: number; min: number; max: number }>> = {
  u8: { code: 0x01, bytes: 1, min: 0, max: 0xff },
  i8: { code: 0x11, bytes: 1, min: -0x80, max: 0x7f },
  u16: { code: 0x02, bytes: 2, min: 0, max: 0xffff },
  i16: { code: 0x12, bytes: 2, min: -0x8000, max: 0x7fff },
  u32: { code: 0x04, bytes: 4, min: 0, max: 0xffffffff },
  i32: { code: 0x14, bytes: 4, min: -0x80000000, max: 0x7fffffff },
};
const BIG_INTEGERS: Readonly<Record<BigIntegerType, { code: number; min: bigint; max: bigint }>> = {
  u64: { code: 0x08, min: 0n, max: 0xffffffffffffffffn },
  i64: { code: 0x18, min: -0x8000000000000000n, max: 0x7fffffffffffffffn },
};
const TYPE_NAMES = new Map<number, NvsType>([
  ...Object.entries(INTEGERS).map(([name, t]) => [t.code, name as NvsType] as const),
  ...Object.entries(BIG_INTEGERS).map(([name, t]) => [t.code, name as NvsType] as const),
  [SZ, "string"],
  [BLOB, "blob"],
  [BLOB_DATA, "blob"],
  [BLOB_IDX, "blob"],
]);

export class NvsError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}
/** A key or namespace name NVS cannot store. */
export class NvsNameError extends NvsError {}
/** A value NVS cannot store (range, size, encoding). */
export class NvsValueError extends NvsError {}
/** No room for the item (ESP_ERR_NVS_NOT_ENOUGH_SPACE); nothing of it stays behind. */
export class NvsFullError extends NvsError {}
/** The region is not an NVS partition ESP-IDF would start on (nvs_flash_init fails; Moddable aborts at boot). */
export class NvsFormatError extends NvsError {}
/** Strict mode found something ESP-IDF would repair or drop. */
export class NvsCorruptError extends NvsError {}

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c;
  }
  return table;
})();

/**
 * esp_rom_crc32_le(crc, data): the reflected CRC-32 (polynomial 0xEDB88320) taking and returning
 * the finished value, so calls chain like zlib's crc32(crc, data). NVS starts from 0xFFFFFFFF, not 0:
 * its CRCs are zlib.crc32(data, 0xFFFFFFFF), which is what nvs_partition_gen.py computes.
 */
export function espCrc32Le(crc: number, data: Uint8Array): number {
  let c = ~crc >>> 0;
  for (let i = 0; i < data.length; i++) c = CRC_TABLE[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

function nvsCrc(data: Uint8Array): number {
  return espCrc32Le(0xffffffff, data);
}

function itemCrc(entry: Uint8Array): number {
  return espCrc32Le(espCrc32Le(0xffffffff, entry.subarray(0, 4)), entry.subarray(8, 32));
}

function u32(bytes: Uint8Array, at: number): number {
  return (bytes[at]! | (bytes[at + 1]! << 8) | (bytes[at + 2]! << 16) | (bytes[at + 3]! << 24)) >>> 0;
}

function setU32(bytes: Uint8Array, at: number, value: number): void {
  new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).setUint32(at, value, true);
}

/** Keys travel as "binary strings", one char per UTF-8 byte, so comparisons are byte-exact as strncmp's. */
function binary(bytes: Uint8Array): string {
  return String.fromCharCode(...bytes);
}

function unbinary(raw: string): Uint8Array {
  return Uint8Array.from(raw, (c) => c.charCodeAt(0));
}

const utf8 = new TextEncoder();
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

function encodeName(what: "key" | "namespace", name: unknown): string {
  if (typeof name !== "string") throw new NvsNameError(`NVS ${what} must be a string, not ${typeof name}`);
  if (LONE_SURROGATE.test(name)) throw new NvsNameError(`NVS ${what} ${JSON.stringify(name)} has a lone surrogate, which UTF-8 cannot hold`);
  const bytes = utf8.encode(name);
  if (bytes.length === 0) throw new NvsNameError(`NVS ${what} is empty`);
  if (bytes.includes(0)) throw new NvsNameError(`NVS ${what} ${JSON.stringify(name)} contains NUL, which would end it early in C`);
  if (bytes.length > NVS_MAX_KEY_BYTES)
    throw new NvsNameError(
      `NVS ${what} ${JSON.stringify(name)} is ${bytes.length} bytes; ESP-IDF holds at most ${NVS_MAX_KEY_BYTES} (NVS_KEY_NAME_MAX_SIZE - 1): shorten it`,
    );
  return binary(bytes);
}

interface Encoded {
  readonly code: number;
  /** primitive: the value's bytes; string: UTF-8 with its NUL; blob: the data */
  readonly payload: Uint8Array;
}

/**
 * The NVS item Moddable's Preference.set writes for a value (modPreference.c): a boolean as u8 0/1,
 * an integral number as i32, a string as a string, an ArrayBuffer as a blob. Where the board would
 * misbehave the twin refuses: modPreference.c converts an integral number outside i32 with an
 * undefined C cast, and only ArrayBuffer itself is a buffer to it (a typed array is "unsupported type").
 */
export function preferenceItem(value: unknown): NvsTypedValue {
  switch (typeof value) {
    case "boolean":
      return { type: "u8", value: value ? 1 : 0 };
    case "number":
      if (!Number.isInteger(value))
        throw new NvsValueError(`${value} is not an integer: Preference stores numbers as 32-bit integers ("float unsupported" on the board)`);
      if (value < INTEGERS.i32.min || value > INTEGERS.i32.max)
        throw new NvsValueError(`${value} does not fit in 32 bits: Preference stores numbers as i32 (the board would store garbage)`);
      return { type: "i32", value: value === 0 ? 0 : value };
    case "string":
      return { type: "string", value };
    case "object":
      if (value instanceof ArrayBuffer) return { type: "blob", value: new Uint8Array(value.slice(0)) };
  }
  const what = value === null ? "null" : ArrayBuffer.isView(value) ? `a ${value.constructor.name} (pass its .buffer, sliced to the view)` : typeof value;
  throw new NvsValueError(`Preference cannot store ${what} ("unsupported type" on the board): it stores booleans, integers, strings and ArrayBuffers`);
}

function isTyped(value: unknown): value is NvsTypedValue {
  return typeof value === "object" && value !== null && Object.getPrototypeOf(value) === Object.prototype;
}

function encodeValue(input: NvsValue, pageCount: number): Encoded {
  const value = isTyped(input) ? input : preferenceItem(input);
  const type = (value as { type?: unknown }).type;
  if (typeof type === "string" && Object.hasOwn(INTEGERS, type)) {
    const t = INTEGERS[type as IntegerType];
    const n = value.value;
    if (typeof n !== "number" || !Number.isInteger(n) || n < t.min || n > t.max)
      throw new NvsValueError(`NVS ${type} value ${String(n)} is not an integer in ${t.min}..${t.max}`);
    const payload = new Uint8Array(t.bytes);
    for (let i = 0; i < t.bytes; i++) payload[i] = Number((BigInt(n) >> BigInt(8 * i)) & 0xffn);
    return { code: t.code, payload };
  }
  if (typeof type === "string" && Object.hasOwn(BIG_INTEGERS, type)) {
    const t = BIG_INTEGERS[type as BigIntegerType];
    const n = value.value;
    if (typeof n !== "bigint" || n < t.min || n > t.max) throw new NvsValueError(`NVS ${type} value ${String(n)} is not a bigint in ${t.min}..${t.max}`);
    const payload = new Uint8Array(8);
    new DataView(payload.buffer).setBigUint64(0, BigInt.asUintN(64, n), true);
    return { code: t.code, payload };
  }
  if (type === "string") {
    const s = value.value;
    if (typeof s !== "string") throw new NvsValueError(`NVS string value must be a string, not ${typeof s}`);
    if (LONE_SURROGATE.test(s)) throw new NvsValueError("NVS string has a lone surrogate, which UTF-8 cannot hold");
    const bytes = utf8.encode(s);
    if (bytes.includes(0)) throw new NvsValueError("NVS string contains NUL: nvs_set_str would store only the part before it; use a blob");
    if (bytes.length + 1 > NVS_MAX_STRING_BYTES)
      throw new NvsValueError(`NVS string is ${bytes.length} UTF-8 bytes; ESP-IDF strings hold at most ${NVS_MAX_STRING_BYTES - 1} plus the NUL: use a blob`);
    const payload = new Uint8Array(bytes.length + 1);
    payload.set(bytes);
    return { code: SZ, payload };
  }
  if (type === "blob") {
    const data = value.value;
    if (!(data instanceof Uint8Array)) throw new NvsValueError("NVS blob value must be a Uint8Array");
    const limit = Math.min(MAX_BLOB_SIZE, (pageCount - 1) * CHUNK_MAX_SIZE);
    if (data.length > limit)
      throw new NvsValueError(`NVS blob is ${data.length} bytes; a ${pageCount}-page partition holds blobs of at most ${limit} (ESP_ERR_NVS_VALUE_TOO_LONG)`);
    return { code: BLOB_IDX, payload: data.slice() };
  }
  throw new NvsValueError(`unknown NVS value type ${JSON.stringify(type)} (known: ${[...new Set(TYPE_NAMES.values())].join(", ")})`);
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}

interface Item {
  readonly ns: number;
  readonly type: number;
  readonly span: number;
  readonly chunk: number;
  /** binary string, up to the first NUL (at most 15 bytes are compared, as strncmp does) */
  readonly raw: string;
}

function parseItem(entry: Uint8Array): Item | undefined {
  if (u32(entry, 4) !== itemCrc(entry)) return undefined;
  const keyBytes = entry.subarray(8, 8 + NVS_MAX_KEY_BYTES);
  const end = keyBytes.indexOf(0);
  return { ns: entry[0]!, type: entry[1]!, span: entry[2]!, chunk: entry[3]!, raw: binary(end < 0 ? keyBytes : keyBytes.subarray(0, end)) };
}

function isVariable(type: number): boolean {
  return type === SZ || type === BLOB || type === BLOB_DATA;
}

type PageState = "uninitialized" | "corrupt" | "active" | "full" | "freeing";

class Page {
  state: PageState = "uninitialized";
  seq = 0;
  /** first entry never written on an active page; ENTRY_COUNT on full ones */
  nextFree = 0;
  /** parsed headers of the live items, by entry index */
  readonly items: (Item | undefined)[] = new Array(ENTRY_COUNT).fill(undefined);

  constructor(readonly index: number, readonly bytes: Uint8Array) {}

  entryState(i: number): number {
    return (this.bytes[BITMAP_OFFSET + (i >> 2)]! >> ((i & 3) * 2)) & 0b11;
  }

  entry(i: number): Uint8Array {
    return this.bytes.subarray(ENTRIES_OFFSET + i * ENTRY_SIZE, ENTRIES_OFFSET + (i + 1) * ENTRY_SIZE);
  }

  written(): number {
    let n = 0;
    for (let i = 0; i < ENTRY_COUNT; i++) if (this.entryState(i) === WRITTEN) n++;
    return n;
  }
}

interface Location {
  readonly page: Page;
  readonly index: number;
  readonly item: Item;
}

export interface NvsOpenOptions {
  /** throw NvsCorruptError rather than repair anything, and check every string and blob CRC up front */
  strict?: boolean;
}

export interface NvsStats {
  readonly usedEntries: number;
  readonly freeEntries: number;
  readonly totalEntries: number;
  readonly namespaceCount: number;
  readonly freePages: number;
}

export class NvsPartition {
  readonly #region: FlashRegion;
  readonly #strict: boolean;
  readonly #pages: Page[] = [];
  /** pages in use, oldest sequence number first; the last one takes new items */
  readonly #used: Page[] = [];
  readonly #free: Page[] = [];
  #seq = 0;
  readonly #namespaces = new Map<string, number>();
  readonly #issues: string[] = [];
  #broken: unknown;

  private constructor(region: FlashRegion, strict: boolean) {
    this.#region = region;
    this.#strict = strict;
  }

  /** Mounts the partition as nvs_flash_init does, repairing what a power cut left behind. */
  static open(region: FlashRegion, options: NvsOpenOptions = {}): NvsPartition {
    const nvs = new NvsPartition(region, options.strict ?? false);
    nvs.#run(() => nvs.#load());
    return nvs;
  }

  get pageCount(): number {
    return this.#pages.length;
  }

  /** What open() (and reads since) found and repaired, in order. */
  get issues(): readonly string[] {
    return [...this.#issues];
  }

  namespaces(): string[] {
    return [...this.#namespaces.keys()].map(decodeRaw);
  }

  /** Keys of a namespace in storage order, as nvs_entry_find lists them (blobs once, namespace table never). */
  keys(namespace: string): string[] {
    return this.entries(namespace).map((entry) => entry.key);
  }

  entries(namespace: string): { key: string; type: NvsType }[] {
    const nsRaw = encodeName("namespace", namespace);
    return this.#run(() => {
      const ns = this.#namespaces.get(nsRaw);
      if (ns === undefined) return [];
      const found: { key: string; type: NvsType }[] = [];
      for (const { item } of this.#locations()) {
        if (item.ns !== ns || item.type === BLOB_IDX || item.type === BLOB) continue;
        if (item.type === BLOB_DATA && item.chunk !== VER_0 && item.chunk !== VER_1) continue;
        found.push({ key: decodeRaw(item.raw), type: TYPE_NAMES.get(item.type)! });
      }
      return found;
    });
  }

  /**
   * The value under a key, or undefined. With `type`, only an item of that type counts, as with
   * nvs_get_<type> ("blob" also finds a version-1 blob). May erase an item whose data CRC fails.
   */
  get(namespace: string, key: string, type?: NvsType): NvsTypedValue | undefined {
    const nsRaw = encodeName("namespace", namespace);
    const raw = encodeName("key", key);
    if (type !== undefined && !new Set(TYPE_NAMES.values()).has(type)) throw new NvsValueError(`unknown NVS type ${JSON.stringify(type)}`);
    return this.#run(() => {
      const ns = this.#namespaces.get(nsRaw);
      if (ns === undefined) return undefined;
      const at = type === undefined ? this.#findValue(ns, raw) : this.#findTyped(ns, raw, type);
      if (!at) return undefined;
      const payload = this.#payload(at);
      return payload && decodeValue(at.item.type, payload, `${namespace}/${key}`);
    });
  }

  /**
   * Stores a value (a typed item, or a Preference value mapped as `preferenceItem` does). The new
   * item is written before the old one is erased, so a power cut keeps one of them.
   */
  set(namespace: string, key: string, value: NvsValue): void {
    const nsRaw = encodeName("namespace", namespace);
    const raw = encodeName("key", key);
    const encoded = encodeValue(value, this.pageCount);
    this.#run(() => {
      const ns = this.#namespaceIndex(nsRaw);
      const current = this.#findValue(ns, raw);
      if (current && current.item.type === encoded.code) {
        const payload = this.#payload(current);
        if (payload && sameBytes(payload, encoded.payload)) return;
      }
      const old = this.#findValue(ns, raw);
      if (encoded.code === BLOB_IDX) {
        const start = old?.item.type === BLOB_IDX && this.#blobIndex(old).start === VER_0 ? VER_1 : VER_0;
        this.#writeBlob(ns, raw, encoded.payload, start);
      } else {
        this.#writeItem(ns, encoded.code, raw, encoded.payload);
      }
      if (!old) return;
      // Writing may have moved the old item (garbage collection), so look it up again; the new one
      // is always the last written, so the first of the old type is the old one.
      if (old.item.type === BLOB_IDX) this.#eraseBlob(ns, raw, this.#blobIndex(old).start);
      else this.#eraseEntryAndSpan(this.#find(({ item }) => item.ns === ns && item.raw === raw && item.type === old.item.type)!);
    });
  }

  /** Erases a key (any type); false if there was none. */
  delete(namespace: string, key: string): boolean {
    const nsRaw = encodeName("namespace", namespace);
    const raw = encodeName("key", key);
    return this.#run(() => {
      const ns = this.#namespaces.get(nsRaw);
      const at = ns === undefined ? undefined : this.#findValue(ns, raw);
      if (!at) return false;
      if (at.item.type === BLOB_IDX) this.#eraseBlob(ns!, raw, this.#blobIndex(at).start);
      else this.#eraseEntryAndSpan(at);
      return true;
    });
  }

  /** As nvs_get_stats: entries in use, the rest, and the pages kept free. */
  stats(): NvsStats {
    const usedEntries = this.#used.reduce((n, page) => n + page.written(), 0);
    const totalEntries = this.#pages.length * ENTRY_COUNT;
    return { usedEntries, freeEntries: totalEntries - usedEntries, totalEntries, namespaceCount: this.#namespaces.size, freePages: this.#free.length };
  }

  #run<T>(action: () => T): T {
    if (this.#broken !== undefined)
      throw new NvsError(`NVS partition unusable after a failed flash operation (${String(this.#broken)}); open it again, as a board would after a reset`, {
        cause: this.#broken,
      });
    try {
      return action();
    } catch (error) {
      if (!(error instanceof NvsError)) this.#broken = error;
      throw error;
    }
  }

  #repair(description: string, action: () => void): void {
    if (this.#strict) throw new NvsCorruptError(`NVS: ${description}`);
    this.#issues.push(description);
    action();
  }

  // --- mounting -----------------------------------------------------------------------------

  #load(): void {
    const size = this.#region.size;
    if (size % NVS_PAGE_SIZE !== 0 || size < NVS_MIN_PAGES * NVS_PAGE_SIZE)
      throw new NvsFormatError(`an NVS partition is whole ${NVS_PAGE_SIZE}-byte pages, at least ${NVS_MIN_PAGES}; this one is ${size} bytes`);
    for (let i = 0; i < size / NVS_PAGE_SIZE; i++) {
      const page = new Page(i, this.#region.read(i * NVS_PAGE_SIZE, NVS_PAGE_SIZE));
      this.#pages.push(page);
      this.#loadPage(page);
    }
    for (const page of this.#pages) {
      if (page.state === "uninitialized" || page.state === "corrupt") this.#free.push(page);
      else this.#used.push(page);
    }
    this.#used.sort((a, b) => a.seq - b.seq);
    if (this.#used.length === 0) this.#activate();
    else this.#seq = this.#used[this.#used.length - 1]!.seq + 1;

    const freeing = this.#used.find((page) => page.state === "freeing");
    if (freeing) {
      this.#repair(`page ${freeing.index}: power was cut during garbage collection; copying its items again`, () => {
        const last = this.#used[this.#used.length - 1]!;
        if (last.state === "active" && last !== freeing) {
          this.#eraseSector(last);
          this.#used.pop();
          this.#free.push(last);
        }
        this.#activate();
        this.#copyItems(freeing, this.#current());
        this.#eraseSector(freeing);
        this.#used.splice(this.#used.indexOf(freeing), 1);
        this.#free.push(freeing);
      });
    }
    this.#dropDuplicates();
    if (this.#free.length === 0)
      throw new NvsFormatError(
        "NVS partition has no free page (ESP_ERR_NVS_NO_FREE_PAGES): nvs_flash_init fails and Moddable's startup aborts, so the board " +
          "reboots forever. Every page is in use; an image must leave one page erased.",
      );
    this.#loadNamespaces();
    this.#checkBlobs();
    if (this.#strict) for (const at of this.#locations()) if (at.item.type === SZ || at.item.type === BLOB || at.item.type === BLOB_DATA) this.#variableData(at);
  }

  #loadPage(page: Page): void {
    const b = page.bytes;
    const state = u32(b, 0);
    if (state === PAGE_UNINITIALIZED) {
      if (!isErased(b)) {
        page.state = "corrupt";
        this.#repair(`page ${page.index}: header erased but the page holds data; treated as corrupt, erased before reuse`, () => undefined);
      }
      return;
    }
    if (u32(b, 28) !== nvsCrc(b.subarray(4, 28))) {
      page.state = "corrupt";
      this.#repair(`page ${page.index}: header CRC mismatch; the page and its items are dropped and it is erased before reuse`, () => undefined);
      return;
    }
    if (b[8]! < VERSION_2)
      throw new NvsFormatError(
        `page ${page.index} has NVS format version 0x${b[8]!.toString(16)}, newer than this reader's 0xfe (ESP_ERR_NVS_NEW_VERSION_FOUND)`,
      );
    page.seq = u32(b, 4);
    if (state === PAGE_ACTIVE) page.state = "active";
    else if (state === PAGE_FULL) page.state = "full";
    else if (state === PAGE_FREEING) page.state = "freeing";
    else {
      page.state = "corrupt";
      this.#repair(`page ${page.index}: unknown page state 0x${state.toString(16)}; treated as corrupt, erased before reuse`, () => undefined);
      return;
    }

    if (page.state === "active") {
      page.nextFree = ENTRY_COUNT;
      for (let i = 0; i < ENTRY_COUNT; i++)
        if (page.entryState(i) === EMPTY) {
          page.nextFree = i;
          break;
        }
      // The state bitmap is written after the entry, so a cut between the two leaves a written
      // entry still marked empty.
      while (page.nextFree < ENTRY_COUNT && u32(page.entry(page.nextFree), 0) !== 0xffffffff) {
        const i = page.nextFree;
        this.#repair(`page ${page.index} entry ${i}: written but not marked (power cut); marked erased`, () => this.#setEntryStates(page, i, i + 1, ERASED));
        page.nextFree = i + 1;
      }
    } else {
      page.nextFree = ENTRY_COUNT;
    }
    for (let i = 0; i < Math.min(page.nextFree, ENTRY_COUNT); i++) {
      const state = page.entryState(i);
      if (state === ILLEGAL && page.state === "active") {
        this.#repair(`page ${page.index} entry ${i}: illegal entry state; marked erased`, () => this.#eraseEntryAndSpan({ page, index: i }));
        continue;
      }
      if (state !== WRITTEN) continue;
      const item = parseItem(page.entry(i));
      const where = `page ${page.index} entry ${i}`;
      if (!item) {
        this.#repair(`${where}: entry CRC mismatch; marked erased`, () => this.#eraseEntryAndSpan({ page, index: i }));
        continue;
      }
      const label = `${where} ("${decodeRaw(item.raw)}")`;
      if (!TYPE_NAMES.has(item.type) || item.span === 0 || i + item.span > ENTRY_COUNT || (!isVariable(item.type) && item.span !== 1)) {
        this.#repair(`${label}: type 0x${item.type.toString(16)} with span ${item.span} is malformed; marked erased`, () =>
          this.#setEntryStates(page, i, i + 1, ERASED),
        );
        continue;
      }
      let complete = true;
      for (let j = i + 1; j < i + item.span; j++) if (page.entryState(j) !== WRITTEN) complete = false;
      if (!complete) {
        this.#repair(`${label}: data entries not all written (power cut); erased`, () => this.#eraseEntryAndSpan({ page, index: i }));
        continue;
      }
      page.items[i] = item;
      i += item.span - 1;
    }
  }

  /** A power cut between writing a new copy and erasing the old one leaves both: the newer one wins. */
  #dropDuplicates(): void {
    const newest = new Map<string, Location>();
    for (const at of [...this.#locations()].reverse()) {
      const id = `${at.item.ns}\0${at.item.chunk}\0${at.item.raw}`;
      const kept = newest.get(id);
      if (!kept) newest.set(id, at);
      else
        this.#repair(
          `page ${at.page.index} entry ${at.index} ("${decodeRaw(at.item.raw)}"): older copy of the item at page ${kept.page.index} ` +
            `entry ${kept.index} (power cut before the old copy was erased); erased`,
          () => this.#eraseEntryAndSpan(at),
        );
    }
  }

  #loadNamespaces(): void {
    for (const at of this.#locations()) {
      if (at.item.ns !== NS_INDEX) continue;
      const index = at.page.entry(at.index)[24]!;
      if (at.item.type !== INTEGERS.u8.code || index === NS_INDEX || index === CHUNK_ANY) {
        if (this.#strict) throw new NvsCorruptError(`NVS: namespace table entry "${decodeRaw(at.item.raw)}" is not a u8 in 1..254`);
        continue;
      }
      this.#namespaces.set(at.item.raw, index);
    }
    if (this.#strict) {
      const known = new Set(this.#namespaces.values());
      for (const { item } of this.#locations())
        if (item.ns !== NS_INDEX && !known.has(item.ns))
          throw new NvsCorruptError(`NVS: item "${decodeRaw(item.raw)}" is in namespace index ${item.ns}, which no namespace entry names`);
    }
  }

  /** Storage::init: blob chunks belong to a complete index, or they go. */
  #checkBlobs(): void {
    const complete: { ns: number; raw: string; start: number; count: number }[] = [];
    for (const at of [...this.#locations()]) {
      if (at.item.type !== BLOB_IDX) continue;
      const { size, count, start } = this.#blobIndex(at);
      let total = 0;
      let missing = false;
      for (let c = 0; c < count; c++) {
        const chunk = this.#findChunk(at.item.ns, at.item.raw, start + c);
        if (chunk) total += variableSize(chunk);
        else missing = true;
      }
      if (missing || total !== size)
        this.#repair(`blob "${decodeRaw(at.item.raw)}": index does not match its chunks (power cut or corruption); erased`, () =>
          this.#eraseBlob(at.item.ns, at.item.raw, start),
        );
      else complete.push({ ns: at.item.ns, raw: at.item.raw, start, count });
    }
    for (const at of [...this.#locations()]) {
      if (at.item.type !== BLOB_DATA) continue;
      const owner = complete.find((b) => b.ns === at.item.ns && b.raw === at.item.raw && at.item.chunk >= b.start && at.item.chunk < b.start + b.count);
      if (!owner)
        this.#repair(`blob "${decodeRaw(at.item.raw)}": chunk 0x${at.item.chunk.toString(16)} has no index (power cut while writing or erasing); erased`, () =>
          this.#eraseEntryAndSpan(at),
        );
    }
  }

  // --- items ----------------------------------------------------------------------------------

  *#locations(): Generator<Location> {
    for (const page of this.#used)
      for (let index = 0; index < ENTRY_COUNT; index++) {
        const item = page.items[index];
        if (item) yield { page, index, item };
      }
  }

  #find(match: (at: Location) => boolean): Location | undefined {
    for (const at of this.#locations()) if (match(at)) return at;
    return undefined;
  }

  /** The item holding a key's value: a blob's index, not its chunks. */
  #findValue(ns: number, raw: string): Location | undefined {
    return this.#find(({ item }) => item.ns === ns && item.raw === raw && item.type !== BLOB_DATA);
  }

  /** As nvs_get_<type>: only an item of that type; for blobs the index, else a version-1 blob. */
  #findTyped(ns: number, raw: string, type: NvsType): Location | undefined {
    const codes = type === "blob" ? [BLOB_IDX, BLOB] : [...TYPE_NAMES].filter(([, name]) => name === type).map(([code]) => code);
    for (const code of codes) {
      const at = this.#find(({ item }) => item.ns === ns && item.raw === raw && item.type === code);
      if (at) return at;
    }
    return undefined;
  }

  #findChunk(ns: number, raw: string, chunk: number): Location | undefined {
    return this.#find(({ item }) => item.ns === ns && item.raw === raw && item.type === BLOB_DATA && item.chunk === chunk);
  }

  #blobIndex(at: Location): { size: number; count: number; start: number } {
    const entry = at.page.entry(at.index);
    return { size: u32(entry, 24), count: entry[28]!, start: entry[29]! };
  }

  /** The stored bytes of a value, or undefined (and the item erased) if its data fails its CRC. */
  #payload(at: Location): Uint8Array | undefined {
    const { type } = at.item;
    if (type === BLOB_IDX) return this.#readBlob(at);
    if (type === SZ || type === BLOB) return this.#variableData(at);
    const name = TYPE_NAMES.get(type)!;
    const bytes = Object.hasOwn(INTEGERS, name) ? INTEGERS[name as IntegerType].bytes : 8;
    return at.page.entry(at.index).slice(24, 24 + bytes);
  }

  #variableData(at: Location): Uint8Array | undefined {
    const entry = at.page.entry(at.index);
    const size = variableSize(at);
    const label = `page ${at.page.index} entry ${at.index} ("${decodeRaw(at.item.raw)}")`;
    if (at.item.span !== 1 + Math.ceil(size / ENTRY_SIZE)) {
      this.#repair(`${label}: data size ${size} does not match span ${at.item.span}; erased`, () => this.#eraseEntryAndSpan(at));
      return undefined;
    }
    const start = ENTRIES_OFFSET + (at.index + 1) * ENTRY_SIZE;
    const data = at.page.bytes.slice(start, start + size);
    if (nvsCrc(data) !== u32(entry, 28)) {
      this.#repair(`${label}: data CRC mismatch; erased, reads as missing`, () => this.#eraseEntryAndSpan(at));
      return undefined;
    }
    if (at.item.type === SZ && this.#strict) decodeValue(SZ, data, decodeRaw(at.item.raw));
    return data;
  }

  #readBlob(index: Location): Uint8Array | undefined {
    const { size, count, start } = this.#blobIndex(index);
    const data = new Uint8Array(size);
    let done = 0;
    for (let c = 0; c < count; c++) {
      const chunk = this.#findChunk(index.item.ns, index.item.raw, start + c);
      const part = chunk && this.#variableData(chunk);
      if (!part || done + part.length > size) {
        this.#repair(`blob "${decodeRaw(index.item.raw)}": a chunk is missing or unreadable; erased, reads as missing`, () =>
          this.#eraseBlob(index.item.ns, index.item.raw, start),
        );
        return undefined;
      }
      data.set(part, done);
      done += part.length;
    }
    return data;
  }

  #namespaceIndex(raw: string): number {
    const known = this.#namespaces.get(raw);
    if (known !== undefined) return known;
    const taken = new Set(this.#namespaces.values());
    let index = 1;
    while (taken.has(index)) index++;
    if (index === CHUNK_ANY) throw new NvsFullError(`NVS holds at most 254 namespaces; "${decodeRaw(raw)}" would be one more`);
    this.#writeItem(NS_INDEX, INTEGERS.u8.code, raw, Uint8Array.of(index));
    this.#namespaces.set(raw, index);
    return index;
  }

  // --- writing (Storage::writeItem, writeMultiPageBlob, PageManager::requestNewPage) -----------

  #current(): Page {
    return this.#used[this.#used.length - 1]!;
  }

  #writeItem(ns: number, type: number, raw: string, payload: Uint8Array): void {
    const label = `"${decodeRaw(raw)}" (${isVariable(type) ? payload.length + " bytes" : "1 entry"})`;
    if (this.#pageWriteItem(this.#current(), ns, type, raw, payload, CHUNK_ANY)) return;
    if (this.#current().state === "active") this.#markPage(this.#current(), PAGE_FULL, "full");
    this.#requestNewPage(label);
    if (!this.#pageWriteItem(this.#current(), ns, type, raw, payload, CHUNK_ANY))
      throw new NvsFullError(`NVS: no room for ${label} even after garbage collection; erase keys or give the partition more pages`);
  }

  #writeBlob(ns: number, raw: string, data: Uint8Array, start: number): void {
    const label = `blob "${decodeRaw(raw)}" (${data.length} bytes)`;
    let count = 0;
    let offset = 0;
    try {
      for (;;) {
        const page = this.#current();
        const tailroom = varDataTailroom(page);
        if (count === 0 && (tailroom < data.length || (tailroom === 0 && data.length === 0)) && tailroom < CHUNK_MAX_SIZE / 10) {
          // Not worth splitting off a sliver: start the blob on a fresh page.
          if (page.state === "active") this.#markPage(page, PAGE_FULL, "full");
          this.#requestNewPage(label);
          if (varDataTailroom(this.#current()) === tailroom) throw new NvsFullError(`NVS: no room for ${label}`);
          continue;
        }
        if (tailroom === 0) throw new NvsFullError(`NVS: no room for ${label} even after garbage collection`);
        if (count === MAX_BLOB_CHUNKS) throw new NvsFullError(`NVS: ${label} would need more than ${MAX_BLOB_CHUNKS} chunks`);
        const size = Math.min(tailroom, data.length - offset);
        this.#pageWriteItem(page, ns, BLOB_DATA, raw, data.subarray(offset, offset + size), start + count);
        count++;
        offset += size;
        if (offset < data.length || tailroom - size < ENTRY_SIZE) {
          if (page.state === "active") this.#markPage(page, PAGE_FULL, "full");
          this.#requestNewPage(label);
        }
        if (offset === data.length) break;
      }
      const index = new Uint8Array(8).fill(0xff);
      setU32(index, 0, data.length);
      index[4] = count;
      index[5] = start;
      if (!this.#pageWriteItem(this.#current(), ns, BLOB_IDX, raw, index, CHUNK_ANY))
        throw new NvsFullError(`NVS: no room for the index of ${label} after garbage collection`);
    } catch (error) {
      if (error instanceof NvsFullError)
        for (let c = 0; c < count; c++) {
          const chunk = this.#findChunk(ns, raw, start + c);
          if (chunk) this.#eraseEntryAndSpan(chunk);
        }
      throw error;
    }
  }

  /** Page::writeItem; false when the page has no room. */
  #pageWriteItem(page: Page, ns: number, type: number, raw: string, payload: Uint8Array, chunk: number): boolean {
    if (page.state === "uninitialized") this.#initialize(page);
    if (page.state === "full") return false;
    const variable = isVariable(type);
    const span = variable ? 1 + Math.ceil(payload.length / ENTRY_SIZE) : 1;
    if (page.nextFree + span > ENTRY_COUNT) return false;
    const entry = new Uint8Array(ENTRY_SIZE).fill(0xff);
    entry[0] = ns;
    entry[1] = type;
    entry[2] = span;
    entry[3] = chunk;
    entry.fill(0, 8, 24);
    entry.set(unbinary(raw), 8);
    if (variable) {
      entry[24] = payload.length & 0xff;
      entry[25] = payload.length >> 8;
      setU32(entry, 28, nvsCrc(payload));
    } else {
      entry.set(payload, 24);
    }
    setU32(entry, 4, itemCrc(entry));
    const index = page.nextFree;
    this.#writeEntries(page, entry);
    page.items[index] = parseItem(entry);
    if (variable) {
      const whole = Math.floor(payload.length / ENTRY_SIZE) * ENTRY_SIZE;
      if (whole > 0) this.#writeEntries(page, payload.subarray(0, whole));
      if (whole < payload.length) {
        const tail = new Uint8Array(ENTRY_SIZE).fill(0xff);
        tail.set(payload.subarray(whole));
        this.#writeEntries(page, tail);
      }
    }
    return true;
  }

  /** Writes whole entries at nextFree, then marks them written (last first, as alterEntryRangeState does). */
  #writeEntries(page: Page, data: Uint8Array): void {
    const first = page.nextFree;
    const count = data.length / ENTRY_SIZE;
    this.#program(page, ENTRIES_OFFSET + first * ENTRY_SIZE, data);
    this.#setEntryStates(page, first, first + count, WRITTEN);
    page.nextFree = first + count;
  }

  /** requestNewPage: a free page, compacting the emptiest page into it when it is the last one. */
  #requestNewPage(label: string): void {
    if (this.#free.length >= 2) {
      this.#activate();
      return;
    }
    let victim: Page | undefined;
    let mostUnused = 0;
    for (const page of this.#used) {
      const unused = ENTRY_COUNT - page.written();
      if (unused > mostUnused) {
        victim = page;
        mostUnused = unused;
      }
    }
    if (!victim) throw new NvsFullError(`NVS is full: no room for ${label} and no erased entries to reclaim; erase keys or give the partition more pages`);
    this.#activate();
    this.#markPage(victim, PAGE_FREEING, "freeing");
    this.#copyItems(victim, this.#current());
    this.#eraseSector(victim);
    this.#used.splice(this.#used.indexOf(victim), 1);
    this.#free.push(victim);
  }

  /** Takes the first free page for new items; its header is written with its first item. */
  #activate(): void {
    const page = this.#free.shift();
    if (!page) throw new NvsFullError("NVS has no free page left to activate");
    if (page.state === "corrupt") this.#eraseSector(page);
    page.seq = this.#seq++;
    this.#used.push(page);
  }

  #copyItems(from: Page, to: Page): void {
    for (let i = 0; i < ENTRY_COUNT; ) {
      const item = from.entryState(i) === WRITTEN ? from.items[i] : undefined;
      if (!item) {
        i++;
        continue;
      }
      if (to.state === "uninitialized") this.#initialize(to);
      to.items[to.nextFree] = item;
      for (let j = i; j < i + item.span; j++) this.#writeEntries(to, from.entry(j).slice());
      i += item.span;
    }
  }

  #initialize(page: Page): void {
    const header = new Uint8Array(32).fill(0xff);
    setU32(header, 0, PAGE_ACTIVE);
    setU32(header, 4, page.seq);
    header[8] = VERSION_2;
    setU32(header, 28, nvsCrc(header.subarray(4, 28)));
    this.#program(page, 0, header);
    page.state = "active";
    page.nextFree = 0;
  }

  #markPage(page: Page, state: number, name: PageState): void {
    const word = new Uint8Array(4);
    setU32(word, 0, state);
    this.#program(page, 0, word);
    page.state = name;
  }

  // --- erasing --------------------------------------------------------------------------------

  /** eraseMultiPageBlob: the index first, so a cut leaves orphan chunks that the next mount erases. */
  #eraseBlob(ns: number, raw: string, start: number): void {
    const index = this.#find((at) => at.item.ns === ns && at.item.raw === raw && at.item.type === BLOB_IDX && this.#blobIndex(at).start === start);
    if (!index) return;
    const { count } = this.#blobIndex(index);
    this.#eraseEntryAndSpan(index);
    for (let c = 0; c < count; c++) {
      const chunk = this.#findChunk(ns, raw, start + c);
      if (chunk) this.#eraseEntryAndSpan(chunk);
    }
  }

  /** Page::eraseEntryAndSpan: an entry and, if its header is intact, the data entries it spans. */
  #eraseEntryAndSpan(at: { readonly page: Page; readonly index: number }): void {
    const { page, index } = at;
    let span = 1;
    if (page.entryState(index) === WRITTEN) {
      const item = parseItem(page.entry(index));
      if (item) span = Math.max(1, Math.min(item.span, ENTRY_COUNT - index));
    }
    this.#setEntryStates(page, index, index + span, ERASED);
    page.items[index] = undefined;
    if (page.state === "active" && index + span > page.nextFree) page.nextFree = index + span;
  }

  // --- flash ----------------------------------------------------------------------------------

  /** alterEntryRangeState: one bitmap word write per word touched, from the last entry back. */
  #setEntryStates(page: Page, begin: number, end: number, state: number): void {
    let word = 0;
    let modified = false;
    for (let i = end - 1; i >= begin; i--) {
      const at = BITMAP_OFFSET + (i >> 4) * 4;
      if (i === end - 1 || (i & 15) === 15) word = u32(page.bytes, at);
      const shift = (i & 15) * 2;
      if (((word >>> shift) & 0b11) !== state) {
        word = ((word & ~(0b11 << shift)) | (state << shift)) >>> 0;
        modified = true;
      }
      if (((i & 15) === 0 || i === begin) && modified) {
        const bytes = new Uint8Array(4);
        setU32(bytes, 0, word);
        this.#program(page, at, bytes);
        modified = false;
      }
    }
  }

  #program(page: Page, offset: number, data: Uint8Array): void {
    this.#region.write(page.index * NVS_PAGE_SIZE + offset, data);
    for (let i = 0; i < data.length; i++) page.bytes[offset + i]! &= data[i]!;
  }

  #eraseSector(page: Page): void {
    this.#region.erase(page.index * NVS_PAGE_SIZE, NVS_PAGE_SIZE);
    page.bytes.fill(0xff);
    page.items.fill(undefined);
    page.state = "uninitialized";
    page.nextFree = 0;
  }
}

function variableSize(at: Location): number {
  const entry = at.page.entry(at.index);
  return entry[24]! | (entry[25]! << 8);
}

/** Page::getVarDataTailroom: data bytes a new chunk could take on this page (one entry for its header). */
function varDataTailroom(page: Page): number {
  if (page.state === "uninitialized") return CHUNK_MAX_SIZE;
  if (page.state === "full") return 0;
  return page.nextFree < ENTRY_COUNT - 1 ? (ENTRY_COUNT - page.nextFree - 1) * ENTRY_SIZE : 0;
}

function decodeRaw(raw: string): string {
  return new TextDecoder().decode(unbinary(raw));
}

function decodeValue(code: number, payload: Uint8Array, label: string): NvsTypedValue {
  const type = TYPE_NAMES.get(code)!;
  if (type === "blob") return { type, value: payload };
  if (type === "string") {
    if (payload[payload.length - 1] !== 0) throw new NvsCorruptError(`NVS string ${label} does not end with NUL`);
    try {
      return { type, value: new TextDecoder("utf-8", { fatal: true }).decode(payload.subarray(0, -1)) };
    } catch {
      throw new NvsCorruptError(`NVS string ${label} is not UTF-8`);
    }
  }
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  switch (type) {
    case "u8":
      return { type, value: view.getUint8(0) };
    case "i8":
      return { type, value: view.getInt8(0) };
    case "u16":
      return { type, value: view.getUint16(0, true) };
    case "i16":
      return { type, value: view.getInt16(0, true) };
    case "u32":
      return { type, value: view.getUint32(0, true) };
    case "i32":
      return { type, value: view.getInt32(0, true) };
    case "u64":
      return { type, value: view.getBigUint64(0, true) };
    case "i64":
      return { type, value: view.getBigInt64(0, true) };
  }
}

export interface NvsImageEntry {
  readonly namespace: string;
  readonly key: string;
  readonly value: NvsValue;
}

/**
 * An NVS partition image holding `entries`, written in order by the same code the twin runs, so it
 * mounts with no repairs and keeps the free page ESP-IDF needs. Ready to flash at the partition's offset.
 */
export function buildNvsImage(size: number, entries: readonly NvsImageEntry[]): Uint8Array {
  if (!Number.isSafeInteger(size) || size % NVS_PAGE_SIZE !== 0 || size < NVS_MIN_PAGES * NVS_PAGE_SIZE)
    throw new NvsFormatError(`NVS image size ${size} is not a multiple of ${NVS_PAGE_SIZE} of at least ${NVS_MIN_PAGES} pages`);
  const seen = new Set<string>();
  for (const { namespace, key } of entries) {
    const id = `${encodeName("namespace", namespace)}\0${encodeName("key", key)}`;
    if (seen.has(id)) throw new NvsNameError(`NVS image lists ${namespace}/${key} twice`);
    seen.add(id);
  }
  const flash = new MemoryFlash(size, { strictBits: true });
  const nvs = NvsPartition.open(flash);
  for (const { namespace, key, value } of entries) nvs.set(namespace, key, value);
  return flash.snapshot();
}
