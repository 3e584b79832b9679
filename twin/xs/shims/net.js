// Moddable's `net` (modules/network/net/esp) for the XS engine check: the address the wifi shim's
// join handed out; properties the twin does not model throw, as in the twin.
import { station } from "wifi";

export default class Net {
  static get(property) {
    if (property === "IP") return station().ip;
    if (property === "SSID") return station().ssid;
    if (property === "MAC") return "24:0a:c4:00:42:02";
    throw new Error(`Net.get(${JSON.stringify(property)}): the twin answers "IP", "SSID" and "MAC"`);
  }
}
