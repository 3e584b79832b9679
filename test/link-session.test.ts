// The link's session behaviour against a real mosquitto, with the firmware's Link running in
// this process on the twin's Moddable stand-ins (the same modules a twin device runs): QoS 1
// messages survive a broker restart, and a fleet reconnects spread over the backoff window.
// Many devices share this process because a twin device process per device (Node + tsx, ~70 MB
// each) would not fit a 2-core CI box a hundred times over; each Link still has its own client
// certificate, TLS session and MQTT client id, so the broker sees a hundred devices.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createServer, type Server } from "node:net";
import { after, before, describe, test } from "node:test";
import { requireMosquitto, startTestBroker, type TestBroker } from "../broker/mosquitto.ts";
import { createCa, type Issued } from "../certs/pki.ts";
import type { DeviceConfig } from "../modules/link/device-config.ts";
import { Link, linkSettings, type LinkSettings } from "../modules/link/link.ts";
import { spkiPin } from "../modules/pins/spki-pin.ts";
import { bundleFirmware } from "../twin/runtime/bundle.ts";
import { provisionDevice } from "./support/link-device.ts";
import { type NtpServer, startNtpServer } from "./support/ntp-server.ts";
import { freeLoopbackPort } from "../broker/mosquitto.ts";
import { ConfigKey, configDomain } from "../modules/link/device-config.ts";
import Preference from "../twin/moddable/preference.ts";

const stateRoot = mkdtempSync(join(tmpdir(), "espguard-link-session-"));
let ca: Issued;
let target: TestBroker;
let ntp: NtpServer;
const links: Link[] = [];

before(async () => {
  requireMosquitto();
  ca = await createCa({ commonName: "espguard session CA" });
  target = await startTestBroker({ ca, echo: true });
  ntp = await startNtpServer();
  // Preference (the time floor) lives in a twin flash: give this process one
  const device = await provisionDevice(target, stateRoot, await bundleFirmware({ format: "esm" }), "link-host", { ntp: ntp.spec });
  process.env.ESPGUARD_TWIN_FLASH = device.flashPath;
});

after(async () => {
  for (const link of links) link.stop();
  await target?.stop();
  await ntp?.stop();
  rmSync(stateRoot, { recursive: true, force: true });
});

async function deviceConfig(deviceId: string): Promise<DeviceConfig> {
  const identity = await target.issueDevice(deviceId);
  return Object.freeze({
    deviceId: deviceId as DeviceConfig["deviceId"],
    brokerHost: "127.0.0.1",
    brokerPort: target.broker.port,
    caDer: new Uint8Array(ca.certDer).buffer,
    certDer: new Uint8Array(identity.certDer).buffer,
    keyDer: new Uint8Array(identity.keyPkcs8Der).buffer,
    selfTest: false,
    pins: [spkiPin(target.server.certDer)],
    ntpServers: [{ host: "127.0.0.1", port: ntp.port }],
  });
}

function settings(backoff: LinkSettings["backoff"]): LinkSettings {
  return { ...linkSettings(), backoff };
}

/** Resolves on the link's next event of that kind, or fails after `ms`. */
function next(link: Link, kind: "onReached" | "onDown", ms: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`no ${kind} within ${ms} ms`));
    }, ms);
    const off = link.subscribe({
      [kind]: () => {
        clearTimeout(timer);
        off();
        resolve();
      },
    });
  });
}

/** The first link-down reason of a link to `config`, which must not reach anything. */
async function firstReason(config: DeviceConfig, overrides: Partial<LinkSettings> = {}): Promise<{ reason: string; detail: string }> {
  const link = new Link(config, { ...settings({ baseMs: 60_000, capMs: 60_000, floorMs: 0 }), ...overrides });
  links.push(link);
  const down = new Promise<{ reason: string; detail: string }>((resolve) => link.subscribe({ onDown: (reason, detail) => resolve({ reason, detail }) }));
  let reached = false;
  link.subscribe({ onReached: () => void (reached = true) });
  link.start();
  const result = await down;
  link.stop();
  assert.equal(reached, false);
  return result;
}

describe("link failure reasons", () => {
  test("nothing listening → refused", async () => {
    const config = { ...(await deviceConfig("link-closed")), brokerPort: await freeLoopbackPort() };
    assert.equal((await firstReason(config)).reason, "refused");
  });

  test("a name that does not resolve → dns", async () => {
    const config = { ...(await deviceConfig("link-nxdomain")), brokerHost: "no-such-broker.invalid" };
    assert.equal((await firstReason(config)).reason, "dns");
  });

  test("a server that accepts TCP and never answers → timeout at the connect deadline", async () => {
    const silent: Server = createServer(() => {});
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    try {
      const port = (silent.address() as { port: number }).port;
      const config = { ...(await deviceConfig("link-silent")), brokerPort: port };
      assert.equal((await firstReason(config, { connectTimeoutMs: 1500 })).reason, "timeout");
    } finally {
      silent.close();
    }
  });
});

describe("stopping the link", () => {
  test("while the broker's name is still resolving: the close waits for the resolution (the board would crash)", async () => {
    const config = { ...(await deviceConfig("link-stop-dns")), brokerHost: "localhost" };
    const link = new Link(config, settings({ baseMs: 1000, capMs: 1000, floorMs: 0 }));
    links.push(link);
    const events: string[] = [];
    link.subscribe({ onReached: () => events.push("reached"), onDown: (reason) => events.push(reason) });
    const stopped = new Promise<void>((resolve, reject) => link.subscribe({
      // the session is created right after the clock is known; its name resolves on a later turn
      onClock: () => setImmediate(() => {
        try {
          link.stop();
          resolve();
        } catch (error) {
          reject(error);
        }
      }),
    }));
    link.start();
    await stopped;
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.deepEqual(events, []);
    assert.equal(link.up, false);
  });
});

describe("link sessions against mosquitto", () => {
  test("broker restart mid-session: the link reconnects and every QoS 1 message arrives, including those queued while it was down", async () => {
    const config = await deviceConfig("link-q1");
    const topic = `devices/${config.deviceId}/telemetry`;
    // room for every message of the test: the bound and its drop count are test/link-units' business
    const link = new Link(config, { ...settings({ baseMs: 300, capMs: 2000, floorMs: 20 }), outboxCapacity: 256 });
    links.push(link);
    link.follow(topic);
    const received = new Set<number>();
    let duplicates = 0;
    link.subscribe({
      onMessage(_topic, payload) {
        const counter = Number(new TextDecoder().decode(payload));
        if (received.has(counter)) duplicates++;
        received.add(counter);
      },
    });
    const reached = next(link, "onReached", 20_000);
    link.start();
    await reached;
    // a verified session moved the time floor (provisioned without one) up to the trusted time
    const floor = Preference.get(configDomain(), ConfigKey.timeFloor);
    assert.ok(typeof floor === "number" && Math.abs(floor * 1000 - Date.now()) < 60_000, `time floor ${floor}`);

    let counter = 0;
    let queuedWhileDown = 0;
    const send = (): void => {
      counter++;
      if (!link.up) queuedWhileDown++;
      link.publish(topic, ArrayBuffer.fromString(String(counter)), 1);
    };
    for (let i = 0; i < 20; i++) send();
    const down = next(link, "onDown", 20_000);
    const restarted = target.broker.restart();
    await down;
    // the link is down now: these wait in the outbox
    for (let i = 0; i < 30; i++) send();
    await restarted;
    await next(link, "onReached", 30_000);
    for (let i = 0; i < 20; i++) send();

    const deadline = Date.now() + 20_000;
    // mosquitto forwards a message to subscribers before it acks the publisher: wait for both
    while ((received.size < counter || link.queued > 0) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
    const missing = Array.from({ length: counter }, (_, i) => i + 1).filter((n) => !received.has(n));
    assert.deepEqual(missing, [], `lost ${missing.length} of ${counter} (duplicates ${duplicates})`);
    assert.ok(queuedWhileDown >= 30, `only ${queuedWhileDown} messages were published while the link was down`);
    assert.equal(link.dropped, 0);
    assert.equal(link.queued, 0);
  });

  test("100 devices reconnect after a broker restart spread over the backoff window, not in one burst", async (t) => {
    const count = 100;
    const backoff = { baseMs: 1000, capMs: 8000, floorMs: 50 };
    const configs = await Promise.all(Array.from({ length: count }, (_, i) => deviceConfig(`link-fleet-${i}`)));
    const fleet = configs.map((config) => new Link(config, settings(backoff)));
    links.push(...fleet);
    await Promise.all(fleet.map((link) => {
      const reached = next(link, "onReached", 60_000);
      link.start();
      return reached;
    }));

    // each device's next attempt starts retryMs after it saw the link go down
    const attemptsAt: number[] = [];
    const restartedAt = Date.now();
    const offs = fleet.map((link) => {
      let first = true;
      return link.subscribe({
        onDown(_reason, _detail, retryMs) {
          if (first) attemptsAt.push(Date.now() + retryMs - restartedAt);
          first = false;
        },
      });
    });
    const reconnected = Promise.all(fleet.map((link) => next(link, "onReached", 90_000).then(() => Date.now() - restartedAt)));
    await target.broker.restart();
    const reconnectedAt = await reconnected;
    offs.forEach((off) => off());

    const shape = (times: number[]): { spread: number; burst: number; text: string } => {
      const sorted = [...times].sort((a, b) => a - b);
      let burst = 0;
      for (let i = 0, j = 0; i < sorted.length; i++) {
        while (sorted[i]! - sorted[j]! > 100) j++;
        burst = Math.max(burst, i - j + 1);
      }
      const quartiles = [0.25, 0.5, 0.75].map((q) => sorted[Math.floor(q * (sorted.length - 1))]);
      return { spread: sorted[sorted.length - 1]! - sorted[0]!, burst, text: `${sorted[0]}–${sorted[sorted.length - 1]} ms (quartiles ${quartiles.join("/")}), densest 100 ms: ${burst}` };
    };
    const attempts = shape(attemptsAt);
    const completions = shape(reconnectedAt);
    t.diagnostic(`first reconnect attempts ${attempts.text}; reconnections ${completions.text}`);
    assert.equal(attemptsAt.length, count);
    // full jitter over a first window of baseMs: uniform over ~1 s; all at once would be one burst
    assert.ok(attempts.spread >= backoff.baseMs / 2, `attempts spread only ${attempts.text}`);
    assert.ok(attempts.burst <= count / 3, `attempts bunched: ${attempts.text}`);
    // devices that hit the broker while it starts wait in its listen backlog and complete
    // together, so completions are bounded, not shaped
    assert.ok(completions.spread > 0 && reconnectedAt.every((ms) => ms <= 3 * backoff.capMs + 10_000), `reconnections ${completions.text}`);
  });
});
