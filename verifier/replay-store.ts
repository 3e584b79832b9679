// Where the verifier keeps each device's replay state. Several verifier processes share one
// state folder: mosquitto's shared subscription hands each message to any member of the group,
// not by device, so every instance must see every accepted seq of every device.
//
// Per device, a lock (a symbolic link whose target is the owner's pid: made and named in one
// system call, which fails if the link exists) guards a small state file.
// The state is rewritten in place, as one write of one fixed-size record at offset 0, smaller than
// a page: a verifier killed at any instant leaves the old record or the new one, never a mix
// (Linux copies a write page by page and checks for a fatal signal only between pages). Replacing
// the file by rename instead cost ~0.1–1.4 ms per message on ext4, which flushes on rename-over.
// A lock whose owner process is gone is broken; the lock is held for one read, one check and one write.
//
// Locks live on tmpfs (/dev/shm) when there is one, in a folder named after the state folder's
// real path, so every instance sharing the state finds the same locks: creating and removing a file
// per message on ext4 costs ~0.1 ms of journal work, on tmpfs a few µs, and a lock need not outlive
// a reboot of the host. A claim is four system calls (lock, read, write, unlock); each costs a few
// µs here, so they, not the checks, set an instance's pace.
import { createHash } from "node:crypto";
import { closeSync, constants, existsSync, mkdirSync, openSync, readlinkSync, readSync, realpathSync, symlinkSync, unlinkSync, writeSync } from "node:fs";
import { join } from "node:path";
import { admit, type DeviceReplayState, emptyState, isReplayState } from "./replay-window.ts";

export type ClaimResult = { readonly ok: true } | { readonly ok: false; readonly detail: string };

export interface ReplayStore {
  /** Atomically: admit `seq` for `dev` under the reorder window and record it, or refuse and change nothing. */
  claim(dev: string, seq: number): ClaimResult;
  /** A copy of the recorded state of a device (for tests and tooling). */
  state(dev: string): DeviceReplayState;
}

const ACCEPTED: ClaimResult = Object.freeze({ ok: true });

export class ReplayStoreError extends Error {
  override name = "ReplayStoreError";
}

/** One process's state, in memory: for a single instance that may forget on restart, and benchmarks. */
export class MemoryReplayStore implements ReplayStore {
  readonly #states = new Map<string, DeviceReplayState>();
  constructor(readonly window: number) {}

  claim(dev: string, seq: number): ClaimResult {
    let state = this.#states.get(dev);
    if (!state) this.#states.set(dev, (state = emptyState()));
    const refused = admit(state, seq, this.window);
    return refused === undefined ? ACCEPTED : { ok: false, detail: refused };
  }

  state(dev: string): DeviceReplayState {
    const state = this.#states.get(dev) ?? emptyState();
    return { last: state.last, seen: [...state.seen] };
  }
}

const LOCK_TIMEOUT_MS = 5000;
// Making and removing a lock locks its folder in the kernel: instances claiming for different
// devices should not queue on one folder.
const LOCK_BUCKETS = 16;
/** Widest reorder window the file store holds: its record must stay within RECORD_BYTES. */
export const MAX_FILE_WINDOW = 256;
// {"last":<16 digits>,"below":[<up to 256 offsets of ≤ 3 digits>]}, padded with spaces
const RECORD_BYTES = 2048;
const OPEN_FILES = 256;
const SHARED_MEMORY = "/dev/shm";
const pause = new Int32Array(new SharedArrayBuffer(4));

function bucketName(bucket: number): string {
  return bucket.toString(16).padStart(2, "0");
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Shared by every verifier process that names the same folder (same machine). */
export class FileReplayStore implements ReplayStore {
  // Open state files, least recently used first: the file is never replaced, so its descriptor stays valid.
  readonly #files = new Map<string, number>();
  readonly #record = Buffer.alloc(RECORD_BYTES);
  readonly #owner = String(process.pid);
  readonly lockDir: string;

  constructor(readonly dir: string, readonly window: number) {
    if (!Number.isInteger(window) || window < 1 || window > MAX_FILE_WINDOW)
      throw new ReplayStoreError(`reorder window ${window}: the shared state holds 1–${MAX_FILE_WINDOW}`);
    mkdirSync(dir, { recursive: true });
    const name = `espguard-verifier-locks-${createHash("sha256").update(realpathSync(dir)).digest("hex").slice(0, 16)}`;
    this.lockDir = existsSync(SHARED_MEMORY) ? join(SHARED_MEMORY, name) : join(dir, "locks");
    for (let bucket = 0; bucket < LOCK_BUCKETS; bucket++) mkdirSync(join(this.lockDir, bucketName(bucket)), { recursive: true, mode: 0o700 });
  }

  /** Where the lock of `dev` lives: one of LOCK_BUCKETS folders, by a hash of the id. */
  lockPath(dev: string): string {
    let hash = 0x811c9dc5;
    for (let i = 0; i < dev.length; i++) hash = Math.imul(hash ^ dev.charCodeAt(i), 0x01000193);
    return join(this.lockDir, bucketName((hash >>> 0) % LOCK_BUCKETS), `${dev}.lock`);
  }

  claim(dev: string, seq: number): ClaimResult {
    const lock = this.#lock(dev);
    try {
      const fd = this.#open(dev);
      const state = this.#read(dev, fd);
      const refused = admit(state, seq, this.window);
      if (refused !== undefined) return { ok: false, detail: refused };
      const text = JSON.stringify({ last: state.last, below: state.seen.map((s) => state.last - s) });
      this.#record.fill(0x20);
      this.#record.write(text, 0, "latin1");
      if (writeSync(fd, this.#record, 0, RECORD_BYTES, 0) !== RECORD_BYTES) throw new ReplayStoreError(`${this.#path(dev)}: short write`);
      return ACCEPTED;
    } finally {
      unlinkSync(lock);
    }
  }

  state(dev: string): DeviceReplayState {
    return this.#read(dev, this.#open(dev));
  }

  close(): void {
    for (const fd of this.#files.values()) closeSync(fd);
    this.#files.clear();
  }

  // Device ids are [a-z0-9_-] only (checked by the envelope before any claim), so they are safe file names.
  #path(dev: string): string {
    return join(this.dir, `${dev}.state`);
  }

  #open(dev: string): number {
    let fd = this.#files.get(dev);
    if (fd !== undefined) this.#files.delete(dev);
    else {
      fd = openSync(this.#path(dev), constants.O_RDWR | constants.O_CREAT, 0o600);
      if (this.#files.size >= OPEN_FILES) {
        const [oldest, oldFd] = this.#files.entries().next().value!;
        this.#files.delete(oldest);
        closeSync(oldFd);
      }
    }
    this.#files.set(dev, fd);
    return fd;
  }

  #read(dev: string, fd: number): DeviceReplayState {
    const length = readSync(fd, this.#record, 0, RECORD_BYTES, 0);
    if (length === 0) return emptyState();
    let parsed: unknown;
    try {
      parsed = JSON.parse(this.#record.toString("latin1", 0, length));
    } catch {
      parsed = undefined;
    }
    const { last, below } = (parsed ?? {}) as { last?: unknown; below?: unknown };
    const state = Array.isArray(below) ? { last, seen: below.map((offset) => (last as number) - offset) } : undefined;
    if (length !== RECORD_BYTES || !isReplayState(state) || !(below as unknown[]).every((o) => Number.isSafeInteger(o) && (o as number) >= 0))
      throw new ReplayStoreError(`${this.#path(dev)} is not replay state; restore it from a backup (deleting it would reopen replay for ${dev})`);
    return state;
  }

  /** Takes the device's lock and returns its path, which the caller unlinks to release it. */
  #lock(dev: string): string {
    const lock = this.lockPath(dev);
    const deadline = Date.now() + LOCK_TIMEOUT_MS;
    for (;;) {
      try {
        symlinkSync(this.#owner, lock);
        return lock;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      }
      this.#breakIfOrphaned(lock);
      if (Date.now() > deadline)
        throw new ReplayStoreError(`${lock} has been held for over ${LOCK_TIMEOUT_MS} ms by a live process; is another verifier stuck?`);
      Atomics.wait(pause, 0, 0, 1);
    }
  }

  #breakIfOrphaned(lock: string): void {
    let owner: number;
    try {
      owner = Number(readlinkSync(lock));
    } catch {
      return;
    }
    if (owner > 0 && !alive(owner)) {
      try {
        unlinkSync(lock);
      } catch {
        // another instance broke it first
      }
    }
  }
}
