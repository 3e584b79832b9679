// Moddable's ECMA-419 TLS socket (examples/io/tcp/tlssocket) with the `secure` options its
// ssl/session and ssl/cert modules read; @moddable/typings declares none of it.
declare module "embedded:io/socket/tcp/tls" {
  import type TCP from "embedded:io/socket/tcp";

  export interface SecureOptions {
    /** The one trusted CA certificate, DER. Its dates are checked against the clock when the socket is made. */
    certificate: ArrayBuffer;
    /** DER certificates sent when the server asks for one: the device's first. */
    clientCertificates?: ArrayBuffer[];
    /** Unencrypted PKCS#8 DER; must be RSA. */
    clientKey?: ArrayBuffer;
    /** Name the server certificate's SAN must match (and SNI); defaults to `host`. */
    serverName?: string;
    /** Single-entry session cache, on by default. A resumed handshake skips certificate verification: pass false. */
    cache?: boolean;
    /** false skips all certificate checks. */
    verify?: boolean;
    /** The socket forces TLS 1.2 whatever is passed. */
    protocolVersion?: 0x303;
    /**
     * Base64 SPKI SHA-256 pins; the server's leaf key must be one of them. Read only by our
     * pinned "ssl/cert" (modules/link/manifest_pins.json, included before tls_419.json).
     */
    pins?: readonly string[];
  }

  /** `this` in the callbacks: the socket calls them as methods of this object, not of itself. */
  export interface Callbacks {
    onReadable?: (count: number) => void;
    onWritable?: (count: number) => void;
    onError?: () => void;
  }

  export interface Options {
    /** IPv4 address to connect to (resolve names first). */
    address: string;
    port: number;
    /** Server name for SNI and the certificate check, unless `secure.serverName` is given. */
    host?: string;
    secure: SecureOptions;
    TCP: { io: typeof TCP };
    nodelay?: boolean;
    /** Bytes left in the current record. */
    onReadable?: (this: Callbacks, count: number) => void;
    /** Plaintext bytes that may be written now. */
    onWritable?: (this: Callbacks, count: number) => void;
    /** The peer closed the connection (TCP or close_notify). Handshake and record failures are thrown, not reported here. */
    onError?: (this: Callbacks) => void;
  }

  export interface WriteOptions {
    /** Hold these bytes and send them with the next write, in one record. */
    more?: boolean;
    /** With `more`: total size of the record being assembled. */
    byteLength?: number;
  }

  export default class TLSSocket {
    constructor(options: Options);
    /** Buffer format: the rest of the current record. Number format: one byte. */
    read(): ArrayBuffer | number | undefined;
    /** Exactly `count` bytes of the current record (throws if fewer remain). */
    read(count: number): ArrayBuffer | undefined;
    /** Copies up to the view's length from the current record; returns the bytes copied. A bare ArrayBuffer fails. */
    read(view: ArrayBufferView): number | undefined;
    /** Returns the plaintext space left. One record holds at most 16384 bytes. */
    write(data: ArrayBuffer | ArrayBufferView, options?: WriteOptions): number;
    close(): void;
    get format(): "buffer" | "number";
    set format(value: "buffer" | "number");
  }
}
