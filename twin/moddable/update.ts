// Moddable's `embedded:update` (modules/io/update/esp32): esp_ota_begin / esp_ota_write /
// esp_ota_end + esp_ota_set_boot_partition on the emulated flash. Mode "a" (the default) is
// OTA_WITH_SEQUENTIAL_WRITES: each sector is erased when the write reaches it, so a power cut is
// counted at the same erase and program steps as on the board. complete() checks the slot's image
// (esp_ota_end runs esp_image_verify; the twin re-verifies the signed image with the provisioned
// key) and only then switches otadata to the slot; close() abandons the update.
// Errors carry Moddable's message first ("begin failed", "write failed", …), then why.
// Stricter than the board: mode "w" (random-offset writes) is refused, since the updater never
// needs it and the twin cannot count its erases the way ESP-IDF would.
import { deviceFlash, type FlashRegion, SECTOR_SIZE } from "../flash/flash-file.ts";
import { OtaState, selectSlot, readEntries, activeCopy, slotOf } from "../flash/otadata.ts";
import { PartitionTable } from "../flash/partition-table.ts";
import { otaLayout, provisionedOtaKey, verifySlotImage } from "../device/bootloader.ts";
import { runningSlotIndex } from "../device/running-slot.ts";
import { FlashPartition } from "./storage-flash.ts";

/** The first bytes a twin slot image starts with, as ESP-IDF's first esp_ota_write checks 0xE9. */
const IMAGE_MAGIC = [0x45, 0x47, 0x4f, 0x49];

function fail(code: string, why: string): never {
  throw new Error(`${code}: ${why}`);
}

export class Update {
  #slot: FlashRegion | undefined;
  #slotIndex: number;
  #written = 0;
  #erased = 0;

  /** @internal use open() */
  constructor(slot: FlashRegion, slotIndex: number) {
    this.#slot = slot;
    this.#slotIndex = slotIndex;
  }

  get format(): "buffer" {
    return "buffer";
  }

  set format(value: string) {
    if (value !== "buffer") throw new RangeError("invalid");
  }

  write(buffer: ArrayBuffer | ArrayBufferView, ...rest: unknown[]): void {
    const slot = this.#slot;
    if (!slot) fail("already complete", "this update was completed or closed; open a new one");
    if (rest.length > 0) fail("offset not allowed", "mode \"a\" writes sequentially");
    const bytes = buffer instanceof ArrayBuffer ? new Uint8Array(buffer) : new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
    if (bytes.length === 0) return;
    if (this.#written === 0 && IMAGE_MAGIC.some((byte, i) => i < bytes.length && bytes[i] !== byte))
      fail("write failed", "the first bytes are not a signed image (ESP_ERR_OTA_VALIDATE_FAILED: esp_ota_write checks the image magic)");
    const end = this.#written + bytes.length;
    if (end > slot.size) fail("write failed", `${end} bytes do not fit the ${slot.size}-byte slot`);
    if (this.#erased < end) {
      const length = Math.ceil((end - this.#erased) / SECTOR_SIZE) * SECTOR_SIZE;
      slot.erase(this.#erased, length);
      this.#erased += length;
    }
    slot.write(this.#written, bytes);
    this.#written = end;
  }

  complete(): void {
    if (!this.#slot) fail("already complete", "this update was completed or closed");
    this.#slot = undefined;
    const table = PartitionTable.load();
    const layout = otaLayout(table);
    const flash = deviceFlash("embedded:update");
    try {
      verifySlotImage(flash, layout.slots[this.#slotIndex]!, provisionedOtaKey(flash, table));
    } catch (error) {
      fail("end failed", `the slot does not hold a verified image (${(error as Error).message})`);
    }
    selectSlot(flash.region(layout.otadata.offset, layout.otadata.size), this.#slotIndex, layout.slots.length);
  }

  close(): void {
    this.#slot = undefined;
  }
}
Object.freeze(Update.prototype);

export default Object.freeze({
  open(options: { partition: unknown; mode?: string; byteLength?: number }): Update {
    if (typeof options !== "object" || options === null || !("partition" in options)) fail("no partition", "pass {partition: Flash.open({path: \"nextota\"})}");
    const partition = FlashPartition.partitionOf(options.partition);
    if (!partition) fail("partition not found", "partition must be an open embedded:storage/flash partition");
    if ((options.mode ?? "a") !== "a") fail("invalid mode", "the twin supports mode \"a\" (sequential writes) only");
    const table = PartitionTable.load();
    const layout = otaLayout(table);
    const index = layout.slots.findIndex((slot) => slot.name === partition.name);
    if (index < 0) fail("begin failed", `${partition.name} is not an OTA app slot`);
    const running = runningSlotIndex(table);
    if (index === running) fail("begin failed", `${partition.name} is the running slot (ESP_ERR_OTA_PARTITION_CONFLICT)`);
    const flash = deviceFlash("embedded:update");
    const region = flash.region(layout.otadata.offset, layout.otadata.size);
    const entries = readEntries(region);
    const copy = activeCopy(entries);
    if (copy >= 0 && slotOf(entries[copy]!.seq, layout.slots.length) === running && entries[copy]!.state === OtaState.pendingVerify)
      fail("begin failed", "the running image is still PENDING_VERIFY (ESP_ERR_OTA_ROLLBACK_INVALID_STATE): confirm or reject it first");
    return new Update(flash.region(partition.offset, partition.size), index);
  },
});
