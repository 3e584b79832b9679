// The replay rule for one device: a seq is accepted once, and only if it is above the highest
// accepted so far or, within a small reorder window below it, not yet seen. QoS 1 redelivery and
// a shared subscription's round robin can swap neighbouring messages; the window lets those
// through without reopening replay for anything older.
export interface DeviceReplayState {
  /** highest accepted seq; 0 before the first */
  last: number;
  /** accepted seqs in (last − window, last], ascending */
  seen: number[];
}

export function emptyState(): DeviceReplayState {
  return { last: 0, seen: [] };
}

/** How far below the highest accepted seq a late message may still arrive (documented in docs/verifier.md). */
export const DEFAULT_REORDER_WINDOW = 64;

/**
 * Admits `seq` into `state` and returns undefined, or returns why not and leaves `state` as it
 * was. Updates in place: this runs once per message on the verifier's hot path.
 */
export function admit(state: DeviceReplayState, seq: number, window: number): string | undefined {
  const { seen } = state;
  if (seq > state.last) {
    const floor = seq - window;
    // shift() trims the front in place; usually one seq leaves the window as one enters
    while (seen.length > 0 && seen[0]! <= floor) seen.shift();
    seen.push(seq);
    state.last = seq;
    return undefined;
  }
  if (seq <= state.last - window) return `seq ${seq} is more than ${window} below the last accepted (${state.last})`;
  let at = seen.length;
  while (at > 0 && seen[at - 1]! > seq) at--;
  if (at > 0 && seen[at - 1] === seq) return `seq ${seq} was already accepted`;
  seen.splice(at, 0, seq);
  return undefined;
}

export function isReplayState(value: unknown): value is DeviceReplayState {
  if (typeof value !== "object" || value === null) return false;
  const { last, seen } = value as Record<string, unknown>;
  return Number.isSafeInteger(last) && (last as number) >= 0 && Array.isArray(seen) &&
    seen.every((s, i) => Number.isSafeInteger(s) && s <= (last as number) && (i === 0 || s > seen[i - 1]));
}
