// Writes a command's whole output or nothing: every file goes to a temporary name beside its
// target first, and only when all of them are on disk are they renamed into place. A bad input
// found while preparing, a refused overwrite or a failed write leaves the folder as it was.
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";

export interface OutputFile {
  path: string;
  data: string | Uint8Array;
  /** 0o600 for private keys and secrets; 0o644 otherwise. */
  mode?: number;
  /** Replace an existing file without `--force`: state the command itself maintains (CRL, revocation list). */
  replaces?: boolean;
}

export class OutputExistsError extends Error {
  override name = "OutputExistsError";
  constructor(readonly paths: string[]) {
    super(`${paths.length === 1 ? `${paths[0]} already exists` : `these files already exist: ${paths.join(", ")}`}; ` +
      "nothing was written. Pass --force to replace them");
  }
}

/** Refuses up front when a file would be replaced without `force`, so nothing is half written. */
export function assertWritable(files: readonly OutputFile[], force: boolean): void {
  if (force) return;
  const existing = files.filter((file) => file.replaces !== true && existsSync(file.path)).map((file) => file.path);
  if (existing.length > 0) throw new OutputExistsError(existing);
}

export function writeAll(files: readonly OutputFile[], force: boolean): void {
  assertWritable(files, force);
  const suffix = `.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
  const created: string[] = [];
  const staged: { temp: string; path: string }[] = [];
  try {
    for (const file of files) {
      const folder = dirname(file.path);
      const first = mkdirSync(folder, { recursive: true, mode: 0o700 });
      if (first !== undefined) created.push(first);
      const temp = `${file.path}${suffix}`;
      // `flag: "wx"`: a temporary name that exists is someone else's, never ours to overwrite.
      writeFileSync(temp, file.data, { mode: file.mode ?? 0o644, flag: "wx" });
      staged.push({ temp, path: file.path });
    }
  } catch (error) {
    for (const { temp } of staged) rmSync(temp, { force: true });
    for (const folder of created.reverse()) rmSync(folder, { recursive: true, force: true });
    throw error;
  }
  for (const { temp, path } of staged) renameSync(temp, path);
}
