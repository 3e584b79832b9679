// Drives one @agoric/xsnap worker (the real XS engine) over its netstring protocol, without the
// package's Node helpers: those lock this process down with SES.
//
// Protocol (xsnap-native/xsnap/sources/xsnap-worker.c): the worker reads netstrings on fd 3 and
// writes them on fd 4. A command's first byte selects it: `e<script>` evaluates a script with the
// global `eval`, `?<bytes>` calls the global `handleCommand(ArrayBuffer)`. Either ends one "crank":
// the worker runs promise jobs, then answers `.{meter JSON}\x01<reply>` (the reply is the returned
// ArrayBuffer, or its `.result`) or `!<String(exception)>`. During a crank the script may call
// `issueCommand(ArrayBuffer)`, which arrives here as `?<bytes>` and blocks until we answer
// `/<bytes>`. With `-l <limit>` a crank that computes more than the limit ends the process (exit 17).
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { Readable, Writable } from "node:stream";
import { PROJECT_ROOT } from "../runtime/manifest.ts";

const PLATFORM_DIR: Partial<Record<NodeJS.Platform, string>> = { linux: "lin", darwin: "mac" };

export function xsnapWorkerPath(): string {
  const dir = PLATFORM_DIR[process.platform];
  if (!dir) throw new XsnapWorkerError(`xsnap has no worker for ${process.platform}`, "run the XS engine check on Linux or macOS");
  return join(PROJECT_ROOT, "node_modules/@agoric/xsnap/xsnap-native/xsnap/build/bin", dir, "release/xsnap-worker");
}

/** The worker's own report, e.g. "xsnap 0.15.0 (XS 13.3.0)". */
export function xsnapVersion(): string {
  return execFileSync(existingWorker(), ["-v"], { encoding: "utf8", timeout: 5000 }).trim();
}

function existingWorker(): string {
  const bin = xsnapWorkerPath();
  if (!existsSync(bin)) throw new XsnapWorkerError(`${bin} is missing`, "run npm ci: @agoric/xsnap builds its XS worker on install");
  return bin;
}

export class XsnapWorkerError extends Error {
  constructor(problem: string, fix: string) {
    super(`xsnap worker: ${problem}; ${fix}`);
    this.name = "XsnapWorkerError";
  }
}

/** Exit codes from @agoric/xsnap's api.js. */
const EXIT_MEANING: Readonly<Record<number, string>> = {
  1: "bad argument usage",
  2: "I/O error",
  11: "not enough memory",
  12: "stack overflow",
  15: "unhandled exception",
  16: "property (key) name space exhausted",
  17: "too much computation",
};

export const TOO_MUCH_COMPUTATION = 17;

/** A crank outlasted its wall-clock bound; the worker was killed. */
export class XsnapTimeoutError extends XsnapWorkerError {
  constructor(readonly timeoutMs: number) {
    super(`a crank did not finish within ${timeoutMs} ms`, "the script blocks or waits on the host; the worker was killed");
    this.name = "XsnapTimeoutError";
  }
}

/** The worker ended while a crank was running. */
export class XsnapExitError extends XsnapWorkerError {
  constructor(readonly code: number | null, readonly signal: NodeJS.Signals | null, readonly stderr: string) {
    const meaning = code === null ? `signal ${signal}` : `exit ${code} (${EXIT_MEANING[code] ?? "unknown"})`;
    super(`ended during a crank: ${meaning}${stderr.trim() ? `; stderr: ${stderr.trim()}` : ""}`,
      code === TOO_MUCH_COMPUTATION ? "the script ran past the compute limit: look for an unbounded loop" : "see stderr");
    this.name = "XsnapExitError";
  }
}

/** xsnap's metering for one crank. */
export interface CrankMeter {
  /** computation units XS counted (roughly bytecodes and native steps) */
  readonly compute: number;
  /** bytes the machine has allocated for its chunks and slots */
  readonly allocate: number;
  readonly currentHeapCount: number;
}

export type CrankResult =
  | { readonly ok: true; readonly reply: Uint8Array; readonly meter: CrankMeter }
  | { readonly ok: false; readonly message: string };

/** Answers the script's `issueCommand` calls; runs synchronously inside the crank. */
export type HostCallHandler = (request: Uint8Array) => Uint8Array;

export interface XsnapWorkerOptions {
  /** shown in `ps` and error messages */
  name?: string;
  /** per-crank compute limit (`-l`); 0 turns the limit (and with it per-step metering) off */
  computeLimit?: number;
  /** defaults to echoing the request, as @agoric/xsnap does */
  onHostCall?: HostCallHandler;
}

export const DEFAULT_COMPUTE_LIMIT = 100_000_000;

const OK = 0x2e; // .
const FAILED = 0x21; // !
const HOST_CALL = 0x3f; // ?
const METER_END = 0x01;

interface Pending {
  resolve(result: CrankResult): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout;
}

export class XsnapWorker {
  readonly #process: ChildProcess;
  readonly #toWorker: Writable;
  readonly #onHostCall: HostCallHandler;
  readonly #exited: Promise<void>;
  #input: Buffer = Buffer.alloc(0);
  #pending: Pending | undefined;
  #stderr = "";
  #exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  #failure: Error | undefined;

  private constructor(child: ChildProcess, onHostCall: HostCallHandler) {
    this.#process = child;
    this.#onHostCall = onHostCall;
    const stdio = child.stdio as unknown as [null, null, Readable, Writable, Readable];
    this.#toWorker = stdio[3];
    // A worker that dies mid-write must not crash the test process with EPIPE.
    this.#toWorker.on("error", () => {});
    stdio[4].on("data", (chunk: Buffer) => this.#receive(chunk));
    stdio[2].setEncoding("utf8");
    stdio[2].on("data", (text: string) => {
      this.#stderr += text;
    });
    child.on("error", (error) => this.#fail(new XsnapWorkerError(`could not run ${xsnapWorkerPath()}: ${error.message}`, "run npm ci to rebuild it")));
    this.#exited = new Promise((resolve) => {
      child.once("close", (code, signal) => {
        this.#exit = { code, signal };
        this.#fail(new XsnapExitError(code, signal, this.#stderr));
        resolve();
      });
    });
  }

  static start(options: XsnapWorkerOptions = {}): XsnapWorker {
    const bin = existingWorker();
    const limit = options.computeLimit ?? DEFAULT_COMPUTE_LIMIT;
    const args = [options.name ?? "espguard-xs", ...(limit > 0 ? ["-l", String(limit)] : [])];
    const child = spawn(bin, args, { stdio: ["ignore", "ignore", "pipe", "pipe", "pipe"] });
    return new XsnapWorker(child, options.onHostCall ?? ((request) => request));
  }

  /** Everything the worker wrote to stderr so far (XS reports unhandled rejections there). */
  get stderr(): string {
    return this.#stderr;
  }

  evaluate(script: string, timeoutMs: number): Promise<CrankResult> {
    return this.#crank(Buffer.concat([Buffer.from("e"), Buffer.from(script, "utf8")]), timeoutMs);
  }

  /** Calls the script's global `handleCommand` with `payload` as an ArrayBuffer. */
  command(payload: Uint8Array, timeoutMs: number): Promise<CrankResult> {
    return this.#crank(Buffer.concat([Buffer.from("?"), payload]), timeoutMs);
  }

  /** Ends the worker's input so it exits on its own; kills it if it has not within `timeoutMs`. */
  async close(timeoutMs: number): Promise<void> {
    if (this.#exit) return;
    this.#toWorker.end();
    const timer = setTimeout(() => this.kill(), timeoutMs);
    await this.#exited;
    clearTimeout(timer);
  }

  kill(): void {
    if (!this.#exit) this.#process.kill("SIGKILL");
  }

  #crank(message: Buffer, timeoutMs: number): Promise<CrankResult> {
    if (this.#failure) return Promise.reject(this.#failure);
    if (this.#pending) return Promise.reject(new XsnapWorkerError("a crank is already running", "await each crank before the next"));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#fail(new XsnapTimeoutError(timeoutMs));
        this.kill();
      }, timeoutMs);
      this.#pending = { resolve, reject, timer };
      this.#send(message);
    });
  }

  #send(payload: Buffer): void {
    this.#toWorker.write(Buffer.concat([Buffer.from(`${payload.length}:`), payload, Buffer.from(",")]));
  }

  #settle(result: CrankResult): void {
    const pending = this.#pending;
    if (!pending) return this.#fail(new XsnapWorkerError("sent a reply nobody asked for", "this is a protocol bug in xsnap-runner.ts"));
    this.#pending = undefined;
    clearTimeout(pending.timer);
    pending.resolve(result);
  }

  #fail(error: Error): void {
    this.#failure ??= error;
    const pending = this.#pending;
    if (!pending) return;
    this.#pending = undefined;
    clearTimeout(pending.timer);
    pending.reject(this.#failure);
  }

  #receive(chunk: Buffer): void {
    this.#input = this.#input.length ? Buffer.concat([this.#input, chunk]) : chunk;
    for (;;) {
      const colon = this.#input.indexOf(0x3a);
      if (colon < 0) return;
      const length = Number(this.#input.subarray(0, colon).toString("latin1"));
      if (!Number.isSafeInteger(length)) return this.#protocolError("bad netstring length");
      const end = colon + 1 + length;
      if (this.#input.length < end + 1) return;
      if (this.#input[end] !== 0x2c) return this.#protocolError("netstring without its trailing comma");
      const message = this.#input.subarray(colon + 1, end);
      this.#input = this.#input.subarray(end + 1);
      this.#dispatch(message);
    }
  }

  #dispatch(message: Buffer): void {
    const kind = message[0];
    if (kind === HOST_CALL) {
      let reply: Uint8Array;
      try {
        reply = this.#onHostCall(new Uint8Array(message.subarray(1)));
      } catch (error) {
        this.#fail(error as Error);
        this.kill();
        return;
      }
      this.#send(Buffer.concat([Buffer.from("/"), reply]));
    } else if (kind === OK) {
      const separator = message.indexOf(METER_END, 1);
      const meter = JSON.parse(message.subarray(1, separator).toString("utf8")) as CrankMeter;
      this.#settle({
        ok: true,
        reply: new Uint8Array(message.subarray(separator + 1)),
        meter: { compute: meter.compute, allocate: meter.allocate, currentHeapCount: meter.currentHeapCount },
      });
    } else if (kind === FAILED) {
      this.#settle({ ok: false, message: message.subarray(1).toString("utf8") });
    } else {
      this.#protocolError(`unknown reply kind ${JSON.stringify(String.fromCharCode(kind ?? 0))}`);
    }
  }

  #protocolError(problem: string): void {
    this.#fail(new XsnapWorkerError(problem, "the worker and xsnap-runner.ts disagree on the protocol: check the @agoric/xsnap version"));
    this.kill();
  }
}
