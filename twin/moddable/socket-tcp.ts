// ECMA-419 TCP socket (`embedded:io/socket/tcp`) over node:net, with the semantics of Moddable's
// lwIP implementation (modules/io/socket/lwip/tcp.c), which is what runs on the ESP32:
// - events are coalesced and delivered on a later turn, in the order readable, then writable or
//   error; onReadable reports every byte pending, and only new data re-notifies (a partial read
//   does not);
// - a peer's FIN is an error, delivered only once the receive buffer has been read empty;
// - write() throws "not ready" before the connection is up and after an error, throws "would
//   block" past the send buffer, and returns the space left;
// - write()'s second argument is ignored (the `{more, byteLength}` hints only mean something to
//   the TLS session, which buffers them itself);
// - callbacks run with `this` = the socket; an exception escaping one aborts the VM on the board,
//   so here it escapes to Node as an uncaught exception.
import { Socket, isIPv4 } from "node:net";
import { radio, RadioError } from "../device/radio.ts";

/**
 * Bytes of send buffer (lwIP TCP_SND_BUF). Moddable configures 8192 on the ESP32 and 5744 on
 * the S2/S3/C3/C6/H2; the twin uses the smaller, so firmware that fits here fits every board.
 */
export const SEND_BUFFER_BYTES = 5744;
/** Receive window (lwIP TCP_WND, same values): past this, unread data stops the peer. */
export const RECEIVE_WINDOW_BYTES = 5744;

/** Thrown for misuse the board also refuses; `code` is the message Moddable's native code throws. */
export class TcpSocketError extends Error {
  override name = "TcpSocketError";
  constructor(readonly code: string, explanation: string) {
    super(`${code}: ${explanation}`);
  }
}

type Format = "buffer" | "number";
type BufferLike = ArrayBufferLike | ArrayBufferView;

export interface TCPOptions {
  /** IPv4 address; lwIP's TCP takes no host names (resolve them with the DNS resolver) */
  address?: string;
  port?: number;
  /** take over the connection of another socket, which is closed */
  from?: TCP;
  nodelay?: boolean;
  format?: Format;
  onReadable?: ((this: TCP, count: number) => void) | null;
  onWritable?: ((this: TCP, count: number) => void) | null;
  onError?: ((this: TCP) => void) | null;
  target?: unknown;
  /** ignored, as on the board; the TLS socket and MQTT client pass their whole options bag */
  [other: string]: unknown;
}

const WRITABLE = 1;
const READABLE = 2;
const ERROR = 4;

interface Connection {
  socket: Socket;
  /** received, not yet read: Moddable's pbuf chain */
  chunks: Uint8Array[];
  /** bytes written and not yet handed to the kernel: lwIP's unacknowledged send queue */
  inFlight: number;
  /** set when the connection is up, cleared when an error is delivered */
  ready: boolean;
  /** an error has been delivered */
  error: boolean;
  /** the socket failed (refused, reset): writes are silently dropped, as lwIP does once its pcb is gone */
  dead: boolean;
  remoteAddress: string;
  remotePort: number;
  triggered: number;
  /** the socket that currently owns this connection (`from` hands it over) */
  owner: TCP | undefined;
}

function callback(options: TCPOptions, name: "onReadable" | "onWritable" | "onError"): Function | undefined {
  const value = options[name];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "function") throw new TcpSocketError("not a function", `TCP option ${name} must be a function`);
  return value;
}

function parseFormat(value: unknown, fallback: Format): Format {
  if (!value) return fallback;
  if (value === "buffer" || value === "number") return value;
  throw new RangeError(`unimplemented: TCP format ${JSON.stringify(value)}; the TCP socket supports "buffer" and "number"`);
}

function bytesOf(value: unknown, operation: string): Uint8Array {
  if (value instanceof ArrayBuffer || value instanceof SharedArrayBuffer) return new Uint8Array(value);
  if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  throw new TypeError(`TCP ${operation}: expected an ArrayBuffer or a view of one, got ${value === null ? "null" : typeof value}`);
}

function pendingBytes(connection: Connection): number {
  let total = 0;
  for (const chunk of connection.chunks) total += chunk.byteLength;
  return total;
}

export default class TCP {
  declare target: unknown;
  #connection: Connection | undefined;
  #format: Format;
  #triggerable = 0;
  #onReadable: Function | undefined;
  #onWritable: Function | undefined;
  #onError: Function | undefined;

  constructor(options: TCPOptions) {
    if (typeof options !== "object" || options === null) throw new TypeError("TCP: options must be an object");
    this.#format = parseFormat(options.format, "buffer");
    this.#onReadable = callback(options, "onReadable");
    this.#onWritable = callback(options, "onWritable");
    this.#onError = callback(options, "onError");
    this.#triggerable = (this.#onReadable ? READABLE : 0) | (this.#onWritable ? WRITABLE : 0) | (this.#onError ? ERROR : 0);

    let connection: Connection;
    let takenOver = false;
    if ("from" in options) {
      const from = options.from;
      if (typeof from !== "object" || from === null || !(#connection in from)) throw new TcpSocketError("invalid from", "TCP option from must be another TCP socket");
      connection = from.#surrender();
      takenOver = true;
    } else {
      const { address, port } = options;
      if (typeof address !== "string" || !isIPv4(address))
        throw new TcpSocketError("invalid address",
          `TCP option address must be an IPv4 address string, got ${JSON.stringify(address)}; lwIP's TCP does not resolve host names, resolve them with embedded:network/dns/resolver/udp first`);
      if (typeof port !== "number" || !Number.isInteger(port) || port < 1 || port > 65535)
        throw new RangeError(`invalid port: TCP option port must be an integer 1–65535, got ${JSON.stringify(port)}`);
      connection = {
        socket: new Socket({ allowHalfOpen: false }),
        chunks: [],
        inFlight: 0,
        ready: false,
        error: false,
        dead: false,
        remoteAddress: address,
        remotePort: port,
        triggered: 0,
        owner: undefined,
      };
    }
    if ("nodelay" in options) connection.socket.setNoDelay(Boolean(options.nodelay));
    if ("target" in options) this.target = options.target;
    this.#connection = connection;
    connection.owner = this;
    this.#listen(connection);

    if (takenOver) {
      let triggered = connection.triggered;
      if (this.#triggerable & WRITABLE && connection.ready && this.#space(connection) > 0) triggered |= WRITABLE;
      if (this.#triggerable & READABLE && connection.chunks.length) triggered |= READABLE;
      connection.triggered = 0;
      if (triggered) this.#trigger(triggered);
    } else if (radio.up) {
      radio.track(connection.socket);
      connection.socket.connect({ host: connection.remoteAddress, port: connection.remotePort, family: 4 });
    } else {
      // no association, no route: the connection fails as one the network dropped
      const socket = connection.socket;
      setImmediate(() => socket.destroy(new RadioError("no Wi-Fi association: the twin radio is cut")));
    }
  }

  get remoteAddress(): string {
    return this.#live("remoteAddress").remoteAddress;
  }

  get remotePort(): number {
    return this.#live("remotePort").remotePort;
  }

  get format(): Format {
    this.#open("format");
    return this.#format;
  }

  set format(value: Format) {
    this.#open("format");
    if (value === "buffer" || value === "number") this.#format = value;
    else if (["string", "socket/tcp", "uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64", "buffer/disposable"].includes(value as string))
      throw new RangeError(`unimplemented: TCP format ${JSON.stringify(value)}; the TCP socket supports "buffer" and "number"`);
    else throw new RangeError(`unknown: ${JSON.stringify(value)} is not an ECMA-419 format`);
  }

  /**
   * Buffer format: read() takes everything pending, read(count) exactly count bytes, read(buffer)
   * fills the whole buffer and returns its length. Number format: one byte. Undefined when
   * nothing is pending.
   */
  read(): ArrayBuffer | number | undefined;
  read(count: number): ArrayBuffer | undefined;
  read(buffer: BufferLike): number | undefined;
  read(request?: number | BufferLike): ArrayBuffer | number | undefined {
    const connection = this.#open("read");
    // lwIP ignores an argument in number format; a caller passing one has lost track of the format.
    if (this.#format === "number" && request !== undefined)
      throw new TcpSocketError("invalid", "TCP read: in number format read() takes no argument and returns one byte; set format = \"buffer\" to read a count or into a buffer");
    if (connection.chunks.length === 0) return undefined;
    if (this.#format === "number") return this.#take(connection, new Uint8Array(1))[0]!;
    const available = pendingBytes(connection);
    let out: Uint8Array;
    let fill = false;
    if (request === undefined) {
      const only = connection.chunks.length === 1 ? connection.chunks[0]! : undefined;
      // one received buffer read whole is handed over: nothing else holds it
      out = only && only.byteOffset === 0 && only.byteLength === only.buffer.byteLength ? only : new Uint8Array(available);
    } else if (typeof request === "number") {
      if (!Number.isInteger(request) || request <= 0 || request > available)
        throw new TcpSocketError("invalid", `TCP read(${request}): count must be an integer 1–${available} (bytes pending)`);
      out = new Uint8Array(request);
    } else {
      out = bytesOf(request, "read");
      fill = true;
      if (out.byteLength === 0 || out.byteLength > available)
        throw new TcpSocketError("invalid", `TCP read(buffer): the buffer's ${out.byteLength} bytes must be 1–${available} (bytes pending); read(buffer) always fills the whole buffer`);
    }
    this.#take(connection, out);
    return fill ? out.byteLength : out.buffer as ArrayBuffer;
  }

  /** Returns the send buffer space left; undefined (data dropped) once the connection has failed. */
  write(value: number | BufferLike, _options?: unknown): number | undefined {
    const connection = this.#open("write");
    if (!connection.ready)
      throw new TcpSocketError("not ready", connection.error
        ? "TCP write after the connection failed or the peer closed it; close this socket and connect again"
        : "TCP write before the connection is established; wait for onWritable");
    if (connection.dead) return undefined;
    let bytes: Uint8Array;
    if (this.#format === "number") {
      if (typeof value !== "number") throw new TypeError("TCP write: in number format write() takes one byte value; set format = \"buffer\" to write buffers");
      bytes = Uint8Array.of(value & 0xff);
    } else bytes = bytesOf(value, "write");
    const space = this.#space(connection);
    if (bytes.byteLength > space)
      throw new TcpSocketError("would block", `TCP write of ${bytes.byteLength} bytes with ${space} of ${SEND_BUFFER_BYTES} bytes of send buffer free; write at most what write()/onWritable last reported and wait for onWritable`);
    // lwIP copies (TCP_WRITE_FLAG_COPY): the caller may reuse its buffer at once.
    const copy = Buffer.from(bytes);
    connection.inFlight += copy.byteLength;
    connection.socket.write(copy, () => {
      connection.inFlight -= copy.byteLength;
      const owner = connection.owner;
      if (owner && !connection.dead) owner.#trigger(WRITABLE);
    });
    return this.#space(connection);
  }

  close(): void {
    const connection = this.#connection;
    if (!connection) return;
    this.#connection = undefined;
    this.#triggerable = 0;
    connection.owner = undefined;
    connection.triggered = 0;
    connection.socket.removeAllListeners();
    connection.socket.on("error", () => {});
    // lwIP's tcp_close sends what is queued, then FIN.
    connection.socket.destroySoon();
  }

  #surrender(): Connection {
    const connection = this.#connection;
    if (!connection) throw new TcpSocketError("invalid from", "the socket passed as from is closed");
    this.#connection = undefined;
    this.#triggerable = 0;
    connection.owner = undefined;
    connection.socket.removeAllListeners();
    return connection;
  }

  #open(operation: string): Connection {
    const connection = this.#connection;
    if (!connection) throw new TcpSocketError("closed", `TCP ${operation} on a closed socket`);
    return connection;
  }

  #live(operation: string): Connection {
    const connection = this.#open(operation);
    // On the board the pcb is freed on an error and reading these dereferences NULL.
    if (connection.dead) throw new TcpSocketError("closed", `TCP ${operation} after the connection failed; lwIP has freed it`);
    return connection;
  }

  #space(connection: Connection): number {
    return Math.max(0, SEND_BUFFER_BYTES - connection.inFlight);
  }

  #listen(connection: Connection): void {
    const socket = connection.socket;
    socket.on("connect", () => {
      connection.ready = true;
      this.#trigger(WRITABLE);
    });
    socket.on("data", (data: Buffer) => {
      // node:net gives every read a buffer of its own: keep a view, no copy
      connection.chunks.push(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      if (pendingBytes(connection) >= RECEIVE_WINDOW_BYTES) socket.pause();
      if (this.#triggerable & READABLE) this.#trigger(READABLE);
    });
    // A FIN from the peer: lwIP reports it as an error whether or not onError was given.
    socket.on("end", () => {
      if (connection.dead) return;
      connection.dead = true;
      this.#trigger(ERROR);
    });
    socket.on("error", () => {
      if (connection.dead) return;
      connection.dead = true;
      if (this.#triggerable & ERROR) this.#trigger(ERROR);
    });
  }

  #take(connection: Connection, out: Uint8Array): Uint8Array {
    let offset = 0;
    if (out === connection.chunks[0]) {
      connection.chunks.shift();
      offset = out.byteLength;
    }
    while (offset < out.byteLength) {
      const chunk = connection.chunks[0]!;
      const use = Math.min(chunk.byteLength, out.byteLength - offset);
      out.set(chunk.subarray(0, use), offset);
      offset += use;
      if (use === chunk.byteLength) connection.chunks.shift();
      else connection.chunks[0] = chunk.subarray(use);
    }
    if (connection.socket.isPaused() && pendingBytes(connection) < RECEIVE_WINDOW_BYTES) connection.socket.resume();
    if (connection.chunks.length === 0 && connection.error) this.#trigger(ERROR);
    return out;
  }

  #trigger(bits: number): void {
    const connection = this.#connection;
    if (!connection) return;
    const already = connection.triggered;
    connection.triggered |= bits;
    if (!already) setImmediate(() => this.#deliver(connection));
  }

  #deliver(connection: Connection): void {
    if (this.#connection !== connection) return;
    let triggered = connection.triggered;
    connection.triggered = 0;
    if (triggered & ERROR) {
      triggered &= ~WRITABLE;
      connection.error = true;
      connection.ready = false;
    }
    if (triggered & this.#triggerable & READABLE && connection.chunks.length)
      this.#onReadable!.call(this, pendingBytes(connection));
    if (this.#connection !== connection) return;
    if (connection.chunks.length && connection.error) return;
    if (!connection.error) {
      if (triggered & this.#triggerable & WRITABLE && !connection.dead) this.#onWritable!.call(this, this.#space(connection));
    } else if (this.#triggerable & ERROR) this.#onError!.call(this);
  }
}
