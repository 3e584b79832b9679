// Moddable's `time`: a millisecond tick counter and the system clock setter.
import { performance } from "node:perf_hooks";
import { setDeviceTime } from "./device-clock.ts";

const Time = {
  timezone: 0,
  dst: 0,
  get ticks(): number {
    return Math.floor(performance.now());
  },
  get microseconds(): number {
    return Math.floor(performance.now() * 1000);
  },
  delta(start: number, end: number = Math.floor(performance.now())): number {
    return end - start;
  },
  set(seconds: number): void {
    if (!Number.isFinite(seconds)) throw new RangeError("Time.set: seconds must be a finite number");
    setDeviceTime(seconds * 1000);
  },
};

export default Time;
