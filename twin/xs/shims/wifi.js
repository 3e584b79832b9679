// Moddable's `wifi` (modules/network/wifi/esp32) for the XS engine check: a join always succeeds on
// a later timer turn ("connect", then "gotIP"), so the firmware's path past the network runs in XS;
// the sockets that follow fail there (no network). The join is recorded for the host.
import Timer from "timer";

const host = __espguardXsHost;
const listeners = new Set();
let ip;
let ssid;

function post(message, reason) {
  for (const wifi of [...listeners]) {
    if (message === "disconnect") wifi.callback(message, reason);
    else wifi.callback(message);
  }
}

export default class WiFi {
  constructor(dictionary, onNotify) {
    if (dictionary) WiFi.connect(dictionary);
    if (onNotify) {
      if (typeof onNotify !== "function") throw new TypeError("WiFi: onNotify must be a function");
      this.callback = onNotify;
      listeners.add(this);
    }
  }
  close() {
    listeners.delete(this);
  }
  static get mode() {
    return WiFi.Mode.station;
  }
  static set mode(value) {
    if (value !== WiFi.Mode.station) throw new Error("WiFi.mode: espguard runs a station only");
  }
  static connect(dictionary) {
    if (ip !== undefined) {
      ip = undefined;
      Timer.set(() => post("disconnect", 0));
    }
    if (dictionary === undefined) return;
    if (!dictionary.ssid) throw new Error("ssid required");
    if (ArrayBuffer.fromString(String(dictionary.ssid)).byteLength > 32) throw new Error("ssid too long - 32 bytes max");
    if (dictionary.password !== undefined && ArrayBuffer.fromString(String(dictionary.password)).byteLength > 64) throw new Error("password too long - 64 bytes max");
    host.record("wifi", "connect", { ssid: String(dictionary.ssid) });
    Timer.set(() => {
      ip = "10.42.0.2";
      ssid = String(dictionary.ssid);
      post("connect");
      post("gotIP");
    });
  }
  static disconnect() {
    WiFi.connect();
  }
  static Mode = Object.freeze({ off: -5, none: 0, station: 1, accessPoint: 2 });
  static gotIP = "gotIP";
  static lostIP = "lostIP";
  static connected = "connect";
  static disconnected = "disconnect";
}
Object.freeze(WiFi.prototype);

export function station() {
  return { ip, ssid: ip === undefined ? undefined : ssid };
}
