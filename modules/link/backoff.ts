// Reconnect delays: exponential with full jitter (a uniform draw between 0 and the capped
// exponential), so a fleet that loses its broker at the same instant comes back spread over the
// window instead of in one burst, and a device never retries in a tight loop.
export interface BackoffPolicy {
  /** the window of the first retry */
  readonly baseMs: number;
  /** the largest window */
  readonly capMs: number;
  /** the shortest delay ever returned: even an unlucky draw leaves the radio and the broker a breath */
  readonly floorMs: number;
}

export class BackoffError extends Error {
  override name = "BackoffError";
}

export function checkPolicy(policy: BackoffPolicy): BackoffPolicy {
  const { baseMs, capMs, floorMs } = policy;
  if (!(Number.isFinite(baseMs) && baseMs > 0 && Number.isFinite(capMs) && capMs >= baseMs && Number.isFinite(floorMs) && floorMs >= 0 && floorMs < baseMs))
    throw new BackoffError(`backoff policy ${JSON.stringify(policy)}: need 0 ≤ floorMs < baseMs ≤ capMs (config.espguard.backoff)`);
  return policy;
}

export class Backoff {
  #policy: BackoffPolicy;
  #random: () => number;
  #attempt = 0;

  constructor(policy: BackoffPolicy, random: () => number = Math.random) {
    this.#policy = checkPolicy(policy);
    this.#random = random;
  }

  /** Failed attempts since the last success. */
  get attempt(): number {
    return this.#attempt;
  }

  /** The window the next delay is drawn from. */
  window(): number {
    const { baseMs, capMs } = this.#policy;
    // past 2^20 the cap has long been reached; the shift stays in int range
    return Math.min(capMs, baseMs * 2 ** Math.min(this.#attempt, 20));
  }

  /** The delay before the next attempt; widens the window for the one after. */
  next(): number {
    const delay = Math.max(this.#policy.floorMs, Math.floor(this.#random() * this.window()));
    this.#attempt++;
    return delay;
  }

  reset(): void {
    this.#attempt = 0;
  }
}
