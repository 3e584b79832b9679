// Moddable's `wifi` (modules/network/wifi/esp32: the WiFi class over esp_wifi) on the twin radio
// (twin/device/radio.ts). As on the board: connect() starts joining and returns; every WiFi
// instance with a callback hears "connect", then "gotIP", or "disconnect" with a reason (-1: the
// passphrase was refused, else 0) once the join failed or the association dropped, on a later
// turn, with `this` = the instance. After an association is lost nothing rejoins by itself
// (Moddable spends its retries on the first join only): the firmware must call connect() again.
import { radio } from "../device/radio.ts";

export class WiFiError extends Error {
  override name = "WiFiError";
}

/** The twin's network: the address its DHCP server hands out. */
export const TWIN_IP = "10.42.0.2";
/** How long a join takes (scan + association + DHCP), and how long failing one takes. */
const JOIN_MS = 50;
const JOIN_FAIL_MS = 1000;

export interface WiFiDictionary {
  ssid: string;
  password?: string;
  bssid?: ArrayBuffer;
  channel?: number;
}

type Notify = (this: WiFi, message: string, reason?: number) => void;

interface Station {
  ssid: string | undefined;
  ip: string | undefined;
  joining: ReturnType<typeof setTimeout> | undefined;
}

const station: Station = { ssid: undefined, ip: undefined, joining: undefined };
const listeners = new Set<WiFi>();
const callbacks = new WeakMap<WiFi, Notify>();

function post(message: string, reason?: number): void {
  const targets = [...listeners];
  setImmediate(() => {
    for (const wifi of targets) {
      const notify = callbacks.get(wifi);
      if (!listeners.has(wifi) || !notify) continue;
      if (message === WiFi.disconnected) notify.call(wifi, message, reason ?? 0);
      else notify.call(wifi, message);
    }
  });
}

function utf8Length(text: string): number {
  return new TextEncoder().encode(text).byteLength;
}

function leave(): void {
  if (station.joining !== undefined) clearTimeout(station.joining);
  station.joining = undefined;
  const wasAssociated = station.ip !== undefined;
  station.ssid = undefined;
  station.ip = undefined;
  if (wasAssociated) post(WiFi.disconnected, 0);
}

radio.onChange((state) => {
  if (state === "down" && station.ip !== undefined) {
    station.ip = undefined;
    station.ssid = undefined;
    post(WiFi.disconnected, 0);
  }
});

export default class WiFi {
  static readonly Mode = Object.freeze({ off: -5, none: 0, station: 1, accessPoint: 2 });
  static readonly gotIP = "gotIP";
  static readonly lostIP = "lostIP";
  static readonly connected = "connect";
  static readonly disconnected = "disconnect";

  constructor(dictionary?: WiFiDictionary, onNotify?: Notify) {
    if (dictionary) WiFi.connect(dictionary);
    if (onNotify) this.onNotify = onNotify;
  }

  set onNotify(callback: Notify | undefined) {
    if (callback === undefined || callback === null) {
      listeners.delete(this);
      callbacks.delete(this);
      return;
    }
    if (typeof callback !== "function") throw new TypeError("WiFi onNotify must be a function");
    callbacks.set(this, callback);
    listeners.add(this);
  }

  /** Stops this instance's callbacks; the association stays. */
  close(): void {
    listeners.delete(this);
    callbacks.delete(this);
  }

  static get mode(): number {
    return WiFi.Mode.station;
  }

  static set mode(value: number) {
    if (value !== WiFi.Mode.station)
      throw new WiFiError(`WiFi.mode = ${value}: the twin radio is a station only; espguard never runs an access point`);
  }

  /** Starts joining `dictionary.ssid`; with no argument, leaves the network. */
  static connect(dictionary?: WiFiDictionary): void {
    leave();
    if (dictionary === undefined) return;
    const { ssid, password } = dictionary;
    if (!ssid) throw new WiFiError("ssid required");
    if (utf8Length(String(ssid)) > 32) throw new WiFiError("ssid too long - 32 bytes max");
    if (password !== undefined && utf8Length(String(password)) > 64) throw new WiFiError("password too long - 64 bytes max");
    station.ssid = String(ssid);
    // WPA2 refuses a passphrase outside 8–63 characters in the 4-way handshake
    const refused = password !== undefined && (password.length < 8 || password.length > 63);
    const joining = setTimeout(() => {
      station.joining = undefined;
      if (!radio.up || refused) {
        station.ssid = undefined;
        post(WiFi.disconnected, refused ? -1 : 0);
        return;
      }
      station.ip = TWIN_IP;
      post(WiFi.connected);
      post(WiFi.gotIP);
    }, radio.up && !refused ? JOIN_MS : JOIN_FAIL_MS);
    station.joining = joining;
  }

  static disconnect(): void {
    WiFi.connect();
  }
}

/** The station's state for the twin's `net` module. */
export function stationInfo(): { readonly ip: string | undefined; readonly ssid: string | undefined } {
  return { ip: station.ip, ssid: station.ssid };
}
