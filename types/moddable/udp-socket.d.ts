// ECMA-419 UDP socket as Moddable implements it (@moddable/typings' version fails strict checks).
declare module "embedded:io/socket/udp" {
  export interface Options {
    port?: number;
    address?: string;
    onReadable?: (this: UDP, packets: number) => void;
    onError?: (this: UDP) => void;
    format?: "buffer";
    target?: unknown;
  }
  export type Packet = ArrayBuffer & { address: string; port: number };
  export default class UDP {
    constructor(options: Options);
    write(buffer: ArrayBuffer | Uint8Array, address: string, port: number): void;
    read(): Packet | undefined;
    close(): void;
    get format(): "buffer";
    set format(value: "buffer");
  }
}
