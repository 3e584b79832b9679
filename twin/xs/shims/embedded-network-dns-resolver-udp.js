// Moddable's UDP DNS resolver (examples/io/udp/dns) for the XS engine check, which has no network.
// Options are checked as the board's constructor and resolve() check them; each lookup is recorded
// and answered on the next turn: a dotted IPv4 address (and "localhost") as itself, like the board,
// any other name with 192.0.2.1 (TEST-NET-1, RFC 5737), so the connect path behind it runs in XS.
import Timer from "timer";

const host = __espguardXsHost;
const MODULE = "embedded:network/dns/resolver/udp";
const UNROUTABLE = "192.0.2.1";

function isIPv4(text) {
  const parts = text.split(".");
  return parts.length === 4 && parts.every((part) => /^\d{1,3}$/.test(part) && Number(part) <= 255);
}

export default class Resolver {
  #servers;
  #UDP;
  #pending = new Set();
  constructor(options) {
    this.#servers = options.servers.slice();
    this.#UDP = options.socket;
  }
  close() {
    for (const timer of this.#pending) Timer.clear(timer);
    this.#pending.clear();
    this.#servers = this.#UDP = undefined;
  }
  resolve(options) {
    const { onResolved, onError } = options;
    if (!options.host || (!onResolved && !onError) || !this.#UDP)
      throw new Error("DNS resolve: needs a host, onResolved or onError, and a resolver that is open with options.socket");
    let name = options.host.toString();
    if (name === "localhost") name = "127.0.0.1";
    const address = isIPv4(name) ? name : UNROUTABLE;
    host.record(MODULE, "resolve", { host: name, servers: this.#servers, address });
    const timer = Timer.set(() => {
      this.#pending.delete(timer);
      onResolved?.call(this, name, address);
    });
    this.#pending.add(timer);
  }
}
Object.freeze(Resolver.prototype);
