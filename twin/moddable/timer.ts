// Moddable's `timer` on Node's event loop. Stricter than the board: touching a timer that was
// already cleared (or a one-shot that has fired) throws instead of corrupting memory.
type Callback = (this: typeof globalThis, timer: TwinTimer) => void;

class TwinTimer {
  handle: ReturnType<typeof setTimeout> | undefined;
  repeat = 0;
  cleared = false;
  constructor(readonly callback: Callback) {}
}

function live(timer: unknown, operation: string): TwinTimer {
  if (!(timer instanceof TwinTimer)) throw new TypeError(`Timer.${operation}: not a timer`);
  if (timer.cleared) throw new Error(`Timer.${operation}: timer already cleared (one-shot timers clear themselves after firing)`);
  return timer;
}

function arm(timer: TwinTimer, initial: number, repeat: number): void {
  if (timer.handle !== undefined) clearTimeout(timer.handle);
  timer.repeat = repeat;
  timer.handle = setTimeout(function fire() {
    timer.handle = undefined;
    timer.callback.call(globalThis, timer);
    if (timer.cleared || timer.handle !== undefined) return;
    if (timer.repeat > 0) timer.handle = setTimeout(fire, timer.repeat);
    else timer.cleared = true;
  }, Math.max(0, initial));
}

const Timer = Object.freeze({
  set(callback: Callback, initial = 0, repeat = 0): TwinTimer {
    const timer = new TwinTimer(callback);
    arm(timer, initial, repeat);
    return timer;
  },
  repeat(callback: Callback, interval: number): TwinTimer {
    const timer = new TwinTimer(callback);
    arm(timer, interval, interval);
    return timer;
  },
  schedule(timer: TwinTimer, initial?: number, repeat = 0): void {
    const t = live(timer, "schedule");
    if (initial === undefined) {
      if (t.handle !== undefined) clearTimeout(t.handle);
      t.handle = undefined;
      t.repeat = 0;
      return;
    }
    arm(t, initial, repeat);
  },
  clear(timer: TwinTimer | undefined | null): void {
    if (timer === undefined || timer === null) return;
    const t = live(timer, "clear");
    if (t.handle !== undefined) clearTimeout(t.handle);
    t.handle = undefined;
    t.cleared = true;
  },
  delay(ms: number): void {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
  },
});

export default Timer;
