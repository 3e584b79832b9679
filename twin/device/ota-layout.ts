// Where A/B OTA lives in the partition table: otadata and the ota_N app slots in subtype order.
import { type Partition, PartitionTable, SUBTYPES, TYPES } from "../flash/partition-table.ts";

export class BootError extends Error {
  override name = "BootError";
}

export interface OtaLayout {
  readonly otadata: Partition;
  /** ota_0, ota_1, … in subtype order */
  readonly slots: readonly Partition[];
}

export function otaLayout(table = PartitionTable.load()): OtaLayout {
  const otadata = table.findBySubtype("data", "ota");
  const first = SUBTYPES.app.ota_0!;
  const slots = table.partitions.filter((p) => p.type === TYPES.app && p.subtype >= first && p.subtype < first + 16)
    .sort((a, b) => a.subtype - b.subtype);
  if (!otadata || slots.length < 2) throw new BootError("partitions.csv needs otadata and two OTA app slots (ota_0, ota_1) for A/B updates");
  return { otadata, slots };
}
