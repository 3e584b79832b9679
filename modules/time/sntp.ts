// One SNTP exchange (RFC 4330) over Moddable's ECMA-419 UDP socket and DNS resolver, trying the
// servers in turn. A reply counts only if it answers our request: server mode, a synchronised
// stratum, and our random transmit timestamp echoed as its originate timestamp (an off-path
// attacker cannot guess it). SNTP is not authenticated: the time floor (clock.ts) bounds what a
// forged reply can do.
import Timer from "timer";
import UDP from "embedded:io/socket/udp";
import Resolver from "embedded:network/dns/resolver/udp";

export interface SntpServer {
  readonly host: string;
  readonly port: number;
}

export interface SntpOptions {
  readonly servers: readonly SntpServer[];
  readonly dnsServers: readonly string[];
  /** per request */
  readonly timeoutMs: number;
  /** requests per server */
  readonly attempts: number;
  onTime(epochMs: number, server: SntpServer): void;
  /** no server answered */
  onFail(): void;
}

export class SntpError extends Error {
  override name = "SntpError";
}

const NTP_TO_UNIX_S = 2208988800;
const PACKET_BYTES = 48;

/** Parses "host" or "host:port" (default 123) server lists, separated by spaces or commas. */
export function parseServers(text: string): readonly SntpServer[] {
  const servers = text.split(/[\s,]+/).filter((part) => part.length > 0).map((part) => {
    const colon = part.lastIndexOf(":");
    const host = colon < 0 ? part : part.slice(0, colon);
    const port = colon < 0 ? 123 : Number(part.slice(colon + 1));
    if (host.length === 0 || !Number.isInteger(port) || port < 1 || port > 65535)
      throw new SntpError(`NTP server ${JSON.stringify(part)}: expected host or host:port`);
    return Object.freeze({ host, port });
  });
  if (servers.length === 0) throw new SntpError("no NTP servers: provision at least one (host or host:port)");
  return Object.freeze(servers);
}

function isAddress(host: string): boolean {
  const parts = host.split(".");
  return parts.length === 4 && parts.every((part) => /^\d{1,3}$/.test(part) && Number(part) < 256);
}

export class SntpQuery {
  #options: SntpOptions;
  #server = 0;
  #attempt = 0;
  #udp: UDP | undefined;
  #resolver: Resolver | undefined;
  #timer: ReturnType<typeof Timer.set> | undefined;
  #nonce = new Uint8Array(8);
  #address = "";
  #done = false;

  constructor(options: SntpOptions) {
    if (options.servers.length === 0) throw new SntpError("SntpQuery: no servers");
    this.#options = options;
    const query = this;
    this.#udp = new UDP({
      onReadable(packets) {
        for (let i = 0; i < packets; i++) {
          const packet = this.read();
          if (packet) query.#reply(packet);
        }
      },
    });
    this.#resolve();
  }

  close(): void {
    this.#done = true;
    if (this.#timer !== undefined) Timer.clear(this.#timer);
    this.#timer = undefined;
    this.#udp?.close();
    this.#udp = undefined;
    // the resolver reports nothing after close(), so closing mid-lookup is safe
    this.#resolver?.close();
    this.#resolver = undefined;
  }

  #resolve(): void {
    const server = this.#options.servers[this.#server]!;
    this.#attempt = 0;
    if (isAddress(server.host)) {
      this.#address = server.host;
      this.#request();
      return;
    }
    const query = this;
    this.#resolver = new Resolver({ servers: this.#options.dnsServers, socket: { io: UDP } });
    this.#resolver.resolve({
      host: server.host,
      onResolved(_host, address) {
        query.#address = String(address);
        query.#request();
        return null;
      },
      onError() {
        query.#nextServer();
        return null;
      },
    });
  }

  #request(): void {
    if (this.#done || !this.#udp) return;
    const server = this.#options.servers[this.#server]!;
    const packet = new Uint8Array(PACKET_BYTES);
    packet[0] = (4 << 3) | 3; // version 4, client
    for (let i = 0; i < 8; i++) this.#nonce[i] = Math.floor(Math.random() * 256);
    packet.set(this.#nonce, 40);
    this.#udp.write(packet, this.#address, server.port);
    this.#timer = Timer.set(() => {
      this.#timer = undefined;
      if (++this.#attempt < this.#options.attempts) this.#request();
      else this.#nextServer();
    }, this.#options.timeoutMs);
  }

  #nextServer(): void {
    if (this.#done) return;
    this.#resolver?.close();
    this.#resolver = undefined;
    if (++this.#server < this.#options.servers.length) {
      this.#resolve();
      return;
    }
    this.close();
    this.#options.onFail();
  }

  #reply(packet: ArrayBuffer & { address: string; port: number }): void {
    const server = this.#options.servers[this.#server];
    if (this.#done || !server || this.#timer === undefined) return;
    if (packet.address !== this.#address || packet.port !== server.port || packet.byteLength < PACKET_BYTES) return;
    const bytes = new Uint8Array(packet);
    const leap = bytes[0]! >> 6;
    const mode = bytes[0]! & 7;
    const stratum = bytes[1]!;
    if (leap === 3 || mode !== 4 || stratum < 1 || stratum > 15) return;
    for (let i = 0; i < 8; i++) if (bytes[24 + i] !== this.#nonce[i]) return;
    const view = new DataView(packet);
    const seconds = view.getUint32(40);
    if (seconds === 0) return;
    // NTP era 1 starts in 2036: small second counts are past the wrap, not before 1968
    const era = seconds < 0x80000000 ? 0x100000000 : 0;
    const epochMs = (seconds + era - NTP_TO_UNIX_S) * 1000 + Math.floor((view.getUint32(44) / 0x100000000) * 1000);
    this.close();
    this.#options.onTime(epochMs, server);
  }
}
