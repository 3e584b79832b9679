// ESP-IDF's otadata partition (DESIGN.md §2): two 4 KB copies of esp_ota_select_entry_t
//
//   offset size field
//   0      4    ota_seq, u32 little-endian (0xFFFFFFFF = empty)
//   4      20   seq_label (unused by the bootloader; 0xFF)
//   24     4    ota_state (NEW 0, PENDING_VERIFY 1, VALID 2, INVALID 3, ABORTED 4, UNDEFINED 0xFFFFFFFF)
//   28     4    crc = esp_rom_crc32_le(UINT32_MAX, &ota_seq, 4)
//
// A copy counts when its seq is not empty, its crc matches and (rollback enabled) its state is
// neither INVALID nor ABORTED; the one with the highest seq selects app slot (seq - 1) % slots.
// Every change rewrites one copy as ESP-IDF does (erase its sector, program 32 bytes), so a power
// cut between the two leaves that copy blank and the other one decides.
import { espCrc32Le } from "./nvs.ts";
import { type FlashRegion, SECTOR_SIZE } from "./flash-file.ts";

export const OTADATA_SIZE = 2 * SECTOR_SIZE;
export const ENTRY_SIZE = 32;
const EMPTY = 0xffffffff;

export const OtaState = Object.freeze({
  new: 0,
  pendingVerify: 1,
  valid: 2,
  invalid: 3,
  aborted: 4,
  undefined: 0xffffffff,
} as const);
export type OtaStateValue = (typeof OtaState)[keyof typeof OtaState];

const STATE_NAMES: Readonly<Record<number, string>> = Object.freeze({
  0: "new", 1: "pending-verify", 2: "valid", 3: "invalid", 4: "aborted", 0xffffffff: "undefined",
});

export function stateName(state: number): string {
  return STATE_NAMES[state] ?? `unknown(${state})`;
}

export interface OtaEntry {
  readonly seq: number;
  readonly state: number;
  readonly crc: number;
}

export class OtaDataError extends Error {
  override name = "OtaDataError";
}

export function seqCrc(seq: number): number {
  const bytes = new Uint8Array(4);
  new DataView(bytes.buffer).setUint32(0, seq, true);
  return espCrc32Le(0xffffffff, bytes);
}

export function encodeEntry(seq: number, state: number): Uint8Array {
  const bytes = new Uint8Array(ENTRY_SIZE).fill(0xff);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, seq, true);
  view.setUint32(24, state, true);
  view.setUint32(28, seqCrc(seq), true);
  return bytes;
}

export function readEntries(region: FlashRegion): [OtaEntry, OtaEntry] {
  if (region.size !== OTADATA_SIZE) throw new OtaDataError(`otadata is ${region.size} bytes; it must be two ${SECTOR_SIZE}-byte copies`);
  const read = (copy: number): OtaEntry => {
    const view = new DataView(region.read(copy * SECTOR_SIZE, ENTRY_SIZE).buffer);
    return { seq: view.getUint32(0, true), state: view.getUint32(24, true), crc: view.getUint32(28, true) };
  };
  return [read(0), read(1)];
}

/** bootloader_common_ota_select_valid, plus the rollback rule that INVALID and ABORTED never boot. */
export function entryBoots(entry: OtaEntry): boolean {
  return entry.seq !== EMPTY && entry.crc === seqCrc(entry.seq) && entry.state !== OtaState.invalid && entry.state !== OtaState.aborted;
}

/** The copy that selects the boot slot, or -1 when neither does (a factory flash: boot the first slot). */
export function activeCopy(entries: readonly [OtaEntry, OtaEntry]): number {
  const [a, b] = entries.map(entryBoots);
  if (a && b) return entries[0].seq >= entries[1].seq ? 0 : 1;
  return a ? 0 : b ? 1 : -1;
}

export function slotOf(seq: number, slotCount: number): number {
  return (seq - 1) % slotCount;
}

function rewrite(region: FlashRegion, copy: number, seq: number, state: number): void {
  region.erase(copy * SECTOR_SIZE, SECTOR_SIZE);
  region.write(copy * SECTOR_SIZE, encodeEntry(seq, state));
}

/** Changes the state of the active copy in place (esp_ota_mark_app_valid / _invalid, the bootloader's NEW → PENDING_VERIFY → ABORTED). */
export function setActiveState(region: FlashRegion, state: OtaStateValue): void {
  const entries = readEntries(region);
  const copy = activeCopy(entries);
  if (copy < 0) throw new OtaDataError("otadata selects no slot: the factory image has no OTA state to change");
  rewrite(region, copy, entries[copy]!.seq, state);
}

/**
 * esp_ota_set_boot_partition: the next seq that selects `slot`, written NEW (rollback enabled) into
 * the copy that is not active, so the active one still decides if power fails half way.
 */
export function selectSlot(region: FlashRegion, slot: number, slotCount: number): number {
  if (!Number.isInteger(slot) || slot < 0 || slot >= slotCount) throw new OtaDataError(`slot ${slot} is not one of the ${slotCount} OTA slots`);
  const entries = readEntries(region);
  const copy = activeCopy(entries);
  if (copy < 0) {
    rewrite(region, 0, slot + 1, OtaState.new);
    return slot + 1;
  }
  let seq = slot + 1;
  while (seq < entries[copy]!.seq) seq += slotCount;
  rewrite(region, copy ^ 1, seq, OtaState.new);
  return seq;
}
