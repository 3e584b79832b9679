// ECMA-419 UDP socket (Moddable's `embedded:io/socket/udp`) over node:dgram: onReadable reports
// whole datagrams queued, read() returns one with its sender's address and port.
import { createSocket, type Socket } from "node:dgram";
import { radio } from "../device/radio.ts";

type Packet = ArrayBuffer & { address: string; port: number };

interface Options {
  port?: number;
  address?: string;
  onReadable?: (this: unknown, packets: number) => void;
  onError?: (this: unknown) => void;
  format?: "buffer";
  target?: unknown;
}

export default class UDP {
  #socket: Socket | undefined;
  #queue: Packet[] = [];
  readonly target: unknown;

  constructor(options: Options) {
    if (options.format !== undefined && options.format !== "buffer") throw new RangeError(`UDP: unsupported format "${options.format}"`);
    this.target = options.target;
    const socket = createSocket("udp4");
    this.#socket = socket;
    socket.on("message", (message, remote) => {
      if (!radio.up) return;
      const packet = message.buffer.slice(message.byteOffset, message.byteOffset + message.byteLength) as Packet;
      packet.address = remote.address;
      packet.port = remote.port;
      this.#queue.push(packet);
      options.onReadable?.call(this, this.#queue.length);
    });
    socket.on("error", () => options.onError?.call(this));
    socket.bind(options.port ?? 0, options.address);
  }

  get format(): "buffer" {
    return "buffer";
  }

  set format(value: "buffer") {
    if (value !== "buffer") throw new RangeError(`UDP: unsupported format "${String(value)}"`);
  }

  read(): Packet | undefined {
    this.#open("read");
    return this.#queue.shift();
  }

  write(buffer: ArrayBuffer | Uint8Array, address: string, port: number): void {
    const socket = this.#open("write");
    if (typeof address !== "string" || !Number.isInteger(port) || port < 1 || port > 65535)
      throw new TypeError("UDP write: needs a buffer, an IPv4 address string and a port 1–65535");
    // with the radio cut a datagram goes nowhere; the sender's own timeout notices
    if (!radio.up) return;
    socket.send(buffer instanceof Uint8Array ? buffer : new Uint8Array(buffer), port, address);
  }

  close(): void {
    this.#socket?.close();
    this.#socket = undefined;
    this.#queue = [];
  }

  #open(operation: string): Socket {
    if (!this.#socket) throw new Error(`UDP ${operation}: socket is closed`);
    return this.#socket;
  }
}
