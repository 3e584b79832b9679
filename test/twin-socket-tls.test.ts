import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import type { TlsOptions } from "node:tls";
import TCP, { type TCPOptions } from "../twin/moddable/socket-tcp.ts";
import TLSSocket, { TlsError, TlsSocketError, type SecureOptions, type TlsFailure } from "../twin/moddable/socket-tls.ts";
import { DEVICE_CURVE, deviceCipherSuites } from "../twin/moddable/tls-profile.ts";
import { setDeviceTime } from "../twin/moddable/device-clock.ts";
import { chainPem, createCa, issueDeviceCert, issueServerCert, type Issued } from "../certs/pki.ts";
import { startTlsServer, type TlsServer } from "./support/tls-server.ts";

const WAIT_MS = 10_000;
const DAY_MS = 24 * 3_600_000;
const HOST = "broker.test";
const DEVICE = "dev-0001";

let ca: Issued;
let rogueCa: Issued;
let server: Issued;
let device: Issued;

before(async () => {
  const now = Date.now();
  ca = await createCa({ commonName: "espguard test CA", notBefore: new Date(now - 30 * DAY_MS) });
  rogueCa = await createCa({ commonName: "espguard test CA", notBefore: new Date(now - 30 * DAY_MS) });
  server = await issueServerCert(ca, { commonName: HOST, dnsNames: [HOST], ipAddresses: ["127.0.0.1"] });
  device = await issueDeviceCert(ca, { deviceId: DEVICE });
});

after(() => setDeviceTime(Date.now()));

function buffer(bytes: Uint8Array): ArrayBuffer {
  return bytes.slice().buffer;
}

function deviceSecure(extra: Partial<SecureOptions> = {}): SecureOptions {
  return {
    certificate: buffer(ca.certDer),
    clientCertificates: [buffer(device.certDer)],
    clientKey: buffer(device.keyPkcs8Der),
    cache: false,
    ...extra,
  };
}

/** What a broker configured the way the device needs offers: the chain, a device CA, client certs required. */
function brokerOptions(leaf: Issued = server, extra: TlsOptions = {}): TlsOptions {
  return {
    key: leaf.keyPem,
    cert: chainPem(leaf, ca),
    ca: [ca.certPem],
    requestCert: true,
    rejectUnauthorized: true,
    ...extra,
  };
}

/**
 * The containment the link layer needs: TLS failures are thrown inside the TCP socket's
 * callbacks, so a TCP subclass passed as `TCP.io` catches them there.
 */
function containingTcp(onThrow: (error: unknown) => void): typeof TCP {
  return class ContainingTCP extends TCP {
    constructor(options: TCPOptions) {
      const guard = <A extends unknown[]>(callback: ((this: TCP, ...args: A) => void) | null | undefined) =>
        callback && function (this: TCP, ...args: A) {
          try {
            callback.apply(this, args);
          } catch (error) {
            onThrow(error);
          }
        };
      super({ ...options, onReadable: guard(options.onReadable), onWritable: guard(options.onWritable), onError: guard(options.onError) });
    }
  };
}

type Outcome =
  | { kind: "connected"; socket: TLSSocket; echo: string; writable: number; self: unknown; closed: Promise<void> }
  | { kind: "thrown"; error: unknown }
  | { kind: "onError" };

/** Connects, sends "ping" once writable, and waits for its echo, a thrown failure or onError. */
function connect(port: number, secure: SecureOptions, host: string | undefined = HOST): Promise<Outcome> {
  return new Promise<Outcome>((resolve, reject) => {
    let socket: TLSSocket | undefined;
    let writable = -1;
    let self: unknown;
    let settled = false;
    let peerClosed!: () => void;
    const closed = new Promise<void>((resolve) => (peerClosed = resolve));
    const timer = setTimeout(() => {
      socket?.close();
      reject(new Error("timed out waiting for the TLS connection's outcome"));
    }, WAIT_MS);
    const settle = (outcome: Outcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (outcome.kind !== "connected") socket?.close();
      resolve(outcome);
    };
    socket = new TLSSocket({
      address: "127.0.0.1",
      port,
      host,
      secure,
      TCP: { io: containingTcp((error) => settle({ kind: "thrown", error })) },
      onWritable(count) {
        if (writable >= 0) return;
        writable = count;
        self = this;
        socket!.write(ArrayBuffer.fromString("ping"));
      },
      onReadable(count) {
        const echo = String.fromArrayBuffer(socket!.read(count) as ArrayBuffer);
        settle({ kind: "connected", socket: socket!, echo, writable, self, closed });
      },
      onError() {
        if (settled) peerClosed();
        else settle({ kind: "onError" });
      },
    });
  });
}

async function expectFailure(port: number, secure: SecureOptions, reason: TlsFailure, host?: string): Promise<TlsError> {
  const outcome = await connect(port, secure, host);
  assert.equal(outcome.kind, "thrown", `expected a thrown TlsError(${reason}), got ${outcome.kind}`);
  const error = (outcome as { error: unknown }).error;
  assert.ok(error instanceof TlsError, `expected a TlsError, got ${String(error)}`);
  assert.equal(error.reason, reason, error.message);
  return error;
}

async function withServer<T>(options: TlsOptions, body: (broker: TlsServer) => Promise<T>): Promise<T> {
  const broker = await startTlsServer(options);
  try {
    return await body(broker);
  } finally {
    await broker.close();
  }
}

test("happy path: TLS 1.2 with the device's client certificate, echo through the record layer", async () => {
  await withServer(brokerOptions(), async (broker) => {
    const outcome = await connect(broker.port, deviceSecure());
    assert.equal(outcome.kind, "connected");
    const { socket, echo, writable, self } = outcome as Extract<Outcome, { kind: "connected" }>;
    assert.equal(echo, "ping");
    assert.ok(writable > 0);
    assert.notEqual(self, socket, "callbacks run with `this` = the callbacks object, as tlssocket.js calls them");
    assert.equal(broker.handshakes.length, 1);
    const [handshake] = broker.handshakes;
    assert.equal(handshake!.clientCommonName, DEVICE);
    assert.equal(handshake!.protocol, "TLSv1.2");
    assert.ok(deviceCipherSuites().some((suite) => suite.openssl === handshake!.cipher), handshake!.cipher);
    socket.close();
  });
});

test("the device's own profile: suites from config.tls (no DHE), P-256", () => {
  assert.deepEqual(deviceCipherSuites().map((s) => s.openssl), [
    "AES128-SHA", "AES256-SHA", "AES128-SHA256", "AES256-SHA256",
    "ECDHE-RSA-AES128-SHA256", "ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES128-GCM-SHA256",
  ]);
  assert.ok(deviceCipherSuites({ DHE_RSA: true }).some((s) => s.openssl === "DHE-RSA-AES128-GCM-SHA256"));
  assert.equal(DEVICE_CURVE, "prime256v1");
});

test("a server certificate from a rogue CA is refused", async () => {
  const rogueLeaf = await issueServerCert(rogueCa, { commonName: HOST, dnsNames: [HOST], ipAddresses: [] });
  await withServer({ key: rogueLeaf.keyPem, cert: chainPem(rogueLeaf, rogueCa) }, async (broker) => {
    await expectFailure(broker.port, deviceSecure(), "untrusted-chain");
  });
});

test("a rogue leaf followed by the trusted CA's own certificate is refused (Moddable's verify() accepts it)", async () => {
  const rogueLeaf = await issueServerCert(rogueCa, { commonName: HOST, dnsNames: [HOST], ipAddresses: [] });
  await withServer({ key: rogueLeaf.keyPem, cert: rogueLeaf.certPem + ca.certPem }, async (broker) => {
    await expectFailure(broker.port, deviceSecure(), "untrusted-chain");
  });
});

test("an expired server certificate is refused", async () => {
  const now = Date.now();
  const expired = await issueServerCert(ca, {
    commonName: HOST, dnsNames: [HOST], ipAddresses: [],
    notBefore: new Date(now - 10 * DAY_MS), notAfter: new Date(now - DAY_MS),
  });
  await withServer(brokerOptions(expired), async (broker) => {
    await expectFailure(broker.port, deviceSecure(), "expired");
  });
});

test("a server certificate is not yet valid when the device clock is behind", async () => {
  await withServer(brokerOptions(), async (broker) => {
    setDeviceTime(Date.now() - 2 * DAY_MS);
    try {
      await expectFailure(broker.port, deviceSecure(), "not-yet-valid");
    } finally {
      setDeviceTime(Date.now());
    }
  });
});

test("a device whose clock was never set refuses to construct: the trusted CA is not yet valid", () => {
  setDeviceTime(0);
  try {
    assert.throws(() => new TLSSocket({ address: "127.0.0.1", port: 1, host: HOST, secure: deviceSecure(), TCP: { io: TCP } }),
      (e: unknown) => e instanceof TlsError && e.reason === "not-yet-valid");
  } finally {
    setDeviceTime(Date.now());
  }
});

test("a certificate naming the host only in its CN is refused: no CN fallback", async () => {
  const cnOnly = await issueServerCert(ca, { commonName: HOST, dnsNames: [], ipAddresses: [] });
  await withServer(brokerOptions(cnOnly), async (broker) => {
    await expectFailure(broker.port, deviceSecure(), "name-mismatch");
  });
});

test("a certificate for another name is refused; a wildcard covers one label; an IPv4 SAN matches an address host", async () => {
  const other = await issueServerCert(ca, { commonName: HOST, dnsNames: ["other.test", "*.example.test"], ipAddresses: [] });
  await withServer(brokerOptions(other), async (broker) => {
    await expectFailure(broker.port, deviceSecure(), "name-mismatch");
    await expectFailure(broker.port, deviceSecure(), "name-mismatch", "a.b.example.test");
    const wildcard = await connect(broker.port, deviceSecure(), "mqtt.example.test");
    assert.equal(wildcard.kind, "connected");
    (wildcard as Extract<Outcome, { kind: "connected" }>).socket.close();
  });
  await withServer(brokerOptions(), async (broker) => {
    const byAddress = await connect(broker.port, deviceSecure(), "127.0.0.1");
    assert.equal(byAddress.kind, "connected");
    (byAddress as Extract<Outcome, { kind: "connected" }>).socket.close();
  });
});

test("a server that sends only its leaf is refused even though the trusted CA signed it", async () => {
  // Without a CA store OpenSSL cannot complete the chain on its own: with one (node's `ca`,
  // mosquitto's cafile) it appends the issuer even when the certificate file holds only the leaf.
  await withServer({ key: server.keyPem, cert: server.certPem }, async (broker) => {
    await expectFailure(broker.port, deviceSecure(), "leaf-only-chain");
  });
});

test("a TLS 1.3-only server is refused", async () => {
  await withServer(brokerOptions(server, { minVersion: "TLSv1.3" }), async (broker) => {
    const error = await expectFailure(broker.port, deviceSecure(), "handshake");
    assert.match(error.message, /protocol_version/);
  });
});

test("a server offering only DHE suites is refused", async () => {
  await withServer(brokerOptions(server, { ciphers: "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES128-SHA256", dhparam: "auto" }), async (broker) => {
    const error = await expectFailure(broker.port, deviceSecure(), "handshake");
    assert.match(error.message, /handshake_failure/);
  });
});

test("a server whose ECDHE only uses a curve other than P-256 is refused", async () => {
  await withServer(brokerOptions(server, { ciphers: "ECDHE-RSA-AES128-GCM-SHA256", ecdhCurve: "secp384r1" }), async (broker) => {
    await expectFailure(broker.port, deviceSecure(), "handshake");
  });
});

test("no server name: refused before connecting", () => {
  assert.throws(() => new TLSSocket({ address: "127.0.0.1", port: 1, secure: deviceSecure(), TCP: { io: TCP } }),
    (e: unknown) => e instanceof TlsError && e.reason === "no-server-name");
});

test("an EC client key is refused: Moddable signs only with RSA", () => {
  const ecKey = generateKeyPairSync("ec", { namedCurve: "prime256v1" }).privateKey.export({ format: "der", type: "pkcs8" });
  assert.throws(() => new TLSSocket({ address: "127.0.0.1", port: 1, host: HOST, secure: deviceSecure({ clientKey: buffer(ecKey) }), TCP: { io: TCP } }),
    (e: unknown) => e instanceof TlsError && e.reason === "unsupported-client-key");
});

test("options the twin will not silently ignore", () => {
  const base = { address: "127.0.0.1", port: 1, host: HOST, TCP: { io: TCP } };
  assert.throws(() => new TLSSocket({ ...base, secure: { ...deviceSecure(), pins: [] } as SecureOptions }), TlsSocketError);
  assert.throws(() => new TLSSocket({ ...base, secure: deviceSecure({ certificate: [buffer(ca.certDer)] as never }) }), TypeError);
  assert.throws(() => new TLSSocket({ ...base, secure: deviceSecure({ certificate: undefined }) }), TlsSocketError);
  assert.throws(() => new TLSSocket({ ...base, secure: deviceSecure(), format: "number" }), TlsSocketError);
});

test("write and read rules: not ready before the handshake, would block past the TCP buffer, too large past a record", async () => {
  await withServer(brokerOptions(), async (broker) => {
    const events: string[] = [];
    let socket!: TLSSocket;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("timed out")), WAIT_MS);
      socket = new TLSSocket({
        address: "127.0.0.1",
        port: broker.port,
        host: HOST,
        secure: deviceSecure(),
        TCP: { io: TCP },
        onWritable(count) {
          if (events.length) return;
          events.push(`writable ${count}`);
          try {
            assert.throws(() => socket.write(new Uint8Array(16385)), (e: unknown) => e instanceof TlsSocketError && e.code === "too large");
            assert.throws(() => socket.write(new Uint8Array(count + 200)), (e: unknown) => e instanceof TlsSocketError && e.code === "would block");
            const afterMore = socket.write(Uint8Array.of(1, 2), { more: true, byteLength: 5 });
            assert.ok(afterMore < count + 96);
            socket.write(Uint8Array.of(3, 4, 5));
          } catch (error) {
            clearTimeout(timer);
            reject(error);
          }
        },
        onReadable(count) {
          events.push(`readable ${count}`);
          try {
            assert.throws(() => socket.read(count + 1), (e: unknown) => e instanceof TlsSocketError && e.code === "invalid");
            assert.throws(() => socket.read(new ArrayBuffer(2) as never), TypeError);
            const view = new Uint8Array(2);
            assert.equal(socket.read(view), 2);
            socket.format = "number";
            assert.equal(socket.read(), 3);
            socket.format = "buffer";
            assert.deepEqual([...new Uint8Array(socket.read() as ArrayBuffer)], [4, 5]);
            assert.equal(socket.read(), undefined);
            assert.deepEqual([...view], [1, 2]);
            clearTimeout(timer);
            resolve();
          } catch (error) {
            clearTimeout(timer);
            reject(error);
          }
        },
      });
      assert.throws(() => socket.write(Uint8Array.of(1)), (e: unknown) => e instanceof TlsSocketError && e.code === "not ready");
    });
    assert.equal(events[1], "readable 5", "the two writes went out as one record");
    socket.close();
    assert.throws(() => socket.write(Uint8Array.of(1)), (e: unknown) => e instanceof TlsSocketError && e.code === "closed");
  });
});

test("the peer closing reaches onError", async () => {
  const broker = await startTlsServer(brokerOptions());
  let socket: TLSSocket | undefined;
  try {
    const outcome = await connect(broker.port, deviceSecure());
    assert.equal(outcome.kind, "connected");
    const connected = outcome as Extract<Outcome, { kind: "connected" }>;
    socket = connected.socket;
    await broker.close();
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      connected.closed,
      new Promise((_, reject) => (timer = setTimeout(() => reject(new Error("timed out waiting for onError")), WAIT_MS))),
    ]).finally(() => clearTimeout(timer));
    assert.throws(() => socket!.write(Uint8Array.of(1)), (e: unknown) => e instanceof TlsSocketError && e.code === "not ready");
  } finally {
    socket?.close();
    await broker.close();
  }
});

test("session cache: resumed when on, still verified on resumption; never resumed with cache: false", async () => {
  const now = Date.now();
  const shortLived = await issueServerCert(ca, {
    commonName: HOST, dnsNames: [HOST], ipAddresses: [], notBefore: new Date(now - DAY_MS), notAfter: new Date(now + DAY_MS),
  });
  await withServer(brokerOptions(shortLived), async (broker) => {
    for (let i = 0; i < 2; i++) {
      const outcome = await connect(broker.port, deviceSecure({ cache: false }));
      assert.equal(outcome.kind, "connected");
      (outcome as Extract<Outcome, { kind: "connected" }>).socket.close();
    }
    assert.deepEqual(broker.handshakes.map((h) => h.resumed), [false, false]);

    for (let i = 0; i < 2; i++) {
      const outcome = await connect(broker.port, deviceSecure({ cache: true }));
      assert.equal(outcome.kind, "connected");
      (outcome as Extract<Outcome, { kind: "connected" }>).socket.close();
    }
    assert.deepEqual(broker.handshakes.map((h) => h.resumed), [false, false, false, true]);

    // Two days on the server certificate has expired; Moddable would resume without looking.
    setDeviceTime(now + 2 * DAY_MS);
    try {
      await expectFailure(broker.port, deviceSecure({ cache: true }), "expired");
    } finally {
      setDeviceTime(Date.now());
    }
    assert.equal(broker.handshakes.at(-1)!.resumed, true);
  });
});
