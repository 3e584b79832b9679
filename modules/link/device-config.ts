// The device's identity and broker, read from NVS (Moddable's Preference): provisioned per
// device, never compiled into the firmware image.
import Preference from "preference";
import config from "mc/config";
import { type DeviceId, isDeviceId, DEVICE_ID_RULE } from "identity/device-id";
import { PinError, parsePins } from "pins/spki-pin";
import { SntpError, parseServers, type SntpServer } from "time/sntp";

export interface DeviceConfig {
  readonly deviceId: DeviceId;
  readonly brokerHost: string;
  readonly brokerPort: number;
  /** trusted CA certificate, DER */
  readonly caDer: ArrayBuffer;
  /** this device's certificate, DER */
  readonly certDer: ArrayBuffer;
  /** this device's RSA private key, unencrypted PKCS#8 DER */
  readonly keyDer: ArrayBuffer;
  /** burn-in check: read back one's own telemetry (needs a broker ACL that allows it) */
  readonly selfTest: boolean;
  /** base64 SPKI SHA-256 pins of the broker key, primary first; absent = the CA alone is trusted */
  readonly pins: readonly string[] | undefined;
  /** NTP servers: provisioned, else the manifest's config.espguard.ntpServers */
  readonly ntpServers: readonly SntpServer[];
}

/** NVS keys (≤ 15 characters each) inside the firmware's Preference domain. */
export const ConfigKey = Object.freeze({
  deviceId: "device_id",
  brokerHost: "broker_host",
  brokerPort: "broker_port",
  ca: "ca",
  cert: "cert",
  key: "key",
  selfTest: "selftest",
  /** broker SPKI pins, "primary backup" (base64, space separated) */
  pins: "pins",
  /** NTP servers, "host[:port] …" */
  ntp: "ntp",
  /** time floor, seconds since the epoch (int32): provisioning time, then moved forward by the link */
  timeFloor: "time_floor",
  /** telemetry key id (telemetry/reporter) */
  hmacKid: "hmac_kid",
  /** telemetry HMAC key, 32 bytes from HKDF over the fleet secret (certs/telemetry-key.ts) */
  hmacKey: "hmac_key",
} as const);

export class DeviceConfigError extends Error {
  // a field, not an assignment: preloading freezes Error.prototype, and XS refuses to shadow a
  // frozen inherited property by assignment
  override name = "DeviceConfigError";

  constructor(readonly key: string, problem: string) {
    super(`device config "${key}": ${problem}; provision the device (espguard device provision)`);
  }
}

export function configDomain(): string {
  const domain = (config.espguard as { domain?: unknown } | undefined)?.domain;
  if (typeof domain !== "string") throw new DeviceConfigError("domain", "manifest config espguard.domain is missing");
  return domain;
}

function stringValue(domain: string, key: string): string {
  const value = Preference.get(domain, key);
  if (typeof value !== "string" || value.length === 0) throw new DeviceConfigError(key, value === undefined ? "missing" : "not a non-empty string");
  return value;
}

function bytesValue(domain: string, key: string): ArrayBuffer {
  const value = Preference.get(domain, key);
  if (!(value instanceof ArrayBuffer) || value.byteLength === 0) throw new DeviceConfigError(key, value === undefined ? "missing" : "not a non-empty blob");
  return value;
}

export function readDeviceConfig(): DeviceConfig {
  const domain = configDomain();
  const deviceId = stringValue(domain, ConfigKey.deviceId);
  if (!isDeviceId(deviceId)) throw new DeviceConfigError(ConfigKey.deviceId, `${JSON.stringify(deviceId)} is not a device id (${DEVICE_ID_RULE})`);
  const brokerPort = Preference.get(domain, ConfigKey.brokerPort);
  if (typeof brokerPort !== "number" || !Number.isInteger(brokerPort) || brokerPort < 1 || brokerPort > 65535)
    throw new DeviceConfigError(ConfigKey.brokerPort, brokerPort === undefined ? "missing" : "not a TCP port number");
  const selfTest = Preference.get(domain, ConfigKey.selfTest);
  const pins = Preference.get(domain, ConfigKey.pins);
  const ntp = Preference.get(domain, ConfigKey.ntp);
  return Object.freeze({
    deviceId,
    brokerHost: stringValue(domain, ConfigKey.brokerHost),
    brokerPort,
    caDer: bytesValue(domain, ConfigKey.ca),
    certDer: bytesValue(domain, ConfigKey.cert),
    keyDer: bytesValue(domain, ConfigKey.key),
    selfTest: selfTest === true,
    pins: pins === undefined ? undefined : parsed(ConfigKey.pins, () => parsePins(typeof pins === "string" ? pins : "")),
    ntpServers: parsed(ConfigKey.ntp, () => parseServers(typeof ntp === "string" ? ntp : defaultNtpServers())),
  });
}

function defaultNtpServers(): string {
  const servers = (config.espguard as { ntpServers?: unknown } | undefined)?.ntpServers;
  return Array.isArray(servers) ? servers.join(" ") : "";
}

function parsed<T>(key: string, parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    if (error instanceof PinError || error instanceof SntpError) throw new DeviceConfigError(key, error.message);
    throw error;
  }
}
