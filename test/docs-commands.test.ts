// The command blocks of the runbooks and of "Flash a real board", run as printed.
//
// How the pages are held to their commands:
// - A ```sh block runs here, unchanged, with `sh -eu` in a temporary project folder, the real
//   `espguard` on PATH, real openssl, mosquitto and mosquitto_pub. Each starts with
//   `# step: <name>`; a test runs the steps of a page in the page's order, and the last test of each
//   page fails if a sh block was not run, so a new block cannot go untested.
// - A ```sh board block needs what cannot exist here (a board on a serial port, esptool, ESP-IDF,
//   the Moddable SDK). Every `espguard` command in it is parsed by the real command tree with the
//   actions replaced (test/support/doc-blocks.ts): the verb, every option, the required options and
//   arguments, and option values the CLI's own parsers check. Shell variables take the example values
//   below, and a variable without one fails. Every `write_flash` offset in one must be the nvs offset
//   of the partition table the firmware is built with.
// - No other fence is allowed on these pages.
// The environment the runbooks name (`$BROKER_PID` and so on) is set up by the test, the way an
// operator's shell would have it; how mosquitto is (re)started is the page's prose, and the test
// starts it with the same `OPENSSL_CONF=… mosquitto -c …` (`launchMosquitto`).
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import mqtt, { type MqttClient } from "mqtt";
import { freeLoopbackPort, launchMosquitto, requireMosquitto, type RunningBroker } from "../broker/mosquitto.ts";
import { brokerFiles } from "../cli/broker.ts";
import { PartitionTable } from "../twin/flash/partition-table.ts";
import { PROJECT_ROOT } from "../twin/runtime/manifest.ts";
import { docBlocks, espguardCommands, parseEspguard, simpleCommands, type DocBlock } from "./support/doc-blocks.ts";
import { espguardOk } from "./support/espguard-cli.ts";
import { within } from "./support/mqtt-peer.ts";

const PAGES = [
  "docs/runbooks/revoking-a-device.md",
  "docs/runbooks/hmac-key-rotation.md",
  "docs/runbooks/ca-rotation.md",
  "docs/flash-a-real-board.md",
] as const;
type Page = (typeof PAGES)[number];

/** Example values for the variables of `sh board` blocks, as an operator would have them. */
const BOARD_ENV: Readonly<Record<string, string>> = {
  DEVICE_ID: "sensor-0042", BROKER_HOST: "mqtt.example.net", BROKER_PORT: "8883", NEW_BROKER_PORT: "8884",
  WIFI_SSID: "Shop floor", ESPGUARD_WIFI_PASS: "correct horse battery", UPLOAD_PORT: "/dev/ttyUSB0", HOME: "/home/op",
  IDF_PATH: "/home/op/esp32/esp-idf-v6.0",
};
const WIFI = { WIFI_SSID: "Bench net", ESPGUARD_WIFI_PASS: "bench-passphrase" };
const RUN_MS = 30_000;
const WAIT_MS = 15_000;
const CLI = join(PROJECT_ROOT, "bin/espguard.js");

const root = mkdtempSync(join(tmpdir(), "espguard-docs-"));
const bin = join(root, "bin");
mkdirSync(bin);
writeFileSync(join(bin, "espguard"), `#!/bin/sh\nexec "${process.execPath}" "${CLI}" "$@"\n`, { mode: 0o755 });
const brokers: RunningBroker[] = [];
const children = new Set<ChildProcess>();
const clients = new Set<MqttClient>();
after(async () => {
  for (const client of clients) client.end(true);
  for (const child of children) if (child.exitCode === null && child.signalCode === null) process.kill(-child.pid!, "SIGKILL");
  await Promise.all(brokers.map((broker) => broker.stop()));
  rmSync(root, { recursive: true, force: true });
});

const blocks = new Map<Page, DocBlock[]>(PAGES.map((page) => [page, docBlocks(readFileSync(join(PROJECT_ROOT, page), "utf8"))]));
const ran = new Map<Page, Set<string>>(PAGES.map((page) => [page, new Set()]));

function stepOf(page: Page, name: string): string {
  const block = blocks.get(page)!.find((b) => b.info === "sh" && b.step === name);
  assert.ok(block, `${page} has no sh block "# step: ${name}"`);
  ran.get(page)!.add(name);
  return block.body;
}

/** Runs a step to completion; a non-zero exit fails with its output. */
function sh(page: Page, name: string, cwd: string, env: Record<string, string>): string {
  const result = spawnSync("sh", ["-eu", "-c", stepOf(page, name)], {
    cwd, encoding: "utf8", timeout: RUN_MS, env: { ...process.env, ...env, PATH: `${bin}:${process.env.PATH}` },
  });
  assert.equal(result.status, 0, `${page}, step ${name}:\n${result.stdout}${result.stderr}`);
  return result.stdout;
}

interface Background {
  output(): string;
  stop(): Promise<string>;
}

/** Starts a long-running step (a verifier) and waits for `ready` in its output. */
async function shBackground(page: Page, name: string, cwd: string, env: Record<string, string>, ready: RegExp): Promise<Background> {
  const child = spawn("sh", ["-eu", "-c", stepOf(page, name)], {
    cwd, env: { ...process.env, ...env, PATH: `${bin}:${process.env.PATH}` }, detached: true, stdio: ["ignore", "pipe", "pipe"],
  });
  children.add(child);
  let output = "";
  child.stdout!.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on("data", (chunk: Buffer) => (output += chunk.toString()));
  // "close", not "exit": the shell may be gone while espguard still writes its final summary.
  const closed = new Promise<void>((resolve) => child.once("close", () => resolve()));
  await within(new Promise<void>((resolve, reject) => {
    const check = (): void => { if (ready.test(output)) resolve(); };
    child.stdout!.on("data", check);
    child.stderr!.on("data", check);
    child.once("exit", () => reject(new Error(`${page}, step ${name} exited:\n${output}`)));
  }), WAIT_MS, `${page}, step ${name} to start:\n${output}`);
  return {
    output: () => output,
    stop: async () => {
      if (child.exitCode === null) process.kill(-child.pid!, "SIGTERM");
      await within(closed, WAIT_MS, `${name} to stop`);
      children.delete(child);
      return output;
    },
  };
}

function allStepsRan(page: Page): void {
  const steps = blocks.get(page)!.filter((b) => b.info === "sh").map((b) => b.step ?? `(no step name, line ${b.line})`);
  assert.deepEqual(steps.filter((s) => !ran.get(page)!.has(s)), [], `${page}: sh blocks no test ran`);
}

function project(name: string): string {
  const dir = join(root, name);
  mkdirSync(dir);
  return dir;
}

/** mosquitto on a folder `espguard broker config` wrote, readable by the account it drops to. */
async function startBroker(dir: string, out: string, port: number): Promise<RunningBroker> {
  const files = brokerFiles(out);
  const broker = await launchMosquitto({
    confPath: files.conf, opensslConfPath: files.opensslConf, host: "127.0.0.1", port, cafile: files.ca,
    brokerFiles: [root, dir, join(dir, ".espguard"), out, ...readdirSync(out).map((name) => join(out, name))],
  });
  brokers.push(broker);
  return broker;
}

/** A device of the store `pki` connects; `caPki` is the store whose CA the broker's certificate chains to. */
function connect(port: number, pki: string, id: string, caPki = pki): Promise<MqttClient> {
  const client = mqtt.connect(`mqtts://127.0.0.1:${port}`, {
    ca: readFileSync(join(caPki, "ca.pem")), cert: readFileSync(join(pki, "devices", id, "cert.pem")), key: readFileSync(join(pki, "devices", id, "key.pem")),
    servername: "localhost", reconnectPeriod: 0, connectTimeout: 10_000,
  });
  clients.add(client);
  return within(new Promise((resolve, reject) => {
    client.once("connect", () => resolve(client));
    client.once("error", reject);
    client.once("close", () => reject(new Error(`${id}: connection closed before CONNACK`)));
  }), WAIT_MS, `${id} to connect`);
}

async function waitForLog(broker: RunningBroker, pattern: RegExp, count: number): Promise<void> {
  await within((async () => {
    while ((broker.logs().match(pattern) ?? []).length < count) await new Promise((resolve) => setTimeout(resolve, 50));
  })(), WAIT_MS, `mosquitto to log ${pattern}`);
}

describe("docs/runbooks/revoking-a-device.md", () => {
  const page = "docs/runbooks/revoking-a-device.md";
  const dir = project("revoke");
  const pki = join(dir, ".espguard/pki");
  const env: Record<string, string> = { DEVICE_ID: "dev-lost", BROKER_HOST: "localhost" };
  let broker: RunningBroker;
  let openSession: MqttClient;

  before(async () => {
    requireMosquitto();
    await espguardOk(dir, ["certs", "init"]);
    await espguardOk(dir, ["certs", "server", "--dns", "localhost", "--ip", "127.0.0.1"]);
    for (const args of [["certs", "device", "dev-lost"], ["certs", "device", "dev-ok"], ["certs", "service", "svc.verifier"]]) await espguardOk(dir, args);
    env.BROKER_PORT = String(await freeLoopbackPort());
    await espguardOk(dir, ["broker", "config", "--port", env.BROKER_PORT, "--verifier", "svc.verifier"]);
    broker = await startBroker(dir, join(dir, ".espguard/broker"), Number(env.BROKER_PORT));
    env.BROKER_PID = String(broker.pid());
  });

  test("revoke, check-crl, reload: the revoked certificate is refused, others connect, an open session survives a reload", { skip: process.geteuid?.() !== 0 && "the reload step's chown needs root" }, async () => {
    // The check fails while the device is still accepted: proof that it can fail for the right reason.
    const early = spawnSync("sh", ["-eu", "-c", stepOf(page, "check-refused")], { cwd: dir, encoding: "utf8", timeout: RUN_MS, env: { ...process.env, ...env } });
    assert.equal(early.status, 1, early.stderr);
    assert.match(early.stdout, /the broker still accepts dev-lost/);
    // After the probe: the broker uses the CN as client id, so the probe would have taken this session over.
    openSession = await connect(broker.port, pki, "dev-lost");
    assert.match(sh(page, "revoke", dir, env), /dev-lost\s+\S+\s+\S+\s+revoked/);
    sh(page, "check-crl", dir, env);
    sh(page, "reload", dir, env);
    await waitForLog(broker, /Reloading config/g, 1);
    sh(page, "check-refused", dir, env);
    await waitForLog(broker, /certificate verify failed/g, 1);
    (await connect(broker.port, pki, "dev-ok")).end(true);
    assert.ok(openSession.connected, "a reload should leave the open session alone (the runbook says only a restart cuts it)");
    assert.equal(broker.pid(), Number(env.BROKER_PID), "a reload keeps the process");
  });

  test("crl, then reload again: a fresh nextUpdate and the broker still serves", { skip: process.geteuid?.() !== 0 && "the reload step's chown needs root" }, async () => {
    const next = /nextUpdate=(.+)/.exec(sh(page, "crl", dir, env))?.[1];
    assert.ok(next !== undefined && Date.parse(next) > Date.now() + 29 * 86_400_000, `nextUpdate ${next}`);
    sh(page, "reload", dir, env);
    await waitForLog(broker, /Reloading config/g, 2);
    (await connect(broker.port, pki, "dev-ok")).end(true);
    sh(page, "check-refused", dir, env);
    allStepsRan(page);
  });
});

describe("docs/runbooks/hmac-key-rotation.md", () => {
  const page = "docs/runbooks/hmac-key-rotation.md";
  const dir = project("hmac");
  const pki = join(dir, ".espguard/pki");
  const env: Record<string, string> = { DEVICE_ID: "dev-1", BROKER_HOST: "localhost", ...WIFI };
  let port: number;

  const publish = async (kid: string, seq: number): Promise<void> => {
    const wire = (await espguardOk(dir, ["telemetry", "sign", "--fleet-secret", join(pki, "fleet.secret"), "--dev", "dev-1", "--kid", kid, "--seq", String(seq), '{"temp":21.5}'])).stdout.trim();
    const client = await connect(port, pki, "dev-1");
    await client.publishAsync("devices/dev-1/telemetry", wire, { qos: 1 });
    await client.endAsync();
  };

  before(async () => {
    requireMosquitto();
    await espguardOk(dir, ["certs", "init"]);
    await espguardOk(dir, ["certs", "server", "--dns", "localhost", "--ip", "127.0.0.1"]);
    port = await freeLoopbackPort();
    env.BROKER_PORT = String(port);
    await espguardOk(dir, ["certs", "service", "svc.verifier"]);
    await espguardOk(dir, ["device", "provision", "dev-1", "--kid", "k1", "--broker-host", "localhost", "--broker-port", env.BROKER_PORT, "--wifi-ssid", WIFI.WIFI_SSID], { ESPGUARD_WIFI_PASS: WIFI.ESPGUARD_WIFI_PASS });
    await espguardOk(dir, ["broker", "config", "--port", env.BROKER_PORT, "--verifier", "svc.verifier"]);
    await startBroker(dir, join(dir, ".espguard/broker"), port);
  });

  test("verify-both accepts k1 and k2; probe; provision writes the new kid", async () => {
    const verifier = await shBackground(page, "verify-both", dir, env, /verify: subscribed/);
    await publish("k1", 1);
    await publish("k2", 2);
    await within((async () => {
      while (!(/"seq":1\b/.test(verifier.output()) && /"seq":2\b/.test(verifier.output()))) await new Promise((r) => setTimeout(r, 50));
    })(), WAIT_MS, "both messages accepted");
    const out = await verifier.stop();
    assert.match(out, /"kid":"k1"/);
    assert.match(out, /"kid":"k2"/);
    assert.match(sh(page, "probe", dir, env), /"probe":1/);
    const before = readFileSync(join(pki, "devices/dev-1/nvs.bin"));
    sh(page, "provision", dir, env);
    const image = readFileSync(join(pki, "devices/dev-1/nvs.bin"));
    assert.notDeepEqual(image, before);
    assert.ok(image.includes(Buffer.from("k2\0")), "the new image holds hmac_kid k2");
    assert.equal(statSync(join(pki, "devices/dev-1/nvs.bin")).mode & 0o777, 0o600);
  });

  test("verify-new-only refuses k1 as unknown-kid and accepts k2", async () => {
    const verifier = await shBackground(page, "verify-new-only", dir, env, /verify: subscribed/);
    await publish("k1", 3);
    await publish("k2", 4);
    await within((async () => {
      while (!/"seq":4\b/.test(verifier.output())) await new Promise((r) => setTimeout(r, 50));
    })(), WAIT_MS, "the k2 message accepted");
    const out = await verifier.stop();
    assert.doesNotMatch(out, /"seq":3\b/);
    assert.match(out, /unknown-kid 1/);
    allStepsRan(page);
  });
});

describe("docs/runbooks/ca-rotation.md", () => {
  const page = "docs/runbooks/ca-rotation.md";
  const dir = project("ca");
  const env: Record<string, string> = { DEVICE_ID: "dev-1", BROKER_HOST: "localhost", ...WIFI };
  let broker: RunningBroker;

  before(async () => {
    requireMosquitto();
    await espguardOk(dir, ["certs", "init"]);
    await espguardOk(dir, ["certs", "server", "--dns", "localhost"]);
    await espguardOk(dir, ["certs", "device", "dev-1"]);
    env.NEW_BROKER_PORT = String(await freeLoopbackPort());
  });

  test("new-ca, new-broker, new-verifier, recall, check-new: the recalled identity gets into the new broker, the old one does not", async () => {
    sh(page, "new-ca", dir, env);
    assert.notDeepEqual(readFileSync(join(dir, ".espguard/pki-2/ca.pem")), readFileSync(join(dir, ".espguard/pki/ca.pem")));
    assert.notDeepEqual(readFileSync(join(dir, ".espguard/pki-2/fleet.secret")), readFileSync(join(dir, ".espguard/pki/fleet.secret")));
    sh(page, "new-broker", dir, env);
    broker = await startBroker(dir, join(dir, ".espguard/broker-2"), Number(env.NEW_BROKER_PORT));
    const verifier = await shBackground(page, "new-verifier", dir, env, /verify: subscribed/);
    await verifier.stop();
    sh(page, "recall", dir, env);
    assert.equal(statSync(join(dir, ".espguard/pki-2/devices/dev-1/nvs.bin")).size, PartitionTable.load().require("nvs").size);
    sh(page, "check-new", dir, env);
    await assert.rejects(connect(broker.port, join(dir, ".espguard/pki"), "dev-1", join(dir, ".espguard/pki-2")));
  });

  test("retire revokes the old certificate in the old store only", async () => {
    sh(page, "retire", dir, env);
    const list = (dir2: string): string => spawnSync(process.execPath, [CLI, "certs", "list", "--dir", dir2], { cwd: dir, encoding: "utf8" }).stdout;
    assert.match(list(".espguard/pki"), /dev-1\s+\S+\s+\S+\s+revoked/);
    assert.match(list(".espguard/pki-2"), /dev-1\s+\S+\s+\S+\s+valid/);
    allStepsRan(page);
  });
});

describe("docs/flash-a-real-board.md", () => {
  const page = "docs/flash-a-real-board.md";
  const dir = project("board");

  test("pki, provision: the NVS image fits the nvs partition and is private", async () => {
    const env = { DEVICE_ID: "sensor-0042", BROKER_HOST: "localhost", BROKER_PORT: "8883", ...WIFI };
    sh(page, "pki", dir, env);
    assert.ok(existsSync(join(dir, ".espguard/broker/mosquitto.conf")));
    assert.ok(existsSync(join(dir, "keys/ota-signing.pub.der")));
    assert.match(sh(page, "provision", dir, env), /write_flash 0x9000 /);
    const image = join(dir, ".espguard/pki/devices/sensor-0042/nvs.bin");
    assert.equal(statSync(image).size, PartitionTable.load().require("nvs").size);
    assert.equal(statSync(image).mode & 0o777, 0o600);
    allStepsRan(page);
  });

  test("pin-rotation.md: both openssl pin commands give the pins `espguard certs pins` prints", () => {
    const pins = JSON.parse(spawnSync(process.execPath, [CLI, "certs", "pins", "--json"], { cwd: dir, encoding: "utf8" }).stdout) as Record<string, string>;
    copyFileSync(join(dir, ".espguard/pki/server.pem"), join(dir, "broker.pem"));
    copyFileSync(join(dir, ".espguard/pki/server-backup.key"), join(dir, "backup.key"));
    const scripts = docBlocks(readFileSync(join(PROJECT_ROOT, "docs/runbooks/pin-rotation.md"), "utf8")).filter((b) => b.info === "sh");
    assert.equal(scripts.length, 2);
    const out = scripts.map((block) => {
      const result = spawnSync("sh", ["-eu", "-c", block.body], { cwd: dir, encoding: "utf8", timeout: RUN_MS });
      assert.equal(result.status, 0, result.stderr);
      return result.stdout.trim();
    });
    assert.deepEqual(out.sort(), Object.values(pins).sort());
  });
});

describe("sh board blocks: every espguard command parses; the NVS offset is the partition table's", () => {
  const nvsOffset = PartitionTable.load().require("nvs").offset;
  for (const page of PAGES) {
    test(page, async () => {
      const pageBlocks = blocks.get(page)!;
      assert.deepEqual(pageBlocks.filter((b) => b.info !== "sh" && b.info !== "sh board").map((b) => `line ${b.line}: ${b.info}`), [], "only sh and sh board fences");
      for (const block of pageBlocks.filter((b) => b.info === "sh board")) {
        for (const args of espguardCommands(block.body, BOARD_ENV)) {
          const parsed = await parseEspguard(args);
          assert.ok(parsed.ok, `${page}:${block.line}: espguard ${args.join(" ")}: ${parsed.ok ? "" : parsed.error}`);
        }
        for (const words of simpleCommands(block.body, BOARD_ENV)) {
          const at = words.findIndex((w) => w === "write_flash" || w === "write-flash");
          if (at >= 0) assert.equal(Number(words[at + 1]), nvsOffset, `${page}:${block.line}: write_flash offset`);
        }
      }
    });
  }

  test("the checker refuses what a page must not say", async () => {
    const bad = [
      ["certs", "revok", "dev-1"], ["device", "provision", "dev-1", "--broker-host", "h"], ["certs", "crl", "--dayz", "3"],
      ["certs"], ["device", "provision", "dev-1", "extra", "--broker-host", "h", "--wifi-ssid", "s"], ["verify", "--broker", "x", "--ca", "c", "--cert", "c", "--key", "k", "--window", "0"],
    ];
    for (const args of bad) assert.equal((await parseEspguard(args)).ok, false, `espguard ${args.join(" ")} should not parse`);
    const good = await parseEspguard(["device", "provision", "dev-1", "--broker-host", "h", "--wifi-ssid", "s", "--kid", "k2"]);
    assert.ok(good.ok && good.command === "device provision" && good.options.kid === "k2");
    assert.deepEqual(espguardCommands('A=1 espguard ota verify --pubkey "k $X" b \\\n  c # note\nesptool.py x && espguard certs list', { X: "y" }),
      [["ota", "verify", "--pubkey", "k y", "b", "c"], ["certs", "list"]]);
    assert.throws(() => espguardCommands("espguard certs list --dir $NOPE", {}), /\$NOPE has no example value/);
  });
});
