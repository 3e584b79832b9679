// The twin device's radio: whether its Wi-Fi association could exist at all. It belongs to the
// device, not to one boot: the supervisor keeps the state, hands it to each boot in the
// environment and changes it over the boot's IPC channel. Inside a boot, the Wi-Fi stand-in
// (twin/moddable/wifi.ts) reports the association lost, and every open TCP connection fails the
// way lwIP fails them when the station leaves the network.
import type { Socket } from "node:net";

export type RadioState = "up" | "down";

/** The boot's environment variable carrying the radio state it starts with. */
export const RADIO_ENV = "ESPGUARD_TWIN_RADIO";

/** Supervisor → boot, and the boot's acknowledgement back. */
export interface RadioMessage {
  readonly radio: RadioState;
}

/** Boot → supervisor: it listens now. Messages sent before then are lost (Node does not queue them). */
export const RADIO_READY = Object.freeze({ radioReady: true });

export function isRadioMessage(value: unknown): value is RadioMessage {
  const radio = (value as { radio?: unknown } | null)?.radio;
  return radio === "up" || radio === "down";
}

export function isRadioReady(value: unknown): boolean {
  return (value as { radioReady?: unknown } | null)?.radioReady === true;
}

export class RadioError extends Error {
  override name = "RadioError";
}

function initialState(): RadioState {
  const value = process.env[RADIO_ENV];
  if (value === undefined || value === "up") return "up";
  if (value === "down") return "down";
  throw new RadioError(`${RADIO_ENV}=${JSON.stringify(value)}: the twin radio is "up" or "down"`);
}

type Listener = (state: RadioState) => void;

class Radio {
  #state: RadioState = initialState();
  #listeners = new Set<Listener>();
  #sockets = new Set<Socket>();

  get up(): boolean {
    return this.#state === "up";
  }

  set(state: RadioState): void {
    if (state === this.#state) return;
    this.#state = state;
    if (state === "down") {
      // a dropped association leaves no route: lwIP aborts the pcbs, the socket sees an error
      for (const socket of this.#sockets) socket.destroy(new RadioError("the twin radio was cut: the Wi-Fi association dropped"));
      this.#sockets.clear();
    }
    for (const listener of [...this.#listeners]) listener(state);
  }

  onChange(listener: Listener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Keeps `socket` until it closes, to break it when the radio is cut. */
  track(socket: Socket): void {
    this.#sockets.add(socket);
    socket.once("close", () => this.#sockets.delete(socket));
  }
}

export const radio = new Radio();

/** In a boot: obey the supervisor's radio messages and acknowledge each once it took effect. */
export function listenForRadioControl(): void {
  if (!process.send) return;
  process.on("message", (message) => {
    if (!isRadioMessage(message)) return;
    radio.set(message.radio);
    process.send!({ radio: message.radio } satisfies RadioMessage);
  });
  process.send(RADIO_READY);
  // the channel must not keep a boot alive that the firmware has finished with
  process.channel?.unref();
}
