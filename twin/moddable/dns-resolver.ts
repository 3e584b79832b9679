// ECMA-419 DNS resolver (`embedded:network/dns/resolver/udp`) with the behaviour of Moddable's
// examples/io/udp/dns: "localhost" becomes 127.0.0.1 and is reported under that name, a dotted
// quad resolves to itself, callbacks run on a later turn with `this` = the resolver, and nothing
// is reported after close(). Names are looked up through the host's resolver (IPv4 only) rather
// than by querying `servers` over UDP, so a twin device needs no reachable DNS server.
import { lookup } from "node:dns";
import { isIPv4 } from "node:net";
import { radio } from "../device/radio.ts";

export class DnsResolverError extends Error {
  override name = "DnsResolverError";
}

export interface ResolverOptions {
  /** DNS server addresses the board queries in turn */
  servers: readonly string[];
  /** the UDP socket class the board queries them with: `{io: UDP}` */
  socket: { io: unknown };
  [other: string]: unknown;
}

export interface ResolveRequest {
  host: string;
  onResolved?: (this: Resolver, host: string, address: string) => void;
  onError?: (this: Resolver, host: string) => void;
}

/** Moddable's test: four dot-separated parts that each survive parseInt. */
function looksLikeAddress(host: string): boolean {
  const parts = host.split(".");
  return parts.length === 4 && parts.every((part) => String(parseInt(part, 10)) === part);
}

export default class Resolver {
  #open = true;

  constructor(options: ResolverOptions) {
    if (typeof options !== "object" || options === null) throw new TypeError("Resolver: options must be an object");
    const { servers, socket } = options;
    if (!Array.isArray(servers) || servers.length === 0 || !servers.every((server) => typeof server === "string" && isIPv4(server)))
      throw new DnsResolverError(`Resolver: servers must be a non-empty list of IPv4 addresses, got ${JSON.stringify(servers)}; ` +
        `the board queries them in turn and retries each 5 times`);
    if (typeof socket !== "object" || socket === null || typeof socket.io !== "function")
      throw new DnsResolverError("Resolver: socket must be {io: UDP} (the embedded:io/socket/udp class the board sends its queries with)");
  }

  close(): void {
    this.#open = false;
  }

  resolve(request: ResolveRequest): void {
    if (!this.#open) throw new DnsResolverError("Resolver.resolve after close(); create a new resolver");
    if (typeof request !== "object" || request === null) throw new TypeError("Resolver.resolve: request must be an object");
    const { onResolved, onError } = request;
    if (!request.host) throw new DnsResolverError("Resolver.resolve: host is required");
    if (!onResolved && !onError) throw new DnsResolverError("Resolver.resolve: give onResolved and/or onError");
    for (const [name, value] of [["onResolved", onResolved], ["onError", onError]] as const)
      if (value !== undefined && typeof value !== "function") throw new TypeError(`Resolver.resolve: ${name} must be a function`);
    let host = String(request.host);
    if (host === "localhost") host = "127.0.0.1";
    const resolved = (address: string) => {
      if (this.#open) onResolved?.call(this, host, address);
    };
    const failed = () => {
      if (this.#open) onError?.call(this, host);
    };
    if (looksLikeAddress(host)) {
      setImmediate(() => resolved(host));
      return;
    }
    // with the radio cut no query reaches a server
    if (!radio.up) {
      setImmediate(failed);
      return;
    }
    lookup(host, { family: 4 }, (error, address) => {
      if (error || !radio.up || !isIPv4(address)) failed();
      else resolved(address);
    });
  }
}
