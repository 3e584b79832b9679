// A device id is the certificate CN, one MQTT topic level and an NVS string, so it is kept to
// characters that are safe in all three: lowercase letters, digits, '-' and '_', 1–32 long,
// starting with a letter or digit.
export type DeviceId = string & { readonly __brand: "DeviceId" };

export const DEVICE_ID_RULE = "1–32 characters from a–z, 0–9, '-' and '_', starting with a letter or digit";

export class DeviceIdError extends Error {
  // a field, not an assignment: preloading freezes Error.prototype, and XS refuses to shadow a
  // frozen inherited property by assignment
  override name = "DeviceIdError";

  constructor(readonly value: string) {
    super(`invalid device id ${JSON.stringify(value)}: use ${DEVICE_ID_RULE}`);
  }
}

// A loop, not a regular expression: the verifier checks every message's dev.
export function isDeviceId(value: string): value is DeviceId {
  if (value.length < 1 || value.length > 32) return false;
  for (let i = 0; i < value.length; i++) {
    const unit = value.charCodeAt(i);
    if (!((unit >= 0x61 && unit <= 0x7a) || (unit >= 0x30 && unit <= 0x39) || (i > 0 && (unit === 0x2d || unit === 0x5f)))) return false;
  }
  return true;
}

export function toDeviceId(value: string): DeviceId {
  if (!isDeviceId(value)) throw new DeviceIdError(value);
  return value;
}
