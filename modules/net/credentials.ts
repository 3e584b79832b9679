// The Wi-Fi networks provisioned into NVS (certs/provision-image.ts writes them): a primary, and
// optionally a fallback. The passphrase is a secret: no message here ever contains it.
import Preference from "preference";
import { configDomain } from "link/device-config";

/** NVS keys inside the firmware's Preference domain; the same names `espguard device provision` writes. */
export const WifiKey = Object.freeze({
  ssid: "wifi_ssid",
  pass: "wifi_pass",
  ssid2: "wifi_ssid2",
  pass2: "wifi_pass2",
} as const);

export interface WifiNetwork {
  readonly ssid: string;
  readonly password: string;
}

export class WifiCredentialsError extends Error {
  override name = "WifiCredentialsError";

  constructor(readonly key: string, problem: string) {
    super(`Wi-Fi credentials "${key}": ${problem}; provision them (espguard device provision --wifi-ssid … with the passphrase in $ESPGUARD_WIFI_PASS)`);
  }
}

function text(domain: string, key: string): string | undefined {
  const value = Preference.get(domain, key);
  if (value === undefined) return undefined;
  if (typeof value !== "string" || value.length === 0) throw new WifiCredentialsError(key, "not a non-empty string");
  return value;
}

function network(domain: string, ssidKey: string, passKey: string): WifiNetwork | undefined {
  const ssid = text(domain, ssidKey);
  const password = text(domain, passKey);
  if (ssid === undefined && password === undefined) return undefined;
  if (ssid === undefined) throw new WifiCredentialsError(ssidKey, `missing while "${passKey}" is set`);
  if (password === undefined) throw new WifiCredentialsError(passKey, `missing while "${ssidKey}" is set`);
  return Object.freeze({ ssid, password });
}

/** The networks to join, primary first. Throws WifiCredentialsError when none is provisioned. */
export function readWifiNetworks(): readonly WifiNetwork[] {
  const domain = configDomain();
  const primary = network(domain, WifiKey.ssid, WifiKey.pass);
  if (!primary) throw new WifiCredentialsError(WifiKey.ssid, "missing");
  const fallback = network(domain, WifiKey.ssid2, WifiKey.pass2);
  return Object.freeze(fallback ? [primary, fallback] : [primary]);
}
