// A scripted MQTT 3.1.1 broker for tests: a node:net server on 127.0.0.1 that records every packet
// a client sends, raw bytes and mqtt-packet's reading of them, and sends whatever the test scripts.
// mqtt-packet is the independent judge of what the client under test puts on the wire.
import { createServer, type Server, type Socket } from "node:net";
import mqttPacket, { type Packet } from "mqtt-packet";

const DEFAULT_WAIT_MS = 5000;

/** Rejects with `what` if `promise` has not settled within `ms`. */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export interface Received {
  raw: Buffer;
  packet: Packet;
}

/** Splits a byte stream into whole MQTT packets (fixed header + remaining length). */
function takePacket(buffer: Buffer): Buffer | undefined {
  let length = 0;
  for (let i = 1; i <= 4; i++) {
    if (buffer.length <= i) return undefined;
    const byte = buffer[i]!;
    length += (byte & 0x7F) * 128 ** (i - 1);
    if (!(byte & 0x80)) return buffer.length >= 1 + i + length ? buffer.subarray(0, 1 + i + length) : undefined;
  }
  throw new Error(`malformed remaining length in ${buffer.subarray(0, 5).toString("hex")}`);
}

function parse(raw: Buffer): Packet {
  const parser = mqttPacket.parser({ protocolVersion: 4 });
  let result: Packet | undefined;
  let failure: Error | undefined;
  parser.on("packet", (packet: Packet) => (result = packet));
  parser.on("error", (error: Error) => (failure = error));
  parser.parse(raw);
  if (failure || !result) throw new Error(`mqtt-packet cannot parse ${raw.toString("hex")}: ${failure?.message ?? "incomplete"}`);
  return result;
}

export class PeerConnection {
  /** every packet received so far, in order */
  readonly received: Received[] = [];
  readonly closed: Promise<void>;
  #unread = 0;
  #pending = Buffer.alloc(0);
  #wake: (() => void) | undefined;
  #ended = false;

  constructor(readonly socket: Socket) {
    this.closed = new Promise((resolve) => socket.once("close", () => {
      this.#ended = true;
      this.#wake?.();
      resolve();
    }));
    socket.on("error", () => {});
    socket.on("data", (data: Buffer) => {
      this.#pending = Buffer.concat([this.#pending, data]);
      for (let raw = takePacket(this.#pending); raw; raw = takePacket(this.#pending)) {
        this.#pending = this.#pending.subarray(raw.length);
        this.received.push({ raw: Buffer.from(raw), packet: parse(raw) });
      }
      this.#wake?.();
    });
  }

  /** The next packet not yet returned by next()/expect(). */
  async next(ms = DEFAULT_WAIT_MS): Promise<Received> {
    const arrived = new Promise<void>((resolve) => {
      const check = () => {
        if (this.#unread < this.received.length || this.#ended) {
          this.#wake = undefined;
          resolve();
        } else this.#wake = check;
      };
      check();
    });
    await within(arrived, ms, "a packet from the client");
    const packet = this.received[this.#unread];
    if (!packet) throw new Error("the client closed the connection before sending another packet");
    this.#unread += 1;
    return packet;
  }

  /** next(), asserting its type. */
  async expect<C extends Packet["cmd"]>(cmd: C, ms = DEFAULT_WAIT_MS): Promise<Received & { packet: Extract<Packet, { cmd: C }> }> {
    const received = await this.next(ms);
    if (received.packet.cmd !== cmd) throw new Error(`expected ${cmd} from the client, got ${received.packet.cmd} (${received.raw.toString("hex")})`);
    return received as Received & { packet: Extract<Packet, { cmd: C }> };
  }

  send(packet: Packet): void {
    this.socket.write(mqttPacket.generate(packet, { protocolVersion: 4 }));
  }

  sendRaw(bytes: Uint8Array): void {
    this.socket.write(bytes);
  }

  /** mqtt-packet's encoding of a packet, for sending it in pieces. */
  static encode(packet: Packet): Buffer {
    return mqttPacket.generate(packet, { protocolVersion: 4 });
  }

  async waitClosed(ms = DEFAULT_WAIT_MS): Promise<void> {
    await within(this.closed, ms, "the client to close the connection");
  }

  destroy(): void {
    this.socket.destroy();
  }
}

export class MqttPeer {
  readonly #server: Server;
  readonly #connections: PeerConnection[] = [];
  #waiting: ((connection: PeerConnection) => void) | undefined;
  #taken = 0;

  private constructor(server: Server) {
    this.#server = server;
    server.on("connection", (socket) => {
      const connection = new PeerConnection(socket);
      this.#connections.push(connection);
      this.#waiting?.(connection);
    });
  }

  static async start(): Promise<MqttPeer> {
    const server = createServer();
    const peer = new MqttPeer(server);
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, "127.0.0.1", resolve);
    });
    return peer;
  }

  get port(): number {
    const address = this.#server.address();
    if (!address || typeof address === "string") throw new Error("peer is not listening");
    return address.port;
  }

  /** The next client connection not yet returned. */
  async accept(ms = DEFAULT_WAIT_MS): Promise<PeerConnection> {
    const arrived = this.#connections[this.#taken]
      ? Promise.resolve(this.#connections[this.#taken]!)
      : new Promise<PeerConnection>((resolve) => (this.#waiting = resolve));
    const connection = await within(arrived, ms, "a client to connect");
    this.#waiting = undefined;
    this.#taken += 1;
    return connection;
  }

  async close(): Promise<void> {
    for (const connection of this.#connections) connection.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

/**
 * Stands in for `embedded:network/dns/resolver/udp` on loopback: like Moddable's resolver with an
 * IPv4 literal, it answers on a later turn with the address itself; anything else fails.
 */
export class LoopbackResolver {
  constructor(readonly options: object) {}

  resolve(request: { host: string; onResolved(host: string, address: string): void; onError(): void }): void {
    setImmediate(() => {
      if (/^\d{1,3}(\.\d{1,3}){3}$/.test(request.host)) request.onResolved.call(this, request.host, request.host);
      else request.onError.call(this);
    });
  }
}
