// The device's wall clock. A board boots at the epoch until something sets the time; the twin
// keeps an offset from the host clock that `Time.set` moves, and the device process routes
// `Date.now()` through it.
let offsetMs = 0;

export function deviceNow(): number {
  return Date.now() + offsetMs;
}

export function setDeviceTime(epochMs: number): void {
  offsetMs = epochMs - Date.now();
}
