// Moddable's `embedded:storage/flash` (modules/io/flash/esp32), only as far as `embedded:update`
// needs it: open({path}) names a partition — by label, "running", or "nextota"
// (esp_ota_get_next_update_partition). Reading and writing through it is not implemented: the
// twin throws rather than pretend.
import { type Partition, PartitionTable } from "../flash/partition-table.ts";
import { otaLayout } from "../device/ota-layout.ts";
import { runningSlotIndex } from "../device/running-slot.ts";

const partitions = new WeakMap<object, Partition>();

export class FlashPartition {
  close(): void {
    partitions.delete(this);
  }

  get format(): "buffer" {
    return "buffer";
  }

  /** @internal the partition behind a handle from open(), for the twin's `embedded:update` */
  static partitionOf(handle: unknown): Partition | undefined {
    return typeof handle === "object" && handle !== null ? partitions.get(handle) : undefined;
  }
}
Object.freeze(FlashPartition.prototype);

function resolve(path: string): Partition {
  const table = PartitionTable.load();
  if (path === "running" || path === "nextota") {
    const { slots } = otaLayout(table);
    const running = runningSlotIndex(table);
    return slots[path === "running" ? running : (running + 1) % slots.length]!;
  }
  const partition = table.find(path);
  if (!partition) throw new Error("can't find partition");
  return partition;
}

export default Object.freeze({
  open(options: { path: string }): FlashPartition {
    if (typeof options?.path !== "string") throw new Error("no path");
    const handle = new FlashPartition();
    partitions.set(handle, resolve(options.path));
    return handle;
  },
});
