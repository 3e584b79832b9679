// ESP-IDF partition tables in the CSV form gen_esp32part.py reads: name, type, subtype, offset,
// size, flags. Offsets left empty are placed after the previous partition, app partitions on a
// 64 KB boundary and data on a 4 KB one, as gen_esp32part.py does. Validation follows its rules and
// adds a few of its own where a mistake would otherwise surface only on a board (sizes in whole
// sectors, otadata present whenever ota_N apps are).
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { SECTOR_SIZE } from "./flash-file.ts";

export const DEFAULT_PARTITIONS_CSV = fileURLToPath(new URL("../../modules/platform/esp32/partitions.csv", import.meta.url));
export const PARTITION_TABLE_OFFSET = 0x8000;
const PARTITION_TABLE_SIZE = 0x1000;
/** 0xC00 bytes of 32-byte entries, less the MD5 entry. */
const MAX_PARTITIONS = 95;
const NAME_BYTES = 16;
const APP_ALIGNMENT = 0x10000;

export const TYPES: Readonly<Record<string, number>> = Object.freeze({ app: 0x00, data: 0x01 });

const APP_SUBTYPES: Record<string, number> = { factory: 0x00, test: 0x20 };
for (let n = 0; n < 16; n++) APP_SUBTYPES[`ota_${n}`] = 0x10 + n;

export const SUBTYPES: Readonly<Record<"app" | "data", Readonly<Record<string, number>>>> = Object.freeze({
  app: Object.freeze(APP_SUBTYPES),
  data: Object.freeze({
    ota: 0x00, phy: 0x01, nvs: 0x02, coredump: 0x03, nvs_keys: 0x04, efuse: 0x05, undefined: 0x06,
    esphttpd: 0x80, fat: 0x81, spiffs: 0x82, littlefs: 0x83,
  }),
});

const FLAGS = ["encrypted", "readonly"] as const;

export interface Partition {
  readonly name: string;
  readonly type: number;
  readonly subtype: number;
  readonly offset: number;
  readonly size: number;
  readonly encrypted: boolean;
  readonly readonly: boolean;
  /** line in the CSV source, from 1 */
  readonly line: number;
}

export interface ParseOptions {
  /** bytes of flash the table must fit in; default 4 MB */
  flashSize?: number;
  /** names the source in error messages */
  source?: string;
}

export class PartitionTableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "PartitionTableError";
  }
}

function lookup(table: Readonly<Record<string, number>>, name: string): number | undefined {
  return Object.hasOwn(table, name) ? table[name] : undefined;
}

function hex(n: number): string {
  return `0x${n.toString(16)}`;
}

/** gen_esp32part.py's parse_int: hex or decimal, optional K/M suffix (binary multiples). */
function parseNumber(text: string, what: string, fail: (message: string) => never): number {
  const match = /^(0x[0-9a-f]+|0|[1-9][0-9]*)([km]?)$/i.exec(text);
  if (!match) fail(`${what} "${text}" is not a number (hex 0x..., decimal, optional K or M suffix)`);
  const multiplier = { "": 1, k: 1024, m: 1024 * 1024 }[match[2]!.toLowerCase() as "" | "k" | "m"];
  const value = Number(match[1]) * multiplier;
  if (!Number.isSafeInteger(value) || value > 0xffffffff) fail(`${what} ${text} does not fit in 32 bits`);
  return value;
}

export class PartitionTable {
  private constructor(readonly partitions: readonly Partition[]) {}

  static load(path = DEFAULT_PARTITIONS_CSV, options: ParseOptions = {}): PartitionTable {
    let text: string;
    try {
      text = readFileSync(path, "utf8");
    } catch (error) {
      throw new PartitionTableError(`cannot read partition table ${path}: ${(error as Error).message}`);
    }
    return PartitionTable.parse(text, { source: path, ...options });
  }

  static parse(csv: string, options: ParseOptions = {}): PartitionTable {
    const source = options.source ?? "partition table";
    const flashSize = options.flashSize ?? 4 * 1024 * 1024;
    const partitions: Partition[] = [];
    let lastEnd = PARTITION_TABLE_OFFSET + PARTITION_TABLE_SIZE;
    const lines = csv.split(/\r?\n/);
    for (let index = 0; index < lines.length; index++) {
      const text = lines[index]!.trim();
      if (text === "" || text.startsWith("#")) continue;
      const line = index + 1;
      const fail = (message: string): never => {
        throw new PartitionTableError(`${source}:${line}: ${message}`);
      };
      const fields = text.split(",").map((field) => field.trim());
      if (fields.slice(6).some((field) => field !== ""))
        fail(`too many fields; expected name, type, subtype, offset, size, flags`);
      const [name = "", typeText = "", subtypeText = "", offsetText = "", sizeText = "", flagsText = ""] = fields;

      if (name === "") fail("the name is empty");
      if (new TextEncoder().encode(name).length > NAME_BYTES) fail(`name "${name}" is longer than ${NAME_BYTES} bytes`);
      if (partitions.some((p) => p.name === name)) fail(`partition name "${name}" is used twice; names must be unique`);

      if (typeText === "") fail(`partition "${name}": the type is empty (app, data, or 0x40-0xFE)`);
      const type = lookup(TYPES, typeText.toLowerCase()) ?? parseNumber(typeText, "type", fail);
      if (type > 0x01 && (type < 0x40 || type > 0xfe))
        fail(`partition "${name}": type ${typeText} is reserved; use app, data, or a custom type 0x40-0xFE`);

      if (subtypeText === "") fail(`partition "${name}": the subtype is empty`);
      const named = type === TYPES.app ? SUBTYPES.app : type === TYPES.data ? SUBTYPES.data : {};
      const subtype = lookup(named, subtypeText.toLowerCase()) ?? parseNumber(subtypeText, "subtype", fail);
      if (subtype > 0xfe) fail(`partition "${name}": subtype ${subtypeText} does not fit in a byte (0xFF means "any")`);

      if (sizeText === "") fail(`partition "${name}": the size is empty`);
      const size = parseNumber(sizeText, "size", fail);
      if (size === 0 || size % SECTOR_SIZE !== 0)
        fail(`partition "${name}": size ${sizeText} is not a positive multiple of the ${SECTOR_SIZE}-byte flash sector`);

      const alignment = type === TYPES.app ? APP_ALIGNMENT : SECTOR_SIZE;
      let offset: number;
      if (offsetText === "") {
        offset = Math.ceil(lastEnd / alignment) * alignment;
      } else {
        offset = parseNumber(offsetText, "offset", fail);
        if (offset < lastEnd)
          fail(
            partitions.length === 0
              ? `partition "${name}" at ${hex(offset)} overlaps the partition table, which occupies up to ${hex(lastEnd)}`
              : `partition "${name}" at ${hex(offset)} overlaps the previous partition, which ends at ${hex(lastEnd)}; offsets must ascend`,
          );
        if (offset % alignment !== 0)
          fail(`partition "${name}": offset ${hex(offset)} is not aligned to ${hex(alignment)}${type === TYPES.app ? " (app partitions are 64 KB aligned)" : ""}`);
      }
      if (offset + size > flashSize)
        fail(`partition "${name}" ends at ${hex(offset + size)}, beyond the ${hex(flashSize)}-byte flash`);

      const flags = flagsText === "" ? [] : flagsText.split(":").map((flag) => flag.trim());
      for (const flag of flags)
        if (!(FLAGS as readonly string[]).includes(flag)) fail(`partition "${name}": unknown flag "${flag}" (known: ${FLAGS.join(", ")})`);

      partitions.push(
        Object.freeze({ name, type, subtype, offset, size, encrypted: flags.includes("encrypted"), readonly: flags.includes("readonly"), line }),
      );
      lastEnd = offset + size;
    }

    if (partitions.length === 0) throw new PartitionTableError(`${source}: no partitions`);
    if (partitions.length > MAX_PARTITIONS) throw new PartitionTableError(`${source}: ${partitions.length} partitions; a table holds at most ${MAX_PARTITIONS}`);
    const apps = partitions.filter((p) => p.type === TYPES.app);
    for (const app of apps) {
      const twin = apps.find((p) => p !== app && p.subtype === app.subtype);
      if (twin) throw new PartitionTableError(`${source}:${twin.line}: app partitions "${app.name}" and "${twin.name}" have the same subtype`);
    }
    const otadata = partitions.filter((p) => p.type === TYPES.data && p.subtype === SUBTYPES.data.ota);
    if (otadata.length > 1) throw new PartitionTableError(`${source}:${otadata[1]!.line}: more than one otadata partition`);
    if (otadata[0] && otadata[0].size !== 0x2000)
      throw new PartitionTableError(`${source}:${otadata[0].line}: otadata must be 0x2000 bytes (two 4 KB copies of the OTA state)`);
    const ota = apps.find((p) => p.subtype >= 0x10 && p.subtype < 0x20);
    if (ota && otadata.length === 0)
      throw new PartitionTableError(`${source}:${ota.line}: "${ota.name}" is an OTA slot, but there is no otadata partition (data, ota, 0x2000) to select it`);
    return new PartitionTable(Object.freeze(partitions));
  }

  find(name: string): Partition | undefined {
    return this.partitions.find((p) => p.name === name);
  }

  /** Like `find`, but a missing partition is an error naming the ones there are. */
  require(name: string): Partition {
    const partition = this.find(name);
    if (!partition)
      throw new PartitionTableError(`no partition named "${name}" (the table has ${this.partitions.map((p) => p.name).join(", ")})`);
    return partition;
  }

  /** The first partition of that type and subtype in table order, as esp_partition_find_first does. */
  findBySubtype(type: "app" | "data" | number, subtype: string | number): Partition | undefined {
    const typeValue = typeof type === "number" ? type : TYPES[type]!;
    let subtypeValue: number | undefined;
    if (typeof subtype === "number") subtypeValue = subtype;
    else if (typeValue === TYPES.app || typeValue === TYPES.data) subtypeValue = lookup(SUBTYPES[typeValue === TYPES.app ? "app" : "data"], subtype);
    if (subtypeValue === undefined) throw new PartitionTableError(`unknown subtype "${subtype}" for partition type ${String(type)}`);
    return this.partitions.find((p) => p.type === typeValue && p.subtype === subtypeValue);
  }
}
