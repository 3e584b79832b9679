// Moddable's ECMA-419 MQTT client (examples/io/tcp/mqttclient) for the XS engine check. It reaches
// the network the way the board's does — `new options.dns.io(options.dns)`, then resolve(), then
// `new options.socket.io({...options.socket, address, host, port, callbacks})` — so firmware's
// wiring of resolver, TLS and TCP runs in XS; with no network there, it never connects and ends
// like the board's on a failed connect: a trace line, onError, then close().
const host = __espguardXsHost;
const MODULE = "embedded:network/mqtt/client";

export default class MQTTClient {
  static CONNECT = 1;
  static CONNACK = 2;
  static PUBLISH = 3;
  static PUBACK = 4;
  static PUBREC = 5;
  static PUBREL = 6;
  static PUBCOMP = 7;
  static SUBSCRIBE = 8;
  static SUBACK = 9;
  static UNSUBSCRIBE = 10;
  static UNSUBACK = 11;
  static PINGREQ = 12;
  static PINGRESP = 13;
  static DISCONNECT = 14;

  #onError;
  #open = true;
  #dns;
  #socket;
  constructor(options) {
    this.format = options.format ?? "buffer";
    if (options.target !== undefined) this.target = options.target;
    if (!options.host) throw new Error("MQTTClient: host required");
    const port = options.port ?? 1883;
    this.#onError = options.onError;
    host.record(MODULE, "connect", {
      host: options.host,
      port,
      id: options.id ?? "",
      clean: options.clean ?? true,
      keepalive: options.keepAlive ?? options.keepalive ?? 0,
      user: options.user,
      password: options.password !== undefined,
      will: options.will?.topic,
    });
    this.#dns = new options.dns.io(options.dns);
    this.#dns.resolve({
      host: options.host,
      onResolved: (name, address) => {
        try {
          this.#socket = new options.socket.io({
            ...options.socket,
            address,
            host: name,
            port,
            onReadable: () => {},
            onWritable: () => {},
            onError: () => this.#fail(),
          });
        } catch (error) {
          // The board swallows this too; the record keeps the reason visible.
          host.record(MODULE, "socket-error", { message: String(error?.message ?? error) });
          this.#fail();
        }
      },
      onError: () => this.#fail(),
    });
  }
  set format(value) {
    if (value !== "buffer") throw new RangeError(`MQTTClient: format "${value}" is unimplemented (only "buffer")`);
  }
  get format() {
    return "buffer";
  }
  read() {
    return undefined;
  }
  write() {
    throw new Error("MQTTClient: not connected (it never connects in the XS engine check)");
  }
  close() {
    if (!this.#open) return;
    this.#open = false;
    this.#dns?.close();
    this.#socket?.close();
    this.#dns = this.#socket = undefined;
    host.record(MODULE, "close", {});
  }
  #fail() {
    if (!this.#open) return;
    trace("mqttClient error: ", "unknown", "\n");
    this.#onError?.call(this);
    this.close();
  }
}
Object.freeze(MQTTClient.prototype);
