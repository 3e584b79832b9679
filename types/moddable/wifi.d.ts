// Moddable's `wifi` and `net` modules (modules/network/wifi/esp32, modules/network/net/esp) as the
// connection manager uses them. Our own: @moddable/typings' versions are not in the type-checked set.
declare module "wifi" {
  export interface WiFiDictionary {
    ssid: string;
    password?: string;
  }
  /** "connect" | "gotIP" | "lostIP" | "disconnect"; a disconnect carries -1 when the passphrase was refused, else 0 */
  export type WiFiCallback = (this: WiFi, message: string, reason?: number) => void;
  export default class WiFi {
    constructor(dictionary?: WiFiDictionary, onNotify?: WiFiCallback);
    close(): void;
    static connect(dictionary?: WiFiDictionary): void;
    static disconnect(): void;
    static mode: number;
    static readonly Mode: { readonly none: number; readonly station: number; readonly accessPoint: number };
    static readonly gotIP: "gotIP";
    static readonly lostIP: "lostIP";
    static readonly connected: "connect";
    static readonly disconnected: "disconnect";
  }
}

declare module "net" {
  export default class Net {
    /** "IP": the station's address while it has one, else undefined */
    static get(property: "IP" | "SSID" | "MAC"): string | undefined;
  }
}
