// Twin devices for tests against a test broker: a broker whose server certificate a test can
// replace (mosquitto re-reads it on restart), and devices provisioned with their identity plus
// pins, NTP server, time floor, Wi-Fi and whatever else a test adds.
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type TestBroker } from "../../broker/mosquitto.ts";
import { type Issued, chainPem } from "../../certs/pki.ts";
import { ConfigKey } from "../../modules/link/device-config.ts";
import { spkiPin } from "../../modules/pins/spki-pin.ts";
import type { NvsValue } from "../../twin/flash/nvs.ts";
import { createTwinDevice, type TwinDeviceSpec } from "../../twin/device/provision.ts";
import type { TwinDevice } from "../../twin/device/supervisor.ts";

export interface LinkProvisioning {
  pins?: readonly string[];
  /** NTP server spec; none: no server is provisioned and the manifest default is unreachable */
  ntp?: string;
  /** seconds since the epoch */
  timeFloor?: number;
  /** the twin's default network when absent; null: none provisioned */
  wifi?: TwinDeviceSpec["wifi"];
  /** further preferences: telemetry key, self-test, … */
  extra?: Readonly<Record<string, NvsValue>>;
}

function toArrayBuffer(bytes: Uint8Array): ArrayBuffer {
  return new Uint8Array(bytes).buffer;
}

/** The pin of the broker's current key. */
export function brokerPin(target: TestBroker): string {
  return spkiPin(target.server.certDer);
}

/** Serves `server` (issued by `issuer`) from now on: rewrites the broker's certificate files and restarts it. */
export async function serveCertificate(target: TestBroker, server: Issued, issuer: Issued): Promise<void> {
  await writeFile(join(target.dir, "server-chain.pem"), chainPem(server, issuer));
  await writeFile(join(target.dir, "server.key"), server.keyPem);
  await target.broker.restart();
}

export async function provisionDevice(target: TestBroker, stateRoot: string, bundle: string, deviceId: string, link: LinkProvisioning): Promise<TwinDevice> {
  const identity = await target.issueDevice(deviceId);
  return createTwinDevice({
    name: deviceId,
    stateDir: join(stateRoot, deviceId),
    bundle,
    ...(link.wifi === undefined ? {} : { wifi: link.wifi }),
    preferences: {
      [ConfigKey.deviceId]: deviceId,
      [ConfigKey.brokerHost]: "127.0.0.1",
      [ConfigKey.brokerPort]: target.broker.port,
      [ConfigKey.ca]: toArrayBuffer(target.ca.certDer),
      [ConfigKey.cert]: toArrayBuffer(identity.certDer),
      [ConfigKey.key]: toArrayBuffer(identity.keyPkcs8Der),
      // an unroutable port: a device without its own NTP server finds none
      [ConfigKey.ntp]: link.ntp ?? "127.0.0.1:9",
      ...(link.pins ? { [ConfigKey.pins]: link.pins.join(" ") } : {}),
      ...(link.timeFloor === undefined ? {} : { [ConfigKey.timeFloor]: link.timeFloor }),
      ...link.extra,
    },
  });
}
