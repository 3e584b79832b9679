// `espguard/ota-state`: the ESP-IDF app-rollback calls Moddable does not expose, bound on a board
// by modules/platform/esp32/ota-state.c. The twin applies them to the emulated otadata exactly as
// esp_ota_ops.c does (both write the active copy in place: erase, then program).
// Stricter than the board: marking an image that otadata does not select (ESP-IDF logs "Running
// firmware is factory" and returns ESP_FAIL, which the binding turns into an exception) throws here
// too, and giving up an image when no other slot could boot throws instead of being ignored.
import { deviceFlash } from "../flash/flash-file.ts";
import { activeCopy, OtaState, readEntries, setActiveState, slotOf, stateName } from "../flash/otadata.ts";
import { PartitionTable } from "../flash/partition-table.ts";
import { BootExit } from "../device/boot-exit.ts";
import { otaLayout } from "../device/ota-layout.ts";
import { runningSlotIndex, runningVersion } from "../device/running-slot.ts";

export class OtaStateError extends Error {
  override name = "OtaStateError";
}

function otadata() {
  const table = PartitionTable.load();
  const layout = otaLayout(table);
  const flash = deviceFlash("espguard/ota-state");
  return { region: flash.region(layout.otadata.offset, layout.otadata.size), slots: layout.slots.length, running: runningSlotIndex(table) };
}

/** esp_ota_get_state_partition(esp_ota_get_running_partition()), or "undefined" when otadata has no entry for it. */
export function state(): string {
  const { region, slots, running } = otadata();
  const entries = readEntries(region);
  const copy = activeCopy(entries);
  if (copy < 0 || slotOf(entries[copy]!.seq, slots) !== running) return "undefined";
  return stateName(entries[copy]!.state);
}

function selectedRunning(what: string): ReturnType<typeof otadata> {
  const data = otadata();
  const entries = readEntries(data.region);
  const copy = activeCopy(entries);
  if (copy < 0 || slotOf(entries[copy]!.seq, data.slots) !== data.running)
    throw new OtaStateError(`${what}: otadata does not select the running slot (ESP_FAIL "Running firmware is factory")`);
  return data;
}

/** esp_ota_mark_app_valid_cancel_rollback */
export function markValid(): void {
  const { region } = selectedRunning("markValid");
  if (readEntries(region)[activeCopy(readEntries(region))]!.state !== OtaState.valid) setActiveState(region, OtaState.valid);
}

/** esp_ota_mark_app_invalid_rollback_and_reboot */
export function markInvalidAndReboot(): never {
  const { region } = selectedRunning("markInvalidAndReboot");
  const entries = readEntries(region);
  const other = entries[activeCopy(entries) ^ 1]!;
  if (other.seq === 0xffffffff)
    throw new OtaStateError("markInvalidAndReboot: no other image to roll back to (ESP_ERR_OTA_ROLLBACK_FAILED)");
  setActiveState(region, OtaState.invalid);
  process.exit(BootExit.reboot);
}

/** esp_restart */
export function restart(): never {
  process.exit(BootExit.reboot);
}

/** esp_app_get_description()->version */
export function version(): string {
  return runningVersion();
}

export default Object.freeze({ state, markValid, markInvalidAndReboot, restart, version });
