// The 30-second boot guard (DESIGN.md §2: ESP-IDF has no timer; this is it). When the running
// image is PENDING_VERIFY it must reach the broker (TLS + CONNACK) before the deadline: then it
// confirms itself (esp_ota_mark_app_valid_cancel_rollback) and the updater's counter becomes
// final; otherwise it records why and gives itself up (esp_ota_mark_app_invalid_rollback_and_reboot),
// and the previous image boots. A hang is the task watchdog's (sdkconfig); a crash is a reset
// while PENDING_VERIFY, which the bootloader turns into ABORTED. Whichever image runs next reports
// the outcome from the NVS bookkeeping the updater left (ota/ota-config).
import Timer from "timer";
import OtaState from "espguard/ota-state";
import { emit } from "diag/events";
import { pendingImage, raiseAcceptedCounter, rollbackReason, setPendingImage, setRollbackReason } from "ota/ota-config";
import { type OtaStatus, RollbackReason } from "ota/status";

export interface GuardOptions {
  readonly deadlineMs: number;
  readonly report: (status: OtaStatus) => void;
}

export class BootGuard {
  readonly #options: GuardOptions;
  #timer: ReturnType<typeof Timer.set> | undefined;
  #pending = false;

  constructor(options: GuardOptions) {
    this.#options = options;
  }

  /** True while the running image still has to prove itself. */
  get pending(): boolean {
    return this.#pending;
  }

  start(): void {
    const state = OtaState.state();
    const version = OtaState.version();
    emit("firmware", { version, ota: state });
    if (state === "pending-verify") {
      this.#pending = true;
      emit("boot-guard", { deadlineMs: this.#options.deadlineMs });
      this.#timer = Timer.set(() => this.#expire(), this.#options.deadlineMs);
      return;
    }
    const installed = pendingImage();
    if (!installed) return;
    if (installed.version === version) this.#confirmed(installed.counter, version);
    else {
      const reason = rollbackReason() ?? RollbackReason.resetWhilePending;
      setPendingImage(undefined);
      setRollbackReason(undefined);
      emit("rolled-back", { version: installed.version, reason, running: version });
      this.#options.report({ state: "rolled-back", version: installed.version, reason, running: version });
    }
  }

  /** The broker was reached: TLS verified and CONNACK accepted. */
  brokerReached(): void {
    if (!this.#pending) return;
    this.#pending = false;
    Timer.clear(this.#timer);
    this.#timer = undefined;
    OtaState.markValid();
    const installed = pendingImage();
    this.#confirmed(installed?.counter ?? 0, OtaState.version());
  }

  #confirmed(counter: number, version: string): void {
    raiseAcceptedCounter(counter);
    setPendingImage(undefined);
    emit("ota-valid", { version });
    this.#options.report({ state: "valid", version });
  }

  #expire(): void {
    this.#timer = undefined;
    this.#pending = false;
    setRollbackReason(RollbackReason.brokerUnreachable);
    emit("boot-guard-expired", { deadlineMs: this.#options.deadlineMs });
    OtaState.markInvalidAndReboot();
  }
}
