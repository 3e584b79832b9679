// Emulated ESP32 SPI NOR flash. Erasing works on whole 4 KB sectors and leaves 0xFF; programming can
// only clear bits (new = old AND data), which is what lets ESP-IDF's NVS and otadata update state
// words in place. Every sector erase and every 256-byte program page is one counted operation, the
// granularity at which a real chip can lose power, so a test can cut power before operation N and
// see exactly what a board would hold afterwards (a long write cut half way is torn at a page).
import { closeSync, fstatSync, openSync, readSync, writeSync } from "node:fs";

export const SECTOR_SIZE = 4096;
/** SPI flash programs at most one 256-byte page per command; longer writes are split at page boundaries. */
export const PROGRAM_PAGE_SIZE = 256;

/** Erased cells, compared against and stored from; never written to. */
const ERASED = Buffer.alloc(16 * SECTOR_SIZE, 0xff);

/** True when every byte is 0xFF (erased), compared natively a slice of ERASED at a time. */
export function isErased(bytes: Uint8Array): boolean {
  for (let at = 0; at < bytes.length; at += ERASED.length) {
    const length = Math.min(ERASED.length, bytes.length - at);
    if (ERASED.compare(bytes, at, at + length, 0, length) !== 0) return false;
  }
  return true;
}

export class FlashError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "FlashError";
  }
}

/** Thrown by the operation a test cut power before, and by every erase or write after it. */
export class PowerCut extends Error {
  constructor(readonly operation: number) {
    super(`power cut before flash operation ${operation}: the device is off; reopen the flash to boot again`);
    this.name = "PowerCut";
  }
}

export class NoDeviceFlashError extends Error {
  constructor(user: string) {
    super(
      `${user} works only inside a twin device: ESPGUARD_TWIN_FLASH is not set. The device supervisor sets it for ` +
        `each boot; a test can point it at a flash file made with FlashFile.create(path, 4 * 1024 * 1024).`,
    );
    this.name = "NoDeviceFlashError";
  }
}

/** A byte range with flash semantics: the whole flash, a partition of it, or an in-memory image. */
export interface FlashRegion {
  readonly size: number;
  read(offset: number, length: number): Uint8Array;
  /** Clears bits: each byte becomes old AND new. */
  write(offset: number, data: Uint8Array): void;
  /** Sets whole sectors to 0xFF; offset and length must be multiples of SECTOR_SIZE. */
  erase(offset: number, length: number): void;
}

export interface FlashOptions {
  /**
   * Throw a FlashError when a write would need to turn a 0 bit into 1 (the chip silently keeps the 0).
   * The write is refused as a whole before any page is programmed. NVS and otadata never do this, so a
   * twin runs strict to catch code that forgets an erase.
   */
  strictBits?: boolean;
}

function checkRange(what: string, offset: number, length: number, size: number): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > size)
    throw new FlashError(`${what} [0x${offset.toString(16)}, +0x${length.toString(16)}) lies outside the 0x${size.toString(16)}-byte flash`);
}

export abstract class EmulatedFlash implements FlashRegion {
  readonly strictBits: boolean;
  #operations = 0;
  #cutBefore: number | undefined;
  #off = false;
  #scratch = new Uint8Array(0);

  protected constructor(readonly size: number, options: FlashOptions) {
    if (!Number.isSafeInteger(size) || size <= 0 || size % SECTOR_SIZE !== 0)
      throw new FlashError(`flash size ${size} is not a positive multiple of the ${SECTOR_SIZE}-byte sector`);
    this.strictBits = options.strictBits ?? false;
  }

  /** Reads the medium into `into`, whole; the range is already checked. */
  protected abstract load(offset: number, into: Uint8Array): void;
  /** Writes the medium as is (bit clearing already applied); must be durable when it returns. */
  protected abstract store(offset: number, data: Uint8Array): void;

  /** Erase sectors and program pages performed so far; operation numbers count from 0. */
  get operations(): number {
    return this.#operations;
  }

  get poweredOff(): boolean {
    return this.#off;
  }

  /** Operation `n` (compare `operations`) and everything after it throw PowerCut without touching the medium. */
  cutPowerBefore(n: number): void {
    if (!Number.isSafeInteger(n) || n < this.#operations)
      throw new FlashError(`cutPowerBefore(${n}): operation ${this.#operations} is the next one; pick it or a later one`);
    this.#cutBefore = n;
  }

  read(offset: number, length: number): Uint8Array {
    const bytes = new Uint8Array(length);
    this.readInto(offset, bytes);
    return bytes;
  }

  /** read() into a buffer the caller reuses, for long reads: fresh memory costs more than the read. */
  readInto(offset: number, into: Uint8Array): void {
    checkRange("read", offset, into.length, this.size);
    this.load(offset, into);
  }

  write(offset: number, data: Uint8Array): void {
    checkRange("write", offset, data.length, this.size);
    if (data.length === 0) return;
    // what the cells hold only matters during this call: read it into a buffer kept for reuse,
    // as a fresh one per write costs more than the read itself
    if (this.#scratch.length < data.length) this.#scratch = new Uint8Array(data.length);
    const old = this.#scratch.subarray(0, data.length);
    this.load(offset, old);
    // Over erased cells (a write after its erase, the usual case) old AND data is data itself, and
    // so it is up to the first byte that would set a bit: the AND (a store per byte, slow on typed
    // arrays once the device froze its built-ins) runs only from there.
    let programmed = data;
    if (!isErased(old)) {
      let at = 0;
      while (at < data.length && (data[at]! & ~old[at]!) === 0) at++;
      if (at < data.length && this.strictBits)
        throw new FlashError(
          `write at 0x${(offset + at).toString(16)} would set bits (0x${old[at]!.toString(16).padStart(2, "0")} -> ` +
            `0x${data[at]!.toString(16).padStart(2, "0")}); NOR flash can only clear bits: erase the sector first`,
        );
      if (at < data.length) {
        programmed = old;
        programmed.set(data.subarray(0, at));
        for (let i = at; i < data.length; i++) programmed[i]! &= data[i]!;
      }
    }
    const pages = Math.ceil(((offset % PROGRAM_PAGE_SIZE) + data.length) / PROGRAM_PAGE_SIZE);
    // The pages before a cut reach the medium in one store: each is still one counted operation.
    const done = this.#runnable(pages);
    const end = done === pages ? data.length : done * PROGRAM_PAGE_SIZE - (offset % PROGRAM_PAGE_SIZE);
    if (end > 0) this.store(offset, end === data.length ? programmed : programmed.subarray(0, end));
    this.#operations += done;
    if (done < pages) this.#begin();
  }

  erase(offset: number, length: number): void {
    checkRange("erase", offset, length, this.size);
    if (offset % SECTOR_SIZE !== 0 || length % SECTOR_SIZE !== 0)
      throw new FlashError(
        `erase [0x${offset.toString(16)}, +0x${length.toString(16)}) is not sector aligned: flash erases whole ${SECTOR_SIZE}-byte sectors`,
      );
    const sectors = length / SECTOR_SIZE;
    const done = this.#runnable(sectors);
    for (let at = 0; at < done * SECTOR_SIZE; at += ERASED.length)
      this.store(offset + at, ERASED.subarray(0, Math.min(ERASED.length, done * SECTOR_SIZE - at)));
    this.#operations += done;
    if (done < sectors) this.#begin();
  }

  /** A window onto [offset, offset + size), e.g. one partition; operations count on this flash. */
  region(offset: number, size: number): FlashRegion {
    checkRange("region", offset, size, this.size);
    if (offset % SECTOR_SIZE !== 0 || size % SECTOR_SIZE !== 0 || size === 0)
      throw new FlashError(`region [0x${offset.toString(16)}, +0x${size.toString(16)}) must be whole, non-empty sectors`);
    const flash = this;
    return {
      size,
      read(at, length) {
        checkRange("region read", at, length, size);
        return flash.read(offset + at, length);
      },
      write(at, data) {
        checkRange("region write", at, data.length, size);
        flash.write(offset + at, data);
      },
      erase(at, length) {
        checkRange("region erase", at, length, size);
        flash.erase(offset + at, length);
      },
    };
  }

  /** How many of the next `count` operations run before the power cut (all of them without one). */
  #runnable(count: number): number {
    if (this.#off) return 0;
    if (this.#cutBefore === undefined) return count;
    return Math.max(0, Math.min(count, this.#cutBefore - this.#operations));
  }

  #begin(): void {
    if (this.#off || (this.#cutBefore !== undefined && this.#operations >= this.#cutBefore)) {
      this.#off = true;
      throw new PowerCut(this.#operations);
    }
  }
}

/** Flash kept in a file, so a device process can be killed at any moment and the next boot sees what it wrote. */
export class FlashFile extends EmulatedFlash {
  #fd: number | undefined;

  private constructor(readonly path: string, fd: number, size: number, options: FlashOptions) {
    super(size, options);
    this.#fd = fd;
  }

  /** Creates a new, fully erased flash file; refuses to overwrite an existing one. */
  static create(path: string, size: number, options: FlashOptions = {}): FlashFile {
    if (!Number.isSafeInteger(size) || size <= 0 || size % SECTOR_SIZE !== 0)
      throw new FlashError(`flash size ${size} is not a positive multiple of the ${SECTOR_SIZE}-byte sector`);
    let fd: number;
    try {
      fd = openSync(path, "wx+");
    } catch (error) {
      throw new FlashError(`cannot create flash file ${path}: ${(error as Error).message} (FlashFile.open opens an existing one)`);
    }
    const blank = new Uint8Array(64 * SECTOR_SIZE).fill(0xff);
    for (let at = 0; at < size; at += blank.length) writeSync(fd, blank, 0, Math.min(blank.length, size - at), at);
    return new FlashFile(path, fd, size, options);
  }

  static open(path: string, options: FlashOptions = {}): FlashFile {
    let fd: number;
    try {
      fd = openSync(path, "r+");
    } catch (error) {
      throw new FlashError(`cannot open flash file ${path}: ${(error as Error).message}`);
    }
    const size = fstatSync(fd).size;
    if (size === 0 || size % SECTOR_SIZE !== 0) {
      closeSync(fd);
      throw new FlashError(`${path} holds ${size} bytes, not whole ${SECTOR_SIZE}-byte sectors: not a flash file`);
    }
    return new FlashFile(path, fd, size, options);
  }

  close(): void {
    if (this.#fd !== undefined) closeSync(this.#fd);
    this.#fd = undefined;
  }

  protected load(offset: number, into: Uint8Array): void {
    const fd = this.#open();
    for (let done = 0; done < into.length; ) {
      const n = readSync(fd, into, done, into.length - done, offset + done);
      if (n === 0) throw new FlashError(`${this.path} ended at ${offset + done}: the file shrank under the twin`);
      done += n;
    }
  }

  protected store(offset: number, data: Uint8Array): void {
    const fd = this.#open();
    for (let done = 0; done < data.length; ) done += writeSync(fd, data, done, data.length - done, offset + done);
  }

  #open(): number {
    if (this.#fd === undefined) throw new FlashError(`flash file ${this.path} is closed`);
    return this.#fd;
  }
}

/** Flash held in memory: NVS image generation and tests that do not need a file. */
export class MemoryFlash extends EmulatedFlash {
  readonly #bytes: Uint8Array;

  /** `contents` is a size (all erased) or an image to copy. */
  constructor(contents: number | Uint8Array, options: FlashOptions = {}) {
    super(typeof contents === "number" ? contents : contents.length, options);
    this.#bytes = typeof contents === "number" ? new Uint8Array(contents).fill(0xff) : contents.slice();
  }

  /** A copy of the whole flash. */
  snapshot(): Uint8Array {
    return this.#bytes.slice();
  }

  protected load(offset: number, into: Uint8Array): void {
    into.set(this.#bytes.subarray(offset, offset + into.length));
  }

  protected store(offset: number, data: Uint8Array): void {
    this.#bytes.set(data, offset);
  }
}

let device: { path: string; flash: FlashFile } | undefined;

/**
 * The flash of this twin device process (ESPGUARD_TWIN_FLASH), opened once so every Moddable
 * stand-in counts its operations on the same chip. Strict about bits: a board would silently keep
 * stale zeros.
 */
export function deviceFlash(user: string): FlashFile {
  const path = process.env.ESPGUARD_TWIN_FLASH;
  if (!path) throw new NoDeviceFlashError(user);
  if (device?.path !== path) {
    device?.flash.close();
    device = { path, flash: FlashFile.open(path, { strictBits: true }) };
  }
  return device.flash;
}
