// Wi-Fi credentials as provisioning accepts them: what ESP-IDF's wifi_sta_config_t can hold and
// WPA2-Personal allows, checked before anything is written so a device never boots with a network
// it cannot join.
export const SSID_MAX_BYTES = 32;
export const PASSPHRASE_RULE = "8 to 63 printable ASCII characters (WPA2-Personal)";

export interface WifiNetwork {
  ssid: string;
  /** Secret: never printed or logged. */
  passphrase: string;
}

export class WifiConfigError extends Error {
  override name = "WifiConfigError";
}

export function checkWifiNetwork(network: WifiNetwork, which: string): WifiNetwork {
  const ssidBytes = Buffer.byteLength(network.ssid, "utf8");
  if (network.ssid.length === 0) throw new WifiConfigError(`the ${which} SSID is empty; pass the network name`);
  if (ssidBytes > SSID_MAX_BYTES) throw new WifiConfigError(`the ${which} SSID ${JSON.stringify(network.ssid)} is ${ssidBytes} bytes; an SSID holds at most ${SSID_MAX_BYTES}`);
  // Control characters cannot be typed into a router's settings and NUL would end the NVS string.
  if (/[\x00-\x1f\x7f]/.test(network.ssid)) throw new WifiConfigError(`the ${which} SSID ${JSON.stringify(network.ssid)} contains control characters`);
  // 802.11i: a passphrase is 8..63 characters from 0x20..0x7e. The message says which rule broke,
  // never what the passphrase is.
  const { passphrase } = network;
  if (passphrase.length < 8 || passphrase.length > 63) {
    throw new WifiConfigError(`the ${which} passphrase is ${passphrase.length} characters; WPA2 needs ${PASSPHRASE_RULE}`);
  }
  if (!/^[\x20-\x7e]+$/.test(passphrase)) throw new WifiConfigError(`the ${which} passphrase contains characters outside printable ASCII; WPA2 needs ${PASSPHRASE_RULE}`);
  return network;
}
