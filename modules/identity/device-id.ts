// A device id is the certificate CN, one MQTT topic level and an NVS string, so it is kept to
// characters that are safe in all three: lowercase letters, digits, '-' and '_', 1–32 long,
// starting with a letter or digit.
export type DeviceId = string & { readonly __brand: "DeviceId" };

export const DEVICE_ID_RULE = "1–32 characters from a–z, 0–9, '-' and '_', starting with a letter or digit";

const pattern = /^[a-z0-9][a-z0-9_-]{0,31}$/;

export class DeviceIdError extends Error {
  // a field, not an assignment: preloading freezes Error.prototype, and XS refuses to shadow a
  // frozen inherited property by assignment
  override name = "DeviceIdError";

  constructor(readonly value: string) {
    super(`invalid device id ${JSON.stringify(value)}: use ${DEVICE_ID_RULE}`);
  }
}

export function isDeviceId(value: string): value is DeviceId {
  return pattern.test(value);
}

export function toDeviceId(value: string): DeviceId {
  if (!isDeviceId(value)) throw new DeviceIdError(value);
  return value;
}
