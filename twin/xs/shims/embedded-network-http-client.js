// ECMA-419 HTTP client for the XS engine check. It resolves and opens its socket the way the
// board's does (`new options.dns.io(options.dns)`, then `new options.socket.io({...})`), so the
// firmware's wiring runs in XS; with no network there, requests never get a response.
const host = __espguardXsHost;
const MODULE = "embedded:network/http/client";

export default class HTTPClient {
  #requests = [];
  #closed = false;
  constructor(options) {
    if (!options?.host) throw new Error("host required");
    host.record(MODULE, "open", { host: options.host, port: options.port ?? 80 });
    const dns = new options.dns.io(options.dns);
    dns.resolve({
      host: options.host,
      onResolved: (resolved, address) => {
        if (this.#closed) return;
        this.socket = new options.socket.io({ ...options.socket, address, host: resolved, port: options.port ?? 80, onReadable() {}, onWritable() {}, onError() {} });
      },
      onError: () => options.onError?.(new Error(`cannot resolve ${options.host}`)),
    });
  }
  request(options) {
    if (this.#closed) throw new Error("closed");
    const request = { read() { return undefined; } };
    this.#requests.push({ ...options, request });
    host.record(MODULE, "request", { method: options.method ?? "GET", path: options.path ?? "/" });
    return request;
  }
  close() {
    this.#closed = true;
    this.#requests.length = 0;
  }
}
