// What the device says on devices/<id>/ota/status: one small JSON object per step of an update.
//   {"state":"downloading","version":"2.0.0","percent":40}
//   {"state":"verifying","version":"2.0.0"}   {"state":"rebooting","version":"2.0.0"}
//   {"state":"valid","version":"2.0.0"}
//   {"state":"rejected","version":"2.0.0","reason":"bad-signature","detail":"…"}
//   {"state":"rolled-back","version":"3.0.0","reason":"broker-unreachable","running":"2.0.0"}
export type OtaStatus =
  | { readonly state: "downloading"; readonly version: string; readonly percent: number }
  | { readonly state: "verifying" | "rebooting" | "valid"; readonly version: string }
  | { readonly state: "rejected"; readonly version: string; readonly reason: string; readonly detail: string }
  | { readonly state: "rolled-back"; readonly version: string; readonly reason: string; readonly running: string };

/** Why a running image gave itself up, or was given up by the bootloader. */
export const RollbackReason = Object.freeze({
  /** the boot guard's deadline passed before the broker was reached */
  brokerUnreachable: "broker-unreachable",
  /** reset while PENDING_VERIFY: a crash, a watchdog reset or a power cut before confirming */
  resetWhilePending: "reset-while-pending",
} as const);

export function otaStatusTopic(deviceId: string): string {
  return `devices/${deviceId}/ota/status`;
}

export function encodeStatus(status: OtaStatus): ArrayBuffer {
  return ArrayBuffer.fromString(JSON.stringify(status));
}
