// Moddable's `preference` (modules/files/preference/esp32/modPreference.c) on the NVS partition
// named "nvs" in the twin device's flash, in the format ESP-IDF uses, so a provisioned twin and a
// provisioned board hold the same bytes. The domain is the NVS namespace.
//
// Mirrored from the board: set erases the key before writing the new value (modPreference.c's
// workaround for an ESP-IDF bug), so a power cut between the two loses the key, and a full
// partition leaves it erased; get tries u8 (boolean), i32, string, blob in that order.
// Stricter than the board: domain and key must be strings of 1..15 UTF-8 bytes (the board coerces
// anything to a string, and a long key fails only once the domain exists); a key holding an NVS type
// Preference cannot read (say u16 from another tool) throws instead of reading as undefined.
import { deviceFlash, type FlashFile } from "../flash/flash-file.ts";
import { NvsError, NvsPartition, preferenceItem, type NvsType, type PreferenceValue } from "../flash/nvs.ts";
import { PartitionTable, SUBTYPES, TYPES } from "../flash/partition-table.ts";

export class PreferenceError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "PreferenceError";
  }
}

let mounted: { flash: FlashFile; nvs: NvsPartition } | undefined;

/** nvs_flash_init on the partition labelled "nvs", once per flash file. */
function nvs(): NvsPartition {
  const flash = deviceFlash("preference");
  if (mounted?.flash !== flash) {
    const partition = PartitionTable.load().require("nvs");
    if (partition.type !== TYPES.data || partition.subtype !== SUBTYPES.data.nvs)
      throw new PreferenceError('partitions.csv: partition "nvs" must be of type data, subtype nvs (NVS_DEFAULT_PART_NAME)');
    mounted = { flash, nvs: NvsPartition.open(flash.region(partition.offset, partition.size)) };
  }
  return mounted.nvs;
}

function call<T>(operation: string, args: readonly unknown[], action: () => T): T {
  try {
    return action();
  } catch (error) {
    if (!(error instanceof NvsError)) throw error;
    throw new PreferenceError(`Preference.${operation}(${args.map((a) => JSON.stringify(a) ?? String(a)).join(", ")}): ${error.message}`, { cause: error });
  }
}

const READABLE: readonly NvsType[] = ["u8", "i32", "string", "blob"];

class Preference {
  static set(domain: string, key: string, value: PreferenceValue): void {
    call("set", [domain, key], () => {
      const item = preferenceItem(value);
      const partition = nvs();
      partition.delete(domain, key);
      partition.set(domain, key, item);
    });
  }

  static get(domain: string, key: string): PreferenceValue | undefined {
    return call("get", [domain, key], () => {
      const partition = nvs();
      for (const type of READABLE) {
        const item = partition.get(domain, key, type);
        if (item?.type === "u8") return item.value !== 0;
        if (item?.type === "i32" || item?.type === "string") return item.value;
        if (item?.type === "blob") return item.value.slice().buffer;
      }
      const other = partition.get(domain, key);
      if (other)
        throw new PreferenceError(
          `Preference.get(${JSON.stringify(domain)}, ${JSON.stringify(key)}): the key holds an NVS ${other.type}, which Preference cannot ` +
            `read (the board returns undefined); store it as u8 (boolean), i32 (number), string or blob (ArrayBuffer)`,
        );
      return undefined;
    });
  }

  static delete(domain: string, key: string): void {
    call("delete", [domain, key], () => {
      nvs().delete(domain, key);
    });
  }

  static keys(domain: string): string[] {
    return call("keys", [domain], () => nvs().keys(domain));
  }
}
// On a board the class lives in preloaded flash: nothing can be added or replaced at run time.
Object.freeze(Preference.prototype);
Object.freeze(Preference);

export default Preference;
