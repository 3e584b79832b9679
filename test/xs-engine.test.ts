// The firmware on the real XS engine (an @agoric/xsnap worker), with built-ins frozen as after a
// Moddable preload: main.ts boots there, every Moddable built-in has an XS stand-in, and firmware
// that relies on something a board lacks or forbids fails with an error naming it.
import assert from "node:assert/strict";
import { generateKeyPairSync, sign, verify } from "node:crypto";
import { join } from "node:path";
import { test } from "node:test";
import { FirmwareBundleError } from "../twin/runtime/bundle.ts";
import { PROJECT_ROOT } from "../twin/runtime/manifest.ts";
import { missingXsShims, runFirmwareInXs, type XsRunOptions, type XsRunResult, xsShimPath } from "../twin/xs/xs-check.ts";
import { xsnapVersion } from "../twin/xs/xsnap-runner.ts";

const fixture = (name: string): string => join(PROJECT_ROOT, "test/fixtures/xs", name);

async function run(name: string, options: XsRunOptions = {}): Promise<XsRunResult> {
  return runFirmwareInXs({ entry: fixture(name), ...options });
}

function assertOk(result: XsRunResult): void {
  assert.equal(result.ok, true, result.error?.message);
}

/** The keys link/device-config reads (NVS names inside the manifest's config.espguard.domain). */
const PROVISIONED = {
  espguard: {
    device_id: "dev-xs-1",
    broker_host: "broker.example",
    broker_port: 8883,
    ca: Uint8Array.of(0x30, 0x82, 0x01),
    cert: Uint8Array.of(0x30, 0x82, 0x02),
    key: Uint8Array.of(0x30, 0x82, 0x03),
  },
};

test("every Moddable built-in the twin stands in for has an XS stand-in", () => {
  assert.deepEqual(missingXsShims().map(xsShimPath), [], "create these files in twin/xs/shims/ (plain JS, no I/O)");
});

test("the engine is XS: its version, its error messages and its own built-ins", async () => {
  assert.match(xsnapVersion(), /\(XS \d+\.\d+\.\d+\)/);
  const result = await run("engine-probe.js");
  assertOk(result);
  const probe = JSON.parse(result.traces[0]!);
  // V8 would say "undeclaredName is not defined" and has neither of these extensions.
  assert.match(probe.referenceError, /get undeclaredName: undefined variable/);
  assert.equal(probe.bigIntFromArrayBuffer, "function");
  assert.equal(probe.arrayBufferConcat, "function");
  assert.equal(probe.deepFreeze, true);
});

test("the preload adds only the XS globals a Moddable build has and xsnap lacks (or cannot deliver)", async () => {
  const result = await run("engine-probe.js");
  assertOk(result);
  assert.deepEqual(result.engine, {
    native: ["Object.freeze(value, true)"],
    added: ["ArrayBuffer.fromString", "String.fromArrayBuffer"],
    replaced: ["trace"],
  });
  const probe = JSON.parse(result.traces[0]!);
  assert.equal(probe.text, "héllo ✓");
  assert.match(probe.nulCharacter, /U\+0000 or an unpaired surrogate/);
});

test("built-ins are frozen as after a Moddable preload, and xsnap-only globals are gone", async () => {
  const probe = JSON.parse((await run("engine-probe.js")).traces[0]!);
  for (const [name, frozen] of Object.entries(probe.frozen)) assert.equal(frozen, true, `${name} should be frozen`);
  for (const [name, type] of Object.entries(probe.xsnapOnly)) assert.equal(type, "undefined", `${name} is not a Moddable global`);
  assert.equal(probe.userObjectsStayMutable, true);
});

test("main.ts (the default entry) boots in XS on a provisioned device, metered", async () => {
  const result = await runFirmwareInXs({ preferences: PROVISIONED });
  assertOk(result);
  assert.ok(result.meter.boot > 0);
  assert.equal(result.meter.turns.length, result.turns, "every timer turn is metered");
});

test("main.ts (the default entry) boots in XS on an unprovisioned device", async () => {
  assertOk(await runFirmwareInXs({}));
});

test("the XS stand-ins behave like the board's modules and compute what Node computes", async () => {
  const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const d = Buffer.from(privateKey.export({ format: "jwk" }).d!, "base64url");
  const spki = publicKey.export({ format: "der", type: "spki" });
  const nodeSignature = sign("sha256", Buffer.from("signed in Node"), { key: privateKey, dsaEncoding: "ieee-p1363" });
  const result = await run("shims-tour.js", {
    preferences: { tour: { greeting: "hi", spki, ecdsa: d, nodesig: nodeSignature } },
    resources: { "hello.txt": Buffer.from("from the image") },
  });
  assertOk(result);
  const events = new Map(result.traces.filter((line) => line.startsWith("{")).map((line) => {
    const { event, ...detail } = JSON.parse(line);
    return [event, detail];
  }));

  assert.deepEqual(events.get("config"), { domain: "espguard", frozen: true });
  assert.deepEqual(events.get("preference"), { seeded: "hi", keys: "greeting,spki,ecdsa,nodesig" });
  assert.match(events.get("preference-refused").message, /1–15 UTF-8 bytes \(ESP32 NVS\)/);
  assert.deepEqual(result.preferences.tour, {
    spki: new Uint8Array(spki), ecdsa: new Uint8Array(d), nodesig: new Uint8Array(nodeSignature), count: 41, blob: Uint8Array.of(1, 2, 3),
  });
  assert.deepEqual(events.get("resource"), { exists: true, text: "from the image" });

  const abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
  assert.deepEqual(events.get("sha256"), { hex: abc, process: abc, outputSize: 32 });
  const fox = "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8";
  assert.equal(events.get("hmac").hex, fox);
  assert.equal(events.get("hmac").again, fox);
  // The twin's own error type reaches XS with its name.
  assert.equal(events.get("hmac").afterClose.name, "CryptStateError");
  assert.match(events.get("hmac").afterClose.message, /after close\(\)/);

  const ecdsa = events.get("ecdsa");
  assert.equal(verify("sha256", Buffer.from("signed in XS"), { key: publicKey, dsaEncoding: "ieee-p1363" }, Buffer.from(ecdsa.signature, "hex")), true);
  assert.equal(ecdsa.orderSize, 32);
  assert.equal(ecdsa.pointIsEcp, true);
  assert.equal(ecdsa.selfCheck, true);
  assert.equal(ecdsa.nodeSignature, true);
  assert.equal(ecdsa.tampered, false);
  assert.equal(ecdsa.refused.name, "UncheckedSignatureError");
  assert.match(ecdsa.refused.message, /s = 0/);

  assert.match(events.get("tcp-refused").message, /invalid address "not-an-ip"/);
  assert.match(events.get("tls-refused").message, /server name is required/);
  assert.deepEqual(events.get("promise"), { at: 0 });
  assert.deepEqual(events.get("repeat"), { repeats: 3, at: 300 });
  assert.deepEqual(events.get("timer"), { elapsed: 250 });
  assert.deepEqual(events.get("mqtt-error"), { at: 0, self: true });
  assert.ok(result.traces.includes("mqttClient error: unknown"));

  const ops = result.io.map((r) => `${r.module} ${r.op}`);
  assert.deepEqual(ops, [
    "embedded:io/socket/udp open",
    "embedded:io/socket/udp write",
    "embedded:network/mqtt/client connect",
    "embedded:network/dns/resolver/udp resolve",
    "embedded:io/socket/tcp/tls connect",
    "embedded:io/socket/tcp connect",
    "embedded:io/socket/tcp error",
    "embedded:io/socket/tcp close",
    "embedded:network/mqtt/client close",
  ]);
  assert.deepEqual(result.io[3]!.detail, { host: "10.1.2.3", servers: ["1.1.1.1"], address: "10.1.2.3" });
  assert.deepEqual(result.io[4]!.detail.secure, { serverName: "broker.example", certificate: { byteLength: 1 }, protocolVersion: 0x303 });
  assert.deepEqual(result.io[5]!.detail, { address: "10.1.2.3", port: 8883 });
  assert.equal(result.pendingTimers, 0);
});

const NEGATIVE: readonly { fixture: string; error: RegExp; fix: RegExp; kind?: string; phase?: string; code?: RegExp }[] = [
  { fixture: "uses-buffer.js", error: /get Buffer: undefined variable/, fix: /"Buffer" is not a global on a Moddable board/, code: /Buffer\.from/ },
  { fixture: "uses-settimeout.js", error: /get setTimeout: undefined variable/, fix: /Timer\.set from "timer"/ },
  { fixture: "uses-process.js", error: /get process: undefined variable/, fix: /"mc\/config" or "preference"/ },
  { fixture: "uses-require.js", error: /Dynamic require of "settings"/, fix: /a board has no require\(\)/, code: /__require\(name\)/ },
  { fixture: "uses-structured-clone.js", error: /get structuredClone: undefined variable/, fix: /only as a module/ },
  { fixture: "uses-es2023.js", error: /sortedReadings: no function/, fix: /newer than ES2022/, code: /toSorted/ },
  { fixture: "patches-prototype.js", error: /set last: not extensible/, fix: /built-ins are frozen on a board/, code: /Array\.prototype\.last =/ },
  { fixture: "error-subclass-name.js", error: /AssignNamed: set name: not writable/, fix: /declare it as a class field/, code: /this\.name = "AssignNamed"/ },
  { fixture: "timer-throws.js", error: /SyntaxError: JSON\.parse/, fix: /reboots the device/, phase: "timer", code: /JSON\.parse/ },
  { fixture: "unhandled-rejection.js", error: /broker refused the session/, fix: /add a catch/, kind: "unhandled-rejection", phase: "promise job" },
];

for (const expected of NEGATIVE) {
  test(`firmware relying on what a board lacks fails in XS: ${expected.fixture}`, async () => {
    const result = await run(expected.fixture);
    assert.equal(result.ok, false);
    const error = result.error!;
    assert.equal(error.name, "XsFirmwareError");
    assert.equal(error.kind, expected.kind ?? "uncaught");
    assert.equal(error.phase, expected.phase ?? "boot");
    assert.match(error.xsError, expected.error);
    assert.match(error.message, expected.fix);
    if (expected.code) {
      assert.equal(error.location?.file, `test/fixtures/xs/${expected.fixture}`);
      assert.match(error.location.code, expected.code);
    }
  });
}

test("XS 13 has ES2023's findLast but not its change-array-by-copy methods", async () => {
  const result = await run("uses-es2023.js");
  assert.deepEqual(result.traces, ["findLast=2"]);
  assert.match(result.error!.xsError, /no function/);
});

test("an Error subclass named by a class field works with frozen built-ins", async () => {
  assert.deepEqual((await run("error-subclass-name.js")).traces, ["FieldNamed: ok"]);
});

test("a node: import is refused by the firmware bundler", async () => {
  await assert.rejects(run("imports-node.js"), (error: Error) => {
    assert.ok(error instanceof FirmwareBundleError);
    assert.match(error.message, /imports-node\.js:\d+: "node:fs" imported by .*: Node modules do not exist on the ESP32/);
    return true;
  });
});

test("an endless loop is stopped by XS's compute meter", async () => {
  const result = await run("endless-loop.js", { computeLimit: 2_000_000 });
  assert.equal(result.error?.kind, "compute-limit");
  assert.equal(result.error.phase, "timer");
  assert.match(result.error.message, /unbounded loop/);
});

test("with the meter off, the wall-clock bound kills a worker that never yields", async () => {
  const result = await run("endless-loop.js", { computeLimit: 0, timeoutMs: 500 });
  assert.equal(result.error?.kind, "timeout");
  assert.match(result.error.message, /did not finish within 500 ms/);
});

test("metering reports XS compute per message signed", async () => {
  const computeFor = async (count: number) => {
    const result = await run("hmac-messages.js", { preferences: { bench: { count } } });
    assertOk(result);
    assert.deepEqual(result.traces, [`signed ${count}, last tag 32 bytes`]);
    return result.meter.boot;
  };
  const [one, eleven, twentyOne] = [await computeFor(1), await computeFor(11), await computeFor(21)];
  const perMessage = (eleven - one) / 10;
  assert.ok(perMessage > 0);
  // The cost is per message: ten more messages cost the same again.
  assert.ok(Math.abs((twentyOne - eleven) / 10 - perMessage) < perMessage * 0.05, `${one} ${eleven} ${twentyOne}`);
});

test("what is native code on a board (Digest here) stays off XS's meter", async () => {
  const computeFor = async (size: number) => {
    const result = await run("digest-sizes.js", { preferences: { bench: { size } } });
    assertOk(result);
    return result.meter.boot;
  };
  assert.equal(await computeFor(100_000), await computeFor(1));
});
