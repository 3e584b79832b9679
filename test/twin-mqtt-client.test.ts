// The twin's embedded:network/mqtt/client over the twin's TCP socket, against a scripted peer whose
// packets mqtt-packet reads, and once against a real mosquitto.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, connect as netConnect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import MQTTClient, { MQTTClientError, type ControlMessage, type Options, type ReadableOptions } from "../twin/moddable/mqtt-client.ts";
import TCP from "../twin/moddable/socket-tcp.ts";
import { setTraceSink } from "../twin/moddable/xs-globals.ts";
import { LoopbackResolver, MqttPeer, PeerConnection, within, type Received } from "./support/mqtt-peer.ts";

const WAIT_MS = 5000;
const traced: string[] = [];
setTraceSink((text) => traced.push(text));

/** The twin TCP socket, remembering what its last write() returned. */
class RecordingTCP extends TCP {
  static latest: RecordingTCP | undefined;
  lastWrite: number | undefined;
  constructor(options: ConstructorParameters<typeof TCP>[0]) {
    super(options);
    RecordingTCP.latest = this;
  }
  override write(value: number | ArrayBufferLike | ArrayBufferView, options?: unknown): number | undefined {
    this.lastWrite = super.write(value, options);
    return this.lastWrite;
  }
}

type Event =
  | { kind: "control"; message: ControlMessage }
  | { kind: "writable"; count: number }
  | { kind: "readable"; count: number; options: ReadableOptions; data: Uint8Array | undefined }
  | { kind: "error" };
type Kind = Event["kind"];

/** Records every callback; next(kind) hands out events of one kind in order, waiting (bounded) for the next. */
class Recorder {
  readonly log: Event[] = [];
  readonly #taken: Record<Kind, number> = { control: 0, writable: 0, readable: 0, error: 0 };
  #wake: (() => void) | undefined;

  push(event: Event): void {
    this.log.push(event);
    this.#wake?.();
  }

  of<K extends Kind>(kind: K): Extract<Event, { kind: K }>[] {
    return this.log.filter((event): event is Extract<Event, { kind: K }> => event.kind === kind);
  }

  async next<K extends Kind>(kind: K, ms = WAIT_MS): Promise<Extract<Event, { kind: K }>> {
    const arrived = new Promise<void>((resolve) => {
      const check = () => {
        if (this.of(kind).length > this.#taken[kind]) {
          this.#wake = undefined;
          resolve();
        } else this.#wake = check;
      };
      check();
    });
    await within(arrived, ms, `the client's next ${kind} callback`);
    return this.of(kind)[this.#taken[kind]++]!;
  }
}

type Hooks = Partial<Pick<Options, "onReadable" | "onWritable" | "onControl">> & { read?: boolean };

function create(port: number, rec: Recorder, options: Partial<Options> = {}, hooks: Hooks = {}): MQTTClient {
  const autoRead = hooks.read ?? true;
  return new MQTTClient({
    host: "127.0.0.1",
    port,
    dns: { io: LoopbackResolver },
    socket: { io: RecordingTCP },
    onControl(message) {
      rec.push({ kind: "control", message });
      hooks.onControl?.call(this, message);
    },
    onWritable(count) {
      rec.push({ kind: "writable", count });
      hooks.onWritable?.call(this, count);
    },
    onReadable(count, readable) {
      const data = autoRead ? new Uint8Array(this.read(count) as ArrayBuffer) : undefined;
      rec.push({ kind: "readable", count, options: readable, data });
      hooks.onReadable?.call(this, count, readable);
    },
    onError() {
      rec.push({ kind: "error" });
    },
    ...options,
  });
}

interface Session {
  peer: MqttPeer;
  client: MQTTClient;
  rec: Recorder;
  conn: PeerConnection;
  connect: Received;
}

/** A client connected to a fresh peer (CONNECT received, CONNACK sent and seen); always cleaned up. */
async function withSession(options: Partial<Options>, hooks: Hooks, body: (session: Session) => Promise<void>): Promise<void> {
  const peer = await MqttPeer.start();
  const rec = new Recorder();
  let client: MQTTClient | undefined;
  try {
    client = create(peer.port, rec, options, hooks);
    const conn = await peer.accept();
    const connect = await conn.expect("connect");
    conn.send({ cmd: "connack", returnCode: 0, sessionPresent: false });
    assert.deepEqual((await rec.next("control")).message, { operation: MQTTClient.CONNACK, returnCode: 0 });
    await rec.next("writable");
    await body({ peer, client, rec, conn, connect });
  } finally {
    client?.close();
    await peer.close();
  }
}

function mqttString(text: string): number[] {
  const bytes = [...Buffer.from(text)];
  return [bytes.length >> 8, bytes.length & 0xFF, ...bytes];
}

function bytes(text: string): ArrayBuffer {
  const buffer = Buffer.from(text);
  return buffer.buffer.slice(buffer.byteOffset, buffer.byteOffset + buffer.length);
}

function errorCode(code: string, message?: string) {
  return (error: unknown) => {
    assert.ok(error instanceof MQTTClientError, `expected MQTTClientError, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    if (message !== undefined) assert.equal(error.message, message);
    return true;
  };
}

test("CONNECT carries Moddable's bytes for id, clean, keepalive, will, user and password; CONNACK → onControl then onWritable", async () => {
  const options: Partial<Options> = {
    id: "espguard-01",
    clean: false,
    keepalive: 60_000,
    user: "dev",
    password: bytes("s3cret"),
    will: { topic: "devices/espguard-01/status", message: bytes("offline"), QoS: 1, retain: true },
  };
  await withSession(options, {}, async ({ rec, connect }) => {
    const body = [0, 4, 0x4D, 0x51, 0x54, 0x54, 4, 0xEC, 0, 60, ...mqttString("espguard-01"),
      ...mqttString("devices/espguard-01/status"), ...mqttString("offline"), ...mqttString("dev"), ...mqttString("s3cret")];
    assert.deepEqual([...connect.raw], [0x10, body.length, ...body]);
    assert.deepEqual(connect.raw, PeerConnection.encode({
      cmd: "connect", protocolId: "MQTT", protocolVersion: 4, clean: false, keepalive: 60, clientId: "espguard-01",
      username: "dev", password: Buffer.from("s3cret"),
      will: { topic: "devices/espguard-01/status", payload: Buffer.from("offline"), qos: 1, retain: true },
    }));
    assert.deepEqual(rec.log.slice(0, 2).map((event) => event.kind), ["control", "writable"]);
  });
});

test("CONNECT defaults: empty client id, clean session, keepalive in whole seconds (keepAlive spelling too)", async () => {
  await withSession({}, {}, async ({ connect }) => {
    assert.equal(connect.raw.toString("hex"), "100c00044d515454040200000000");
  });
  await withSession({ keepAlive: 1500, id: "x" }, {}, async ({ connect }) => {
    assert.equal(connect.raw.toString("hex"), "100d00044d515454040200020001" + "78");
  });
});

test("CONNACK refused: onError, no onControl, connection closed, reason traced", async () => {
  const peer = await MqttPeer.start();
  const rec = new Recorder();
  const client = create(peer.port, rec);
  try {
    const conn = await peer.accept();
    await conn.expect("connect");
    conn.send({ cmd: "connack", returnCode: 5, sessionPresent: false });
    await rec.next("error");
    assert.deepEqual(rec.of("control"), []);
    await conn.waitClosed();
    assert.throws(() => client.write(null, { operation: MQTTClient.PINGREQ }), errorCode("ECLOSED"));
    assert.ok(traced.some((line) => line.includes("connection rejected (CONNACK return code 5: not authorized)")), traced.join(""));
  } finally {
    client.close();
    await peer.close();
  }
});

test("SUBSCRIBE/UNSUBSCRIBE bytes, SUBACK payload, and packet ids counting from 2 across every write", async () => {
  await withSession({}, {}, async ({ client, rec, conn }) => {
    client.write(null, { operation: MQTTClient.SUBSCRIBE, items: [{ topic: "a/+/c", QoS: 2 }, { topic: "b/#" }] });
    const subscribe = await conn.expect("subscribe");
    const body = [0, 2, ...mqttString("a/+/c"), 2, ...mqttString("b/#"), 0];
    assert.deepEqual([...subscribe.raw], [0x82, body.length, ...body]);
    conn.send({ cmd: "suback", messageId: 2, granted: [2, 128] });
    assert.deepEqual((await rec.next("control")).message, { operation: MQTTClient.SUBACK, id: 2, payload: [2, 128] });

    client.write(null, { operation: MQTTClient.UNSUBSCRIBE, items: [{ topic: "b/#" }] });
    const unsubscribe = await conn.expect("unsubscribe");
    assert.deepEqual([...unsubscribe.raw], [0xA2, 7, 0, 3, ...mqttString("b/#")]);
    conn.send({ cmd: "unsuback", messageId: 3, granted: [] });
    assert.deepEqual((await rec.next("control")).message, { operation: MQTTClient.UNSUBACK, id: 3 });

    client.write(bytes("q0"), { topic: "t" });                   // takes id 4, sends none
    client.write(null, { operation: MQTTClient.PINGREQ });       // takes id 5
    client.write(bytes("q1"), { topic: "t", QoS: 1 });
    client.write(bytes("mine"), { topic: "t", QoS: 1, id: 1234 });
    assert.equal((await conn.expect("publish")).packet.messageId, undefined);
    assert.deepEqual([...(await conn.expect("pingreq")).raw], [0xC0, 0]);
    assert.equal((await conn.expect("publish")).packet.messageId, 6);
    assert.equal((await conn.expect("publish")).packet.messageId, 1234);
    conn.send({ cmd: "pingresp" });
    assert.deepEqual((await rec.next("control")).message, { operation: MQTTClient.PINGRESP });
  });
});

test("outgoing QoS 1 and QoS 2: PUBLISH bytes, PUBACK, PUBREC answered with PUBREL, PUBCOMP", async () => {
  await withSession({}, {}, async ({ client, rec, conn }) => {
    const left = client.write(bytes("one"), { topic: "t/1", QoS: 1, retain: true });
    assert.equal(typeof left, "number");
    const one = await conn.expect("publish");
    assert.deepEqual([...one.raw], [0x33, 10, ...mqttString("t/1"), 0, 2, ...Buffer.from("one")]);
    conn.send({ cmd: "puback", messageId: 2 });
    assert.deepEqual((await rec.next("control")).message, { operation: MQTTClient.PUBACK, id: 2 });

    client.write(bytes("two"), { topic: "t/2", QoS: 2, duplicate: true });
    const two = await conn.expect("publish");
    assert.deepEqual([...two.raw], [0x3C, 10, ...mqttString("t/2"), 0, 3, ...Buffer.from("two")]);
    conn.send({ cmd: "pubrec", messageId: 3 });
    assert.deepEqual((await rec.next("control")).message, { operation: MQTTClient.PUBREC, id: 3 });
    assert.deepEqual([...(await conn.expect("pubrel")).raw], [0x62, 2, 0, 3]);
    conn.send({ cmd: "pubcomp", messageId: 3 });
    assert.deepEqual((await rec.next("control")).message, { operation: MQTTClient.PUBCOMP, id: 3 });
  });
});

test("incoming QoS 0, 1 and 2: onReadable with topic/QoS/byteLength, automatic PUBACK, PUBREC and PUBCOMP", async () => {
  await withSession({}, {}, async ({ rec, conn }) => {
    conn.send({ cmd: "publish", topic: "in/0", payload: Buffer.from("zero"), qos: 0, retain: false, dup: false });
    conn.send({ cmd: "publish", topic: "in/1", payload: Buffer.from("one"), qos: 1, messageId: 77, retain: false, dup: false });
    conn.send({ cmd: "publish", topic: "in/2", payload: Buffer.from("two"), qos: 2, messageId: 78, retain: false, dup: false });
    for (const [topic, payload, QoS] of [["in/0", "zero", 0], ["in/1", "one", 1], ["in/2", "two", 2]] as const) {
      const event = await rec.next("readable");
      assert.deepEqual(event.options, { topic, byteLength: payload.length, QoS, more: false });
      assert.equal(event.count, payload.length);
      assert.equal(Buffer.from(event.data!).toString(), payload);
    }
    assert.deepEqual([...(await conn.expect("puback")).raw], [0x40, 2, 0, 77]);
    assert.deepEqual([...(await conn.expect("pubrec")).raw], [0x50, 2, 0, 78]);
    conn.send({ cmd: "pubrel", messageId: 78 });
    assert.deepEqual((await rec.next("control")).message, { operation: MQTTClient.PUBREL, id: 78 });
    assert.deepEqual([...(await conn.expect("pubcomp")).raw], [0x70, 2, 0, 78]);
  });
});

test("a payload arriving in pieces is delivered in fragments: topic and byteLength first, then {more}", async () => {
  const payload = Buffer.from(Array.from({ length: 3000 }, (_, i) => (i * 7) & 0xFF));
  await withSession({}, {}, async ({ rec, conn }) => {
    const encoded = PeerConnection.encode({ cmd: "publish", topic: "big", payload, qos: 1, messageId: 9, retain: false, dup: false });
    conn.sendRaw(encoded.subarray(0, 40));
    const first = await rec.next("readable");
    assert.deepEqual(first.options, { topic: "big", byteLength: 3000, QoS: 1, more: true });
    assert.equal(first.count, 40 - 1 - 2 - 5 - 2);           // fixed header, remaining length, topic, packet id
    conn.sendRaw(encoded.subarray(40, 1000));
    conn.sendRaw(encoded.subarray(1000));
    const fragments = [first];
    while (fragments.at(-1)!.options.more) fragments.push(await rec.next("readable"));
    for (const fragment of fragments.slice(1)) assert.deepEqual(Object.keys(fragment.options), ["more"]);
    assert.deepEqual(Buffer.concat(fragments.map((fragment) => fragment.data!)), payload);
    assert.deepEqual([...(await conn.expect("puback")).raw], [0x40, 2, 0, 9]);
  });
});

test("a payload not read in onReadable holds back later packets until read(n) / read(buffer) drain it", async () => {
  await withSession({}, { read: false }, async ({ client, rec, conn }) => {
    conn.sendRaw(Buffer.concat([
      PeerConnection.encode({ cmd: "publish", topic: "a", payload: Buffer.from("0123456789abcdef"), qos: 0, retain: false, dup: false }),
      PeerConnection.encode({ cmd: "publish", topic: "b", payload: Buffer.from("next"), qos: 0, retain: false, dup: false }),
    ]));
    const first = await rec.next("readable");
    assert.deepEqual(first.options, { topic: "a", byteLength: 16, QoS: 0, more: false });
    assert.equal(rec.of("readable").length, 1);
    assert.equal(Buffer.from(client.read(4) as ArrayBuffer).toString(), "0123");
    const view = new Uint8Array(20);
    assert.equal(client.read(view), 12);
    assert.equal(Buffer.from(view.subarray(0, 12)).toString(), "456789abcdef");
    assert.equal(client.read(1), undefined);
    assert.throws(() => client.read(), errorCode("EREAD"));
    const second = await rec.next("readable");
    assert.deepEqual(second.options, { topic: "b", byteLength: 4, QoS: 0, more: false });
    assert.throws(() => client.read(new Uint16Array(2)), errorCode("EREAD", "invalid buffer"));
    assert.equal(Buffer.from(client.read() as ArrayBuffer).toString(), "next");
  });
});

test("fragmented publish from the client: byteLength up front, continuation writes in onWritable, acks held until it ends", async () => {
  const payload = Buffer.from(Array.from({ length: 12_000 }, (_, i) => (i * 13) & 0xFF));
  let sent = 0;
  let incoming = false;
  const continuationErrors: unknown[] = [];
  const hooks: Hooks = {
    onReadable() {
      incoming = true;
    },
    onWritable(count) {
      if (!incoming || sent === 0 || sent === payload.length) return;
      if (continuationErrors.length === 0) {
        for (const attempt of [
          () => this.write(null, { operation: MQTTClient.PINGREQ }),
          () => this.write(payload.subarray(sent, sent + 1), {}),
          () => this.write(new Uint8Array(payload.length - sent + 1)),
        ]) {
          try {
            attempt();
          } catch (error) {
            continuationErrors.push(error);
          }
        }
      }
      const n = Math.min(count, payload.length - sent);
      this.write(payload.subarray(sent, sent + n));
      sent += n;
    },
  };
  await withSession({}, hooks, async ({ client, rec, conn }) => {
    client.write(payload.subarray(0, 100), { topic: "big/blob", QoS: 1, byteLength: payload.length });
    sent = 100;
    // A QoS 1 message arriving mid-publish: its PUBACK must wait, not split the PUBLISH on the wire.
    conn.send({ cmd: "publish", topic: "in", payload: Buffer.from("hi"), qos: 1, messageId: 42, retain: false, dup: false });
    const publish = await conn.expect("publish");
    assert.equal(sent, payload.length);
    const remaining = 2 + 8 + 2 + payload.length;
    assert.deepEqual([...publish.raw.subarray(0, 15)], [0x32, 0x80 | (remaining & 0x7F), remaining >> 7, ...mqttString("big/blob"), 0, 2]);
    assert.deepEqual(publish.packet.payload, payload);
    assert.equal(continuationErrors.length, 3);
    for (const error of continuationErrors) errorCode("EFRAGMENT")(error);
    assert.deepEqual([...(await conn.expect("puback")).raw], [0x40, 2, 0, 42]);
    conn.send({ cmd: "puback", messageId: 2 });
    assert.deepEqual((await rec.next("control")).message, { operation: MQTTClient.PUBACK, id: 2 });
  });
});

test("write returns the socket's space less 8; a packet larger than the socket takes throws \"overflow\"", async () => {
  await withSession({}, {}, async ({ client, conn }) => {
    const socket = RecordingTCP.latest!;
    // Everything below runs in one turn, so no onWritable moves the client's idea of the space.
    const count = client.write(null, { operation: MQTTClient.PINGREQ });
    assert.equal(count, socket.lastWrite! - 8);
    const topic = "o";                                              // packet = 1 + 2 (length) + 3 + payload
    assert.throws(() => client.write(new Uint8Array(count + 3), { topic }), errorCode("EOVERFLOW", "overflow"));
    assert.equal(client.write(new Uint8Array(count + 2), { topic }), 0);
    assert.equal(socket.lastWrite, 0);
    assert.throws(() => client.write(null, { operation: MQTTClient.PINGREQ }), errorCode("EOVERFLOW", "overflow"));
    await conn.expect("pingreq");
    assert.equal((await conn.expect("publish")).packet.payload.length, count + 2);
  });
});

test("twin strictness: writes the board would garble or send too early throw typed errors and send nothing", async () => {
  const peer = await MqttPeer.start();
  const rec = new Recorder();
  const client = create(peer.port, rec);
  try {
    assert.throws(() => client.write(bytes("x"), { topic: "t" }), errorCode("ENOTCONNECTED"));
    const conn = await peer.accept();
    await conn.expect("connect");
    assert.throws(() => client.write(bytes("x"), { topic: "t" }), errorCode("ENOTCONNECTED"));
    conn.send({ cmd: "connack", returnCode: 0, sessionPresent: false });
    await rec.next("writable");

    const publish = (options: object, data: ArrayBuffer | null = bytes("x")) => () => client.write(data, options);
    assert.throws(publish({ topic: "t", QoS: 3 }), errorCode("EQOS"));
    assert.throws(publish({ topic: "a/+/b" }), errorCode("ETOPIC"));
    assert.throws(publish({ topic: "a/#" }), errorCode("ETOPIC"));
    assert.throws(publish({ topic: Uint8Array.of(0x61, 0xFF).buffer }), errorCode("ETOPIC"));
    assert.throws(publish({ topic: "bad\uD800" }), errorCode("ETOPIC"));
    assert.throws(publish({ topic: "nul\u0000" }), errorCode("ETOPIC"));
    assert.throws(publish({ QoS: 1 }), errorCode("ETOPIC"));
    assert.throws(publish({ topic: "t", duplicate: true }), errorCode("EOPTIONS"));
    assert.throws(publish({ topic: "t", byteLength: 0 }), errorCode("EFRAGMENT"));
    assert.throws(publish({ topic: "t", QoS: 1, id: 70_000 }), errorCode("EPACKETID"));
    assert.throws(publish({ topic: "t" }, null), errorCode("EOPTIONS"));
    assert.throws(() => client.write(bytes("x")), errorCode("EOPTIONS"));
    assert.throws(publish({ operation: MQTTClient.SUBSCRIBE, items: [{ topic: "a/b#" }] }, null), errorCode("ETOPIC"));
    assert.throws(publish({ operation: MQTTClient.SUBSCRIBE, items: [{ topic: "a", QoS: 3 }] }, null), errorCode("EQOS"));
    assert.throws(publish({ operation: MQTTClient.SUBSCRIBE, items: [] }, null), errorCode("EOPTIONS"));
    assert.throws(publish({ operation: MQTTClient.SUBSCRIBE, items: [{ topic: "a" }] }), errorCode("EOPTIONS"));
    assert.throws(publish({ operation: MQTTClient.PUBACK }, null), errorCode("EPACKETID"));
    assert.throws(publish({ operation: MQTTClient.CONNECT }, null), errorCode("EOPTIONS"));
    // None of those reached the wire: the next packet the peer sees is this one.
    client.write(null, { operation: MQTTClient.PINGREQ });
    await conn.expect("pingreq");
    assert.equal(conn.received.length, 2);

    client.write(null, { operation: MQTTClient.DISCONNECT });
    await conn.expect("disconnect");
    client.close();
    client.close();
    assert.throws(() => client.write(null, { operation: MQTTClient.PINGREQ }), errorCode("ECLOSED"));
    assert.throws(() => client.read(), errorCode("ECLOSED"));
    await conn.waitClosed();
    assert.deepEqual(rec.of("error"), []);
  } finally {
    client.close();
    await peer.close();
  }
});

test("twin strictness: constructor options Moddable would turn into a broken CONNECT", () => {
  const base = { host: "127.0.0.1", dns: { io: LoopbackResolver }, socket: { io: TCP } };
  assert.throws(() => new MQTTClient({ ...base, password: "p" }), errorCode("EOPTIONS"));
  assert.throws(() => new MQTTClient({ ...base, will: { topic: "w" } as never }), errorCode("EOPTIONS"));
  assert.throws(() => new MQTTClient({ ...base, will: { topic: "w/#", message: "m" } }), errorCode("ETOPIC"));
  assert.throws(() => new MQTTClient({ ...base, will: { topic: "w", message: "m", QoS: 3 } }), errorCode("EQOS"));
  assert.throws(() => new MQTTClient({ ...base, keepalive: -1 }), errorCode("EOPTIONS"));
  assert.throws(() => new MQTTClient({ ...base, keepalive: 70_000_000 }), errorCode("EOPTIONS"));
  assert.throws(() => new MQTTClient({ ...base, onClose() {} }), errorCode("EOPTIONS"));
  assert.throws(() => new MQTTClient({ ...base, host: "" }), errorCode("EOPTIONS"));
  assert.throws(() => new MQTTClient({ ...base, dns: {} as never }), errorCode("EOPTIONS"));
  assert.throws(() => new MQTTClient({ ...base, socket: undefined as never }), errorCode("EOPTIONS"));
  assert.throws(() => new MQTTClient({ ...base, format: "number" }), RangeError);
});

test("close() while DNS is still resolving throws (the board would crash in the resolver callback)", async () => {
  let resolved!: () => void;
  const answered = new Promise<void>((resolve) => (resolved = resolve));
  class WatchedResolver extends LoopbackResolver {
    override resolve(request: { host: string; onResolved(host: string, address: string): void; onError(): void }): void {
      super.resolve({ ...request, onResolved: (host, address) => { request.onResolved(host, address); resolved(); } });
    }
  }
  const client = new MQTTClient({ host: "127.0.0.1", port: 9, dns: { io: WatchedResolver }, socket: { io: TCP } });
  assert.throws(() => client.close(), errorCode("ECLOSED"));
  await within(answered, WAIT_MS, "the resolver to answer");
  client.close();
});

test("class shape: frozen like a preloaded module, static operation numbers, buffer format only", async () => {
  assert.ok(Object.isFrozen(MQTTClient) && Object.isFrozen(MQTTClient.prototype));
  assert.deepEqual(
    ["CONNECT", "CONNACK", "PUBLISH", "PUBACK", "PUBREC", "PUBREL", "PUBCOMP", "SUBSCRIBE", "SUBACK", "UNSUBSCRIBE", "UNSUBACK", "PINGREQ", "PINGRESP", "DISCONNECT"]
      .map((name) => MQTTClient[name as keyof typeof MQTTClient]),
    [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14]);
  await withSession({ target: "t" }, {}, async ({ client }) => {
    assert.equal(client.format, "buffer");
    assert.equal(client.target, "t");
    assert.throws(() => { client.format = "number"; }, RangeError);
  });
});

test("keepalive: PINGREQ every 3/4 interval while PINGRESPs come; onError once the peer goes silent", async () => {
  await withSession({ keepalive: 1000 }, {}, async ({ rec, conn, connect }) => {
    assert.equal((connect.packet as { keepalive: number }).keepalive, 1);
    for (let i = 0; i < 2; i++) {
      await conn.expect("pingreq");
      conn.send({ cmd: "pingresp" });
    }
    await rec.next("error");
    assert.equal(rec.of("control").filter((event) => event.message.operation === MQTTClient.PINGRESP).length, 2);
    assert.ok(traced.some((line) => line.includes("time out")), traced.join(""));
    await conn.waitClosed();
  });
});

test("broker faults: a zero-length PUBLISH (Moddable would stall) and a hang-up both end in onError", async () => {
  await withSession({}, {}, async ({ rec, conn }) => {
    conn.send({ cmd: "publish", topic: "retained/clear", payload: Buffer.alloc(0), qos: 0, retain: true, dup: false });
    await rec.next("error");
    assert.deepEqual(rec.of("readable"), []);
    assert.ok(traced.some((line) => line.includes("zero-length PUBLISH on \"retained/clear\"")), traced.join(""));
    await conn.waitClosed();
  });
  await withSession({}, {}, async ({ client, rec, conn }) => {
    conn.socket.end();
    await rec.next("error");
    assert.throws(() => client.write(null, { operation: MQTTClient.PINGREQ }), errorCode("ECLOSED"));
  });
});

test("broker faults: a packet type a server never sends, and a refused TCP connection, end in onError", async () => {
  await withSession({}, {}, async ({ rec, conn }) => {
    conn.sendRaw(Uint8Array.of(0xC0, 0));                      // PINGREQ, server to client
    await rec.next("error");
    assert.ok(traced.some((line) => line.includes("unexpected PINGREQ")), traced.join(""));
    await conn.waitClosed();
  });
  const rec = new Recorder();
  const client = create(await freePort(), rec);
  try {
    await rec.next("error");
    assert.ok(traced.some((line) => line.includes("mqttClient error: socket error")), traced.join(""));
  } finally {
    client.close();
  }
});

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (!address || typeof address === "string") throw new Error("no port");
  return address.port;
}

async function waitListening(port: number): Promise<void> {
  for (;;) {
    const up = await new Promise<boolean>((resolve) => {
      const probe = netConnect({ host: "127.0.0.1", port }, () => { probe.destroy(); resolve(true); });
      probe.on("error", () => resolve(false));
    });
    if (up) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

test("interop with a real mosquitto: subscribe, publish QoS 1, receive our own message", async () => {
  const dir = mkdtempSync(join(tmpdir(), "espguard-mosquitto-"));
  const port = await freePort();
  const config = join(dir, "mosquitto.conf");
  writeFileSync(config, `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stderr\n`);
  const broker = spawn("/usr/sbin/mosquitto", ["-c", config], { stdio: ["ignore", "ignore", "pipe"] });
  let log = "";
  broker.stderr.on("data", (data: Buffer) => (log += data.toString()));
  const exited = new Promise<void>((resolve) => broker.once("exit", () => resolve()));
  const rec = new Recorder();
  let client: MQTTClient | undefined;
  try {
    await within(Promise.race([waitListening(port), exited.then(() => { throw new Error(`mosquitto exited: ${log}`); })]), WAIT_MS, "mosquitto to listen");
    client = create(port, rec, { id: "espguard-interop", keepalive: 30_000 });
    assert.deepEqual((await rec.next("control")).message, { operation: MQTTClient.CONNACK, returnCode: 0 });
    client.write(null, { operation: MQTTClient.SUBSCRIBE, items: [{ topic: "espguard/interop/#", QoS: 1 }] });
    assert.deepEqual((await rec.next("control")).message, { operation: MQTTClient.SUBACK, id: 2, payload: [1] });
    client.write(bytes("hello from the twin"), { topic: "espguard/interop/echo", QoS: 1 });
    assert.deepEqual((await rec.next("control")).message, { operation: MQTTClient.PUBACK, id: 3 });
    const message = await rec.next("readable");
    assert.deepEqual(message.options, { topic: "espguard/interop/echo", byteLength: 19, QoS: 1, more: false });
    assert.equal(Buffer.from(message.data!).toString(), "hello from the twin");
    client.write(null, { operation: MQTTClient.DISCONNECT });
    client.close();
    assert.deepEqual(rec.of("error"), []);
  } finally {
    client?.close();
    broker.kill();
    await within(exited, WAIT_MS, "mosquitto to exit");
    rmSync(dir, { recursive: true, force: true });
  }
});
