// The device's wall clock. A board boots at the epoch until something sets the time; the twin
// keeps an offset from the host clock that `Time.set` moves. In a test or tool process the offset
// starts at 0 (host time); the device process starts it at the epoch and routes `Date` through
// it (installDeviceClock), so firmware sees what a board sees. The host clock is captured here,
// before any routing, so the offset is applied once.
const HostDate = Date;
const hostNow = Date.now;
let offsetMs = 0;

export function deviceNow(): number {
  return hostNow() + offsetMs;
}

export function setDeviceTime(epochMs: number): void {
  offsetMs = epochMs - hostNow();
}

/** The device process: the clock reads the epoch at boot, and `Date.now()` / `new Date()` follow it. */
export function installDeviceClock(): void {
  if (globalThis.Date !== HostDate) throw new Error("installDeviceClock: Date is already routed");
  offsetMs = -hostNow();
  function DeviceDate(this: unknown, ...args: unknown[]): Date | string {
    if (!new.target) return new HostDate(deviceNow()).toString();
    return Reflect.construct(HostDate, args.length === 0 ? [deviceNow()] : args, new.target) as Date;
  }
  Object.defineProperties(DeviceDate, {
    prototype: { value: HostDate.prototype, writable: false },
    now: { value: deviceNow, writable: true, configurable: true },
    parse: { value: HostDate.parse, writable: true, configurable: true },
    UTC: { value: HostDate.UTC, writable: true, configurable: true },
  });
  Object.defineProperty(HostDate.prototype, "constructor", { value: DeviceDate, writable: true, configurable: true });
  Object.defineProperty(globalThis, "Date", { value: DeviceDate, writable: true, configurable: true });
}
