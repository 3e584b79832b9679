// Certificates for the fleet run. A device key must be RSA (the device TLS profile), and making
// one costs ~170 ms here, so 500 devices would take over a minute each run: the CA and the device
// certificates are kept in the git-ignored .espguard/bench-fleet/ and topped up when a run needs more.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createCa, type Issued, issueDeviceCert, issueServiceCert } from "../certs/pki.ts";
import { fromHex, toHex } from "../modules/ota/bytes.ts";
import { PROJECT_ROOT } from "../twin/runtime/manifest.ts";

export interface Credentials {
  readonly id: string;
  readonly certPem: string;
  readonly keyPem: string;
}

export interface FleetIdentities {
  readonly ca: Issued;
  readonly services: readonly Credentials[];
  readonly devices: readonly Credentials[];
}

interface Stored {
  readonly ca: { certPem: string; keyPem: string; certDer: string; keyPkcs8Der: string };
  readonly services: Credentials[];
  readonly devices: Credentials[];
}

const DIR = join(PROJECT_ROOT, ".espguard", "bench-fleet");
const FILE = join(DIR, "identities.json");
const SERVICES = ["svc.bench-verifier", "svc.bench-baseline"];
const BATCH = 25;

export const deviceName = (i: number): string => `bench-${String(i).padStart(4, "0")}`;

async function fresh(): Promise<Stored> {
  const ca = await createCa({ commonName: "espguard bench CA" });
  const services = await Promise.all(SERVICES.map(async (id) => ({ id, ...pems(await issueServiceCert(ca, { name: id })) })));
  return { ca: { certPem: ca.certPem, keyPem: ca.keyPem, certDer: toHex(ca.certDer), keyPkcs8Der: toHex(ca.keyPkcs8Der) }, services, devices: [] };
}

function pems(issued: Issued): { certPem: string; keyPem: string } {
  return { certPem: issued.certPem, keyPem: issued.keyPem };
}

export async function fleetIdentities(devices: number, progress: (line: string) => void): Promise<FleetIdentities> {
  const stored: Stored = existsSync(FILE) ? JSON.parse(readFileSync(FILE, "utf8")) as Stored : await fresh();
  const ca: Issued = { certPem: stored.ca.certPem, keyPem: stored.ca.keyPem, certDer: fromHex(stored.ca.certDer), keyPkcs8Der: fromHex(stored.ca.keyPkcs8Der) };
  if (stored.devices.length < devices) progress(`issuing ${devices - stored.devices.length} device certificates (RSA keys, cached in ${DIR})`);
  while (stored.devices.length < devices) {
    const from = stored.devices.length;
    const ids = Array.from({ length: Math.min(BATCH, devices - from) }, (_, i) => deviceName(from + i));
    stored.devices.push(...await Promise.all(ids.map(async (id) => ({ id, ...pems(await issueDeviceCert(ca, { deviceId: id })) }))));
    mkdirSync(DIR, { recursive: true });
    writeFileSync(FILE, JSON.stringify(stored), { mode: 0o600 });
  }
  return { ca, services: stored.services, devices: stored.devices.slice(0, devices) };
}
