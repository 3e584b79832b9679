// Moddable's ECMA-419 OTA update and flash partition modules (modules/io/update, modules/io/flash),
// as far as the updater uses them; @moddable/typings has neither.
declare module "embedded:storage/flash" {
  export interface FlashPartition {
    close(): void;
  }
  const Flash: {
    /** path: a partition label, "running" or "nextota" (the slot an update writes) */
    open(options: { path: string }): FlashPartition;
  };
  export default Flash;
}

declare module "embedded:update" {
  import type { FlashPartition } from "embedded:storage/flash";
  export interface Update {
    /** appends (mode "a"); erases each sector as the write reaches it */
    write(buffer: ArrayBuffer | ArrayBufferView): void;
    /** esp_ota_end (verifies the image) and esp_ota_set_boot_partition */
    complete(): void;
    /** abandons the update; the boot slot stays */
    close(): void;
  }
  const OTA: {
    open(options: { partition: FlashPartition; mode?: "a"; byteLength?: number }): Update;
  };
  export default OTA;
}

// espguard's binding of the ESP-IDF app-rollback calls (modules/platform/esp32/ota-state.c).
declare module "espguard/ota-state" {
  export type OtaImageState = "new" | "pending-verify" | "valid" | "invalid" | "aborted" | "undefined";
  const OtaState: {
    /** esp_ota_get_state_partition of the running slot; "undefined" when otadata has no entry for it */
    state(): OtaImageState;
    /** esp_ota_mark_app_valid_cancel_rollback; throws if ESP-IDF refuses */
    markValid(): void;
    /** esp_ota_mark_app_invalid_rollback_and_reboot; returns only by throwing (no other image to boot) */
    markInvalidAndReboot(): never;
    /** esp_restart */
    restart(): never;
    /** esp_app_get_description()->version */
    version(): string;
  };
  export default OtaState;
}
