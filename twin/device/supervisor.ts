// Runs one twin device: each boot is a fresh Node process (twin/device/boot.ts) over the device's
// own flash file. A reboot request or a crash ends the process and the next boot starts, as a
// reset does on the board; a power cut kills it where it stands.
import { type ChildProcess, spawn } from "node:child_process";
import { EventEmitter, once } from "node:events";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { PROJECT_ROOT } from "../runtime/manifest.ts";
import { BootExit } from "./boot-exit.ts";
import { isWatchdogFeed, WatchdogMonitor, WATCHDOG_TIMEOUT_MS } from "./watchdog.ts";
import { isRadioMessage, isRadioReady, RADIO_ENV, type RadioMessage, type RadioState } from "./radio.ts";

export interface DeviceEvent {
  readonly name: string;
  readonly detail: Readonly<Record<string, unknown>>;
  /** which boot of this device produced it, from 1 */
  readonly boot: number;
}

export interface WaitOptions {
  timeoutMs?: number;
  where?: (event: DeviceEvent) => boolean;
  /** only events from this boot number on */
  fromBoot?: number;
}

export class DeviceTimeoutError extends Error {
  constructor(device: string, what: string, timeoutMs: number, recent: readonly string[]) {
    super(`twin device ${device}: no ${what} within ${timeoutMs} ms; last output:\n  ${recent.join("\n  ")}`);
    this.name = "DeviceTimeoutError";
  }
}

/** The device's Wi-Fi radio, as a test or the demo drives it. */
export interface RadioControl {
  readonly state: RadioState;
  /** Drops the association: the firmware sees Wi-Fi disconnect and its open sockets fail. */
  cut(): Promise<void>;
  /** The network is in range again; the firmware has to join it itself. */
  restore(): Promise<void>;
}

/** Longest wait for a running boot to apply a radio change. */
const RADIO_ACK_MS = 5000;

const BOOT_SCRIPT = join(PROJECT_ROOT, "twin", "device", "boot.ts");
const KEEP_LINES = 200;

export class TwinDevice extends EventEmitter {
  readonly events: DeviceEvent[] = [];
  #lines: string[] = [];
  #child: ChildProcess | undefined;
  #boots = 0;
  #running = false;
  #radio: RadioState = "up";
  /** the running boot listens for radio messages */
  #radioReady = false;

  /** Up at first; the state carries over every reboot, as the access point does. */
  readonly radio: RadioControl = ((device: TwinDevice) => Object.freeze({
    get state(): RadioState {
      return device.#radio;
    },
    cut: () => device.#setRadio("down"),
    restore: () => device.#setRadio("up"),
  }))(this);

  /** The task watchdog's timeout; a boot that stops feeding it this long is reset. */
  watchdogMs = WATCHDOG_TIMEOUT_MS;
  #watchdogReset = false;

  constructor(readonly name: string, readonly stateDir: string) {
    super();
  }

  get flashPath(): string {
    return join(this.stateDir, "flash.bin");
  }

  get boots(): number {
    return this.#boots;
  }

  get running(): boolean {
    return this.#running;
  }

  /** The last lines the device printed (events and traces), newest last. */
  get output(): readonly string[] {
    return this.#lines;
  }

  start(): void {
    if (this.#running) throw new Error(`twin device ${this.name} is already running`);
    this.#running = true;
    this.#boot();
  }

  /** Cuts power: the process dies mid-instruction and does not boot again until start(). */
  async powerCut(): Promise<void> {
    this.#running = false;
    await this.#kill("SIGKILL");
  }

  async stop(): Promise<void> {
    this.#running = false;
    await this.#kill("SIGTERM");
  }

  waitForEvent(name: string, options: WaitOptions = {}): Promise<DeviceEvent> {
    const { timeoutMs = 20_000, where = () => true, fromBoot = 1 } = options;
    const matches = (event: DeviceEvent) => event.name === name && event.boot >= fromBoot && where(event);
    const seen = this.events.find(matches);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.off("event", listener);
        reject(new DeviceTimeoutError(this.name, `"${name}" event`, timeoutMs, this.#lines.slice(-15)));
      }, timeoutMs);
      const listener = (event: DeviceEvent) => {
        if (!matches(event)) return;
        clearTimeout(timer);
        this.off("event", listener);
        resolve(event);
      };
      this.on("event", listener);
    });
  }

  #boot(): void {
    this.#boots += 1;
    const boot = this.#boots;
    const child = spawn(process.execPath, ["--import", "tsx", BOOT_SCRIPT], {
      cwd: PROJECT_ROOT,
      env: {
        ...process.env,
        ESPGUARD_TWIN_FLASH: this.flashPath,
        ESPGUARD_TWIN_RUN: join(this.stateDir, "run"),
        ESPGUARD_TWIN_DEVICE: this.name,
        [RADIO_ENV]: this.#radio,
      },
      // the IPC channel carries the radio control (twin/device/radio.ts)
      stdio: ["ignore", "pipe", "pipe", "ipc"],
    });
    this.#child = child;
    this.#radioReady = false;
    const watchdog = new WatchdogMonitor(this.watchdogMs, () => {
      if (this.#child !== child) return;
      this.#watchdogReset = true;
      this.#line(JSON.stringify({ espguard: "watchdog-reset", timeoutMs: this.watchdogMs }), boot);
      child.kill("SIGKILL");
    });
    child.on("message", (message) => {
      if (isWatchdogFeed(message)) {
        if (this.#child === child) watchdog.feed();
        return;
      }
      if (!isRadioReady(message) || this.#child !== child) return;
      this.#radioReady = true;
      // the state may have changed since the boot read it from its environment
      this.#sendRadio(child, this.#radio);
    });
    createInterface({ input: child.stdout! }).on("line", (line) => this.#line(line, boot));
    createInterface({ input: child.stderr! }).on("line", (line) => this.#line(line, boot));
    child.on("exit", (code, signal) => {
      watchdog.stop();
      if (this.#child === child) this.#child = undefined;
      const watchdogReset = this.#watchdogReset;
      this.#watchdogReset = false;
      const reason = watchdogReset ? "watchdog" : signal ?? (code === BootExit.reboot ? "reboot" : code === 0 ? "halt" : "crash");
      this.emit("exit", { boot, code, signal, reason });
      if (this.#running && (reason === "reboot" || reason === "crash" || reason === "watchdog")) this.#boot();
      else this.#running = false;
    });
  }

  #line(line: string, boot: number): void {
    this.#lines.push(line);
    if (this.#lines.length > KEEP_LINES) this.#lines.splice(0, this.#lines.length - KEEP_LINES);
    if (!line.startsWith('{"espguard":')) {
      this.emit("trace", line);
      return;
    }
    let parsed: Record<string, unknown>;
    try {
      parsed = JSON.parse(line);
    } catch {
      this.emit("trace", line);
      return;
    }
    const { espguard: name, ...detail } = parsed;
    const event: DeviceEvent = { name: String(name), detail, boot };
    this.events.push(event);
    this.emit("event", event);
  }

  #sendRadio(child: ChildProcess, state: RadioState): void {
    // a failed send means the channel closed: the boot is ending and takes its sockets with it
    child.send({ radio: state } satisfies RadioMessage, () => {});
  }

  async #setRadio(state: RadioState): Promise<void> {
    this.#radio = state;
    const child = this.#child;
    if (!child?.connected) return;
    const applied = new Promise<void>((resolve, reject) => {
      const done = (error?: Error) => {
        clearTimeout(timer);
        child.off("message", onMessage);
        child.off("exit", onExit);
        if (error) reject(error);
        else resolve();
      };
      const onMessage = (message: unknown) => {
        if (isRadioMessage(message) && message.radio === state) done();
      };
      // a boot that ends meanwhile takes its sockets with it; the next one starts with the new state
      const onExit = () => done();
      const timer = setTimeout(() => done(new DeviceTimeoutError(this.name, `acknowledgement of radio ${state}`, RADIO_ACK_MS, this.#lines.slice(-15))), RADIO_ACK_MS);
      child.on("message", onMessage);
      child.on("exit", onExit);
    });
    // a boot still starting gets the state when it reports ready
    if (this.#radioReady) this.#sendRadio(child, state);
    await applied;
  }

  async #kill(signal: NodeJS.Signals): Promise<void> {
    const child = this.#child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, "exit");
    child.kill(signal);
    const timer = setTimeout(() => child.kill("SIGKILL"), 3000);
    await exited;
    clearTimeout(timer);
  }
}
