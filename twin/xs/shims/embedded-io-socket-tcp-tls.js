// Moddable's TLS socket (examples/io/tcp/tlssocket) for the XS engine check: it builds its TLS
// options and its TCP socket (`options.TCP.io`) the way the board's does, records what firmware
// asked for, and never handshakes: the TCP socket below it fails on the next turn.
const host = __espguardXsHost;
const MODULE = "embedded:io/socket/tcp/tls";

function isBuffer(value) {
  return value instanceof ArrayBuffer || ArrayBuffer.isView(value);
}

function checkSecure(secure) {
  if (typeof secure.serverName !== "string" || secure.serverName === "")
    throw new TypeError("TLS: a server name is required (options.host or options.secure.serverName)");
  const certificate = secure.certificate;
  if (certificate !== undefined && !isBuffer(certificate) && !(Array.isArray(certificate) && certificate.every(isBuffer)))
    throw new TypeError("TLS: secure.certificate must be DER bytes (an ArrayBuffer) or a list of them");
  if (secure.clientCertificates !== undefined && !(Array.isArray(secure.clientCertificates) && secure.clientCertificates.every(isBuffer)))
    throw new TypeError("TLS: secure.clientCertificates must be a list of DER certificates (ArrayBuffers)");
  if (secure.clientKey !== undefined && !isBuffer(secure.clientKey))
    throw new TypeError("TLS: secure.clientKey must be an unencrypted PKCS#8 DER key (an ArrayBuffer)");
}

export default class TLSSocket {
  #socket;
  #callbacks;
  #format = "buffer";
  constructor(options) {
    this.#callbacks = { onReadable: options.onReadable, onWritable: options.onWritable, onError: options.onError };
    const secure = { serverName: options.host, ...options.secure, protocolVersion: 0x303 };
    checkSecure(secure);
    host.record(MODULE, "connect", { host: options.host, address: options.address, port: options.port, secure });
    this.#socket = new options.TCP.io({
      ...options,
      onReadable: () => {},
      onWritable: () => {},
      onError: () => this.#callbacks.onError?.(),
    });
  }
  close() {
    this.#socket?.close();
    this.#socket = undefined;
  }
  read() {
    return undefined;
  }
  write() {
    throw new Error("TLS: the handshake has not completed (it never does in the XS engine check)");
  }
  get format() {
    return this.#format;
  }
  set format(value) {
    if (value !== "buffer" && value !== "number") throw new RangeError(`TLS: format "${value}" is unimplemented`);
    this.#format = value;
  }
}
Object.freeze(TLSSocket.prototype);
