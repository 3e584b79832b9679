// `espguard broker config`: a self-contained broker folder from the PKI store: mosquitto.conf,
// the ACL, openssl.cnf, and copies of the CA, the broker's certificate chain and key, and the CRL,
// so a deployment copies one folder. mosquitto must run with OPENSSL_CONF=<folder>/openssl.cnf:
// its `tls_version` is only a minimum, and this file is what holds TLS at exactly 1.2.
import { Command } from "commander";
import { X509Certificate } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { writeAll } from "../certs/atomic-files.ts";
import { chainPem } from "../certs/pki.ts";
import { assertCurrent, DEFAULT_PKI_DIR, PkiStore } from "../certs/store.ts";
import { DEFAULT_PORT, mosquittoConfig, type BridgeOptions } from "../broker/mosquitto-config.ts";
import { positiveInteger } from "./certs.ts";
import { CliError } from "./errors.ts";

export const DEFAULT_BROKER_DIR = ".espguard/broker";

interface BrokerConfigOptions {
  dir: string;
  out: string;
  host?: string;
  port: number;
  verifier?: string[];
  otaPublisher?: string[];
  websocketsPort?: number;
  bridgeHost?: string;
  bridgePort: number;
  bridgeName: string;
  bridgePrefix?: string;
  bridgeCafile?: string;
  bridgeCertfile?: string;
  bridgeKeyfile?: string;
  echo?: boolean;
  force?: boolean;
}

/** The broker folder's files, by role. */
export function brokerFiles(out: string): { conf: string; acl: string; opensslConf: string; ca: string; chain: string; key: string; crl: string } {
  return {
    conf: join(out, "mosquitto.conf"),
    acl: join(out, "acl"),
    opensslConf: join(out, "openssl.cnf"),
    ca: join(out, "ca.pem"),
    chain: join(out, "server-chain.pem"),
    key: join(out, "server.key"),
    crl: join(out, "crl.pem"),
  };
}

export function brokerCommand(): Command {
  const broker = new Command("broker").description("the fleet's mosquitto broker");
  broker.command("config")
    .description("write mosquitto.conf, ACL, openssl.cnf and the broker's certificates into one folder")
    .option("--dir <dir>", "PKI folder", DEFAULT_PKI_DIR)
    .option("-o, --out <dir>", "broker folder to write", DEFAULT_BROKER_DIR)
    .option("--host <address>", "address the listeners bind to (default: all interfaces)")
    .option("--port <port>", "MQTT over TLS port", positiveInteger("--port", 65535), DEFAULT_PORT)
    .option("--verifier <names...>", "service accounts (certificate CNs, svc.*) that read every device's telemetry")
    .option("--ota-publisher <names...>", "service accounts that publish OTA offers to devices")
    .option("--websockets-port <port>", "also listen for MQTT over TLS WebSockets (browsers) on this port", positiveInteger("--websockets-port", 65535))
    .option("--bridge-host <host>", "bridge device traffic to this gateway broker")
    .option("--bridge-port <port>", "gateway broker port", positiveInteger("--bridge-port", 65535), DEFAULT_PORT)
    .option("--bridge-name <name>", "bridge connection name", "gateway")
    .option("--bridge-prefix <prefix>", "topic prefix on the gateway (devices/<id>/... becomes <prefix>/devices/<id>/...)")
    .option("--bridge-cafile <file>", "CA of the gateway's certificate")
    .option("--bridge-certfile <file>", "this broker's client certificate for the gateway")
    .option("--bridge-keyfile <file>", "this broker's client key for the gateway")
    .option("--echo", "burn-in: let each device read its own telemetry back")
    .option("--force", "replace an existing broker folder's files")
    .action((options: BrokerConfigOptions) => writeBrokerConfig(options));
  return broker;
}

function writeBrokerConfig(options: BrokerConfigOptions): void {
  const store = new PkiStore(options.dir);
  const out = resolve(options.out);
  const paths = brokerFiles(out);
  const bridge = bridgeOptions(options);
  const text = mosquittoConfig({
    ...(options.host === undefined ? {} : { host: options.host }),
    port: options.port,
    files: { cafile: paths.ca, certfile: paths.chain, keyfile: paths.key, aclFile: paths.acl, crlfile: paths.crl },
    services: { verifier: options.verifier ?? [], otaPublisher: options.otaPublisher ?? [] },
    echo: options.echo === true,
    ...(options.websocketsPort === undefined ? {} : { websockets: { port: options.websocketsPort } }),
    ...(bridge === undefined ? {} : { bridge }),
  });
  const now = new Date();
  const ca = store.loadCa(now);
  const { server } = store.loadServer();
  const serverCert = new X509Certificate(server.certPem);
  if (!serverCert.checkIssued(new X509Certificate(ca.certPem)) || !serverCert.verify(new X509Certificate(ca.certPem).publicKey)) {
    throw new CliError(`the broker certificate ${store.serverPem} was not issued by the current CA; re-issue it with: espguard certs server --force --dir ${store.dir}`);
  }
  assertCurrent(serverCert, "the broker certificate", store.serverPem, now, `re-issue it with: espguard certs server --force --dir ${store.dir}`);
  if (!existsSync(store.crlPem)) throw new CliError(`no CRL in ${store.dir}; sign one with: espguard certs crl --dir ${store.dir}`);
  writeAll([
    { path: paths.conf, data: text.conf },
    { path: paths.acl, data: text.acl },
    { path: paths.opensslConf, data: text.opensslConf },
    { path: paths.ca, data: ca.certPem },
    { path: paths.chain, data: chainPem(server, ca) },
    { path: paths.key, data: server.keyPem, mode: 0o600 },
    { path: paths.crl, data: readFileSync(store.crlPem) },
  ], options.force === true);
  const say = (line: string): void => void process.stdout.write(`${line}\n`);
  say(`wrote ${out}: mosquitto.conf, acl, openssl.cnf, ca.pem, server-chain.pem, server.key (0600), crl.pem`);
  say(`TLS 1.2 only on port ${options.port}${options.websocketsPort === undefined ? "" : `, WebSockets on ${options.websocketsPort}`}; client certificates required; nothing on 1883`);
  say("run it with (OPENSSL_CONF is what keeps TLS at exactly 1.2):");
  say(`  OPENSSL_CONF=${paths.opensslConf} mosquitto -c ${paths.conf}`);
  say("as root, mosquitto drops to the \"mosquitto\" user: that user must be able to read the folder and server.key");
}

function bridgeOptions(options: BrokerConfigOptions): BridgeOptions | undefined {
  const given = { "--bridge-prefix": options.bridgePrefix, "--bridge-cafile": options.bridgeCafile, "--bridge-certfile": options.bridgeCertfile, "--bridge-keyfile": options.bridgeKeyfile };
  if (options.bridgeHost === undefined) {
    const stray = Object.entries(given).filter(([, value]) => value !== undefined).map(([name]) => name);
    if (stray.length > 0) throw new CliError(`${stray.join(", ")} configure a bridge: also pass --bridge-host`);
    return undefined;
  }
  const missing = Object.entries(given).filter(([, value]) => value === undefined).map(([name]) => name);
  if (missing.length > 0) throw new CliError(`a bridge needs ${missing.join(", ")}`);
  return {
    name: options.bridgeName,
    host: options.bridgeHost,
    port: options.bridgePort,
    remotePrefix: options.bridgePrefix!,
    cafile: resolve(options.bridgeCafile!),
    certfile: resolve(options.bridgeCertfile!),
    keyfile: resolve(options.bridgeKeyfile!),
  };
}
