// ECMA-419 TCP socket (Moddable's modules/io/socket/lwip/tcp.c) for the XS engine check, which
// has no network: the options are checked as the board checks them, the connection is recorded
// for the host, and it fails (onError) on the next turn, so firmware's failure path runs in XS.
import Timer from "timer";

const host = __espguardXsHost;
const MODULE = "embedded:io/socket/tcp";

function isIPv4(text) {
  const parts = String(text).split(".");
  return parts.length === 4 && parts.every((part) => /^\d{1,3}$/.test(part) && Number(part) <= 255);
}

export default class TCP {
  #format;
  #closed = false;
  #failing;
  constructor(options) {
    this.#format = options.format ?? "buffer";
    if (this.#format !== "buffer" && this.#format !== "number") throw new RangeError(`TCP: format "${this.#format}" is unimplemented`);
    if (options.from !== undefined) throw new Error("TCP: invalid from (the XS engine check has no listener to accept from)");
    if (!isIPv4(options.address)) throw new Error(`TCP: invalid address ${JSON.stringify(options.address)} (an IPv4 address string; resolve names first)`);
    const port = options.port;
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new RangeError(`TCP: invalid port ${port}`);
    if (options.target !== undefined) this.target = options.target;
    host.record(MODULE, "connect", { address: options.address, port });
    const onError = options.onError;
    this.#failing = Timer.set(() => {
      this.#failing = undefined;
      if (this.#closed) return;
      host.record(MODULE, "error", { address: options.address, port, reason: "no network in the XS engine check" });
      onError?.call(this);
    });
  }
  get format() {
    return this.#format;
  }
  set format(value) {
    if (value !== "buffer" && value !== "number") throw new RangeError(`TCP: format "${value}" is unimplemented`);
    this.#format = value;
  }
  read() {
    if (this.#closed) throw new Error("TCP: read after close");
    return undefined;
  }
  write() {
    if (this.#closed) throw new Error("TCP: write after close");
    throw new Error("TCP: not ready (it never connects in the XS engine check; write only after onWritable)");
  }
  close() {
    if (this.#closed) return;
    this.#closed = true;
    Timer.clear(this.#failing);
    this.#failing = undefined;
    host.record(MODULE, "close", {});
  }
}
Object.freeze(TCP.prototype);
