/// <reference path="./cli-progress.d.ts" />
// Per-device progress bars on a terminal; on a pipe (CI, the demo's test) one line per step
// instead, since redrawn bars would only be noise in a log.
import cliProgress from "cli-progress";

export interface Progress {
  /** value in 0..total; `note` is shown beside the bar, or printed when not on a terminal */
  update(key: string, value: number, note: string): void;
  /** prints a line above the bars */
  log(line: string): void;
  stop(): void;
}

export function progressBars(title: string, keys: readonly string[], total: number, out: NodeJS.WriteStream = process.stdout): Progress {
  if (!out.isTTY) {
    return {
      update: (key, value, note) => out.write(`    ${key}  ${title} ${Math.round((value / total) * 100)}%  ${note}\n`),
      log: (line) => out.write(`${line}\n`),
      stop: () => undefined,
    };
  }
  const width = Math.max(...keys.map((key) => key.length));
  const multi = new cliProgress.MultiBar({
    format: `    {key} ${title} [{bar}] {percentage}%  {note}`, hideCursor: true, clearOnComplete: false, barsize: 30,
  }, cliProgress.Presets.shades_classic);
  const bars = new Map(keys.map((key) => [key, multi.create(total, 0, { key: key.padEnd(width), note: "waiting" })]));
  return {
    update: (key, value, note) => bars.get(key)?.update(value, { note }),
    log: (line) => multi.log(`${line}\n`),
    stop: () => multi.stop(),
  };
}
