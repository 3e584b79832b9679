// `espguard telemetry sign|verify` as a user runs them: a signed message verifies (with the key
// file or derived from the fleet secret), a changed one is refused with its reason and exit code
// 1, and bad arguments are refused with a specific message.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { deriveTelemetryKey } from "../certs/telemetry-key.ts";
import { espguard, espguardOk, treeFingerprint } from "./support/espguard-cli.ts";

const dir = mkdtempSync(join(tmpdir(), "espguard-cli-telemetry-"));
after(() => rmSync(dir, { recursive: true, force: true }));
// docs/telemetry-envelope.md's example key
writeFileSync(join(dir, "key.hex"), "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n");
const fleet = Buffer.alloc(32, 7);
writeFileSync(join(dir, "fleet.secret"), `${fleet.toString("hex")}\n`);
writeFileSync(join(dir, "dev-1.hex"), Buffer.from(deriveTelemetryKey(fleet, "dev-1", "k1")).toString("hex"));
const EXAMPLE = '{"dev":"esp32-01","hum":55.2,"kid":"k1","seq":4711,"sig":"829160e8360b186d52042cf4dcf6846e5bb1ca1fbbfe7d03947e664d5a471c79","temp":23.5,"ts":1700000000}';

test("sign writes the documented example; verify accepts it and prints its fields", async () => {
  const signed = await espguardOk(dir, ["telemetry", "sign", "--key-file", "key.hex", "--dev", "esp32-01", "--kid", "k1", "--seq", "4711", "--ts", "1700000000", '{"temp":23.5,"hum":55.2}']);
  assert.equal(signed.stdout, `${EXAMPLE}\n`);
  const verified = await espguardOk(dir, ["telemetry", "verify", "--key-file", "key.hex", EXAMPLE]);
  assert.deepEqual(JSON.parse(verified.stdout), { dev: "esp32-01", hum: 55.2, kid: "k1", seq: 4711, temp: 23.5, ts: 1700000000 });
  assert.match(verified.stderr, /ok: dev esp32-01, kid k1, seq 4711, ts 2023-11-14T22:13:20.000Z/);
});

test("a key derived from the fleet secret verifies the device's own key file's messages", async () => {
  const { stdout } = await espguardOk(dir, ["telemetry", "sign", "--key-file", "dev-1.hex", "--dev", "dev-1", "--kid", "k1", "--seq", "1", '{"v":1}']);
  await espguardOk(dir, ["telemetry", "verify", "--fleet-secret", "fleet.secret", "--topic", "devices/dev-1/telemetry", stdout.trim()]);
  const wrongTopic = await espguard(dir, ["telemetry", "verify", "--fleet-secret", "fleet.secret", "--topic", "devices/dev-2/telemetry", stdout.trim()]);
  assert.equal(wrongTopic.code, 1);
  assert.match(wrongTopic.stderr, /rejected \(dev-mismatch\)/);
});

test("verify refuses with the reason and exit code 1", async () => {
  for (const [wire, reason] of [
    [EXAMPLE.replace("23.5", "23.6"), "bad-sig"],
    [EXAMPLE.replace(/,"sig":"[0-9a-f]+"/, ""), "missing-sig"],
    ["{not json", "malformed"],
    [EXAMPLE.replace('"k1"', '"k2"').replace("4711", "4712"), "bad-sig"],
  ]) {
    const result = await espguard(dir, ["telemetry", "verify", "--key-file", "key.hex", wire!]);
    assert.equal(result.code, 1, wire);
    assert.match(result.stderr, new RegExp(`rejected \\(${reason}\\)`), wire);
    assert.equal(result.stdout, "");
  }
});

test("sign refuses bad input with a specific message", async () => {
  const base = ["telemetry", "sign", "--key-file", "key.hex", "--dev", "esp32-01", "--kid", "k1", "--seq", "1"];
  const cases: [string[], RegExp][] = [
    [[...base, '{"temp":NaN}'], /not JSON/],
    [[...base, "[1]"], /must be a JSON object/],
    [[...base, '{"seq":2}'], /"seq" field: pass it as --seq/],
    [[...base, '{"sig":"x"}'], /reserved for the signature/],
    [[...base, `{"pad":"${"x".repeat(1100)}"}`], /over the 1024-byte limit/],
    [["telemetry", "sign", "--key-file", "key.hex", "--dev", "Bad Id", "--kid", "k1", "--seq", "1", "{}"], /dev/],
    [["telemetry", "sign", "--key-file", "missing.hex", "--dev", "d", "--kid", "k1", "--seq", "1", "{}"], /cannot read the key file missing.hex: ENOENT/],
    [["telemetry", "sign", "--dev", "d", "--kid", "k1", "--seq", "1", "{}"], /exactly one of --key-file/],
    [["telemetry", "sign", "--key-file", "key.hex", "--dev", "d", "--kid", "k1", "--seq", "0", "{}"], /--seq must be an integer/],
  ];
  for (const [args, message] of cases) {
    const result = await espguard(dir, args);
    assert.notEqual(result.code, 0, args.join(" "));
    assert.match(result.stderr, message, args.join(" "));
    assert.equal(result.stdout, "");
  }
});

test("verify (the service) refuses bad arguments and an unreachable broker before writing any state", async () => {
  const key = (await import("node:crypto")).generateKeyPairSync("ec", { namedCurve: "P-256" });
  writeFileSync(join(dir, "svc.key"), key.privateKey.export({ type: "pkcs8", format: "pem" }));
  writeFileSync(join(dir, "any.pem"), "not checked before connecting\n");
  const base = ["verify", "--ca", "any.pem", "--cert", "any.pem", "--key", "svc.key", "--fleet-secret", "fleet.secret", "--state-dir", "state"];
  const cases: [string[], RegExp][] = [
    [[...base, "--broker", "mqtts://127.0.0.1:1", "--window", "300"], /--window must be a whole number from 1 to 256/],
    [[...base, "--broker", "mqtts://127.0.0.1:1", "--kids", "k1,BAD"], /invalid telemetry key id "BAD"/],
    [[...base, "--broker", "mqtts://127.0.0.1:1", "--group", "a/b"], /--group "a\/b"/],
    [[...base.map((arg) => (arg === "svc.key" ? "missing.key" : arg)), "--broker", "mqtts://127.0.0.1:1"], /cannot read the service key missing.key: ENOENT/],
    [[...base, "--broker", "mqtts://127.0.0.1:1"], /cannot connect to mqtts:\/\/127.0.0.1:1 as the verifier account/],
  ];
  for (const [args, message] of cases) {
    const result = await espguard(dir, args);
    assert.notEqual(result.code, 0, args.join(" "));
    assert.match(result.stderr, message, args.join(" "));
    assert.equal(treeFingerprint(join(dir, "state")), "(absent)", `${args.join(" ")} wrote no state`);
  }
});
