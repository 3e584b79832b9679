// Moddable's `time` for the XS engine check. `ticks` reads the virtual clock the timer shim
// advances, so elapsed-time logic sees the same time as its timers. Setting the wall clock is
// recorded for the host; the engine's own Date is left alone.
const host = __espguardXsHost;

const Time = {
  timezone: 0,
  dst: 0,
  get ticks() {
    return host.now();
  },
  get microseconds() {
    return host.now() * 1000;
  },
  delta(start, end = host.now()) {
    return end - start;
  },
  set(seconds) {
    if (!Number.isFinite(seconds)) throw new RangeError("Time.set: seconds must be a finite number");
    host.record("time", "set", { seconds });
  },
};

export default Time;
