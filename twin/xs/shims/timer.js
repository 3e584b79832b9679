// Moddable's `timer` for the XS engine check, on a virtual clock: nothing fires by itself. Each
// turn the runner asks for (xs-check.ts) advances the clock to the earliest due timer and runs it,
// so a run is deterministic and bounded. As strict as the twin's: touching a timer that is already
// cleared (a one-shot clears itself after firing) throws. Timer is native on a board, so only the
// callbacks count on XS's meter.
const host = __espguardXsHost;

const states = new WeakMap();
const scheduled = new Set();
let sequence = 0;

class TimerHandle {}
Object.freeze(TimerHandle.prototype);

function live(timer, operation) {
  const state = states.get(timer);
  if (!state) throw new TypeError(`Timer.${operation}: not a timer`);
  if (state.cleared) throw new Error(`Timer.${operation}: timer already cleared (one-shot timers clear themselves after firing)`);
  return state;
}

function arm(state, initial, repeat) {
  state.due = host.now() + Math.max(0, Number(initial) || 0);
  state.repeat = Math.max(0, Number(repeat) || 0);
  state.order = sequence++;
  scheduled.add(state);
}

function create(callback, initial, repeat) {
  if (typeof callback !== "function") throw new TypeError("Timer: callback must be a function");
  const timer = new TimerHandle();
  const state = { timer, callback, due: 0, repeat: 0, order: 0, cleared: false };
  states.set(timer, state);
  arm(state, initial, repeat);
  return timer;
}

const next = host.native(function next() {
  let first;
  for (const state of scheduled)
    if (!first || state.due < first.due || (state.due === first.due && state.order < first.order)) first = state;
  return first;
});

host.onTurn(() => {
  const state = next();
  if (!state) return { fired: false, pending: 0 };
  scheduled.delete(state);
  host.advance(state.due);
  const oneShot = state.repeat === 0;
  if (!oneShot) arm(state, state.repeat, state.repeat);
  try {
    state.callback.call(globalThis, state.timer);
  } catch (error) {
    host.uncaught("timer", error);
    throw error;
  }
  // A one-shot may re-arm itself from its own callback; otherwise it is spent.
  if (oneShot && !scheduled.has(state)) state.cleared = true;
  return { fired: true, pending: scheduled.size };
});

const Timer = {
  set: host.native(function set(callback, initial = 0, repeat = 0) {
    return create(callback, initial, repeat);
  }),
  repeat: host.native(function repeat(callback, interval) {
    return create(callback, interval, interval);
  }),
  schedule: host.native(function schedule(timer, initial, repeat = 0) {
    const state = live(timer, "schedule");
    if (initial === undefined) scheduled.delete(state);
    else arm(state, initial, repeat);
  }),
  clear: host.native(function clear(timer) {
    if (timer === undefined || timer === null) return;
    const state = live(timer, "clear");
    scheduled.delete(state);
    state.cleared = true;
  }),
  delay: host.native(function delay(milliseconds) {
    host.advance(host.now() + Math.max(0, Number(milliseconds) || 0));
  }),
};
Object.freeze(Timer);

export default Timer;
