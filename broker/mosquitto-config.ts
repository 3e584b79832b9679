// mosquitto.conf, ACL file and OpenSSL configuration for the fleet broker. Tests, the demo and
// `espguard broker config` all launch mosquitto with exactly this text, so what the tests prove
// about the broker holds for a deployment.
import { isAbsolute } from "node:path";
import { isIP } from "node:net";
import { assertServiceName } from "../certs/pki.ts";
import { toDeviceId } from "../modules/identity/device-id.ts";

/**
 * The suites the broker accepts: the forward-secret ones among those the device's TLS offers with
 * `DHE_RSA: false`. The device lists plain-RSA suites first, and OpenSSL follows the client's order
 * unless the server's list leaves nothing else. DHE stays out: with a client certificate it fails
 * on Moddable ("certificateVerify: unimplemented").
 */
export const BROKER_CIPHERS = [
  "ECDHE-RSA-AES128-GCM-SHA256",
  "ECDHE-RSA-AES128-SHA256",
] as const;

export const DEFAULT_PORT = 8883;

/** QoS 1/2 messages mosquitto holds per client while it is slow or offline (~1 KB each at most). */
export const MAX_QUEUED_MESSAGES = 100_000;

export interface DeviceTopics {
  telemetry: string;
  status: string;
  otaStatus: string;
  cmd: string;
  ota: string;
}

/** Topics of one device, the layout the ACL enforces. */
export function deviceTopics(deviceId: string): DeviceTopics {
  return topicsBelow(toDeviceId(deviceId));
}

function topicsBelow(level: string): DeviceTopics {
  const base = `devices/${level}`;
  return { telemetry: `${base}/telemetry`, status: `${base}/status`, otaStatus: `${base}/ota/status`, cmd: `${base}/cmd`, ota: `${base}/ota` };
}

export interface MosquittoFiles {
  /** The fleet CA: client certificates must chain to it. */
  cafile: string;
  /** Server certificate followed by the CA (`chainPem`): Moddable rejects a server that sends only its leaf. */
  certfile: string;
  keyfile: string;
  /** Where the ACL text will be written. */
  aclFile: string;
  /** A PEM CRL from `createCrl`; OpenSSL then refuses revoked client certificates. */
  crlfile?: string;
}

export interface MosquittoConfigOptions {
  /** Address to bind the TLS listener to; all interfaces when absent. */
  host?: string;
  /** Default 8883. */
  port?: number;
  files: MosquittoFiles;
  /** Service account names (client certificate CNs, `svc.` prefix) per role. */
  services?: { verifier?: string[]; otaPublisher?: string[] };
  /** Let each device read its own telemetry topic back (the foundation smoke test needs it). */
  echo?: boolean;
  /** Keep retained messages and sessions on disk in this folder; off when absent. */
  persistenceDir?: string;
  /**
   * Default true: the MQTT client id becomes the certificate's CN, so one device cannot evict
   * another's session by claiming its client id. Two connections with one certificate then evict
   * each other: give each service instance its own account.
   */
  clientIdFromCertificate?: boolean;
  /**
   * A second TLS listener speaking MQTT over WebSockets, for browser dashboards. Same certificates,
   * same client-certificate requirement, same ACL: a browser needs a client certificate too.
   */
  websockets?: { port: number };
  /** Forward this broker's device traffic to a gateway broker. */
  bridge?: BridgeOptions;
}

/**
 * A bridge to a gateway broker over TLS with a client certificate. Each device topic crosses in one
 * direction only (device-written topics out, device-read topics in) and the remote side sees the
 * bridge as a bridge (`try_private`), so no message can come back and circulate.
 */
export interface BridgeOptions {
  /** Connection name: letters, digits, "-" and "_". */
  name: string;
  /** Gateway host name or IP address. */
  host: string;
  port: number;
  /** Topic prefix on the gateway: `devices/<id>/...` here is `<remotePrefix>/devices/<id>/...` there. */
  remotePrefix: string;
  /** CA that signed the gateway's certificate, and this broker's client certificate and key for it. */
  cafile: string;
  certfile: string;
  keyfile: string;
}

export interface MosquittoConfigText {
  conf: string;
  acl: string;
  /**
   * Run mosquitto with `OPENSSL_CONF` pointing at this text. mosquitto 2's `tls_version` is only a
   * minimum and it has no maximum, so this is what keeps TLS 1.3 out and the broker speaking
   * exactly the device's TLS 1.2.
   */
  opensslConf: string;
}

export class MosquittoConfigError extends Error {
  override name = "MosquittoConfigError";
}

export function mosquittoConfig(opts: MosquittoConfigOptions): MosquittoConfigText {
  const port = checkPort(opts.port ?? DEFAULT_PORT, "broker");
  if (opts.host !== undefined) assertHost(opts.host);
  const files = opts.files;
  for (const [option, path] of Object.entries(files)) {
    if (path !== undefined) assertPath(option, path);
  }
  if (opts.persistenceDir !== undefined) assertPath("persistenceDir", opts.persistenceDir);
  const tls = [
    `cafile ${files.cafile}`,
    `certfile ${files.certfile}`,
    `keyfile ${files.keyfile}`,
    ...(files.crlfile === undefined ? [] : [`crlfile ${files.crlfile}`]),
    "tls_version tlsv1.2",
    `ciphers ${BROKER_CIPHERS.join(":")}`,
    "require_certificate true",
    "use_identity_as_username true",
    `use_username_as_clientid ${opts.clientIdFromCertificate ?? true}`,
  ];
  const listen = (listenerPort: number): string => opts.host === undefined ? `listener ${listenerPort}` : `listener ${listenerPort} ${opts.host}`;
  const websockets = opts.websockets === undefined ? [] : [
    "",
    "# MQTT over WebSockets for browsers: TLS and client certificates exactly as above.",
    listen(checkPort(opts.websockets.port, "websockets")),
    "protocol websockets",
    ...tls,
  ];
  if (opts.websockets !== undefined && opts.websockets.port === port) {
    throw new MosquittoConfigError(`the websockets port ${port} is the MQTT port; give the websockets listener its own port (e.g. 8884)`);
  }

  const conf = [
    "# Generated by espguard. TLS-only broker for devices with client certificates.",
    "# Must precede every listener: auth options below apply to the whole broker.",
    "per_listener_settings false",
    "allow_anonymous false",
    `acl_file ${files.aclFile}`,
    ...(opts.persistenceDir === undefined
      ? ["persistence false"]
      : ["persistence true", `persistence_location ${withTrailingSlash(opts.persistenceDir)}`]),
    "# A subscriber that falls behind (the verifier under a burst) loses QoS 1 messages beyond this",
    "# queue; mosquitto's default of 1000 dropped messages in a 500-device fleet run.",
    `max_queued_messages ${MAX_QUEUED_MESSAGES}`,
    "log_dest stderr",
    "log_type error",
    "log_type warning",
    "log_type notice",
    "log_type information",
    "connection_messages true",
    "",
    "# mosquitto 2 opens no default port once a listener is configured, so nothing listens on 1883.",
    listen(port),
    "protocol mqtt",
    ...tls,
    ...websockets,
    ...(opts.bridge === undefined ? [] : bridgeSection(opts.bridge)),
    "",
  ].join("\n");

  return { conf, acl: aclText(opts), opensslConf: OPENSSL_CONF };
}

function checkPort(port: number, what: string): number {
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new MosquittoConfigError(`${what} port ${port} is not a TCP port; pass an integer from 1 to 65535 (8883 is the MQTT-over-TLS port)`);
  }
  return port;
}

const BRIDGE_NAME = /^[A-Za-z0-9_-]{1,64}$/;
const TOPIC_PREFIX = /^[^+#/\x00-\x1f\x7f ]+(?:\/[^+#/\x00-\x1f\x7f ]+)*$/;

// Last in the file: mosquitto reads every line after `connection` as part of that bridge.
function bridgeSection(bridge: BridgeOptions): string[] {
  if (!BRIDGE_NAME.test(bridge.name)) throw new MosquittoConfigError(`bridge name ${JSON.stringify(bridge.name)} must be 1 to 64 letters, digits, "-" or "_"`);
  assertHost(bridge.host);
  checkPort(bridge.port, "bridge");
  if (!TOPIC_PREFIX.test(bridge.remotePrefix)) {
    throw new MosquittoConfigError(`bridge remote prefix ${JSON.stringify(bridge.remotePrefix)} must be topic levels separated by "/", without wildcards, spaces or a leading or trailing "/" (e.g. site/berlin)`);
  }
  for (const [option, path] of [["bridge cafile", bridge.cafile], ["bridge certfile", bridge.certfile], ["bridge keyfile", bridge.keyfile]] as const) assertPath(option, path);
  const remote = `${bridge.remotePrefix}/devices/`;
  const topic = (pattern: string, direction: "in" | "out"): string => `topic ${pattern} ${direction} 1 devices/ ${remote}`;
  return [
    "",
    "# Bridge to the gateway broker. Every topic crosses in one direction only, so nothing loops.",
    `connection ${bridge.name}`,
    `address ${bridge.host.includes(":") ? `[${bridge.host}]` : bridge.host}:${bridge.port}`,
    "bridge_protocol_version mqttv311",
    "try_private true",
    "cleansession false",
    "notifications false",
    `bridge_cafile ${bridge.cafile}`,
    `bridge_certfile ${bridge.certfile}`,
    `bridge_keyfile ${bridge.keyfile}`,
    "bridge_tls_version tlsv1.2",
    "bridge_insecure false",
    topic("+/telemetry", "out"),
    topic("+/status", "out"),
    topic("+/ota/status", "out"),
    topic("+/cmd", "in"),
    topic("+/ota", "in"),
  ];
}

function aclText(opts: MosquittoConfigOptions): string {
  const grants = new Map<string, string[]>();
  const grant = (names: string[] | undefined, line: string): void => {
    for (const name of names ?? []) {
      assertServiceName(name);
      grants.set(name, [...(grants.get(name) ?? []), line]);
    }
  };
  grant(opts.services?.verifier, "topic read devices/+/telemetry");
  grant(opts.services?.otaPublisher, "topic write devices/+/ota");

  const own = topicsBelow("%u");
  const lines = [
    "# Generated by espguard. User names are certificate Common Names (use_identity_as_username).",
    "# Devices: each one writes and reads only below its own devices/<id>/.",
    `pattern write ${own.telemetry}`,
    `pattern write ${own.status}`,
    `pattern write ${own.otaStatus}`,
    `pattern read ${own.cmd}`,
    `pattern read ${own.ota}`,
    ...(opts.echo === true ? [`pattern read ${own.telemetry}`] : []),
  ];
  for (const [name, topics] of grants) lines.push("", `user ${name}`, ...topics);
  return `${lines.join("\n")}\n`;
}

// SECLEVEL=2 restates Debian's system default, which this file replaces for the process.
const OPENSSL_CONF = [
  "# Generated by espguard: pins mosquitto's TLS to exactly version 1.2, the device's version.",
  "openssl_conf = espguard_openssl_init",
  "",
  "[espguard_openssl_init]",
  "ssl_conf = espguard_ssl",
  "",
  "[espguard_ssl]",
  "system_default = espguard_tls",
  "",
  "[espguard_tls]",
  "MinProtocol = TLSv1.2",
  "MaxProtocol = TLSv1.2",
  "CipherString = DEFAULT:@SECLEVEL=2",
  "",
].join("\n");

const HOST_NAME = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

function assertHost(host: string): void {
  if (isIP(host) === 0 && !HOST_NAME.test(host)) {
    throw new MosquittoConfigError(`broker listen address ${JSON.stringify(host)} is neither an IP address nor a host name; pass e.g. 127.0.0.1, or omit it to listen on all interfaces`);
  }
}

// mosquitto reads a value up to the end of its line and trims the ends, and resolves relative
// paths against its working directory: only absolute, single-line, untrimmed paths mean one file.
function assertPath(option: string, path: string): void {
  if (!isAbsolute(path)) {
    throw new MosquittoConfigError(`${option} path ${JSON.stringify(path)} is relative; pass an absolute path (mosquitto would resolve it against its own working directory)`);
  }
  if (/[\x00-\x1f\x7f]/.test(path) || path.trim() !== path) {
    throw new MosquittoConfigError(`${option} path ${JSON.stringify(path)} contains control characters or surrounding spaces, which mosquitto.conf cannot express; move the file to a plain path`);
  }
}

function withTrailingSlash(path: string): string {
  return path.endsWith("/") ? path : `${path}/`;
}
