// Moddable's ECMA-419 MQTT 3.1.1 client (`embedded:network/mqtt/client`, from
// examples/io/tcp/mqttclient) for the host twin. Same options, callbacks, packet ids and bytes on the
// wire, so firmware runs unchanged over the twin's TCP or TLS socket. Where Moddable's client would
// put a malformed packet on the wire, stall, or crash later, this one throws (firmware misuse) or
// reports through onError (broker input) at once, with the reason traced as Moddable traces its own.
//
// mqtt-packet is not used here: delivery must stream a payload out of the socket fragment by fragment
// (`more`), and outgoing packets are hand-built so the bytes are exactly Moddable's (the tests check
// them against mqtt-packet independently).
/// <reference path="../../node_modules/@moddable/typings/timer.d.ts" />
/// <reference path="../../node_modules/@moddable/typings/time.d.ts" />
import Timer from "timer";
import Time from "time";
import type { ControlMessage, ReadableOptions } from "embedded:network/mqtt/client";

declare const trace: (...parts: unknown[]) => void;

type Bytes = ArrayBuffer | ArrayBufferView;
type StringLike = string | ArrayBuffer;

// What firmware receives is declared once, for the firmware (types/moddable/mqtt-client.d.ts); what
// it passes in stays loosely typed here so the twin can refuse wrong values at run time.
export type { ControlMessage, ReadableOptions };

export interface Will {
  topic: StringLike;
  message: StringLike;
  QoS?: number;
  retain?: unknown;
}

export interface SubscribeItem {
  topic: StringLike;
  QoS?: number;
}

export interface WriteOptions {
  operation?: number;
  id?: number;
  topic?: StringLike;
  QoS?: number;
  retain?: unknown;
  duplicate?: unknown;
  byteLength?: number;
  items?: SubscribeItem[];
}

interface Socket {
  format: string;
  read(count?: number | Bytes): unknown;
  /** undefined once the connection has failed (lwIP drops the data) */
  write(data: Bytes, options?: object): number | undefined;
  close(): void;
}
type SocketConstructor = new (options: object) => Socket;

interface Resolver {
  resolve(request: { host: string; onResolved(host: string, address: string): void; onError(): void }): void;
}
type ResolverConstructor = new (options: object) => Resolver;

// `never` parameters accept any constructor (the twin's own socket and resolver classes, or doubles).
type AnyConstructor = new (options: never) => object;

export interface Options {
  host: string;
  port?: number;
  id?: StringLike;
  user?: StringLike;
  password?: StringLike;
  clean?: boolean;
  keepalive?: number;
  keepAlive?: number;
  will?: Will;
  format?: string;
  target?: unknown;
  dns: { io: AnyConstructor; [key: string]: unknown };
  socket: { io: AnyConstructor; [key: string]: unknown };
  onReadable?: (this: MQTTClient, count: number, options: ReadableOptions) => void;
  onWritable?: (this: MQTTClient, count: number) => void;
  onControl?: (this: MQTTClient, message: ControlMessage) => void;
  onError?: (this: MQTTClient) => void;
  onClose?: unknown;
}

export type MQTTClientErrorCode =
  | "EOPTIONS"      // constructor or write options Moddable would turn into a malformed packet
  | "ENOTCONNECTED" // write before CONNACK
  | "ECLOSED"       // use after close() or after onError
  | "EFRAGMENT"     // fragmented publish misuse
  | "EPACKETID"     // a packet id Moddable would put on the wire as 0 or truncated
  | "ETOPIC"        // topic or topic filter MQTT forbids
  | "EQOS"          // QoS outside 0..2
  | "EREAD"         // read outside a delivered payload fragment
  | "EBROKER"       // broker bytes that make Moddable's client throw inside a socket callback
  | "EOVERFLOW";    // the packet does not fit in what the socket can take now

/** Firmware misuse the board would not catch (or would catch only later, as a broken connection). */
export class MQTTClientError extends Error {
  override readonly name = "MQTTClientError";
  constructor(readonly code: MQTTClientErrorCode, message: string, readonly detail?: string) {
    super(message);
  }
}

// Moddable throws `new Error("overflow")`; firmware may compare the message, so it stays exactly that
// and the explanation goes in `detail`.
function overflow(needed: number, writable: number): MQTTClientError {
  return new MQTTClientError("EOVERFLOW", "overflow",
    `packet needs ${needed} bytes, the socket takes ${writable} now: wait for onWritable(count) and write at most count bytes`);
}

const CONNECT = 1, CONNACK = 2, PUBLISH = 3, PUBACK = 4, PUBREC = 5, PUBREL = 6, PUBCOMP = 7;
const SUBSCRIBE = 8, SUBACK = 9, UNSUBSCRIBE = 10, UNSUBACK = 11, PINGREQ = 12, PINGRESP = 13, DISCONNECT = 14;
const NAMES = ["reserved", "CONNECT", "CONNACK", "PUBLISH", "PUBACK", "PUBREC", "PUBREL", "PUBCOMP", "SUBSCRIBE",
  "SUBACK", "UNSUBSCRIBE", "UNSUBACK", "PINGREQ", "PINGRESP", "DISCONNECT", "reserved"];
const CONNACK_CODES = ["accepted", "unacceptable protocol version", "identifier rejected", "server unavailable",
  "bad user name or password", "not authorized"];

// Moddable reports writable space minus this, leaving room for a small control packet.
const OVERHEAD = 8;
const CONNECT_TIMEOUT_MS = 30_000;
const MAX_REMAINING_LENGTH = 268_435_455;

// What an MQTT 3.1.1 server may send besides PUBLISH: fixed-header flags and remaining length range.
// Moddable's parser accepts more (any zero-length packet reaches onControl); a broker never sends it.
const FROM_SERVER: Readonly<Record<number, readonly [flags: number, min: number, max: number]>> = {
  [CONNACK]: [0, 2, 2], [PUBACK]: [0, 2, 2], [PUBREC]: [0, 2, 2], [PUBREL]: [2, 2, 2], [PUBCOMP]: [0, 2, 2],
  [SUBACK]: [0, 3, MAX_REMAINING_LENGTH], [UNSUBACK]: [0, 2, 2], [PINGRESP]: [0, 0, 0],
};

const encoder = new TextEncoder();
const utf8 = new TextDecoder("utf-8", { fatal: true });

function describe(value: unknown): string {
  return typeof value === "string" ? JSON.stringify(value) : String(value);
}

function isBytes(value: unknown): value is Bytes {
  return value instanceof ArrayBuffer || ArrayBuffer.isView(value);
}

function bytesOf(value: Bytes): Uint8Array {
  return value instanceof ArrayBuffer ? new Uint8Array(value) : new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
}

// Moddable encodes strings with ArrayBuffer.fromString, which on XS emits lone surrogates as
// invalid UTF-8; rejecting them keeps the twin's bytes identical to the board's for every accepted input.
function stringBytes(value: unknown, what: string, textual: boolean, code: MQTTClientErrorCode = "EOPTIONS"): Uint8Array {
  let bytes: Uint8Array;
  if (typeof value === "string") {
    if (/\p{Cs}/u.test(value))
      throw new MQTTClientError(code, `${what} contains a lone surrogate, which is not UTF-8 (the board would send invalid bytes)`);
    bytes = encoder.encode(value);
  } else if (value instanceof ArrayBuffer) {
    bytes = new Uint8Array(value.slice(0));
    if (textual) {
      try {
        utf8.decode(bytes);
      } catch {
        throw new MQTTClientError(code, `${what} is not valid UTF-8; MQTT requires UTF-8 here and the broker would drop the connection`);
      }
    }
  } else {
    throw new MQTTClientError(code, `${what} must be a string or an ArrayBuffer, not ${describe(value)}`);
  }
  if (textual && bytes.includes(0))
    throw new MQTTClientError(code, `${what} contains U+0000, which MQTT forbids in strings`);
  if (bytes.length > 0xFFFF)
    throw new MQTTClientError(code, `${what} is ${bytes.length} bytes; MQTT strings hold at most 65535 (Moddable would truncate the length prefix)`);
  return bytes;
}

function lengthPrefixed(bytes: Uint8Array): Uint8Array {
  const result = new Uint8Array(bytes.length + 2);
  result[0] = bytes.length >> 8;
  result[1] = bytes.length & 0xFF;
  result.set(bytes, 2);
  return result;
}

function topicName(topic: unknown, what: string): Uint8Array {
  if (topic === undefined)
    throw new MQTTClientError("ETOPIC", `${what} is missing: Moddable would send a PUBLISH without a topic`);
  const bytes = stringBytes(topic, what, true, "ETOPIC");
  if (bytes.length === 0)
    throw new MQTTClientError("ETOPIC", `${what} is empty; MQTT topic names have at least one character`);
  if (bytes.includes(0x23) || bytes.includes(0x2B))
    throw new MQTTClientError("ETOPIC", `${what} ${describe(typeof topic === "string" ? topic : utf8.decode(bytes))} contains a wildcard (+ or #): only SUBSCRIBE filters may; the broker would close the connection`);
  return lengthPrefixed(bytes);
}

function topicFilter(topic: unknown, what: string): Uint8Array {
  const bytes = stringBytes(topic, what, true, "ETOPIC");
  if (bytes.length === 0)
    throw new MQTTClientError("ETOPIC", `${what} is empty; MQTT topic filters have at least one character`);
  const levels = utf8.decode(bytes).split("/");
  levels.forEach((level, index) => {
    if ((level.includes("#") && (level !== "#" || index !== levels.length - 1)) || (level.includes("+") && level !== "+"))
      throw new MQTTClientError("ETOPIC", `${what} ${describe(levels.join("/"))}: "+" must fill a whole level and "#" must be the whole last level`);
  });
  return lengthPrefixed(bytes);
}

function checkQoS(QoS: unknown, what: string): 0 | 1 | 2 {
  if (QoS !== 0 && QoS !== 1 && QoS !== 2)
    throw new MQTTClientError("EQOS", `${what} is ${describe(QoS)}; MQTT QoS is 0, 1 or 2 (Moddable would send ${describe(Number(QoS) & 3)} in the flags)`);
  return QoS;
}

function remainingLengthBytes(length: number): number[] {
  const out: number[] = [];
  do {
    let byte = length % 128;
    length = Math.floor(length / 128);
    if (length > 0) byte |= 0x80;
    out.push(byte);
  } while (length > 0);
  return out;
}

function packet(first: number, remaining: number, ...parts: Uint8Array[]): Uint8Array {
  const header = [first, ...remainingLengthBytes(remaining)];
  const result = new Uint8Array(header.length + parts.reduce((sum, part) => sum + part.length, 0));
  result.set(header, 0);
  let offset = header.length;
  for (const part of parts) {
    result.set(part, offset);
    offset += part.length;
  }
  return result;
}

function u16(value: number): Uint8Array {
  return Uint8Array.of((value >> 8) & 0xFF, value & 0xFF);
}

type State = "resolving" | "connecting" | "login" | "connected" | "publishing" | "closed";

interface Queued {
  operation: number;
  id?: number;
  byteLength: number;
  keepalive?: true;
}

interface Keepalive {
  timer: Timer;
  interval: number;
  read: number;
  write: number;
}

interface ConnectDetails {
  id: Uint8Array;
  user?: Uint8Array;
  password?: Uint8Array;
  will?: { topic: Uint8Array; message: Uint8Array; QoS: number; retain: boolean };
  clean: boolean;
  keepalive: number;
}

// The incoming-byte state machine: a fixed header, then a body collected whole (a PUBLISH's
// topic and packet id, or a whole control packet), then for a PUBLISH its payload streamed out.
type Rx =
  | { phase: "header"; type: number; flags: number; length: number; lengthBytes: number }
  | { phase: "body"; type: number; flags: number; length: number; body: Uint8Array; filled: number }
  | { phase: "payload"; QoS: number; id: number; remaining: number; first?: { topic: string; byteLength: number; QoS: number } };

function freshHeader(): Rx {
  return { phase: "header", type: -1, flags: 0, length: 0, lengthBytes: 0 };
}

export default class MQTTClient {
  static readonly CONNECT = CONNECT;
  static readonly CONNACK = CONNACK;
  static readonly PUBLISH = PUBLISH;
  static readonly PUBACK = PUBACK;
  static readonly PUBREC = PUBREC;
  static readonly PUBREL = PUBREL;
  static readonly PUBCOMP = PUBCOMP;
  static readonly SUBSCRIBE = SUBSCRIBE;
  static readonly SUBACK = SUBACK;
  static readonly UNSUBSCRIBE = UNSUBSCRIBE;
  static readonly UNSUBACK = UNSUBACK;
  static readonly PINGREQ = PINGREQ;
  static readonly PINGRESP = PINGRESP;
  static readonly DISCONNECT = DISCONNECT;

  declare target: unknown;

  #state: State = "resolving";
  #dnsPending = true;
  #socket: Socket | undefined;
  #callbacks: Pick<Options, "onReadable" | "onWritable" | "onControl" | "onError">;
  #connect: ConnectDetails | undefined;
  #keepalive: Keepalive | undefined;
  #connecting: Timer | undefined;
  #pending: Queued[] = [];
  #pendingTimer: Timer | undefined;
  #resumeTimer: Timer | undefined;
  #writable = 0;
  #readable = 0;
  #payload = 0;
  #remaining = 0;
  #rx: Rx = freshHeader();
  #parsing = false;
  #id = 1;

  constructor(options: Options) {
    if (typeof options !== "object" || options === null)
      throw new MQTTClientError("EOPTIONS", "new MQTTClient(options): options must be an object");
    this.format = options.format ?? "buffer";
    if (options.target !== undefined) this.target = options.target;

    const { host, port } = options;
    if (typeof host !== "string" || host === "")
      throw new MQTTClientError("EOPTIONS", "host required: pass the broker's name or IPv4 address as options.host");
    if (port !== undefined && (!Number.isInteger(port) || port < 1 || port > 65535))
      throw new MQTTClientError("EOPTIONS", `port ${describe(port)} is not a TCP port (1–65535); omit it for 1883`);
    if (options.onClose !== undefined)
      throw new MQTTClientError("EOPTIONS", "onClose is never called by Moddable's MQTT client: a broker or socket close arrives as onError(), so handle it there");
    for (const name of ["onReadable", "onWritable", "onControl", "onError"] as const) {
      if (options[name] !== undefined && typeof options[name] !== "function")
        throw new MQTTClientError("EOPTIONS", `${name} must be a function`);
    }
    this.#callbacks = { onReadable: options.onReadable, onWritable: options.onWritable, onControl: options.onControl, onError: options.onError };
    this.#connect = connectDetails(options);

    const { dns, socket } = options;
    if (typeof dns?.io !== "function")
      throw new MQTTClientError("EOPTIONS", "options.dns must be {io: Resolver, servers: [...], socket: {io: UDP}} (as in Moddable's mqttsclient config.js)");
    if (typeof socket?.io !== "function")
      throw new MQTTClientError("EOPTIONS", "options.socket must be {io: TCP} or {io: TLSSocket, TCP: {io: TCP}, secure: {...}}");

    const Resolver = dns.io as unknown as ResolverConstructor;
    const Socket = socket.io as unknown as SocketConstructor;
    new Resolver(dns).resolve({
      host,
      onResolved: (resolvedHost, address) => {
        this.#dnsPending = false;
        if (this.#state === "closed") return;
        this.#state = "connecting";
        try {
          this.#socket = new Socket({
            ...socket,
            address,
            host: resolvedHost,
            port: port ?? 1883,
            onReadable: (count: number) => this.#onSocketReadable(count),
            onWritable: (count: number) => this.#onSocketWritable(count),
            onError: (error?: unknown) => this.#fail(`socket error${error === undefined ? "" : `: ${error instanceof Error ? error.message : String(error)}`}`),
          });
        } catch (error) {
          return void this.#fail(`socket could not be created: ${error instanceof Error ? error.message : String(error)}`);
        }
        this.#socket.format = "buffer";
        this.#connecting = Timer.set(() => {
          this.#connecting = undefined;
          this.#fail(`no connection to ${host}:${port ?? 1883} (TCP, and TLS handshake if any) within ${CONNECT_TIMEOUT_MS / 1000} s`);
        }, CONNECT_TIMEOUT_MS);
      },
      onError: () => {
        this.#dnsPending = false;
        if (this.#state !== "closed") this.#fail(`DNS could not resolve ${describe(host)}`);
      },
    });
  }

  get format(): string {
    return "buffer";
  }

  set format(value: string) {
    if (value !== "buffer") throw new RangeError(`MQTTClient: format ${describe(value)} is not supported; Moddable's client only has "buffer"`);
  }

  close(): void {
    const resolving = this.#dnsPending && this.#state !== "closed";
    Timer.clear(this.#pendingTimer);
    Timer.clear(this.#resumeTimer);
    Timer.clear(this.#keepalive?.timer);
    Timer.clear(this.#connecting);
    this.#pendingTimer = this.#resumeTimer = this.#connecting = this.#keepalive = undefined;
    this.#state = "closed";
    this.#socket?.close();
    this.#socket = undefined;
    this.#writable = this.#readable = this.#payload = this.#remaining = 0;
    this.#pending = [];
    this.#connect = undefined;
    if (resolving)
      throw new MQTTClientError("ECLOSED", "close() while the broker's name is still resolving: on the board the DNS callback then " +
        "dereferences the closed client and throws inside the resolver, aborting the VM. Wait for onError (DNS failure or the 30 s " +
        "connect timeout) or the CONNACK before closing");
  }

  write(data: Bytes | null, options?: WriteOptions): number {
    const socket = this.#socket;
    if (this.#state === "closed")
      throw new MQTTClientError("ECLOSED", "write on a closed MQTTClient (closed by close() or after onError): create a new client to reconnect");
    if ((this.#state !== "connected" && this.#state !== "publishing") || !socket)
      throw new MQTTClientError("ENOTCONNECTED", `write before CONNACK (state ${this.#state}): wait for onControl({operation: CONNACK}) or the first onWritable`);
    if (this.#state === "publishing") return this.#continuePublish(socket, data, options);
    if (typeof options !== "object" || options === null)
      throw new MQTTClientError("EOPTIONS", "write(data, options) needs options: {topic, QoS?, retain?, byteLength?} to publish or {operation, ...}; only the continuation of a fragmented publish has none");

    const id = options.id ?? ++this.#id;
    const operation = options.operation ?? PUBLISH;
    if (operation !== PUBLISH && data !== null && data !== undefined)
      throw new MQTTClientError("EOPTIONS", `write(data, {operation: ${NAMES[operation] ?? operation}}) carries no data: pass null`);
    switch (operation) {
      case PUBLISH:
        this.#publish(socket, data, options, id);
        break;
      case SUBSCRIBE:
      case UNSUBSCRIBE:
        this.#subscription(socket, operation, options.items, this.#packetId(id, options.id, NAMES[operation]!));
        break;
      case PUBACK:
      case PUBREC:
      case PUBREL:
      case PUBCOMP:
        if (options.id === undefined)
          throw new MQTTClientError("EPACKETID", `${NAMES[operation]} needs options.id, the id of the packet it answers (the client already answers incoming packets itself)`);
        this.#send(socket, operation, this.#packetId(id, options.id, NAMES[operation]!));
        break;
      case PINGREQ:
      case DISCONNECT:
        this.#send(socket, operation, id);
        break;
      default:
        throw new MQTTClientError("EOPTIONS", `operation ${describe(operation)} cannot be written; use PUBLISH, SUBSCRIBE, UNSUBSCRIBE, PUBACK, PUBREC, PUBREL, PUBCOMP, PINGREQ or DISCONNECT`);
    }
    return this.#available();
  }

  read(count?: number | Bytes): unknown {
    const socket = this.#socket;
    if (this.#state === "closed" || !socket)
      throw new MQTTClientError("ECLOSED", "read on a closed MQTTClient");
    let buffer: Bytes | undefined;
    let n: number;
    if (count === undefined) n = this.#payload;
    else if (typeof count === "object") {
      if (!isBytes(count) || ("BYTES_PER_ELEMENT" in count && (count as { BYTES_PER_ELEMENT: number }).BYTES_PER_ELEMENT > 1))
        throw new MQTTClientError("EREAD", "invalid buffer", "read(buffer) takes an ArrayBuffer, DataView or byte-sized typed array");
      buffer = count;
      n = count.byteLength;
    } else n = count;
    if (!Number.isInteger(n) || n < 0 || (n === 0 && (count !== undefined || this.#payload === 0)))
      throw new MQTTClientError("EREAD", count === undefined
        ? "read() with no payload pending: read in onReadable(count) (or later), at most count bytes of each fragment"
        : `read(${typeof count === "object" ? "a buffer of 0 bytes" : describe(count)}): read a positive count of payload bytes`);
    if (n > this.#payload) {
      n = this.#payload;
      if (n === 0) return undefined;
      if (buffer) buffer = ArrayBuffer.isView(buffer) ? new Uint8Array(buffer.buffer, buffer.byteOffset, n) : new Uint8Array(buffer, 0, n);
    }
    this.#readable -= n;
    this.#payload -= n;
    const result = socket.read(buffer ?? n);
    if (this.#payload === 0 && !this.#parsing) {
      // Parsing stopped at this fragment; pick up what the socket holds after it.
      this.#resumeTimer ??= Timer.set(() => {
        this.#resumeTimer = undefined;
        if (this.#readable > 0) this.#onSocketReadable(this.#readable);
      });
    }
    return result;
  }

  #isOpen(): boolean {
    return this.#state !== "closed";
  }

  // A failed connection's socket returns undefined until its onError arrives; counting that as no
  // room makes writes in between throw "overflow" rather than vanish.
  #written(socket: Socket, bytes: Uint8Array): void {
    this.#writable = socket.write(bytes) ?? 0;
  }

  #available(): number {
    return this.#writable > OVERHEAD ? this.#writable - OVERHEAD : 0;
  }

  #packetId(id: number, explicit: number | undefined, what: string): number {
    if (explicit !== undefined && (!Number.isInteger(explicit) || explicit < 1 || explicit > 0xFFFF))
      throw new MQTTClientError("EPACKETID", `${what} options.id ${describe(explicit)} is not a packet id (1–65535)`);
    if ((id & 0xFFFF) === 0)
      throw new MQTTClientError("EPACKETID", `${what} would carry packet id 0: Moddable's client counts ids up without wrapping, so after 65534 ` +
        "writes on one connection it sends id 0, a protocol error the broker disconnects for. Reconnect (a new client) before that, or pass options.id");
    return id & 0xFFFF;
  }

  #publish(socket: Socket, data: Bytes | null, options: WriteOptions, id: number): void {
    if (!isBytes(data))
      throw new MQTTClientError("EOPTIONS", "PUBLISH data must be an ArrayBuffer or a view of one (use ArrayBuffer.fromString for text)");
    const QoS = checkQoS(options.QoS ?? 0, "PUBLISH QoS");
    const topic = topicName(options.topic, "PUBLISH topic");
    const byteLength = options.byteLength ?? data.byteLength;
    if (!Number.isInteger(byteLength) || byteLength < data.byteLength)
      throw new MQTTClientError("EFRAGMENT", `PUBLISH byteLength ${describe(byteLength)} is less than this write's ${data.byteLength} bytes: ` +
        "byteLength is the whole payload; the first write may carry part of it");
    if (options.duplicate && QoS === 0)
      throw new MQTTClientError("EOPTIONS", "PUBLISH duplicate with QoS 0: MQTT forbids the DUP flag on QoS 0 messages");
    const packetId = QoS ? u16(this.#packetId(id, options.id, "PUBLISH")) : new Uint8Array(0);
    const remaining = topic.length + packetId.length + byteLength;
    if (remaining > MAX_REMAINING_LENGTH)
      throw new MQTTClientError("EOPTIONS", `PUBLISH of ${byteLength} bytes exceeds MQTT's largest packet (${MAX_REMAINING_LENGTH} bytes remaining length)`);
    const bytes = packet((PUBLISH << 4) | (options.duplicate ? 8 : 0) | (QoS << 1) | (options.retain ? 1 : 0),
      remaining, topic, packetId, bytesOf(data));
    if (bytes.length > this.#writable) throw overflow(bytes.length, this.#writable);
    this.#written(socket, bytes);
    if (data.byteLength < byteLength) {
      this.#state = "publishing";
      this.#remaining = byteLength - data.byteLength;
    }
  }

  #continuePublish(socket: Socket, data: Bytes | null, options: WriteOptions | undefined): number {
    if (options !== undefined)
      throw new MQTTClientError("EFRAGMENT", `a fragmented PUBLISH still owes ${this.#remaining} payload bytes: write them with write(data) and no options before anything else`);
    if (!isBytes(data))
      throw new MQTTClientError("EFRAGMENT", `a fragmented PUBLISH still owes ${this.#remaining} payload bytes: continue with write(data), data an ArrayBuffer or view`);
    if (data.byteLength > this.#remaining)
      throw new MQTTClientError("EFRAGMENT", `write of ${data.byteLength} bytes overruns the fragmented PUBLISH, which owes only ${this.#remaining}`);
    if (data.byteLength > this.#writable) throw overflow(data.byteLength, this.#writable);
    this.#written(socket, bytesOf(data));
    this.#remaining -= data.byteLength;
    // Acks queued meanwhile go out on the socket's next onWritable, which every write brings.
    if (this.#remaining === 0) this.#state = "connected";
    return this.#available();
  }

  #subscription(socket: Socket, operation: number, items: SubscribeItem[] | undefined, id: number): void {
    const name = NAMES[operation]!;
    if (!Array.isArray(items) || items.length === 0)
      throw new MQTTClientError("EOPTIONS", `${name} needs items: [{topic${operation === SUBSCRIBE ? ", QoS?" : ""}}, ...], at least one`);
    const parts: Uint8Array[] = [u16(id)];
    items.forEach((item, index) => {
      parts.push(topicFilter(item?.topic, `${name} items[${index}].topic`));
      if (operation === SUBSCRIBE) parts.push(Uint8Array.of(checkQoS(item.QoS ?? 0, `SUBSCRIBE items[${index}].QoS`)));
    });
    const bytes = packet((operation << 4) | 2, parts.reduce((sum, part) => sum + part.length, 0), ...parts);
    if (bytes.length > this.#writable) throw overflow(bytes.length, this.#writable);
    this.#written(socket, bytes);
  }

  #send(socket: Socket, operation: number, id: number): void {
    if (operation === PINGREQ || operation === DISCONNECT) {
      if (operation === PINGREQ && this.#keepalive) this.#keepalive.write = Time.ticks;
      if (this.#writable < 2) throw overflow(2, this.#writable);
      this.#written(socket, Uint8Array.of(operation << 4, 0));
      return;
    }
    if (this.#writable < 4) throw overflow(4, this.#writable);
    this.#written(socket, packet((operation << 4) | (operation === PUBREL ? 2 : 0), 2, u16(id)));
  }

  #onSocketWritable(count: number): void {
    const socket = this.#socket;
    if (this.#state === "closed" || !socket) return;
    this.#writable = count;
    if (this.#state === "connecting") {
      Timer.clear(this.#connecting);
      this.#connecting = undefined;
      this.#sendConnect(socket);
      return;
    }
    if (this.#state === "connected") {
      while (this.#pending.length) {
        const next = this.#pending[0]!;
        if (this.#writable < next.byteLength) return;
        this.#pending.shift();
        this.#send(socket, next.operation, next.id ?? ++this.#id);
      }
    }
    if (this.#state === "connected" || this.#state === "publishing") {
      if (this.#writable > OVERHEAD) this.#callbacks.onWritable?.call(this, this.#writable - OVERHEAD);
    }
  }

  #sendConnect(socket: Socket): void {
    const connect = this.#connect!;
    this.#connect = undefined;
    const will = connect.will;
    const flags = (connect.clean ? 0x02 : 0) | (connect.user ? 0x80 : 0) | (connect.password ? 0x40 : 0) |
      (will ? 0x04 | (will.retain ? 0x20 : 0) | (will.QoS << 3) : 0);
    const parts = [Uint8Array.of(0, 4, 0x4D, 0x51, 0x54, 0x54, 4, flags, connect.keepalive >> 8, connect.keepalive & 0xFF), connect.id];
    if (will) parts.push(will.topic, will.message);
    if (connect.user) parts.push(connect.user);
    if (connect.password) parts.push(connect.password);
    this.#written(socket, packet(CONNECT << 4, parts.reduce((sum, part) => sum + part.length, 0), ...parts));
    this.#state = "login";
    if (connect.keepalive) {
      const interval = connect.keepalive * 1000;
      const now = Time.ticks;
      this.#keepalive = { timer: Timer.repeat(() => this.#keepaliveTick(), connect.keepalive * 250), interval, read: now, write: now };
    }
  }

  // Same schedule as Moddable: a tick every quarter interval, a PINGREQ once 3/4 of the interval
  // (less 500 ms) has passed since the last one, and failure when no PINGRESP came in 1.5 intervals.
  #keepaliveTick(): void {
    const keepalive = this.#keepalive!;
    const now = Time.ticks;
    const interval = keepalive.interval;
    if (Time.delta(keepalive.read, now) >= interval + (interval >> 1))
      return void this.#fail(`time out: no PINGRESP within 1.5 × the ${interval / 1000} s keepalive`);
    if (Time.delta(keepalive.write, now) < ((interval >> 2) * 3) - 500) return;
    if (this.#pending.some((queued) => queued.keepalive))
      return void this.#fail("time out: the previous keepalive PINGREQ could not be sent (socket not writable, or no CONNACK yet)");
    this.#queue({ operation: PINGREQ, byteLength: 2, keepalive: true });
  }

  #queue(message: Queued): void {
    this.#pending.push(message);
    this.#schedulePending();
  }

  #schedulePending(): void {
    this.#pendingTimer ??= Timer.set(() => {
      this.#pendingTimer = undefined;
      this.#onSocketWritable(this.#writable);
    });
  }

  #fail(reason: string): void {
    if (this.#state === "closed") return;
    trace("mqttClient error: ", reason, "\n");
    this.#callbacks.onError?.call(this);
    this.close();
  }

  #onSocketReadable(count: number): void {
    if (this.#state === "closed") return;
    this.#readable = count;
    if (this.#payload || this.#parsing) return;
    this.#parsing = true;
    try {
      while (this.#isOpen() && this.#payload === 0 && this.#readable > 0) this.#step(this.#socket!);
    } finally {
      this.#parsing = false;
    }
  }

  #readBytes(socket: Socket, count: number): Uint8Array {
    const data = socket.read(count);
    if (!(data instanceof ArrayBuffer) || data.byteLength !== count)
      throw new Error(`MQTTClient: socket.read(${count}) returned ${describe(data)} though onReadable reported ${this.#readable} bytes: the socket broke its contract`);
    this.#readable -= count;
    return new Uint8Array(data);
  }

  #step(socket: Socket): void {
    const rx = this.#rx;
    switch (rx.phase) {
      case "header": {
        const byte = this.#readBytes(socket, 1)[0]!;
        if (rx.type < 0) {
          rx.type = byte >> 4;
          rx.flags = byte & 0x0F;
          return;
        }
        rx.length += (byte & 0x7F) * 128 ** rx.lengthBytes;
        rx.lengthBytes += 1;
        if (byte & 0x80) {
          if (rx.lengthBytes === 4) this.#fail(`${NAMES[rx.type]} with a remaining length longer than 4 bytes`);
          return;
        }
        return this.#begin(rx.type, rx.flags, rx.length);
      }
      case "body": {
        const take = Math.min(rx.body.length - rx.filled, this.#readable);
        rx.body.set(this.#readBytes(socket, take), rx.filled);
        rx.filled += take;
        if (rx.filled === rx.body.length) this.#bodyComplete(rx);
        return;
      }
      case "payload": {
        const available = Math.min(rx.remaining, this.#readable);
        rx.remaining -= available;
        this.#payload = available;
        const more = rx.remaining !== 0;
        const options: ReadableOptions = rx.first ? { ...rx.first, more } : { more };
        rx.first = undefined;
        if (!more) {
          if (rx.QoS) this.#queue({ operation: rx.QoS === 1 ? PUBACK : PUBREC, id: rx.id, byteLength: 4 });
          this.#rx = freshHeader();
        }
        this.#callbacks.onReadable!.call(this, available, options);
        return;
      }
    }
  }

  #begin(type: number, flags: number, length: number): void {
    const name = NAMES[type]!;
    if (type === PUBLISH) {
      const QoS = (flags >> 1) & 3;
      if (QoS === 3) return void this.#fail("malformed PUBLISH from the broker: QoS 3");
      if (length < 2 + (QoS ? 2 : 0)) return void this.#fail(`malformed PUBLISH from the broker: remaining length ${length}`);
    } else {
      const shape = FROM_SERVER[type];
      if (!shape) return void this.#fail(`unexpected ${name} (packet type ${type}) from the broker: an MQTT 3.1.1 server never sends it`);
      if (flags !== shape[0] || length < shape[1] || length > shape[2])
        return void this.#fail(`malformed ${name} from the broker: flags ${flags}, remaining length ${length}`);
    }
    if ((this.#state === "login") !== (type === CONNACK))
      return void this.#fail(this.#state === "login" ? `${name} before CONNACK` : "second CONNACK on one connection");
    // A PUBLISH body is first just the topic length; #bodyComplete widens it once that is known.
    this.#rx = { phase: "body", type, flags, length, body: new Uint8Array(type === PUBLISH ? 2 : length), filled: 0 };
    if (length === 0) this.#bodyComplete(this.#rx);
  }

  #bodyComplete(rx: Extract<Rx, { phase: "body" }>): void {
    const { type, flags, length, body } = rx;
    if (type !== PUBLISH) {
      this.#rx = freshHeader();
      return this.#control(type, body);
    }
    const QoS = (flags >> 1) & 3;
    const topicLength = (body[0]! << 8) | body[1]!;
    const header = 2 + topicLength + (QoS ? 2 : 0);
    if (body.length === 2) {
      if (topicLength === 0) return void this.#fail("empty topic");
      if (header > length) return void this.#fail(`malformed PUBLISH from the broker: topic of ${topicLength} bytes in a ${length}-byte packet`);
      const widened = new Uint8Array(header);
      widened.set(body);
      this.#rx = { ...rx, body: widened };
      return;
    }
    let topic: string;
    try {
      topic = utf8.decode(body.subarray(2, 2 + topicLength));
    } catch {
      this.close();
      throw new MQTTClientError("EBROKER", "the broker sent a PUBLISH whose topic is not UTF-8: on the board String.fromArrayBuffer throws inside the socket callback and aborts the VM");
    }
    const byteLength = length - header;
    if (byteLength === 0)
      return void this.#fail(`zero-length PUBLISH on ${describe(topic)}: Moddable's client never reads past an empty payload, so the ` +
        "connection stalls (and, with keepalive, times out). Do not subscribe to topics that carry empty or retained-clear messages");
    if (!this.#callbacks.onReadable)
      return void this.#fail(`PUBLISH on ${describe(topic)} but no onReadable callback: Moddable's client would wait forever for the payload to be read`);
    const id = QoS ? (body[header - 2]! << 8) | body[header - 1]! : 0;
    if (QoS && id === 0) return void this.#fail(`malformed PUBLISH from the broker: QoS ${QoS} with packet id 0`);
    this.#rx = { phase: "payload", QoS, id, remaining: byteLength, first: { topic, byteLength, QoS } };
  }

  #control(type: number, body: Uint8Array): void {
    const message: ControlMessage = { operation: type };
    if (type === CONNACK) {
      const returnCode = body[1]!;
      if (returnCode !== 0)
        return void this.#fail(`connection rejected (CONNACK return code ${returnCode}: ${CONNACK_CODES[returnCode] ?? "unknown"})`);
      this.#state = "connected";
      message.returnCode = returnCode;
    } else if (type === PINGRESP) {
      if (this.#keepalive) this.#keepalive.read = Time.ticks;
    } else {
      message.id = (body[0]! << 8) | body[1]!;
      if (type === SUBACK) message.payload = Array.from(body.subarray(2));
      if (type === PUBREC) this.#queue({ operation: PUBREL, id: message.id, byteLength: 4 });
      else if (type === PUBREL) this.#queue({ operation: PUBCOMP, id: message.id, byteLength: 4 });
    }
    this.#callbacks.onControl?.call(this, message);
    if (type === CONNACK && this.#state !== "closed" && this.#writable > OVERHEAD)
      this.#callbacks.onWritable?.call(this, this.#writable - OVERHEAD);
  }
}

function connectDetails(options: Options): ConnectDetails {
  const keepaliveMs = options.keepAlive ?? options.keepalive ?? 0;
  if (typeof keepaliveMs !== "number" || !Number.isFinite(keepaliveMs) || keepaliveMs < 0 || Math.ceil(keepaliveMs / 1000) > 0xFFFF)
    throw new MQTTClientError("EOPTIONS", `keepalive ${describe(keepaliveMs)} ms: give milliseconds, 0 (off) up to 65535000`);
  if (options.clean !== undefined && typeof options.clean !== "boolean")
    throw new MQTTClientError("EOPTIONS", `clean must be true or false, not ${describe(options.clean)}`);
  const details: ConnectDetails = {
    id: lengthPrefixed(stringBytes(options.id ?? "", "client id", true)),
    clean: options.clean ?? true,
    keepalive: Math.ceil(keepaliveMs / 1000),
  };
  // Moddable keeps user, password and will only when truthy, so "" means absent, as here.
  if (options.user) details.user = lengthPrefixed(stringBytes(options.user, "user", true));
  if (options.password) {
    if (!details.user)
      throw new MQTTClientError("EOPTIONS", "password without user: MQTT 3.1.1 forbids it and the broker would drop the connection; pass user too");
    details.password = lengthPrefixed(stringBytes(options.password, "password", false));
  }
  const will = options.will;
  if (will) {
    if (will.message === undefined)
      throw new MQTTClientError("EOPTIONS", "will.message is missing: Moddable would send the will topic without the will flag (a malformed CONNECT)");
    details.will = {
      topic: topicName(will.topic, "will.topic"),
      message: lengthPrefixed(stringBytes(will.message, "will.message", false)),
      QoS: checkQoS(will.QoS ?? 0, "will.QoS"),
      retain: Boolean(will.retain),
    };
  }
  return details;
}

// Preloaded on the board, so the class and its prototype are frozen there.
Object.freeze(MQTTClient);
Object.freeze(MQTTClient.prototype);
