// The device's telemetry loop: every period, a sensor reading in a signed envelope
// (docs/telemetry-envelope.md), QoS 1 on devices/<id>/telemetry through the link's outbox, which
// keeps it across link loss. The key and key id come from NVS (provisioning derives them from the
// fleet secret), never from the firmware image.
import Preference from "preference";
import Timer from "timer";
import config from "mc/config";
import { emit } from "diag/events";
import type { DeviceConfig } from "link/device-config";
import { ConfigKey, configDomain } from "link/device-config";
import type { Link } from "link/link";
import { signEnvelope } from "telemetry/envelope";
import { isKeyId, type KeyId } from "telemetry/envelope-header";
import { EnvelopeKey, EnvelopeKeyError } from "telemetry/envelope-key";
import { SeqCounter } from "telemetry/seq-counter";
import { SimulatedSensor } from "telemetry/sensor-sim";

/** NVS key (i32, ms) that overrides the manifest's reporting period for one device. */
export const PERIOD_KEY = "tm_period";

export class TelemetryConfigError extends Error {
  override name = "TelemetryConfigError";
  constructor(readonly key: string, problem: string) {
    super(`telemetry config "${key}": ${problem}; provision the device (espguard device provision)`);
  }
}

interface TelemetrySettings {
  readonly kid: KeyId;
  readonly key: EnvelopeKey;
  readonly periodMs: number;
  readonly seqBlock: number;
}

function positive(value: unknown, key: string): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1) throw new TelemetryConfigError(key, "not a positive integer");
  return value;
}

function readSettings(domain: string): TelemetrySettings {
  const kid = Preference.get(domain, ConfigKey.hmacKid);
  if (!isKeyId(kid)) throw new TelemetryConfigError(ConfigKey.hmacKid, kid === undefined ? "missing" : "not a key id");
  const secret = Preference.get(domain, ConfigKey.hmacKey);
  if (!(secret instanceof ArrayBuffer)) throw new TelemetryConfigError(ConfigKey.hmacKey, secret === undefined ? "missing" : "not a blob");
  let key: EnvelopeKey;
  try {
    key = new EnvelopeKey(secret);
  } catch (error) {
    if (error instanceof EnvelopeKeyError) throw new TelemetryConfigError(ConfigKey.hmacKey, error.message);
    throw error;
  }
  const espguard = (config.espguard ?? {}) as Record<string, unknown>;
  const period = Preference.get(domain, PERIOD_KEY);
  return {
    kid, key,
    periodMs: period === undefined ? positive(espguard.telemetryPeriodMs, "config.espguard.telemetryPeriodMs") : positive(period, PERIOD_KEY),
    seqBlock: positive(espguard.seqBlock, "config.espguard.seqBlock"),
  };
}

/**
 * Starts reporting; returns false (and says why in a "telemetry-off" event) when the device has no
 * telemetry key, so a device provisioned without one still keeps its link and OTA.
 */
export function startReporter(device: DeviceConfig, link: Link): boolean {
  const domain = configDomain();
  let settings: TelemetrySettings;
  try {
    settings = readSettings(domain);
  } catch (error) {
    if (!(error instanceof TelemetryConfigError)) throw error;
    emit("telemetry-off", { key: error.key, message: error.message });
    return false;
  }
  const counter = new SeqCounter(domain, settings.seqBlock);
  const sensor = new SimulatedSensor();
  const topic = `devices/${device.deviceId}/telemetry`;
  let clockTrusted = false;
  link.subscribe({
    onClock(result) {
      clockTrusted = result.source === "sntp";
    },
  });
  emit("telemetry-on", { kid: settings.kid, periodMs: settings.periodMs, from: counter.ceiling + 1 });
  Timer.repeat(() => {
    const seq = counter.take();
    const header = clockTrusted ? { dev: device.deviceId, kid: settings.kid, seq, ts: Math.floor(Date.now() / 1000) } : { dev: device.deviceId, kid: settings.kid, seq };
    const wire = signEnvelope({ ...header, ...sensor.read() } as Parameters<typeof signEnvelope>[0], settings.key);
    link.publish(topic, ArrayBuffer.fromString(wire), 1);
    emit("telemetry", { seq });
  }, settings.periodMs);
  return true;
}
