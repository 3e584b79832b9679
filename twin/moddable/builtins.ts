// The Moddable modules the twin stands in for. Each names the manifest include that brings it on a
// board, so a firmware import the board could not resolve fails in the twin too.

export interface Builtin {
  /** the twin's Node implementation, relative to this folder */
  readonly twin: string;
  /** the manifest.json include that provides it on the device; null = part of every Moddable build */
  readonly include: string | null;
}

const IO = "$(MODDABLE)/modules/io/manifest.json";
const TLS = "$(MODDABLE)/modules/crypt/tls_419.json";

export const BUILTINS: Readonly<Record<string, Builtin>> = Object.freeze({
  "timer": { twin: "./timer.ts", include: null },
  "time": { twin: "./time.ts", include: null },
  "mc/config": { twin: "./mc-config.ts", include: null },
  "Resource": { twin: "./resource.ts", include: "$(MODDABLE)/examples/manifest_base.json" },
  "preference": { twin: "./preference.ts", include: "$(MODDABLE)/modules/files/preference/manifest.json" },
  "crypt": { twin: "./crypt.ts", include: TLS },
  "hmac": { twin: "./hmac.ts", include: TLS },
  "ecdsa": { twin: "./ecdsa.ts", include: TLS },
  "ber": { twin: "./ber.ts", include: TLS },
  "curve": { twin: "./curve.ts", include: TLS },
  "ecp": { twin: "./ecp.ts", include: TLS },
  "embedded:io/socket/tcp": { twin: "./socket-tcp.ts", include: IO },
  "embedded:io/socket/udp": { twin: "./socket-udp.ts", include: IO },
  "embedded:io/socket/tcp/tls": { twin: "./socket-tls.ts", include: "$(MODDABLE)/examples/io/tcp/tlssocket/manifest.json" },
  "embedded:network/dns/resolver/udp": { twin: "./dns-resolver.ts", include: "$(MODDABLE)/examples/io/tcp/mqttclient/manifest_mqttclient.json" },
  "embedded:network/mqtt/client": { twin: "./mqtt-client.ts", include: "$(MODDABLE)/examples/io/tcp/mqttclient/manifest_mqttclient.json" },
  "embedded:network/http/client": { twin: "./http-client.ts", include: "$(MODDABLE)/examples/io/tcp/httpclient/manifest_httpclient.json" },
  "embedded:storage/flash": { twin: "./storage-flash.ts", include: "$(MODDABLE)/modules/io/flash/manifest.json" },
  "embedded:update": { twin: "./update.ts", include: "$(MODDABLE)/modules/io/update/manifest.json" },
  "wifi": { twin: "./wifi.ts", include: "$(MODDABLE)/modules/network/wifi/manifest.json" },
  "net": { twin: "./net.ts", include: "$(MODDABLE)/examples/manifest_net.json" },
  "espguard/ota-state": { twin: "./ota-state.ts", include: "./modules/platform/esp32/manifest.json" },
});
