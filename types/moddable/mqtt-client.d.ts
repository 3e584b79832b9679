// Moddable's ECMA-419 MQTT client (examples/io/tcp/mqttclient). @moddable/typings 5.6.0 declares
// onControl(opcode, message); the implementation calls onControl(message), so we declare it here.
declare module "embedded:network/mqtt/client" {
  export interface ReadableOptions {
    more: boolean;
    topic?: string;
    QoS?: number;
    byteLength?: number;
  }
  export interface ControlMessage {
    operation: number;
    id?: number;
    returnCode?: number;
    /** SUBACK: granted QoS per topic (0x80 = refused) */
    payload?: number[];
  }
  export interface Will {
    topic: string;
    message: string | ArrayBuffer;
    QoS?: number;
    retain?: boolean;
  }
  export interface Options {
    host: string;
    port?: number;
    id?: string;
    user?: string;
    password?: string | ArrayBuffer;
    clean?: boolean;
    /** milliseconds (Moddable also reads the spelling `keepAlive`) */
    keepalive?: number;
    will?: Will;
    dns: Record<string, any>;
    socket: Record<string, any>;
    onReadable?: (this: MQTTClient, count: number, options: ReadableOptions) => void;
    onWritable?: (this: MQTTClient, count: number) => void;
    onControl?: (this: MQTTClient, message: ControlMessage) => void;
    onError?: (this: MQTTClient) => void;
  }
  export interface SubscribeItem {
    topic: string;
    QoS?: number;
  }
  export interface WriteOptions {
    operation?: number;
    id?: number;
    topic?: string;
    QoS?: number;
    retain?: boolean;
    duplicate?: boolean;
    byteLength?: number;
    items?: SubscribeItem[];
  }
  export default class MQTTClient {
    constructor(options: Options);
    read(count?: number): ArrayBuffer | undefined;
    /** fills `buffer` from the current payload; returns the bytes copied */
    read(buffer: ArrayBuffer | Uint8Array): number;
    get format(): "buffer";
    set format(value: "buffer");
    write(data: ArrayBuffer | Uint8Array | null, options?: WriteOptions): number;
    close(): void;
    static readonly CONNECT: 1;
    static readonly CONNACK: 2;
    static readonly PUBLISH: 3;
    static readonly PUBACK: 4;
    static readonly PUBREC: 5;
    static readonly PUBREL: 6;
    static readonly PUBCOMP: 7;
    static readonly SUBSCRIBE: 8;
    static readonly SUBACK: 9;
    static readonly UNSUBSCRIBE: 10;
    static readonly UNSUBACK: 11;
    static readonly PINGREQ: 12;
    static readonly PINGRESP: 13;
    static readonly DISCONNECT: 14;
  }
}
