// Moddable's `net` (modules/network/net/esp/modNet.c): Net.get() reads the station's interface.
// Only what the twin radio knows is answered; any other property throws, rather than the board's
// undefined, so firmware cannot come to rely on a value the twin never exercised.
import { stationInfo } from "./wifi.ts";

export class NetError extends Error {
  override name = "NetError";
}

const MAC = "24:0a:c4:00:42:02";

export default class Net {
  static get(property: string): string | undefined {
    const station = stationInfo();
    switch (property) {
      case "IP":
        return station.ip;
      case "SSID":
        return station.ip === undefined ? undefined : station.ssid;
      case "MAC":
        return MAC;
      default:
        throw new NetError(`Net.get(${JSON.stringify(property)}): the twin answers "IP", "SSID" and "MAC"`);
    }
  }
}
