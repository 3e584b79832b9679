// Why an OTA image or release was refused. One error type for every refusal, so the updater can
// report `rejected(<reason>)` on its status topic without knowing which check failed.
export type RejectReason =
  | "bad-magic"
  | "unsupported-version"
  | "header-size"
  | "bad-header"
  | "wrong-target"
  | "payload-type"
  | "downgrade"
  | "too-large"
  | "size-mismatch"
  | "release-mismatch"
  | "extra-bytes"
  | "truncated"
  | "digest-mismatch"
  | "unknown-key"
  | "bad-signature"
  | "bad-release";

export class OtaRejected extends Error {
  // A class field, not an assignment: Error.prototype is frozen on a board after preload.
  readonly name = "OtaRejected";

  constructor(readonly reason: RejectReason, detail: string) {
    super(`${reason}: ${detail}`);
  }
}
