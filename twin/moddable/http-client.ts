// Moddable's ECMA-419 HTTP client (`embedded:network/http/client`, examples/io/tcp/httpclient),
// wired as the board's: `new options.dns.io(options.dns).resolve(…)`, then
// `new options.socket.io({...options.socket, address, host, port, callbacks})` — over the twin's
// TLS socket for https, so the device TLS profile applies to downloads too. Requests run one at a
// time on one connection; callbacks run with `this` = the request, whose read(count) returns body
// bytes. onDone(error) ends every request; the client's onError reports a lost connection.
// Stricter than the board: a response without Content-Length (chunked or close-delimited) is an
// error, and calling read() outside onReadable throws.
export interface RequestOptions {
  method?: string;
  path?: string;
  headers?: Map<string, string | number>;
  onHeaders?: (this: HttpRequest, status: number, headers: Map<string, string>, statusText: string) => void;
  onReadable?: (this: HttpRequest, count: number) => void;
  onDone?: (this: HttpRequest, error?: Error) => void;
}

interface SocketLike {
  read(): ArrayBuffer | number | undefined;
  write(buffer: ArrayBuffer): number;
  close(): void;
}

type Constructor = new (options: Record<string, unknown>) => unknown;

export interface HttpClientOptions {
  host: string;
  port?: number;
  dns: { io: Constructor; [key: string]: unknown };
  socket: { io: Constructor; [key: string]: unknown };
  onError?: (error?: Error) => void;
}

export class HttpClientError extends Error {
  override name = "HttpClientError";
}

export class HttpRequest {
  #client: HttpClient;
  /** @internal */
  constructor(client: HttpClient) {
    this.#client = client;
  }
  read(count?: number): ArrayBuffer | undefined {
    return this.#client.readBody(this, count);
  }
}

interface Pending {
  options: RequestOptions;
  request: HttpRequest;
  sent: boolean;
}

const HEADER_END = "\r\n\r\n";

export default class HttpClient {
  #host: string;
  #socket: SocketLike | undefined;
  #onError: ((error?: Error) => void) | undefined;
  #queue: Pending[] = [];
  #state: "resolving" | "connecting" | "connected" | "closed" = "resolving";
  #head = "";
  #headersDone = false;
  #remaining = 0;
  #body: Uint8Array<ArrayBuffer>[] = [];
  #bodyBytes = 0;
  #inReadable = false;

  constructor(options: HttpClientOptions) {
    const { host, port, dns, socket } = options;
    if (!host) throw new Error("host required");
    if (typeof dns?.io !== "function" || typeof socket?.io !== "function")
      throw new HttpClientError("options.dns must be {io: Resolver, …} and options.socket {io: TLSSocket | TCP, …}, as in Moddable's httpclient config.js");
    this.#host = host;
    this.#onError = options.onError;
    const resolver = new dns.io(dns) as { resolve(request: object): void };
    resolver.resolve({
      host,
      onResolved: (resolved: string, address: string) => {
        if (this.#state === "closed") return;
        this.#state = "connecting";
        this.#socket = new socket.io({
          ...socket,
          address,
          host: resolved,
          port: port ?? 80,
          onReadable: () => this.#readable(),
          onWritable: () => this.#writable(),
          onError: () => this.#fail(new Error("connection lost")),
        }) as SocketLike;
      },
      onError: () => this.#fail(new Error(`cannot resolve ${host}`)),
    });
  }

  request(options: RequestOptions): HttpRequest {
    if (this.#state === "closed") throw new HttpClientError("request on a closed HTTP client: make a new one");
    const request = new HttpRequest(this);
    this.#queue.push({ options: { ...options }, request, sent: false });
    if (this.#state === "connected") setImmediate(() => this.#writable());
    return request;
  }

  close(): void {
    this.#state = "closed";
    this.#queue.length = 0;
    const socket = this.#socket;
    this.#socket = undefined;
    socket?.close();
  }

  /** @internal HttpRequest.read */
  readBody(request: HttpRequest, count?: number): ArrayBuffer | undefined {
    if (this.#queue[0]?.request !== request || !this.#inReadable)
      throw new HttpClientError("request.read() outside that request's onReadable: the board's client reads its socket directly and would misparse");
    if (this.#bodyBytes === 0) return undefined;
    const want = Math.min(count ?? this.#bodyBytes, this.#bodyBytes);
    const whole = this.#body[0]!;
    // the usual read takes one whole received buffer: hand it over rather than copy it
    if (want === whole.length && whole.byteOffset === 0 && whole.byteLength === whole.buffer.byteLength) {
      this.#body.shift();
      this.#bodyBytes -= want;
      return whole.buffer;
    }
    const out = new Uint8Array(want);
    let at = 0;
    while (at < want) {
      const first = this.#body[0]!;
      const take = Math.min(first.length, want - at);
      out.set(first.subarray(0, take), at);
      at += take;
      if (take === first.length) this.#body.shift();
      else this.#body[0] = first.subarray(take);
    }
    this.#bodyBytes -= want;
    return out.buffer;
  }

  #writable(): void {
    if (this.#state === "closed" || !this.#socket) return;
    this.#state = "connected";
    const current = this.#queue[0];
    if (!current || current.sent) return;
    current.sent = true;
    this.#head = "";
    this.#headersDone = false;
    const { method = "GET", path = "/", headers = new Map() } = current.options;
    let text = `${method} ${path} HTTP/1.1\r\nhost: ${this.#host}\r\nconnection: keep-alive\r\n`;
    headers.forEach((value, name) => (text += `${name}: ${value}\r\n`));
    this.#socket.write(ArrayBuffer.fromString(text + "\r\n"));
  }

  #readable(): void {
    const socket = this.#socket;
    if (!socket) return;
    for (let chunk = socket.read(); chunk !== undefined; chunk = socket.read()) {
      if (typeof chunk === "number") throw new HttpClientError("the socket is in number format; the HTTP client reads buffers");
      this.#take(new Uint8Array(chunk));
      if (!this.#socket) return;
    }
  }

  #take(bytes: Uint8Array<ArrayBuffer>): void {
    const current = this.#queue[0];
    if (!current) return this.#fail(new Error("the server sent bytes no request asked for"));
    let body = bytes;
    if (!this.#headersDone) {
      // decode only the head: the body after it can be a whole TLS record
      let at = 0;
      while (at < bytes.length && !this.#head.endsWith(HEADER_END)) this.#head += String.fromCharCode(bytes[at++]!);
      if (!this.#head.endsWith(HEADER_END)) return;
      body = bytes.subarray(at);
      const lines = this.#head.slice(0, -HEADER_END.length).split("\r\n");
      const status = /^HTTP\/1\.[01] (\d{3}) ?(.*)$/.exec(lines[0]!);
      if (!status) return this.#fail(new Error("bad response"));
      const headers = new Map<string, string>();
      for (const line of lines.slice(1)) {
        const colon = line.indexOf(":");
        headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
      }
      const length = headers.get("content-length");
      if (length === undefined || !/^\d+$/.test(length))
        return this.#fail(new HttpClientError("the response has no Content-Length; the twin's client reads only sized bodies"));
      this.#headersDone = true;
      this.#remaining = Number(length);
      current.options.onHeaders?.call(current.request, Number(status[1]), headers, status[2]!);
      if (this.#queue[0] !== current) return;
    }
    if (body.length > this.#remaining) return this.#fail(new Error("the server sent more than its Content-Length"));
    this.#remaining -= body.length;
    if (body.length) {
      // the socket handed this buffer over (read() returns a new one each time): keep it, no copy
      this.#body.push(body);
      this.#bodyBytes += body.length;
    }
    this.#deliver(current);
  }

  #deliver(current: Pending): void {
    if (this.#queue[0] !== current) return;
    if (this.#bodyBytes > 0 && current.options.onReadable) {
      this.#inReadable = true;
      try {
        current.options.onReadable.call(current.request, this.#bodyBytes);
      } finally {
        this.#inReadable = false;
      }
      if (this.#queue[0] !== current) return;
      if (this.#bodyBytes > 0) {
        setImmediate(() => this.#deliver(current));
        return;
      }
    }
    if (this.#remaining === 0 && (this.#bodyBytes === 0 || !current.options.onReadable)) {
      this.#body = [];
      this.#bodyBytes = 0;
      this.#queue.shift();
      current.options.onDone?.call(current.request);
      if (this.#queue.length && this.#state === "connected") setImmediate(() => this.#writable());
    }
  }

  #fail(error: Error): void {
    if (this.#state === "closed") return;
    const current = this.#queue[0];
    this.close();
    current?.options.onDone?.call(current.request, error);
    this.#onError?.(error);
  }
}
