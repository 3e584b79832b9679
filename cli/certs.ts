// `espguard certs`: the fleet's private PKI in one git-ignored folder (certs/store.ts). Every
// command checks all its inputs, then writes all its files or none (certs/atomic-files.ts).
// Private keys and the fleet secret are written 0600 and never printed.
import { Command } from "commander";
import { X509Certificate } from "node:crypto";
import { existsSync } from "node:fs";
import { writeAll, type OutputFile } from "../certs/atomic-files.ts";
import { spkiPin } from "../certs/pins.ts";
import { assertServiceName, chainPem, createCa, generateRsaKeyPkcs8, issueDeviceCert, issueServerCert, issueServiceCert, serialNumberHex, SERVICE_PREFIX, type Issued } from "../certs/pki.ts";
import { CRL_DAYS, DEFAULT_PKI_DIR, identityFiles, isRevocationReason, PkiStore, REVOCATION_REASONS, validityDays, type Revocation } from "../certs/store.ts";
import { newFleetSecretFile } from "../certs/telemetry-key.ts";
import { toDeviceId } from "../modules/identity/device-id.ts";
import { CliError } from "./errors.ts";

const PRIVATE = 0o600;

function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

export function positiveInteger(option: string, max = Number.MAX_SAFE_INTEGER): (value: string) => number {
  return (value) => {
    if (!/^[1-9][0-9]*$/.test(value) || Number(value) > max) throw new CliError(`${option} must be a whole number from 1 to ${max}, got ${JSON.stringify(value)}`);
    return Number(value);
  };
}

const dirOption = ["--dir <dir>", "PKI folder (git-ignored)", DEFAULT_PKI_DIR] as const;

export function certsCommand(): Command {
  const certs = new Command("certs").description("private CA, broker and device certificates, pins, revocation");

  certs.command("init")
    .description("create the fleet CA (key 0600 in the PKI folder, never printed), the fleet secret and an empty CRL")
    .option(...dirOption)
    .option("--cn <name>", "CA common name", "espguard fleet CA")
    .option("--days <n>", "CA lifetime in days", positiveInteger("--days"), 3650)
    .option("--force", "replace an existing CA (the fleet secret is kept)")
    .action(async (options: { dir: string; cn: string; days: number; force?: boolean }) => {
      const store = new PkiStore(options.dir);
      const ca = await createCa({ commonName: options.cn, ...validityDays(options.days) });
      const files: OutputFile[] = [
        { path: store.caPem, data: ca.certPem },
        { path: store.caDer, data: ca.certDer },
        { path: store.caKey, data: ca.keyPem, mode: PRIVATE },
        ...(await store.crlFiles(ca, [])).map((file) => ({ ...file, replaces: false })),
      ];
      // Every device's telemetry key derives from the fleet secret: replacing the CA must not change them.
      const keepSecret = options.force === true && existsSync(store.fleetSecret);
      if (!keepSecret) files.push({ path: store.fleetSecret, data: newFleetSecretFile(), mode: PRIVATE });
      writeAll(files, options.force === true);
      say(`created CA "${options.cn}" in ${store.dir}, valid until ${new X509Certificate(ca.certPem).validTo}`);
      say(`fleet secret ${store.fleetSecret} ${keepSecret ? "kept" : "created"} (0600): the telemetry verifier derives device keys from it; keep it secret`);
    });

  certs.command("server")
    .description("issue the broker certificate (SAN DNS + IP) and its chain file; keeps the broker key, so pins stay valid")
    .option(...dirOption)
    .option("--dns <names...>", "DNS names the devices use to reach the broker")
    .option("--ip <addresses...>", "IP addresses the devices use to reach the broker")
    .option("--cn <name>", "common name (default: the first name)")
    .option("--days <n>", "lifetime in days", positiveInteger("--days"), 825)
    .option("--rotate", "certify the backup key (its pin is already on every device) and pre-generate a new backup")
    .option("--force", "replace an existing broker certificate")
    .action(async (options: { dir: string; dns?: string[]; ip?: string[]; cn?: string; days: number; rotate?: boolean; force?: boolean }) => {
      const store = new PkiStore(options.dir);
      const dnsNames = options.dns ?? [];
      const ipAddresses = options.ip ?? [];
      const firstName = dnsNames[0] ?? ipAddresses[0];
      if (firstName === undefined) {
        throw new CliError("pass at least one --dns or --ip: devices match the broker only against the certificate's SAN names (no CN fallback)");
      }
      const ca = store.loadCa();
      const exists = existsSync(store.serverPem) || existsSync(store.serverKey);
      if (exists && options.force !== true && options.rotate !== true) {
        throw new CliError(`${store.serverPem} already exists; nothing was written. Pass --force to re-issue it for the same key, or --rotate to move to the backup key`);
      }
      if (!exists && options.rotate === true) throw new CliError(`there is no broker key to rotate from in ${store.dir}; issue the first certificate without --rotate`);
      const { keyPkcs8Der, backupKeyPkcs8Der, keyFiles } = await brokerKeys(store, !exists ? "new" : options.rotate === true ? "rotate" : "reissue");
      const server = await issueServerCert(ca, { commonName: options.cn ?? firstName, dnsNames, ipAddresses, keyPkcs8Der, ...validityDays(options.days) });
      writeAll([
        { path: store.serverPem, data: server.certPem },
        { path: store.serverChain, data: chainPem(server, ca) },
        ...keyFiles,
      ], true);
      say(`issued the broker certificate ${store.serverPem} for ${[...dnsNames, ...ipAddresses].join(", ")}, valid until ${new X509Certificate(server.certPem).validTo}`);
      say(`chain file (certificate + CA, for mosquitto's certfile): ${store.serverChain}`);
      printPins(spkiPin({ keyPkcs8Der }), spkiPin({ keyPkcs8Der: backupKeyPkcs8Der }));
      if (options.rotate === true) say("devices provisioned before this rotation trust only the current key now: re-provision them to pin the new backup");
    });

  certs.command("device <id>")
    .description("issue a device certificate: RSA-2048, CN = device id, clientAuth; PEM and DER/PKCS#8 for the firmware")
    .option(...dirOption)
    .option("--days <n>", "lifetime in days", positiveInteger("--days"), 3650)
    .option("--force", "re-issue: the previous certificate is revoked (superseded)")
    .action(async (id: string, options: { dir: string; days: number; force?: boolean }) => {
      const deviceId = toDeviceId(id);
      const store = new PkiStore(options.dir);
      const ca = store.loadCa();
      const paths = store.device(deviceId);
      const previous = existsSync(paths.certPem) ? store.loadDevice(deviceId) : undefined;
      if (previous !== undefined && options.force !== true) {
        throw new CliError(`device ${deviceId} already has a certificate (${paths.certPem}); nothing was written. Pass --force to re-issue it (the old one is revoked)`);
      }
      const cert = await issueDeviceCert(ca, { deviceId, ...validityDays(options.days) });
      const files = identityFiles(cert, paths);
      if (previous !== undefined) files.push(...await revocationFiles(store, ca, deviceId, previous, "superseded", false));
      writeAll(files, true);
      say(`issued ${deviceId}: serial ${serialNumberHex(cert)}, valid until ${new X509Certificate(cert.certPem).validTo}`);
      say(`  ${paths.certPem}, ${paths.certDer}; key ${paths.keyPem}, ${paths.keyDer} (PKCS#8 DER, 0600)`);
      if (previous !== undefined) say(`  the previous certificate (serial ${serialNumberHex(previous)}) is revoked; reload the broker's CRL`);
    });

  certs.command("service <name>")
    .description("issue a client certificate for a back-end account (svc.*): the telemetry verifier, the OTA publisher")
    .option(...dirOption)
    .option("--days <n>", "lifetime in days", positiveInteger("--days"), 825)
    .option("--force", "re-issue: the previous certificate is revoked (superseded)")
    .action(async (name: string, options: { dir: string; days: number; force?: boolean }) => {
      assertServiceName(name);
      const store = new PkiStore(options.dir);
      const ca = store.loadCa();
      const paths = store.service(name);
      const previous = existsSync(paths.certPem) ? store.loadService(name) : undefined;
      if (previous !== undefined && options.force !== true) {
        throw new CliError(`service account ${name} already has a certificate (${paths.certPem}); nothing was written. Pass --force to re-issue it (the old one is revoked)`);
      }
      const cert = await issueServiceCert(ca, { name, ...validityDays(options.days) });
      const files = identityFiles(cert, paths);
      // Its CN, and so its broker rights, stay the same: the old certificate must stop working.
      if (previous !== undefined) files.push(...await revocationFiles(store, ca, name, previous, "superseded", false));
      writeAll(files, true);
      say(`issued ${name}: serial ${serialNumberHex(cert)}, valid until ${new X509Certificate(cert.certPem).validTo}`);
      say(`  ${paths.certPem}; key ${paths.keyPem} (0600). Grant it broker rights with: espguard broker config --verifier/--ota-publisher ${name}`);
      if (previous !== undefined) say(`  the previous certificate (serial ${serialNumberHex(previous)}) is revoked; reload the broker's CRL`);
    });

  certs.command("pins")
    .description("SPKI SHA-256 pins (base64) of the broker's current key and its pre-generated backup key")
    .option(...dirOption)
    .option("--json", "print JSON")
    .action((options: { dir: string; json?: boolean }) => {
      const { server, backupKeyPkcs8Der } = new PkiStore(options.dir).loadServer();
      const current = spkiPin({ certPem: server.certPem });
      const backup = spkiPin({ keyPkcs8Der: backupKeyPkcs8Der });
      if (options.json === true) say(JSON.stringify({ current, backup }));
      else printPins(current, backup);
    });

  certs.command("revoke <id>")
    .description("revoke a device's or a service account's (svc.*) certificate and re-sign the CRL (mosquitto's crlfile)")
    .option(...dirOption)
    .option("--reason <reason>", `one of ${REVOCATION_REASONS.join(", ")}`, "keyCompromise")
    .action(async (id: string, options: { dir: string; reason: string }) => {
      const service = id.startsWith(SERVICE_PREFIX);
      if (service) assertServiceName(id);
      else toDeviceId(id);
      if (!isRevocationReason(options.reason)) throw new CliError(`--reason must be one of ${REVOCATION_REASONS.join(", ")}, got ${JSON.stringify(options.reason)}`);
      const store = new PkiStore(options.dir);
      const ca = store.loadCa();
      const what = service ? "service account" : "device";
      const cert = service ? store.loadService(id) : store.loadDevice(id);
      if (cert === undefined) throw new CliError(`no certificate for ${what} ${id} in ${store.dir}; nothing to revoke`);
      writeAll(await revocationFiles(store, ca, id, cert, options.reason, true), true);
      say(`revoked ${what} ${id} (serial ${serialNumberHex(cert)}); CRL ${store.crlPem} re-signed.`);
      say("mosquitto reads its crlfile at start and on reload: regenerate the broker folder (espguard broker config --force), then reload (SIGHUP) or restart the broker; a reload refuses new connections, a restart also cuts open sessions");
    });

  certs.command("crl")
    .description(`re-sign the CRL with the current revocations (do it before it lapses: ${CRL_DAYS} days by default)`)
    .option(...dirOption)
    .option("--days <n>", "CRL lifetime in days", positiveInteger("--days", 3650), CRL_DAYS)
    .action(async (options: { dir: string; days: number }) => {
      const store = new PkiStore(options.dir);
      const ca = store.loadCa();
      writeAll(await store.crlFiles(ca, store.loadRevocations(), options.days), true);
      say(`re-signed ${store.crlPem}, valid for ${options.days} days`);
    });

  certs.command("list")
    .description("devices and service accounts with serial, expiry and revocation status")
    .option(...dirOption)
    .option("--json", "print JSON")
    .action((options: { dir: string; json?: boolean }) => {
      const store = new PkiStore(options.dir);
      const ca = new X509Certificate(store.loadCa().certPem);
      const revoked = new Map(store.loadRevocations().map((entry) => [entry.serial, entry]));
      const now = Date.now();
      const identities = [...store.deviceIds().map((id) => [id, store.loadDevice(id)!] as const), ...store.serviceNames().map((id) => [id, store.loadService(id)!] as const)];
      const rows = identities.map(([deviceId, issuedCert]) => {
        const cert = new X509Certificate(issuedCert.certPem);
        const serial = serialNumberHex({ certDer: cert.raw });
        const revocation = revoked.get(serial);
        const status = revocation !== undefined ? "revoked" : !cert.checkIssued(ca) ? "other-ca" : Date.parse(cert.validTo) < now ? "expired" : "valid";
        return { deviceId, serial, notAfter: new Date(cert.validTo).toISOString(), status, ...(revocation === undefined ? {} : { revokedAt: revocation.revokedAt }) };
      });
      if (options.json === true) {
        say(JSON.stringify(rows, null, 2));
        return;
      }
      say(`CA "${ca.subject.replace(/^CN=/, "")}" valid until ${new Date(ca.validTo).toISOString()}`);
      if (rows.length === 0) say("no devices and no service accounts");
      for (const row of rows) say(`${row.deviceId.padEnd(32)} ${row.serial}  ${row.notAfter}  ${row.status}${row.revokedAt === undefined ? "" : ` ${row.revokedAt}`}`);
    });

  return certs;
}

/** The key to certify, the backup key to pin, and the key files that change. */
async function brokerKeys(store: PkiStore, mode: "new" | "reissue" | "rotate"): Promise<{ keyPkcs8Der: Uint8Array; backupKeyPkcs8Der: Uint8Array; keyFiles: OutputFile[] }> {
  const keyFile = (path: string, der: Uint8Array): OutputFile => ({ path, data: pkcs8Pem(der), mode: PRIVATE });
  if (mode === "new") {
    const [keyPkcs8Der, backupKeyPkcs8Der] = await Promise.all([generateRsaKeyPkcs8(), generateRsaKeyPkcs8()]);
    return { keyPkcs8Der, backupKeyPkcs8Der, keyFiles: [keyFile(store.serverKey, keyPkcs8Der), keyFile(store.backupKey, backupKeyPkcs8Der)] };
  }
  const current = store.loadServer();
  if (mode === "reissue") return { keyPkcs8Der: current.server.keyPkcs8Der, backupKeyPkcs8Der: current.backupKeyPkcs8Der, keyFiles: [] };
  const keyPkcs8Der = current.backupKeyPkcs8Der;
  const backupKeyPkcs8Der = await generateRsaKeyPkcs8();
  return { keyPkcs8Der, backupKeyPkcs8Der, keyFiles: [keyFile(store.serverKey, keyPkcs8Der), keyFile(store.backupKey, backupKeyPkcs8Der)] };
}

/** `id` is a device id or a service account's name. */
async function revocationFiles(store: PkiStore, ca: Issued, id: string, cert: Issued, reason: Revocation["reason"], failIfRevoked: boolean): Promise<OutputFile[]> {
  const revocations = store.loadRevocations();
  const serial = serialNumberHex(cert);
  if (revocations.some((entry) => entry.serial === serial)) {
    const reissue = id.startsWith(SERVICE_PREFIX) ? `espguard certs service ${id} --force` : `espguard certs device ${id} --force`;
    if (failIfRevoked) throw new CliError(`${id}'s certificate (serial ${serial}) is already revoked; issue a new one with: ${reissue}`);
    return store.crlFiles(ca, revocations);
  }
  return store.crlFiles(ca, [...revocations, { deviceId: id, serial, revokedAt: new Date().toISOString(), reason }]);
}

function printPins(current: string, backup: string): void {
  say(`pin current ${current}`);
  say(`pin backup  ${backup}`);
}

function pkcs8Pem(der: Uint8Array): string {
  const body = Buffer.from(der).toString("base64").replace(/.{1,64}/g, "$&\n");
  return `-----BEGIN PRIVATE KEY-----\n${body}-----END PRIVATE KEY-----\n`;
}
