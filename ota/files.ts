// File I/O for the `espguard ota` commands: every input read with an error that names the file and
// the option it came from, every output written all-or-nothing (temp file + rename) and never over
// an existing file unless the user said --force.
import { accessSync, closeSync, constants, existsSync, fsyncSync, openSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";

export class OtaFileError extends Error {
  readonly name = "OtaFileError";
}

/**
 * The bytes of an input file; `what` says what it should be, e.g. "--in (the unsigned image)". A
 * plain Uint8Array with a buffer of its own: a small Node Buffer is a view into a shared pool, and
 * firmware code that hands `bytes.buffer` on (as Moddable APIs take ArrayBuffers) would pass the pool.
 */
export function readInput(path: string, what: string): Uint8Array {
  try {
    return new Uint8Array(readFileSync(path));
  } catch (error) {
    throw inputError(error, path, what);
  }
}

/** Fails as readInput would, without reading a file that is read later as a stream. */
export function checkInput(path: string, what: string): void {
  try {
    accessSync(path, constants.R_OK);
    if (statSync(path).isDirectory()) throw Object.assign(new Error(), { code: "EISDIR" });
  } catch (error) {
    throw inputError(error, path, what);
  }
}

function inputError(error: unknown, path: string, what: string): OtaFileError {
  const code = (error as NodeJS.ErrnoException).code;
  const problem = code === "ENOENT" ? "does not exist" : code === "EISDIR" ? "is a folder, not a file"
    : code === "EACCES" ? "is not readable by this user" : (error as Error).message;
  return new OtaFileError(`${what}: ${path} ${problem}`);
}

export function readTextInput(path: string, what: string): string {
  return new TextDecoder().decode(readInput(path, what));
}

/** Refuses to go on if `path` exists and `force` is not set, before any work is done. */
export function checkOutput(path: string, force: boolean, what: string): void {
  if (!force && existsSync(path))
    throw new OtaFileError(`${what}: ${path} already exists; choose another name, or pass --force to replace it`);
  const parent = dirname(resolve(path));
  if (!existsSync(parent) || !statSync(parent).isDirectory())
    throw new OtaFileError(`${what}: folder ${parent} does not exist; create it first`);
}

export interface WriteOptions {
  readonly force: boolean;
  /** File mode; private keys get 0o600 from creation on, so they are never readable by others. */
  readonly mode?: number;
}

/** Writes `data` to `path` in one step: a reader sees the old file or the whole new one. */
export function writeOutput(path: string, data: string | Uint8Array, what: string, options: WriteOptions): void {
  checkOutput(path, options.force, what);
  const temp = join(dirname(resolve(path)), `.${basename(path)}.${process.pid}.tmp`);
  const fd = openSync(temp, "wx", options.mode ?? 0o644);
  try {
    try {
      writeFileSync(fd, data);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temp, path);
  } catch (error) {
    rmSync(temp, { force: true });
    throw error;
  }
}
