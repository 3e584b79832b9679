import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer, type Server, type Socket } from "node:net";
import TCP, { SEND_BUFFER_BYTES, TcpSocketError } from "../twin/moddable/socket-tcp.ts";
import Resolver, { DnsResolverError } from "../twin/moddable/dns-resolver.ts";

const WAIT_MS = 5000;

function within<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout>;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), WAIT_MS);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

const connections = new WeakMap<Server, Set<Socket>>();

async function listen(onConnection: (socket: Socket) => void): Promise<{ server: Server; port: number }> {
  const open = new Set<Socket>();
  const server = createServer((socket) => {
    open.add(socket);
    socket.on("close", () => open.delete(socket));
    onConnection(socket);
  });
  connections.set(server, open);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("no port");
  return { server, port: address.port };
}

function closeServer(server: Server): Promise<void> {
  for (const socket of connections.get(server) ?? []) socket.destroy();
  return new Promise((resolve) => server.close(() => resolve()));
}

const echo = (socket: Socket) => socket.pipe(socket);

test("buffer format: echo round trip, callbacks bound to the socket, target kept", async () => {
  const { server, port } = await listen(echo);
  try {
    const target = { name: "t" };
    const received: number[] = [];
    let self: unknown;
    let socket: TCP;
    const done = new Promise<void>((resolve) => {
      let sent = false;
      socket = new TCP({
        address: "127.0.0.1",
        port,
        target,
        onWritable(count) {
          assert.equal(count, SEND_BUFFER_BYTES);
          if (sent) return;
          sent = true;
          const left = this.write(Uint8Array.of(1, 2, 3, 4, 5));
          assert.equal(typeof left, "number");
          assert.ok(left! <= SEND_BUFFER_BYTES - 5);
        },
        onReadable(count) {
          self = this;
          const data = this.read(count) as ArrayBuffer;
          received.push(...new Uint8Array(data));
          if (received.length === 5) resolve();
        },
      });
    });
    await within(done, "echo");
    assert.equal(self, socket!);
    assert.equal(socket!.target, target);
    assert.deepEqual(received, [1, 2, 3, 4, 5]);
    assert.equal(socket!.remoteAddress, "127.0.0.1");
    assert.equal(socket!.remotePort, port);
    socket!.close();
  } finally {
    await closeServer(server);
  }
});

test("number format: byte at a time, undefined when drained, format switchable", async () => {
  const { server, port } = await listen(echo);
  try {
    const bytes: number[] = [];
    let socket!: TCP;
    let drained: unknown = "unset";
    let sent = false;
    await within(new Promise<void>((resolve) => {
      socket = new TCP({
        address: "127.0.0.1",
        port,
        format: "number",
        onWritable() {
          if (sent) return;
          sent = true;
          this.format = "buffer";
          this.write(Uint8Array.of(10, 20));
          this.format = "number";
          this.write(30);
        },
        onReadable(count) {
          while (count--) bytes.push(this.read() as number);
          if (bytes.length === 3) {
            drained = this.read();
            resolve();
          }
        },
      });
    }), "number echo");
    assert.deepEqual(bytes, [10, 20, 30]);
    assert.equal(drained, undefined);
    assert.throws(() => socket.read(1), (e: unknown) => e instanceof TcpSocketError && e.code === "invalid");
    assert.throws(() => { socket.format = "uint8" as "buffer"; }, /unimplemented/);
    assert.throws(() => { socket.format = "nonsense" as "buffer"; }, /unknown/);
    socket.close();
  } finally {
    await closeServer(server);
  }
});

test("partial reads leave the rest pending; no re-notification until new data arrives", async () => {
  let connected!: (socket: Socket) => void;
  const peerSocket = new Promise<Socket>((resolve) => (connected = resolve));
  const { server, port } = await listen((s) => connected(s));
  try {
    const notifications: number[] = [];
    let notified!: () => void;
    let next = new Promise<void>((r) => (notified = r));
    const socket = new TCP({
      address: "127.0.0.1",
      port,
      onReadable(count) {
        notifications.push(count);
        notified();
      },
    });
    const peer = await within(peerSocket, "connection");
    peer.write(Buffer.from("abcdefghij"));
    await within(next, "first onReadable");
    assert.deepEqual(notifications, [10]);

    assert.equal(String.fromCharCode(...new Uint8Array(socket.read(3) as ArrayBuffer)), "abc");
    const into = new Uint8Array(8).subarray(2, 6);
    assert.equal(socket.read(into), 4);
    assert.equal(String.fromCharCode(...into), "defg");
    assert.throws(() => socket.read(4), (e: unknown) => e instanceof TcpSocketError && e.code === "invalid");
    assert.throws(() => socket.read(new ArrayBuffer(4)), (e: unknown) => e instanceof TcpSocketError && e.code === "invalid");
    assert.throws(() => socket.read(0), (e: unknown) => e instanceof TcpSocketError && e.code === "invalid");

    // a partial read schedules nothing: only new data notifies, with the total pending
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(notifications, [10]);
    next = new Promise<void>((r) => (notified = r));
    peer.write(Buffer.from("kl"));
    await within(next, "second onReadable");
    assert.deepEqual(notifications, [10, 5]);
    assert.equal(String.fromCharCode(...new Uint8Array(socket.read() as ArrayBuffer)), "hijkl");
    assert.equal(socket.read(), undefined);
    socket.close();
  } finally {
    await closeServer(server);
  }
});

test("send buffer accounting: not ready before connect, would block past the buffer, onWritable frees it", async () => {
  const { server, port } = await listen((s) => s.resume());
  try {
    let socket!: TCP;
    const writable: number[] = [];
    let phase = 0;
    await within(new Promise<void>((resolve, reject) => {
      socket = new TCP({
        address: "127.0.0.1",
        port,
        onWritable(count) {
          writable.push(count);
          try {
            if (phase === 0) {
              phase = 1;
              const left = this.write(new Uint8Array(SEND_BUFFER_BYTES - 100));
              assert.equal(left, 100);
              assert.throws(() => this.write(new Uint8Array(101)),
                (e: unknown) => e instanceof TcpSocketError && e.code === "would block");
              assert.equal(this.write(new Uint8Array(100)), 0);
            } else if (count === SEND_BUFFER_BYTES) resolve();
          } catch (error) {
            reject(error);
          }
        },
      });
      assert.throws(() => socket.write(new Uint8Array(1)), (e: unknown) => e instanceof TcpSocketError && e.code === "not ready");
    }), "send buffer drained");
    assert.equal(writable[0], SEND_BUFFER_BYTES);
    socket.close();
    assert.throws(() => socket.write(new Uint8Array(1)), (e: unknown) => e instanceof TcpSocketError && e.code === "closed");
    assert.throws(() => socket.read(), (e: unknown) => e instanceof TcpSocketError && e.code === "closed");
    socket.close();
  } finally {
    await closeServer(server);
  }
});

test("connection refused reaches onError, bound to the socket", async () => {
  const { server, port } = await listen(() => {});
  await closeServer(server);
  let socket!: TCP;
  const self = await within(new Promise<unknown>((resolve) => {
    socket = new TCP({
      address: "127.0.0.1",
      port,
      onError() {
        resolve(this);
      },
      onWritable() {
        throw new Error("must not become writable");
      },
    });
  }), "onError");
  assert.equal(self, socket);
  assert.throws(() => socket.write(new Uint8Array(1)), (e: unknown) => e instanceof TcpSocketError && e.code === "not ready");
  socket.close();
});

test("a peer's FIN is an error, delivered only after the pending bytes are read", async () => {
  const { server, port } = await listen((s) => s.end(Buffer.from("bye")));
  try {
    const events: string[] = [];
    await within(new Promise<void>((resolve) => {
      new TCP({
        address: "127.0.0.1",
        port,
        onReadable(count) {
          events.push(`readable ${count}`);
          setTimeout(() => {
            events.push("read");
            this.read();
          }, 20);
        },
        onError() {
          events.push("error");
          this.close();
          resolve();
        },
      });
    }), "onError after FIN");
    assert.deepEqual(events, ["readable 3", "read", "error"]);
  } finally {
    await closeServer(server);
  }
});

test("constructor refuses what lwIP refuses", () => {
  assert.throws(() => new TCP({ host: "localhost", port: 1883 } as never),
    (e: unknown) => e instanceof TcpSocketError && e.code === "invalid address");
  assert.throws(() => new TCP({ address: "127.0.0.1", port: 70000 }), /invalid port/);
  assert.throws(() => new TCP({ address: "127.0.0.1", port: 1, format: "string" as "buffer" }), /unimplemented/);
  assert.throws(() => new TCP({ address: "127.0.0.1", port: 1, onReadable: 5 as never }),
    (e: unknown) => e instanceof TcpSocketError && e.code === "not a function");
});

test("from: a socket takes over another's connection and pending data", async () => {
  let peer!: Socket;
  const { server, port } = await listen((s) => {
    peer = s;
    s.write("xy");
  });
  try {
    const first = new TCP({ address: "127.0.0.1", port });
    await within(new Promise<void>((resolve) => {
      const poll = () => (peer ? setTimeout(resolve, 50) : setTimeout(poll, 5));
      poll();
    }), "peer");
    let second!: TCP;
    const got = await within(new Promise<string>((resolve) => {
      second = new TCP({
        from: first,
        onReadable(count) {
          resolve(String.fromCharCode(...new Uint8Array(this.read(count) as ArrayBuffer)));
        },
      });
    }), "data on the new owner");
    assert.equal(got, "xy");
    assert.throws(() => first.read(), (e: unknown) => e instanceof TcpSocketError && e.code === "closed");
    second.close();
  } finally {
    await closeServer(server);
  }
});

test("DNS resolver: dotted quads and localhost resolve on a later turn, unknown names reach onError, this = resolver", async () => {
  const resolver = new Resolver({ servers: ["1.1.1.1"], socket: { io: TCP } });
  const resolve = (host: string) => within(new Promise<{ self: unknown; host: string; address?: string }>((done) => {
    let sameTurn = true;
    resolver.resolve({
      host,
      onResolved(name, address) {
        assert.equal(sameTurn, false);
        done({ self: this, host: name, address });
      },
      onError(name) {
        done({ self: this, host: name });
      },
    });
    sameTurn = false;
  }), `resolving ${host}`);

  assert.deepEqual(await resolve("10.1.2.3"), { self: resolver, host: "10.1.2.3", address: "10.1.2.3" });
  // Moddable rewrites localhost before resolving and reports the rewritten name
  assert.deepEqual(await resolve("localhost"), { self: resolver, host: "127.0.0.1", address: "127.0.0.1" });
  assert.deepEqual(await resolve("nothing.invalid"), { self: resolver, host: "nothing.invalid" });

  resolver.close();
  assert.throws(() => resolver.resolve({ host: "10.1.2.3", onResolved() {} }), DnsResolverError);
  assert.throws(() => new Resolver({ servers: [], socket: { io: TCP } }), DnsResolverError);
  assert.throws(() => new Resolver({ servers: ["1.1.1.1"] } as never), DnsResolverError);
});
