// The connection manager (modules/net/manager) in this process, on the twin's `wifi` and `net`
// stand-ins and the twin radio they share: joining, the fallback network, backoff once every
// network failed, an immediate rejoin after a lost association, a refused passphrase, and what
// readWifiNetworks makes of the provisioned keys.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, afterEach, before, test } from "node:test";
import { ProvisionKey } from "../certs/provision-image.ts";
import { configDomain } from "../modules/link/device-config.ts";
import { readWifiNetworks, WifiCredentialsError, WifiKey } from "../modules/net/credentials.ts";
import { NetManager, type NetDownReason, netSettings } from "../modules/net/manager.ts";
import { radio } from "../twin/device/radio.ts";
import { createTwinDevice } from "../twin/device/provision.ts";
import Preference from "../twin/moddable/preference.ts";
import { TWIN_IP } from "../twin/moddable/wifi.ts";

type Seen = { joining: string } | { up: string; ip: string } | { down: NetDownReason; ssid: string; retryMs: number };

const stateRoot = mkdtempSync(join(tmpdir(), "espguard-net-manager-"));
const managers: NetManager[] = [];
const SETTINGS = { joinTimeoutMs: 5000, backoff: { baseMs: 400, capMs: 1600, floorMs: 50 } };
const PRIMARY = { ssid: "shop-floor", password: "primary-passphrase" };
const FALLBACK = { ssid: "shop-office", password: "fallback-passphrase" };

before(() => {
  // Preference lives in a twin flash: give this process one
  const device = createTwinDevice({ name: "net-host", stateDir: join(stateRoot, "net-host"), bundle: "export {};", preferences: {}, wifi: null });
  process.env.ESPGUARD_TWIN_FLASH = device.flashPath;
});

afterEach(() => {
  for (const manager of managers.splice(0)) manager.stop();
  radio.set("up");
});

after(() => {
  rmSync(stateRoot, { recursive: true, force: true });
});

function watch(networks: readonly { ssid: string; password: string }[]) {
  const manager = new NetManager(networks, SETTINGS, () => 0.5);
  managers.push(manager);
  const seen: Seen[] = [];
  const waiters: { match: (s: Seen) => boolean; resolve: () => void }[] = [];
  manager.subscribe({
    onJoining: (ssid) => record({ joining: ssid }),
    onUp: (ip, ssid) => record({ up: ssid, ip }),
    onDown: (reason, ssid, retryMs) => record({ down: reason, ssid, retryMs }),
  });
  function record(entry: Seen): void {
    seen.push(entry);
    for (const waiter of waiters.slice()) if (waiter.match(entry)) waiters.splice(waiters.indexOf(waiter), 1) && waiter.resolve();
  }
  /** Resolves once `count` entries matching `match` have been seen in all. */
  function until(what: string, match: (s: Seen) => boolean, count = 1): Promise<void> {
    let found = seen.filter(match).length;
    if (found >= count) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${what} within 15 s; seen ${JSON.stringify(seen)}`)), 15_000);
      const waiter = {
        match: (s: Seen) => match(s) && ++found >= count,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      };
      waiters.push(waiter);
    });
  }
  return { manager, seen, until };
}

const isUp = (s: Seen) => "up" in s;

test("joins the primary network and reports its address", async () => {
  const { manager, seen, until } = watch([PRIMARY, FALLBACK]);
  manager.start();
  await until("up", isUp);
  assert.deepEqual(seen, [{ joining: "shop-floor" }, { up: "shop-floor", ip: TWIN_IP }]);
  assert.equal(manager.state, "up");
  assert.equal(manager.ip, TWIN_IP);
});

test("out of range: primary, fallback, then a backoff round; joins as soon as the network is back", async () => {
  radio.set("down");
  const { manager, seen, until } = watch([PRIMARY, FALLBACK]);
  manager.start();
  await until("two failed rounds", (s) => "down" in s, 4);
  const downs = seen.filter((s) => "down" in s);
  assert.deepEqual(downs.map((s) => "down" in s && [s.down, s.ssid, s.retryMs > 0]), [
    ["join-failed", "shop-floor", false],
    ["join-failed", "shop-office", true],
    ["join-failed", "shop-floor", false],
    ["join-failed", "shop-office", true],
  ]);
  // full jitter at 0.5 of a window that doubles each round, capped
  const waits = downs.filter((s) => "down" in s && s.retryMs > 0).map((s) => "down" in s && s.retryMs);
  assert.deepEqual(waits, [200, 400]);
  assert.equal(manager.state, "down");
  radio.set("up");
  await until("up", isUp);
  assert.equal(manager.ip, TWIN_IP);
});

test("a lost association rejoins at once, primary first", async () => {
  const { manager, seen, until } = watch([PRIMARY, FALLBACK]);
  manager.start();
  await until("up", isUp);
  radio.set("down");
  await until("lost", (s) => "down" in s && s.down === "lost");
  const lost = seen.find((s) => "down" in s && s.down === "lost");
  assert.deepEqual(lost, { down: "lost", ssid: "shop-floor", retryMs: 0 });
  assert.equal(manager.ip, undefined);
  await until("a rejoin", (s) => "joining" in s, 2);
  assert.deepEqual(seen.filter((s) => "joining" in s).at(-1), { joining: "shop-floor" });
  radio.set("up");
  await until("up again", isUp, 2);
});

test("a passphrase the access point refuses is reported as auth-refused, and the fallback is tried", async () => {
  const { manager, seen, until } = watch([{ ssid: "shop-floor", password: "short" }, FALLBACK]);
  manager.start();
  await until("up", isUp);
  assert.deepEqual(seen, [
    { joining: "shop-floor" },
    { down: "auth-refused", ssid: "shop-floor", retryMs: 0 },
    { joining: "shop-office" },
    { up: "shop-office", ip: TWIN_IP },
  ]);
});

test("the manifest's settings are the manager's defaults", () => {
  const settings = netSettings();
  assert.ok(settings.joinTimeoutMs > 0);
  assert.ok(settings.backoff.capMs >= settings.backoff.baseMs);
});

test("credentials: the keys provisioning writes, a missing network, a half-provisioned fallback", () => {
  assert.deepEqual(
    [WifiKey.ssid, WifiKey.pass, WifiKey.ssid2, WifiKey.pass2],
    [ProvisionKey.wifiSsid, ProvisionKey.wifiPass, ProvisionKey.wifiSsid2, ProvisionKey.wifiPass2],
  );
  const domain = configDomain();
  assert.throws(() => readWifiNetworks(), (error: Error) => {
    assert.ok(error instanceof WifiCredentialsError);
    assert.equal(error.key, "wifi_ssid");
    assert.match(error.message, /missing; provision them \(espguard device provision --wifi-ssid/);
    return true;
  });
  Preference.set(domain, WifiKey.ssid, PRIMARY.ssid);
  Preference.set(domain, WifiKey.pass, PRIMARY.password);
  assert.deepEqual(readWifiNetworks(), [PRIMARY]);
  Preference.set(domain, WifiKey.ssid2, FALLBACK.ssid);
  assert.throws(() => readWifiNetworks(), (error: Error) => {
    assert.equal((error as WifiCredentialsError).key, "wifi_pass2");
    assert.doesNotMatch(error.message, /primary-passphrase/, "a passphrase is never in a message");
    return true;
  });
  Preference.set(domain, WifiKey.pass2, FALLBACK.password);
  assert.deepEqual(readWifiNetworks(), [PRIMARY, FALLBACK]);
});

test("main.ts joins the provisioned Wi-Fi on the XS engine, then runs the link over it", async () => {
  const { runFirmwareInXs } = await import("../twin/xs/xs-check.ts");
  const result = await runFirmwareInXs({
    preferences: {
      espguard: {
        device_id: "dev-xs-wifi",
        broker_host: "10.1.2.3",
        broker_port: 8883,
        ca: Uint8Array.of(0x30, 0x82, 0x01),
        cert: Uint8Array.of(0x30, 0x82, 0x02),
        key: Uint8Array.of(0x30, 0x82, 0x03),
        [WifiKey.ssid]: PRIMARY.ssid,
        [WifiKey.pass]: PRIMARY.password,
        // no NTP answers in XS: the floor lets the link go on to the broker
        time_floor: 1_700_000_000,
      },
    },
  });
  assert.equal(result.ok, true, result.error?.message);
  const ops = result.io.map((r) => `${r.module} ${r.op}`);
  assert.equal(ops[0], "wifi connect");
  assert.deepEqual(result.io[0]!.detail, { ssid: PRIMARY.ssid });
  assert.ok(ops.includes("embedded:io/socket/tcp connect"), `the link ran after the join: ${ops.join(", ")}`);
});
