// The twin's task watchdog. On the board (sdkconfig: CONFIG_ESP_TASK_WDT_*) the idle task feeds the
// watchdog only while the JavaScript task yields; a firmware that hangs starves it and the chip
// resets, and the bootloader then treats a PENDING_VERIFY image as ABORTED. In the twin the boot
// process feeds over IPC from its event loop — which a busy firmware starves the same way — and the
// supervisor resets (kills and reboots) a boot that stops feeding.

/** CONFIG_ESP_TASK_WDT_TIMEOUT_S in modules/platform/esp32/sdkconfig. */
export const WATCHDOG_TIMEOUT_MS = 10_000;

const FEED_MS = 1_000;

export interface WatchdogFeed {
  readonly watchdogFeed: true;
}

export function isWatchdogFeed(value: unknown): value is WatchdogFeed {
  return (value as { watchdogFeed?: unknown } | null)?.watchdogFeed === true;
}

/** Boot side: feed once now (the watchdog starts when the app starts), then whenever the loop is free. */
export function feedWatchdog(): void {
  const feed = () => process.send?.({ watchdogFeed: true } satisfies WatchdogFeed, () => {});
  feed();
  setInterval(feed, FEED_MS).unref();
}

/** Supervisor side: calls `reset` when a started watchdog goes `timeoutMs` without a feed. */
export class WatchdogMonitor {
  #lastFeed: number | undefined;
  #timer: ReturnType<typeof setInterval> | undefined;

  constructor(readonly timeoutMs: number, readonly reset: () => void) {}

  feed(): void {
    this.#lastFeed = Date.now();
    this.#timer ??= setInterval(() => {
      // Checked after this loop turn's I/O: feeds that queued up while the supervisor itself was
      // busy must count before it decides the device hung.
      setImmediate(() => {
        if (this.#timer !== undefined && Date.now() - this.#lastFeed! > this.timeoutMs) {
          this.stop();
          this.reset();
        }
      });
    }, Math.min(FEED_MS, this.timeoutMs / 4));
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
