// Per-device telemetry keys, derived rather than stored: key = HKDF-SHA256(fleet secret, salt =
// empty, info = "espguard/telemetry-hmac/v1/<device id>/<kid>", 32 bytes). Provisioning writes it
// into the device's NVS; the verifier derives the same key from the device id and kid a message
// carries, so the back end needs no key database. Neither device ids nor kids can contain "/", so
// no two (device, kid) pairs share an info string.
import { hkdfSync, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { toDeviceId } from "../modules/identity/device-id.ts";
import { isKeyId, KEY_ID_RULE } from "../modules/telemetry/envelope-header.ts";

export const FLEET_SECRET_BYTES = 32;
export const TELEMETRY_KEY_BYTES = 32;
export const HKDF_INFO_PREFIX = "espguard/telemetry-hmac/v1/";
export const DEFAULT_KID = "k1";

export class FleetSecretError extends Error {
  override name = "FleetSecretError";
}

export class KeyIdError extends Error {
  override name = "KeyIdError";
  constructor(readonly value: string) {
    super(`invalid telemetry key id ${JSON.stringify(value)}: use ${KEY_ID_RULE}`);
  }
}

export function assertKeyId(kid: string): void {
  if (!isKeyId(kid)) throw new KeyIdError(kid);
}

export function telemetryKeyInfo(deviceId: string, kid: string): string {
  assertKeyId(kid);
  return `${HKDF_INFO_PREFIX}${toDeviceId(deviceId)}/${kid}`;
}

export function deriveTelemetryKey(fleetSecret: Uint8Array, deviceId: string, kid: string): Uint8Array {
  if (fleetSecret.length < FLEET_SECRET_BYTES) throw new FleetSecretError(`the fleet secret is ${fleetSecret.length} bytes; it must be at least ${FLEET_SECRET_BYTES}`);
  return new Uint8Array(hkdfSync("sha256", fleetSecret, new Uint8Array(0), telemetryKeyInfo(deviceId, kid), TELEMETRY_KEY_BYTES));
}

/** A new fleet secret as its file holds it: lowercase hex and a newline. */
export function newFleetSecretFile(): string {
  return `${randomBytes(FLEET_SECRET_BYTES).toString("hex")}\n`;
}

/** Reads a fleet secret file: hex, at least 32 bytes. Errors never quote the content. */
export function loadFleetSecret(path: string): Uint8Array {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    throw new FleetSecretError(`cannot read the fleet secret ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}; ` +
      "`espguard certs init` creates one in the PKI folder, or pass the file your back end uses with --fleet-secret");
  }
  const hex = text.trim();
  if (!/^(?:[0-9a-fA-F]{2})+$/.test(hex) || hex.length < 2 * FLEET_SECRET_BYTES) {
    throw new FleetSecretError(`${path} is not a fleet secret: it must hold at least ${FLEET_SECRET_BYTES} bytes as hex digits on one line ` +
      "(e.g. made with: openssl rand -hex 32)");
  }
  return new Uint8Array(Buffer.from(hex, "hex"));
}
