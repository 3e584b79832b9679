// Exit codes a twin device process uses to tell its supervisor why it ended.
export const BootExit = Object.freeze({
  /** the firmware asked for a restart (esp_restart) */
  reboot: 3,
  /** the bootloader found nothing it could boot */
  noBootableImage: 4,
} as const);
