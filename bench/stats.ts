// Medians and percentiles of repeated trials: on this shared machine a median resists the odd
// slow trial that a mean would absorb.
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) throw new Error("percentile of no values");
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

const WARMUP_ROUNDS = 3;

export const median = (values: readonly number[]): number => percentile(values, 50);

/**
 * Runs each contender once per round, in turns, and keeps every duration (ms) per contender; a few
 * untimed rounds first (`warmup`), so the JIT has compiled every contender before any is timed.
 */
export async function interleave(rounds: number, contenders: Readonly<Record<string, () => unknown>>, warmup = WARMUP_ROUNDS): Promise<Record<string, number[]>> {
  const times: Record<string, number[]> = Object.fromEntries(Object.keys(contenders).map((name) => [name, []]));
  for (let i = 0; i < warmup; i++) for (const run of Object.values(contenders)) await run();
  for (let i = 0; i < rounds; i++) {
    for (const [name, run] of Object.entries(contenders)) {
      const start = performance.now();
      await run();
      times[name]!.push(performance.now() - start);
    }
  }
  return times;
}
