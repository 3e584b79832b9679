// ECMA-419 UDP socket for the XS engine check, which has no network: datagrams firmware sends are
// recorded for the host and none ever arrive.
const host = __espguardXsHost;
const MODULE = "embedded:io/socket/udp";

export default class UDP {
  #closed = false;
  constructor(options = {}) {
    if (options.format !== undefined && options.format !== "buffer") throw new RangeError(`UDP: unsupported format "${options.format}"`);
    if (options.port !== undefined && (!Number.isInteger(options.port) || options.port < 0 || options.port > 65535))
      throw new RangeError(`UDP: invalid port ${options.port}`);
    if (options.target !== undefined) this.target = options.target;
    host.record(MODULE, "open", { port: options.port ?? 0 });
  }
  get format() {
    return "buffer";
  }
  set format(value) {
    if (value !== "buffer") throw new RangeError(`UDP: unsupported format "${value}"`);
  }
  read() {
    this.#open("read");
    return undefined;
  }
  write(buffer, address, port) {
    this.#open("write");
    if (!(buffer instanceof ArrayBuffer) && !ArrayBuffer.isView(buffer)) throw new TypeError("UDP write: the datagram must be an ArrayBuffer or a view");
    if (typeof address !== "string" || !Number.isInteger(port) || port < 1 || port > 65535)
      throw new TypeError("UDP write: needs a buffer, an IPv4 address string and a port 1–65535");
    host.record(MODULE, "write", { address, port, byteLength: buffer.byteLength });
  }
  close() {
    this.#closed = true;
  }
  #open(operation) {
    if (this.#closed) throw new Error(`UDP ${operation}: socket is closed`);
  }
}
Object.freeze(UDP.prototype);
