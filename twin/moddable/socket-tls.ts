// Moddable's ECMA-419 TLS socket (`embedded:io/socket/tcp/tls`, examples/io/tcp/tlssocket) over
// node:tls, speaking only the device's TLS (tls-profile.ts). As on the board, the ciphertext goes
// through a socket of the `TCP.io` class the caller passes, so its send buffer applies and every
// handshake step runs inside that socket's callbacks.
//
// How failures reach firmware (as on the board):
// - a missing server name, a trusted CA outside its dates or a non-RSA client key: the
//   constructor throws a `TlsError`; other invalid options throw `TlsSocketError`/`TypeError`;
// - a refused handshake or certificate, or a fatal alert or bad record later: a `TlsError` is
//   thrown out of the TCP socket's onReadable callback. On the board that aborts the VM unless
//   firmware contains it, which it can only do in a `TCP.io` subclass whose callbacks catch (the
//   MQTT client never sees the exception); here it does the same, and an uncontained one
//   escapes to Node as an uncaught exception. Its `reason` says what failed;
// - the peer closing: onError(), with no argument, once for close_notify and once for the TCP
//   FIN/RST, each after the records before it were read (so it can come twice, as on the board).
// Firmware callbacks run with `this` = a plain object holding the three callbacks, as on the
// board; use arrow functions or closures to reach the socket.
import { connect as connectTls, type TLSSocket as NodeTlsSocket } from "node:tls";
import { Duplex } from "node:stream";
import { constants } from "node:crypto";
import { isIP } from "node:net";
import { deviceNow } from "./device-clock.ts";
import {
  type CipherSuite, DEVICE_CURVE, DEVICE_CURVE_ID, DEVICE_SIGALGS, TlsError, checkDates, deviceCipherSuites,
  parseCertificate, pinsProblem, parseClientKey, recordBytes, verifyPins, verifyServerChain,
} from "./tls-profile.ts";

export { TlsError, type TlsFailure } from "./tls-profile.ts";

/** Misuse the board also refuses (or would misbehave on); `code` is Moddable's message where it has one. */
export class TlsSocketError extends Error {
  override name = "TlsSocketError";
  constructor(readonly code: string, explanation: string) {
    super(`${code}: ${explanation}`);
  }
}

/** tlssocket.js subtracts this from the TCP space before reporting onWritable. */
const ONWRITABLE_OVERHEAD = 96;
/** session_419.js subtracts this from the TCP space write() returns. */
const WRITE_OVERHEAD = 32;
/** TLS maximum fragment: session_419.js throws "too large" past it. */
const MAX_RECORD_PLAINTEXT = 16384;

// Moddable sends neither session tickets, encrypt-then-MAC nor extended master secret; without
// them the broker is tested against what the device negotiates. (OpenSSL 3's
// SSL_OP_NO_EXTENDED_MASTER_SECRET is bit 0; Node does not name it.)
const SECURE_OPTIONS = constants.SSL_OP_NO_TICKET | constants.SSL_OP_NO_ENCRYPT_THEN_MAC | constants.SSL_OP_NO_RENEGOTIATION | 0x1;

export interface SecureOptions {
  /** the one trusted CA certificate, DER (ssl_cert.js registers a single certificate) */
  certificate?: ArrayBuffer | Uint8Array;
  /** DER certificates sent when the server asks: the device's, then any intermediates */
  clientCertificates?: readonly (ArrayBuffer | Uint8Array)[];
  /** unencrypted RSA PKCS#8 DER */
  clientKey?: ArrayBuffer | Uint8Array;
  /** defaults to the `host` option */
  serverName?: string;
  /** Moddable's single-entry session cache; on by default */
  cache?: boolean;
  /** false skips every certificate check, as on the board */
  verify?: boolean;
  /** the TLS socket forces 0x303 whatever is passed */
  protocolVersion?: number;
  /** base64 SPKI SHA-256 pins, one of which the leaf's key must match (read by the pinned ssl/cert) */
  pins?: readonly string[];
}

interface TcpSocket {
  read(): ArrayBuffer | number | undefined;
  write(buffer: ArrayBufferLike | ArrayBufferView, options?: unknown): number | undefined;
  close(): void;
}

type TcpClass = new (options: Record<string, unknown>) => TcpSocket;

interface Callbacks {
  onReadable?: (count: number) => void;
  onWritable?: (count: number) => void;
  onError?: () => void;
}

export interface TLSSocketOptions {
  address: string;
  port: number;
  /** the server name (SNI and certificate name check) unless `secure.serverName` overrides it */
  host?: string;
  secure?: SecureOptions;
  TCP: { io: TcpClass };
  onReadable?: (this: Callbacks, count: number) => void;
  onWritable?: (this: Callbacks, count: number) => void;
  onError?: (this: Callbacks) => void;
  [other: string]: unknown;
}

type Bytes = Uint8Array<ArrayBuffer>;

interface CachedSession {
  serverName: string;
  session: Buffer;
  chain: readonly Uint8Array[];
}

// ssl_cache.js: one session for the whole device, keyed by server name.
let cachedSession: CachedSession | undefined;

const SECURE_KEYS = new Set(["certificate", "clientCertificates", "clientKey", "serverName", "cache", "verify", "protocolVersion", "pins"]);

const ALERTS: Record<number, string> = {
  10: "unexpected_message", 20: "bad_record_mac", 22: "record_overflow", 40: "handshake_failure", 42: "bad_certificate",
  43: "unsupported_certificate", 44: "certificate_revoked", 45: "certificate_expired", 46: "certificate_unknown",
  47: "illegal_parameter", 48: "unknown_ca", 49: "access_denied", 50: "decode_error", 51: "decrypt_error",
  70: "protocol_version", 71: "insufficient_security", 80: "internal_error", 86: "inappropriate_fallback",
  112: "unrecognized_name", 116: "certificate_required",
};

function toBytes(value: unknown, what: string): Bytes {
  if (value instanceof ArrayBuffer) return new Uint8Array(value.slice(0));
  if (value instanceof Uint8Array) return new Uint8Array(value);
  throw new TypeError(`${what} must be DER bytes (an ArrayBuffer), got ${value === null ? "null" : typeof value}`);
}

function pem(der: Uint8Array, label: string): string {
  const base64 = Buffer.from(der).toString("base64").replace(/.{1,64}/g, "$&\n");
  return `-----BEGIN ${label}-----\n${base64}-----END ${label}-----\n`;
}

function concat(parts: readonly Uint8Array[], total: number): Bytes {
  const out = new Uint8Array(total);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.byteLength;
  }
  return out;
}

function hex(value: number, digits: number): string {
  return `0x${value.toString(16).padStart(digits, "0")}`;
}

function alertText(description: number): string {
  const name = ALERTS[description] ?? "unknown alert";
  const hint = description === 70 ? ": the server refuses TLS 1.2, the only version the device speaks"
    : description === 40 ? ": no cipher suite or curve in common (the device offers TLS 1.2, P-256 and the suites of config.tls), or the server requires a client certificate"
    : description === 116 ? ": the server requires a client certificate" : "";
  return `the server sent alert ${name}(${description})${hint}`;
}

/**
 * Reads the server's handshake records up to its ChangeCipherSpec (TLS 1.2 sends them in the
 * clear), so the device's checks run when the message arrives, as Moddable's do.
 */
class HandshakeReader {
  #pending: Bytes = new Uint8Array(0);
  #handshake: Bytes = new Uint8Array(0);
  #done = false;

  constructor(
    private readonly onMessage: (type: number, body: Bytes) => void,
    private readonly onAlert: (level: number, description: number) => void,
  ) {}

  feed(bytes: Bytes): void {
    if (this.#done) return;
    let buffer = this.#pending.byteLength ? concat([this.#pending, bytes], this.#pending.byteLength + bytes.byteLength) : bytes;
    while (buffer.byteLength >= 5) {
      const length = (buffer[3]! << 8) | buffer[4]!;
      if (buffer.byteLength < 5 + length) break;
      const type = buffer[0]!;
      const fragment = buffer.subarray(5, 5 + length);
      buffer = buffer.subarray(5 + length);
      if (type === 20) {
        this.#done = true;
        return;
      }
      if (type === 21) {
        if (length >= 2) this.onAlert(fragment[0]!, fragment[1]!);
        continue;
      }
      if (type !== 22)
        throw new TlsError("handshake", `the server sent a record of type ${type} before ChangeCipherSpec`);
      this.#handshake = concat([this.#handshake, fragment], this.#handshake.byteLength + fragment.byteLength);
      while (this.#handshake.byteLength >= 4) {
        const size = (this.#handshake[1]! << 16) | (this.#handshake[2]! << 8) | this.#handshake[3]!;
        if (this.#handshake.byteLength < 4 + size) break;
        const message = this.#handshake.subarray(0, 4 + size);
        this.#handshake = this.#handshake.subarray(4 + size);
        this.onMessage(message[0]!, message.subarray(4));
      }
    }
    this.#pending = new Uint8Array(buffer);
  }
}

export default class TLSSocket {
  #tcp: TcpSocket | undefined;
  #tls: NodeTlsSocket;
  #transport: Duplex;
  #callbacks: Callbacks;
  #buffer = true;
  #serverName: string;
  #trusted: Bytes | undefined;
  #verify: boolean;
  #pins: readonly string[] | undefined;
  #cache: boolean;
  #hasClientCertificate: boolean;
  #suites: readonly CipherSuite[];
  #suite: CipherSuite | undefined;
  #reader: HandshakeReader;
  #chain: readonly Uint8Array[] | undefined;
  #handshakeDone = false;
  #ready = false;
  #failure: TlsError | undefined;
  #failureThrown = false;
  #tcpUp = false;
  #tcpDown = false;
  /** TCP send space as the TCP socket last reported it */
  #tcpSpace = 0;
  #outbound: Bytes[] = [];
  #outboundBytes = 0;
  /** ciphertext of records handed to node:tls that it has not produced yet */
  #promised = 0;
  #more: Bytes[] = [];
  #moreBytes = 0;
  #plain: Bytes[] = [];
  #data: { bytes: Bytes; position: number } | undefined;
  /** close_notify received; onError once the records before it are read */
  #peerClosed = false;
  #closeNotifyReported = false;
  /** the TCP socket reported an error; onError once the records before it are read */
  #tcpErrorReported = false;
  #inTcpCallback = false;
  #followUp: ReturnType<typeof setImmediate> | undefined;

  constructor(options: TLSSocketOptions) {
    if (typeof options !== "object" || options === null) throw new TypeError("TLSSocket: options must be an object");
    const TCP = options.TCP?.io;
    if (typeof TCP !== "function") throw new TypeError("TLSSocket: options.TCP must be {io: TCP} (the embedded:io/socket/tcp class)");
    if (options.format !== undefined && options.format !== "buffer")
      throw new TlsSocketError("invalid", `TLSSocket passes its options on to the TCP socket, and a TCP socket in format ${JSON.stringify(options.format)} breaks the TLS record reader; set format after construction`);
    const callbacks: Callbacks = {};
    for (const name of ["onReadable", "onWritable", "onError"] as const) {
      const value = options[name];
      if (value !== undefined && value !== null && typeof value !== "function") throw new TypeError(`TLSSocket: ${name} must be a function`);
      if (value) callbacks[name] = value as never;
    }
    this.#callbacks = Object.freeze(callbacks);

    const secure = { serverName: options.host, ...(options.secure ?? {}) } as SecureOptions & { serverName: unknown };
    for (const key of Object.keys(options.secure ?? {}))
      if (!SECURE_KEYS.has(key))
        throw new TlsSocketError("invalid", `secure.${key} is not an option of Moddable's TLS session or certificate manager ` +
          `(${[...SECURE_KEYS].join(", ")}); the twin does not silently ignore security options`);
    if (secure.protocolVersion !== undefined && secure.protocolVersion !== 0x303)
      throw new TlsSocketError("invalid", `secure.protocolVersion ${hex(Number(secure.protocolVersion), 4)}: the TLS socket always uses TLS 1.2 (0x303)`);
    if (typeof secure.serverName !== "string" || secure.serverName.length === 0)
      throw new TlsError("no-server-name", "give the TLS socket a host (or secure.serverName): Moddable checks the server certificate against it and fails without one");
    this.#serverName = secure.serverName;
    this.#verify = secure.verify ?? true;
    if (secure.pins !== undefined) {
      const problem = pinsProblem(secure.pins);
      if (problem) throw new TlsSocketError("invalid", problem);
      this.#pins = Object.freeze(secure.pins.map(String));
    }
    this.#cache = secure.cache === undefined || Boolean(secure.cache);
    if (secure.certificate !== undefined) {
      if (Array.isArray(secure.certificate))
        throw new TypeError("secure.certificate takes one DER certificate (an ArrayBuffer), not a list: Moddable's certificate manager registers a single trusted certificate");
      this.#trusted = toBytes(secure.certificate, "secure.certificate");
      const anchor = parseCertificate(this.#trusted, -1, "secure.certificate");
      if (this.#verify) checkDates(anchor, deviceNow(), "the trusted secure.certificate");
    } else if (this.#verify)
      throw new TlsSocketError("invalid", "secure.certificate is required: it is the only certificate the device trusts (the public CA store is not part of this firmware)");

    let key: string | undefined;
    let cert: string | undefined;
    const clientCertificates = secure.clientCertificates;
    if (clientCertificates !== undefined || secure.clientKey !== undefined) {
      if (!Array.isArray(clientCertificates) || clientCertificates.length === 0 || secure.clientKey === undefined)
        throw new TypeError("secure.clientCertificates (a non-empty list of DER certificates) and secure.clientKey (RSA PKCS#8 DER) go together");
      const clientKey = parseClientKey(toBytes(secure.clientKey, "secure.clientKey"));
      key = clientKey.export({ format: "pem", type: "pkcs8" }) as string;
      cert = clientCertificates.map((der, i) => pem(toBytes(der, `secure.clientCertificates[${i}]`), "CERTIFICATE")).join("");
    }
    this.#hasClientCertificate = cert !== undefined;
    this.#suites = deviceCipherSuites();
    this.#reader = new HandshakeReader((type, body) => this.#onHandshakeMessage(type, body), (level, description) => this.#onAlert(level, description));

    this.#tcp = new TCP({
      ...options,
      onReadable: (count: number) => this.#tcpReadable(count),
      onWritable: (count: number) => this.#tcpWritable(count),
      onError: () => this.#tcpError(),
    });

    this.#transport = new Duplex({
      read() {},
      write: (chunk: Buffer, _encoding, done) => {
        this.#send(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength) as Bytes);
        done();
      },
    });
    const resume = this.#cache && cachedSession?.serverName === this.#serverName ? cachedSession.session : undefined;
    const tls = connectTls({
      socket: this.#transport,
      minVersion: "TLSv1.2",
      maxVersion: "TLSv1.2",
      ciphers: this.#suites.map((suite) => suite.openssl).join(":"),
      ecdhCurve: DEVICE_CURVE,
      sigalgs: DEVICE_SIGALGS,
      secureOptions: SECURE_OPTIONS,
      // the device's checks run on the Certificate message as it arrives (#onHandshakeMessage)
      rejectUnauthorized: false,
      checkServerIdentity: () => undefined,
      ca: this.#trusted ? [pem(this.#trusted, "CERTIFICATE")] : [],
      ...(isIP(this.#serverName) ? {} : { servername: this.#serverName }),
      ...(key && cert ? { key, cert } : {}),
      ...(resume ? { session: resume } : {}),
    });
    this.#tls = tls;
    tls.on("secureConnect", () => {
      this.#handshakeDone = true;
      this.#afterTls();
    });
    tls.on("data", (data: Buffer) => {
      // node:tls gives every record it decrypts a buffer of its own: keep a view, no copy
      this.#plain.push(new Uint8Array(data.buffer as ArrayBuffer, data.byteOffset, data.byteLength));
      this.#afterTls();
    });
    tls.on("session", (session: Buffer) => {
      if (this.#cache && this.#chain) cachedSession = { serverName: this.#serverName, session, chain: this.#chain };
    });
    tls.on("end", () => {
      this.#peerClosed = true;
      this.#afterTls();
    });
    tls.on("error", (error: Error) => {
      this.#fail(new TlsError(this.#ready ? "protocol" : "handshake", error.message));
      this.#afterTls();
    });
  }

  get format(): "buffer" | "number" {
    return this.#buffer ? "buffer" : "number";
  }

  set format(value: "buffer" | "number") {
    if (value !== "buffer" && value !== "number") throw new RangeError(`TLSSocket format must be "buffer" or "number", got ${JSON.stringify(value)}`);
    this.#buffer = value === "buffer";
  }

  /**
   * Reads from the current record only (onReadable reports its size). Buffer format: read() the
   * rest of it, read(count) exactly count bytes, read(view) up to the view's length, returning
   * how many were copied. Number format: one byte.
   */
  read(): ArrayBuffer | number | undefined;
  read(count: number): ArrayBuffer | undefined;
  read(view: ArrayBufferView): number | undefined;
  read(request?: number | ArrayBufferView): ArrayBuffer | number | undefined {
    this.#open("read");
    const data = this.#data;
    if (!this.#buffer && request !== undefined)
      throw new TlsSocketError("invalid", "TLS read: in number format read() takes no argument and returns one byte; set format = \"buffer\" to read a count or into a buffer");
    if (!data) return undefined;
    const available = data.bytes.byteLength - data.position;
    let result: ArrayBuffer | number;
    if (!this.#buffer) result = data.bytes[data.position++]!;
    else if (request === undefined) {
      const { bytes, position } = data;
      // a record read whole is handed over when it fills its buffer: nothing else holds it
      result = position === 0 && bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? bytes.buffer : bytes.slice(position).buffer;
      data.position = bytes.byteLength;
    } else if (typeof request === "number") {
      if (!Number.isInteger(request) || request < 1 || request > available)
        throw new TlsSocketError("invalid", `TLS read(${request}): count must be an integer 1–${available} (bytes left in this record)`);
      result = data.bytes.slice(data.position, data.position + request).buffer;
      data.position += request;
    } else if (ArrayBuffer.isView(request)) {
      const copied = Math.min(request.byteLength, available);
      new Uint8Array(request.buffer, request.byteOffset, copied).set(data.bytes.subarray(data.position, data.position + copied));
      data.position += copied;
      result = copied;
    } else
      throw new TypeError("TLS read(buffer) takes a typed array or DataView: Moddable's TLS socket fails on a bare ArrayBuffer (it copies into `buffer.buffer`)");
    if (data.position === data.bytes.byteLength) {
      this.#data = undefined;
      if (this.#plain.length || this.#peerClosed || this.#tcpDown) this.#schedule();
    }
    return result;
  }

  /**
   * Sends one record (or, with `{more: true}`, holds the bytes for the next write without it).
   * Returns the send space left for further plaintext, as session_419.js computes it.
   */
  write(value: ArrayBufferLike | ArrayBufferView, options?: { more?: boolean; byteLength?: number }): number {
    this.#open("write");
    this.#raise();
    if (this.#tcpDown) throw new TlsSocketError("not ready", "TLS write after the connection closed; close this socket and connect again");
    if (!this.#ready)
      throw new TlsSocketError("not ready", "TLS write before the handshake completed (Moddable would send it unencrypted); wait for onWritable");
    let bytes: Bytes;
    if (value instanceof ArrayBuffer || value instanceof SharedArrayBuffer) bytes = new Uint8Array(value.slice(0)) as Bytes;
    else if (ArrayBuffer.isView(value)) bytes = new Uint8Array(value.buffer, value.byteOffset, value.byteLength).slice();
    else throw new TypeError(`TLS write: expected an ArrayBuffer or a view of one, got ${value === null ? "null" : typeof value}`);
    if (options?.more) {
      this.#more.push(bytes);
      this.#moreBytes += bytes.byteLength;
      return Math.max(0, this.#space() - this.#moreBytes - WRITE_OVERHEAD);
    }
    const plaintext = this.#moreBytes ? concat([...this.#more, bytes], this.#moreBytes + bytes.byteLength) : bytes;
    this.#more = [];
    this.#moreBytes = 0;
    if (plaintext.byteLength > MAX_RECORD_PLAINTEXT)
      throw new TlsSocketError("too large", `TLS write of ${plaintext.byteLength} bytes: one write (with the {more: true} parts before it) becomes one record of at most ${MAX_RECORD_PLAINTEXT} bytes`);
    if (plaintext.byteLength > 0) {
      const record = recordBytes(this.#suite!, plaintext.byteLength);
      const space = this.#space();
      if (record > space)
        throw new TlsSocketError("would block", `TLS write of ${plaintext.byteLength} bytes needs a ${record}-byte record and the TCP socket has ${space} bytes free; write at most what write()/onWritable last reported and wait for onWritable`);
      this.#promised += record;
      this.#tls.write(plaintext);
    }
    return Math.max(0, this.#space() - WRITE_OVERHEAD);
  }

  close(): void {
    const tcp = this.#tcp;
    if (!tcp) return;
    this.#tcp = undefined;
    if (this.#followUp) clearImmediate(this.#followUp);
    this.#followUp = undefined;
    this.#outbound = [];
    this.#data = undefined;
    this.#plain = [];
    tcp.close();
    // no close_notify: tlssocket.js just closes the TCP socket
    this.#tls.destroy();
  }

  #open(operation: string): void {
    if (!this.#tcp) throw new TlsSocketError("closed", `TLS ${operation} on a closed socket`);
  }

  #space(): number {
    return this.#tcpSpace - this.#outboundBytes - this.#promised;
  }

  #send(chunk: Bytes): void {
    this.#promised = Math.max(0, this.#promised - chunk.byteLength);
    this.#outbound.push(new Uint8Array(chunk));
    this.#outboundBytes += chunk.byteLength;
    this.#flush();
  }

  #flush(): void {
    const tcp = this.#tcp;
    if (!tcp || !this.#tcpUp || this.#tcpDown) return;
    while (this.#outbound.length && this.#tcpSpace > 0) {
      const chunk = this.#outbound[0]!;
      const take = Math.min(chunk.byteLength, this.#tcpSpace);
      const left = tcp.write(chunk.subarray(0, take));
      if (left === undefined) {
        this.#outbound = [];
        this.#outboundBytes = 0;
        return;
      }
      this.#tcpSpace = left;
      this.#outboundBytes -= take;
      if (take === chunk.byteLength) this.#outbound.shift();
      else this.#outbound[0] = chunk.subarray(take);
    }
  }

  #tcpReadable(_count: number): void {
    const tcp = this.#tcp;
    if (!tcp) return;
    this.#raise();
    const data = tcp.read();
    if (!(data instanceof ArrayBuffer)) return;
    const bytes = new Uint8Array(data);
    this.#inTcpCallback = true;
    try {
      if (!this.#handshakeDone) {
        try {
          this.#reader.feed(bytes);
        } catch (error) {
          if (error instanceof TlsError) this.#fail(error);
          throw error;
        }
      }
      // the TCP socket handed this buffer over and nothing writes to it again: push it without a copy
      this.#transport.push(Buffer.from(data));
    } finally {
      this.#inTcpCallback = false;
    }
    this.#progress();
  }

  #tcpWritable(count: number): void {
    if (!this.#tcp) return;
    this.#raise();
    this.#tcpUp = true;
    this.#tcpSpace = count;
    this.#flush();
    if (this.#ready) {
      const space = this.#space();
      if (space > ONWRITABLE_OVERHEAD) this.#callbacks.onWritable?.(space - ONWRITABLE_OVERHEAD);
    }
  }

  // The board reads TCP bytes one record at a time, so lwIP reports the error only after the
  // records before it were read; the twin reads eagerly and holds the error back as long.
  #tcpError(): void {
    if (!this.#tcp) return;
    this.#tcpDown = true;
    this.#outbound = [];
    this.#outboundBytes = 0;
    if (this.#failure && this.#failureThrown) {
      this.#callbacks.onError?.();
      return;
    }
    this.#progress();
  }

  #fail(failure: TlsError): void {
    if (this.#failure) return;
    this.#failure = failure;
    this.#ready = false;
    this.#tls.destroy();
  }

  /** Throws the connection's failure, if any, including one node:tls has recorded but not yet emitted. */
  #raise(): void {
    const reported = this.#tls?.errored;
    if (reported && !this.#failure) this.#fail(new TlsError(this.#ready ? "protocol" : "handshake", reported.message));
    if (!this.#failure) return;
    this.#failureThrown = true;
    throw this.#failure;
  }

  /** node:tls reports from inside the push in #tcpReadable; anything it reports later is handled on a later turn. */
  #afterTls(): void {
    if (!this.#inTcpCallback) this.#schedule();
  }

  #schedule(): void {
    this.#followUp ??= setImmediate(() => {
      this.#followUp = undefined;
      if (!this.#tcp || (this.#failure && this.#failureThrown)) return;
      this.#progress();
    });
  }

  /** Runs the device's side of what node:tls has done: verdicts, the handshake's end, records, close_notify. */
  #progress(): void {
    this.#raise();
    if (this.#handshakeDone && !this.#ready) {
      this.#finishHandshake();
      this.#ready = true;
      const space = this.#space();
      if (space > ONWRITABLE_OVERHEAD) this.#callbacks.onWritable?.(space - ONWRITABLE_OVERHEAD);
      if (!this.#tcp) return;
    }
    if (this.#data) return;
    const next = this.#plain.shift();
    if (next) {
      this.#data = { bytes: next, position: 0 };
      this.#callbacks.onReadable?.(next.byteLength);
    } else if (this.#peerClosed && !this.#closeNotifyReported) {
      // session_419.js read() returns null on close_notify and tlssocket.js reports it as an error
      this.#closeNotifyReported = true;
      this.#callbacks.onError?.();
    } else if (this.#tcpDown && !this.#tcpErrorReported) {
      this.#tcpErrorReported = true;
      this.#callbacks.onError?.();
    }
  }

  #finishHandshake(): void {
    const fail = (failure: TlsError): never => {
      this.#fail(failure);
      throw failure;
    };
    if (this.#tls.getProtocol() !== "TLSv1.2") fail(new TlsError("handshake", `negotiated ${this.#tls.getProtocol()}; the device speaks TLS 1.2 only`));
    if (this.#tls.isSessionReused()) {
      // Moddable skips certificate checks on a resumed session; the twin checks the chain of the
      // session it resumed against today's clock, trust and name.
      const cached = cachedSession;
      if (!cached || cached.serverName !== this.#serverName) fail(new TlsError("handshake", "resumed a session the device did not cache"));
      this.#chain = cached!.chain;
      if (this.#verify) {
        try {
          verifyServerChain(this.#chain, this.#trusted!, this.#serverName, deviceNow());
          if (this.#pins) verifyPins(this.#chain[0], this.#pins);
        } catch (error) {
          if (cachedSession === cached) cachedSession = undefined;
          fail(error as TlsError);
        }
      }
    } else if (!this.#chain) fail(new TlsError("untrusted-chain", "the handshake completed without a server Certificate message"));
  }

  #onHandshakeMessage(type: number, body: Bytes): void {
    switch (type) {
      case 2: {
        const version = (body[0]! << 8) | body[1]!;
        if (version !== 0x0303) throw new TlsError("handshake", `the server chose TLS version ${hex(version, 4)}; the device speaks TLS 1.2 (0x0303) only`);
        const sessionIdLength = body[34]!;
        const id = (body[35 + sessionIdLength]! << 8) | body[36 + sessionIdLength]!;
        const suite = this.#suites.find((candidate) => candidate.id === id);
        if (!suite) throw new TlsError("handshake", `the server chose cipher suite ${hex(id, 4)}, which the device does not offer (it offers ${this.#suites.map((s) => s.openssl).join(", ")})`);
        this.#suite = suite;
        return;
      }
      case 11: {
        const chain: Uint8Array[] = [];
        let offset = 3;
        const end = 3 + ((body[0]! << 16) | (body[1]! << 8) | body[2]!);
        while (offset + 3 <= end && offset + 3 <= body.byteLength) {
          const size = (body[offset]! << 16) | (body[offset + 1]! << 8) | body[offset + 2]!;
          chain.push(body.slice(offset + 3, offset + 3 + size));
          offset += 3 + size;
        }
        if (this.#verify) verifyServerChain(chain, this.#trusted!, this.#serverName, deviceNow());
        if (this.#pins) verifyPins(chain[0], this.#pins);
        this.#chain = chain;
        return;
      }
      case 12:
        if (this.#suite?.keyExchange === "ECDHE_RSA") {
          const curve = (body[1]! << 8) | body[2]!;
          if (body[0] !== 3 || curve !== DEVICE_CURVE_ID)
            throw new TlsError("handshake", `the server's key exchange uses curve ${curve}; the device supports secp256r1 (23) only`);
        }
        return;
      case 13:
        if (this.#suite?.keyExchange === "DHE_RSA" && this.#hasClientCertificate)
          throw new TlsError("handshake", "certificateVerify: unimplemented: Moddable cannot sign CertificateVerify in a DHE_RSA handshake; set config.tls.DHE_RSA false or offer ECDHE on the server");
        return;
      default:
        return;
    }
  }

  #onAlert(level: number, description: number): void {
    if (description === 0) {
      this.#peerClosed = true;
      return;
    }
    throw new TlsError("handshake", `${alertText(description)} (level ${level})`);
  }
}
