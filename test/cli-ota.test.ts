// `espguard ota …` end to end: the real CLI as a child process, real openssl, real HTTPS and a real
// mosquitto. The runbook (docs/runbooks/shipping-a-release.md) is run block by block as printed.
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { createHash, generateKeyPairSync } from "node:crypto";
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { request } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import mqtt from "mqtt";
import { freeLoopbackPort, requireMosquitto, startTestBroker, type TestBroker } from "../broker/mosquitto.ts";
import { createCa, type Issued } from "../certs/pki.ts";
import { PROJECT_ROOT } from "../twin/runtime/manifest.ts";
import { rawSignatureFromDer } from "../ota/signature-der.ts";
import { buildEsp32App } from "./fixtures/ota/esp32-app.ts";
import { type CliResult, espguard, espguardOk, treeFingerprint } from "./support/espguard-cli.ts";
import { within } from "./support/mqtt-peer.ts";

const CLI = join(PROJECT_ROOT, "bin/espguard.js");
const RUN_MS = 60_000;
const WAIT_MS = 15_000;
const root = mkdtempSync(join(tmpdir(), "espguard-cli-ota-"));
after(() => rmSync(root, { recursive: true, force: true }));

type Refusal = [message: RegExp, ...args: string[]];

function ok(cwd: string, ...args: string[]): Promise<CliResult> {
  return espguardOk(cwd, args);
}

/**
 * Each command fails, says its message, and `cwd` is left as it was. They run side by side: none of
 * them may write, so they cannot disturb each other.
 */
async function refused(cwd: string, ...cases: Refusal[]): Promise<void> {
  const before = treeFingerprint(cwd);
  const runs = await Promise.all(cases.map(([, ...args]) => espguard(cwd, args)));
  cases.forEach(([message, ...args], i) => {
    const run = runs[i]!;
    assert.notEqual(run.code, 0, `espguard ${args.join(" ")} should fail\n${run.stdout}`);
    assert.match(run.stderr, message, `espguard ${args.join(" ")}`);
    assert.doesNotMatch(run.stderr, /\n\s+at /, "a stack trace instead of a message");
  });
  assert.equal(treeFingerprint(cwd), before, "a refused command wrote or changed files");
}

function workDir(name: string): string {
  const dir = join(root, name);
  mkdirSync(join(dir, "build"), { recursive: true });
  return dir;
}

function writeKey(path: string, pem: string): void {
  writeFileSync(path, pem, { mode: 0o600 });
}

function flipped(bytes: Buffer, at: number): Buffer {
  const copy = Buffer.from(bytes);
  copy[at < 0 ? copy.length + at : at]! ^= 0x01;
  return copy;
}

/** A signed ESP32 image (version 1.4.0, counter 7) made with the CLI in `dir`. */
async function signedImage(dir: string): Promise<void> {
  writeFileSync(join(dir, "build/xs_esp32.bin"), buildEsp32App({ version: "1.4.0" }));
  await ok(dir, "ota", "keygen", "--out", "keys");
  await ok(dir, "ota", "build", "--firmware", "build/xs_esp32.bin", "--version", "1.4.0", "--counter", "7", "--out", "build/fw.unsigned");
  await ok(dir, "ota", "sign", "--key", "keys/ota-signing.key.pem", "--in", "build/fw.unsigned", "--out", "build/fw.bin");
}

describe("ota keygen", () => {
  test("writes a P-256 key: private PEM 0600, public PEM and DER, key id = SHA-256 of the DER; openssl reads them", async () => {
    const dir = workDir("keygen");
    const run = await ok(dir, "ota", "keygen", "--out", "keys");
    assert.equal(statSync(join(dir, "keys/ota-signing.key.pem")).mode & 0o777, 0o600);
    assert.equal(statSync(join(dir, "keys")).mode & 0o777, 0o700);
    const der = readFileSync(join(dir, "keys/ota-signing.pub.der"));
    assert.equal(der.length, 91);
    const kid = createHash("sha256").update(der).digest("hex");
    assert.equal(readFileSync(join(dir, "keys/ota-signing.kid"), "utf8"), `${kid}\n`);
    assert.match(run.stdout, new RegExp(`key id\\s+${kid}`));
    assert.doesNotMatch(run.stdout, /PRIVATE KEY/);
    const fromPem = spawnSync("openssl", ["pkey", "-pubin", "-in", "keys/ota-signing.pub.pem", "-outform", "DER"], { cwd: dir, timeout: RUN_MS });
    assert.deepEqual(fromPem.stdout, der);
    const text = spawnSync("openssl", ["pkey", "-in", "keys/ota-signing.key.pem", "-noout", "-text"], { cwd: dir, encoding: "utf8", timeout: RUN_MS });
    assert.match(text.stdout, /prime256v1|P-256/);
  });

  test("never replaces a key without --force", async () => {
    const dir = workDir("keygen-force");
    await ok(dir, "ota", "keygen", "--out", "keys");
    await refused(dir,
      [/already exists.*--force/, "ota", "keygen", "--out", "keys"],
    );
    const before = readFileSync(join(dir, "keys/ota-signing.key.pem"));
    await ok(dir, "ota", "keygen", "--out", "keys", "--force");
    assert.notDeepEqual(readFileSync(join(dir, "keys/ota-signing.key.pem")), before);
    assert.equal(statSync(join(dir, "keys/ota-signing.key.pem")).mode & 0o777, 0o600);
  });
});

describe("ota build, sign, digest, attach: bad inputs are refused and nothing is written", () => {
  const dir = workDir("bad-inputs");
  before(async () => {
    await signedImage(dir);
    writeKey(join(dir, "keys/rsa.pem"), generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ type: "pkcs8", format: "pem" }).toString());
    writeKey(join(dir, "keys/p384.pem"), generateKeyPairSync("ec", { namedCurve: "P-384" }).privateKey.export({ type: "pkcs8", format: "pem" }).toString());
    writeKey(join(dir, "keys/garbage.pem"), "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n");
    copyFileSync(join(dir, "keys/ota-signing.key.pem"), join(dir, "keys/open.pem"));
    chmodSync(join(dir, "keys/open.pem"), 0o644);
    const app = readFileSync(join(dir, "build/xs_esp32.bin"));
    writeFileSync(join(dir, "build/bad-checksum.bin"), flipped(app, 100));
    writeFileSync(join(dir, "build/bundle.mjs"), "export const firmware = 1;\n");
  });

  const build = (...args: string[]): string[] => ["ota", "build", "--firmware", "build/xs_esp32.bin", ...args];

  test("build: missing firmware, non-semver version, counter out of range, existing output, wrong app version, broken app image, wrong target", async () => {
    const out = ["--out", "build/x.unsigned"];
    await refused(dir,
      [/--firmware: build\/nope.bin does not exist/, "ota", "build", "--firmware", "build/nope.bin", "--version", "1.4.0", "--counter", "7", ...out],
      ...["v1.4.0", "01.4.0"].map((version): Refusal =>
        [/is not a semantic version/, ...build("--version", version, "--counter", "7", ...out)]),
      ...["-1", "4294967296", "7x"].map((counter): Refusal =>
        [/is not a security counter: give an integer from 0 to 4294967295/, ...build("--version", "1.4.0", "--counter", counter, ...out)]),
      [/build\/fw.unsigned already exists.*--force/, ...build("--version", "1.4.0", "--counter", "8", "--out", "build/fw.unsigned")],
      [/the app image says version "1.4.0" \(esp_app_desc_t\), the release says "1.5.0"/, ...build("--version", "1.5.0", "--counter", "8", ...out)],
      [/not a valid ESP32 app image: .*checksum/i, "ota", "build", "--firmware", "build/bad-checksum.bin", "--version", "1.4.0", "--counter", "8", ...out],
      [/not a valid ESP32 app image/, "ota", "build", "--firmware", "build/bundle.mjs", "--target", "esp32", "--version", "1.4.0", "--counter", "8", ...out],
      [/a twin bundle is a JavaScript module in UTF-8/, ...build("--target", "twin", "--version", "1.4.0", "--counter", "8", ...out)],
      [/--target "esp8266"/, ...build("--target", "esp8266", "--version", "1.4.0", "--counter", "8", ...out)],
      [/required option '--counter <n>'/, ...build("--version", "1.4.0", ...out)],
    );
  });

  test("build --force replaces an output; a twin bundle is detected by its first byte", async () => {
    await ok(dir, "ota", "build", "--firmware", "build/bundle.mjs", "--version", "0.1.0", "--counter", "1", "--out", "build/twin.unsigned");
    const run = await ok(dir, "ota", "build", "--firmware", "build/bundle.mjs", "--version", "0.1.1", "--counter", "2", "--out", "build/twin.unsigned", "--force");
    assert.match(run.stdout, /twin twin-bundle 0\.1\.1, counter 2/);
  });

  test("sign: RSA and P-384 keys, an unreadable key, a key others can read, a missing key, a signed image as input, an existing output", async () => {
    const sign = (key: string, input = "build/fw.unsigned", out = "build/x.bin"): string[] => ["ota", "sign", "--key", key, "--in", input, "--out", out];
    await refused(dir,
      [/--key: keys\/rsa.pem: the signing key is a rsa key; OTA signing uses ECDSA P-256/, ...sign("keys/rsa.pem")],
      [/--key: keys\/p384.pem: the signing key is an EC key on secp384r1/, ...sign("keys/p384.pem")],
      [/--key: keys\/garbage.pem: not a readable PEM private key/, ...sign("keys/garbage.pem")],
      [/readable by other users \(mode 0644\).*chmod 600 keys\/open.pem/, ...sign("keys/open.pem")],
      [/--key: keys\/none.pem does not exist/, ...sign("keys/none.pem")],
      [/\(it is already signed\)/, ...sign("keys/ota-signing.key.pem", "build/fw.bin")],
      [/build\/fw.bin already exists/, ...sign("keys/ota-signing.key.pem", "build/fw.unsigned", "build/fw.bin")],
      [/is the input file/, ...sign("keys/ota-signing.key.pem", "build/fw.unsigned", "build/fw.unsigned")],
    );
  });

  test("attach: a signature over another digest, by another key, or in neither raw nor DER form", async () => {
    await ok(dir, "ota", "digest", "--in", "build/fw.unsigned", "--out", "build/fw.digest");
    writeFileSync(join(dir, "build/other.digest"), createHash("sha256").update("another image").digest());
    const pkeyutl = (digest: string, key: string, out: string): void => {
      const signed = spawnSync("openssl", ["pkeyutl", "-sign", "-inkey", key, "-in", digest, "-out", out], { cwd: dir, encoding: "utf8", timeout: RUN_MS });
      assert.equal(signed.status, 0, signed.stderr);
    };
    pkeyutl("build/other.digest", "keys/ota-signing.key.pem", "build/other.sig");
    writeFileSync(join(dir, "build/junk.sig"), "3045022100ab");
    const attach = (signature: string, pubkey = "keys/ota-signing.pub.pem"): string[] =>
      ["ota", "attach", "--in", "build/fw.unsigned", "--signature", signature, "--pubkey", pubkey, "--out", "build/attached.bin"];
    await refused(dir,
      [/the signature does not verify over digest/, ...attach("build/other.sig")],
      [/raw r ‖ s \(64 bytes\) or a DER ECDSA signature; this one is 12 bytes/, ...attach("build/junk.sig")],
      [/--pubkey: keys\/rsa.pem: .*a rsa key/, ...attach("build/other.sig", "keys/rsa.pem")],
      [/truncated: 32 bytes are not a whole 128-byte header/, "ota", "digest", "--in", "build/fw.digest"],
    );
    pkeyutl("build/fw.digest", "keys/ota-signing.key.pem", "build/fw.sig");
    writeFileSync(join(dir, "build/fw.raw"), rawSignatureFromDer(readFileSync(join(dir, "build/fw.sig"))));
    await ok(dir, ...attach("build/fw.raw"));
    await ok(dir, "ota", "verify", "--pubkey", "keys/ota-signing.pub.der", "build/attached.bin");
  });
});

describe("ota verify agrees with openssl and says what is wrong", () => {
  const dir = workDir("verify");
  const doc = readFileSync(join(PROJECT_ROOT, "docs/ota-image.md"), "utf8");
  const verifyScript = [...doc.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!).find((body) => body.startsWith("# verify-image.sh"))!;
  let image: Buffer;
  before(async () => {
    await signedImage(dir);
    image = readFileSync(join(dir, "build/fw.bin"));
    mkdirSync(join(dir, "other"));
    await ok(join(dir, "other"), "ota", "keygen", "--out", ".");
  });

  /** [ota verify's exit status and stderr, openssl's exit status] for `bytes`. */
  async function bothVerify(bytes: Buffer, pubkey = "keys/ota-signing.pub.pem", ...extra: string[]): Promise<{ cli: CliResult; openssl: number | null }> {
    writeFileSync(join(dir, "image.bin"), bytes);
    copyFileSync(join(dir, pubkey), join(dir, "pub.pem"));
    const cli = await espguard(dir, ["ota", "verify", "--pubkey", pubkey, ...extra, "image.bin"]);
    const openssl = spawnSync("sh", ["-c", verifyScript], { cwd: dir, encoding: "utf8", timeout: RUN_MS });
    return { cli, openssl: openssl.status };
  }

  test("a good image: both accept; PEM and DER public keys work", async () => {
    const { cli, openssl } = await bothVerify(image);
    assert.equal(cli.code, 0, cli.stderr);
    assert.equal(openssl, 0);
    assert.match(cli.stdout, /OK image\.bin: esp32 esp32-app 1\.4\.0, counter 7/);
    assert.equal((await espguard(dir, ["ota", "verify", "--pubkey", "keys/ota-signing.pub.der", "build/fw.bin"])).code, 0);
  });

  test("tampered images: both refuse; ota verify names the device's reason and exits 1", async () => {
    const cases: [string, Buffer, RegExp][] = [
      ["payload bit flip", flipped(image, 600), /digest-mismatch/],
      ["signature bit flip", flipped(image, -1), /bad-signature/],
      ["digest field and payload changed together", (() => {
        const copy = flipped(image, 600);
        createHash("sha256").update(copy.subarray(0, copy.length - 128)).digest().copy(copy, copy.length - 128);
        return copy;
      })(), /bad-signature/],
    ];
    for (const [what, bytes, reason] of cases) {
      const { cli, openssl } = await bothVerify(bytes);
      assert.equal(cli.code, 1, what);
      assert.match(cli.stderr, reason, what);
      assert.notEqual(openssl, 0, what);
    }
    const { cli, openssl } = await bothVerify(image, "other/ota-signing.pub.pem");
    assert.match(cli.stderr, /rejected image\.bin: unknown-key/);
    assert.notEqual(openssl, 0);
  });

  test("header, size, counter and target problems, each with its reason", async () => {
    const check = async (bytes: Buffer, reason: RegExp, ...extra: string[]): Promise<void> => {
      writeFileSync(join(dir, "image.bin"), bytes);
      const run = await espguard(dir, ["ota", "verify", "--pubkey", "keys/ota-signing.pub.pem", ...extra, "image.bin"]);
      assert.equal(run.code, 1, run.stderr);
      assert.match(run.stderr, reason);
    };
    await check(flipped(image, 20), /bad-header/);
    await check(flipped(image, 0), /bad-magic/);
    await check(image.subarray(0, image.length - 1), /truncated/);
    await check(Buffer.concat([image, Buffer.from([0])]), /extra-bytes/);
    await check(image, /downgrade: security counter 7 is not above the accepted counter 7/, "--counter", "7");
    await check(image, /wrong-target: built for target esp32, this device is twin/, "--target", "twin");
    assert.equal((await espguard(dir, ["ota", "verify", "--pubkey", "keys/ota-signing.pub.pem", "--counter", "6", "--target", "esp32", "build/fw.bin"])).code, 0);
    await refused(dir,
      [/<image>: nope.bin does not exist/, "ota", "verify", "--pubkey", "keys/ota-signing.pub.pem", "nope.bin"],
      [/--counter "-3" is not a security counter/, "ota", "verify", "--pubkey", "keys/ota-signing.pub.pem", "--counter", "-3", "build/fw.bin"],
    );
  });
});

describe("ota release", () => {
  test("refuses a non-https URL, an unsigned image, a damaged image, an existing output", async () => {
    const dir = workDir("release");
    await signedImage(dir);
    writeFileSync(join(dir, "build/damaged.bin"), flipped(readFileSync(join(dir, "build/fw.bin")), 300));
    const release = (image: string, url: string, out = "build/r.json"): string[] =>
      ["ota", "release", "--image", image, "--url", url, "--key", "keys/ota-signing.key.pem", "--out", out];
    await refused(dir,
      [/release url "http:\/\/ota\/fw.bin" must be https/, ...release("build/fw.bin", "http://ota/fw.bin")],
      [/give the signed image/, ...release("build/fw.unsigned", "https://ota/fw.bin")],
      [/is damaged: its digest field does not match/, ...release("build/damaged.bin", "https://ota/fw.bin")],
    );
    await ok(dir, ...release("build/fw.bin", "https://ota/fw.bin"));
    await refused(dir,
      [/already exists/, ...release("build/fw.bin", "https://ota/fw.bin")],
    );
  });
});

// --- the runbook, run as printed, against a real HTTPS server and a real mosquitto -------------

const runbook = readFileSync(join(PROJECT_ROOT, "docs/runbooks/shipping-a-release.md"), "utf8");
const steps = new Map([...runbook.matchAll(/```sh\n# step: (\S+)\n([\s\S]*?)```/g)].map((m) => [m[1]!, m[2]!]));

function step(name: string): string {
  const body = steps.get(name);
  assert.ok(body, `docs/runbooks/shipping-a-release.md has no sh block "# step: ${name}"`);
  return body;
}

describe("the runbook, shipping-a-release.md, command by command", () => {
  const dir = workDir("runbook");
  const bin = join(root, "bin");
  const env: Record<string, string> = {};
  let ca: Issued;
  let tb: TestBroker | undefined;

  const sh = (name: string, cwd = dir): { stdout: string } => {
    const result = spawnSync("sh", ["-eu", "-c", step(name)], { cwd, encoding: "utf8", timeout: RUN_MS, env: { ...process.env, ...env } });
    assert.equal(result.status, 0, `step ${name}:\n${result.stdout}${result.stderr}`);
    return result;
  };

  before(async () => {
    requireMosquitto();
    mkdirSync(bin, { recursive: true });
    writeFileSync(join(bin, "espguard"), `#!/bin/sh\nexec "${process.execPath}" "${CLI}" "$@"\n`, { mode: 0o755 });
    ca = await createCa({ commonName: "espguard fleet CA" });
    tb = await startTestBroker({ ca, services: { otaPublisher: ["svc.ota"] } });
    const svc = await tb.issueService("svc.ota");
    mkdirSync(join(dir, "pki"));
    writeFileSync(join(dir, "pki/ca.pem"), ca.certPem);
    writeKey(join(dir, "pki/ca.key.pem"), ca.keyPem);
    writeFileSync(join(dir, "pki/svc.ota.pem"), svc.certPem);
    writeKey(join(dir, "pki/svc.ota.key.pem"), svc.keyPem);
    writeFileSync(join(dir, "build/xs_esp32.bin"), buildEsp32App({ version: "1.4.0" }));
    Object.assign(env, {
      PATH: `${bin}:${process.env.PATH}`, OTA_HOST: "localhost", OTA_PORT: String(await freeLoopbackPort()),
      BROKER_HOST: tb.broker.host, BROKER_PORT: String(tb.broker.port), DEVICE_ID: "dev-1",
    });
  });
  after(async () => {
    await tb?.stop();
  });

  test("keygen, build, sign, verify", () => {
    sh("keygen");
    assert.equal(statSync(join(dir, "keys/ota-signing.key.pem")).mode & 0o777, 0o600);
    assert.match(sh("build").stdout, /digest [0-9a-f]{64}/);
    sh("sign");
    assert.match(sh("verify").stdout, /OK build\/espguard-1\.4\.0\.bin/);
  });

  test("signing elsewhere gives an image that differs only in the signature", () => {
    const elsewhere = workDir("runbook-elsewhere");
    for (const entry of ["keys", "build/espguard-1.4.0.unsigned"]) spawnSync("cp", ["-rp", join(dir, entry), join(elsewhere, entry)]);
    sh("sign-elsewhere", elsewhere);
    sh("verify", elsewhere);
    const a = readFileSync(join(dir, "build/espguard-1.4.0.bin"));
    const b = readFileSync(join(elsewhere, "build/espguard-1.4.0.bin"));
    assert.deepEqual(a.subarray(0, a.length - 64), b.subarray(0, b.length - 64));
  });

  test("server-cert, serve: a client with the device's TLS settings downloads the image whole and by ranges", async () => {
    sh("server-cert");
    const server = spawn("sh", ["-eu", "-c", step("serve")], { cwd: dir, env: { ...process.env, ...env }, detached: true, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    server.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
    server.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
    try {
      await within(new Promise<void>((resolve, reject) => {
        const check = (): void => { if (/serving .* on https:\/\//.test(output)) resolve(); };
        server.stdout.on("data", check);
        server.once("exit", () => reject(new Error(`ota serve exited:\n${output}`)));
      }), WAIT_MS, `ota serve to start:\n${output}`);
      const image = readFileSync(join(dir, "build/espguard-1.4.0.bin"));
      const whole = await deviceGet(Number(env.OTA_PORT), "/fw/espguard-1.4.0.bin");
      assert.equal(whole.status, 200);
      assert.deepEqual(whole.body, image);
      const tail = await deviceGet(Number(env.OTA_PORT), "/fw/espguard-1.4.0.bin", "bytes=-128");
      assert.equal(tail.status, 206);
      assert.deepEqual(tail.body, image.subarray(image.length - 128));
      assert.equal((await deviceGet(Number(env.OTA_PORT), "/fw/espguard-1.4.0.bin", `bytes=${image.length}-`)).status, 416);
      assert.match(output, /GET \/fw\/espguard-1\.4\.0\.bin \(bytes=-128\) → 206, 128 bytes/);
      const serve = (...args: string[]): string[] => ["ota", "serve", "--port", "0", "--host", "127.0.0.1", ...args];
      await refused(dir,
        [/--dir nope does not exist/, ...serve("--dir", "nope", "--cert", "pki/ota-server-chain.pem", "--key", "pki/ota-server.key.pem")],
        [/does not send its chain; append the issuing CA/, ...serve("--dir", "www", "--cert", "pki/ota-server.pem", "--key", "pki/ota-server.key.pem")],
        [/--key file is not the private key of the server certificate/, ...serve("--dir", "www", "--cert", "pki/ota-server-chain.pem", "--key", "pki/svc.ota.key.pem")],
        [/port \d+ on 0\.0\.0\.0 is in use/, "ota", "serve", "--port", env.OTA_PORT!, "--dir", "www", "--cert", "pki/ota-server-chain.pem", "--key", "pki/ota-server.key.pem"],
      );
    } finally {
      const exited = new Promise((resolve) => server.once("exit", resolve));
      if (server.exitCode === null) process.kill(-server.pid!, "SIGTERM");
      await within(exited, WAIT_MS, "ota serve to stop");
    }
  });

  test("release, publish, publish-fleet: subscribers get the retained release; a service the broker does not allow is refused", async () => {
    sh("release");
    const message = readFileSync(join(dir, "build/espguard-1.4.0.release.json"), "utf8").trim();
    assert.match(message, new RegExp(`"url":"https://localhost:${env.OTA_PORT}/fw/espguard-1.4.0.bin"`));
    assert.match(sh("publish").stdout, /published 1\.4\.0 \(counter 7\) to devices\/dev-1\/ota/);
    writeFileSync(join(dir, "fleet.txt"), "# canary first\ndev-1\ndev-2\n\ndev-3  # lab bench\n");
    assert.match(sh("publish-fleet").stdout, /published to 3 devices/);
    for (const id of ["dev-1", "dev-2", "dev-3"]) assert.equal(await retainedRelease(tb!, id), message, id);
    // The PKI store's layout (certs/store.ts): a folder per device holding its cert.pem.
    for (const id of ["dev-4", "dev-5"]) {
      mkdirSync(join(dir, `.espguard/pki/devices/${id}`), { recursive: true });
      writeFileSync(join(dir, `.espguard/pki/devices/${id}/cert.pem`), (await tb!.issueDevice(id)).certPem);
    }
    mkdirSync(join(dir, ".espguard/pki/devices/dev-6"));
    const fromPki = await ok(dir, "ota", "publish", "--release", "build/espguard-1.4.0.release.json", "--broker", `mqtts://${env.BROKER_HOST}:${env.BROKER_PORT}`,
      "--ca", "pki/ca.pem", "--cert", "pki/svc.ota.pem", "--key", "pki/svc.ota.key.pem", "--fleet");
    assert.match(fromPki.stdout, /devices\/dev-4\/ota[\s\S]*devices\/dev-5\/ota[\s\S]*published to 2 devices/);
    assert.equal(await retainedRelease(tb!, "dev-5"), message);

    const stranger = await tb!.issueService("svc.other");
    writeFileSync(join(dir, "pki/svc.other.pem"), stranger.certPem);
    writeKey(join(dir, "pki/svc.other.key.pem"), stranger.keyPem);
    const broker = `mqtts://${env.BROKER_HOST}:${env.BROKER_PORT}`;
    const publish = (...args: string[]): string[] =>
      ["ota", "publish", "--release", "build/espguard-1.4.0.release.json", "--broker", broker, "--ca", "pki/ca.pem", ...args];
    await refused(dir,
      [/the broker refused the release on devices\/dev-1\/ota: .*services\.otaPublisher/, ...publish("--cert", "pki/svc.other.pem", "--key", "pki/svc.other.key.pem", "--device", "dev-1")],
      [/exactly one of --device <id> or --fleet/, ...publish("--cert", "pki/svc.ota.pem", "--key", "pki/svc.ota.key.pem", "--device", "dev-1", "--fleet")],
      [/invalid device id "Dev_1"/, ...publish("--cert", "pki/svc.ota.pem", "--key", "pki/svc.ota.key.pem", "--device", "Dev_1")],
      [/only mqtts:\/\//, "ota", "publish", "--release", "build/espguard-1.4.0.release.json", "--broker", "mqtt://localhost:1883", "--ca", "pki/ca.pem", "--cert", "pki/svc.ota.pem", "--key", "pki/svc.ota.key.pem", "--device", "dev-1"],
    );
    writeFileSync(join(dir, "build/bad.json"), message.replace('"counter":7', '"counter":"7"'));
    await refused(dir,
      [/bad-release: key "counter" must be a number/, "ota", "publish", "--release", "build/bad.json", "--broker", broker, "--ca", "pki/ca.pem", "--cert", "pki/svc.ota.pem", "--key", "pki/svc.ota.key.pem", "--device", "dev-1"],
    );
  });

  test("build-twin: a real firmware bundle wrapped for the twin", async () => {
    sh("build-twin");
    const run = await ok(dir, "ota", "sign", "--key", "keys/ota-signing.key.pem", "--in", "build/espguard-twin-1.4.0.unsigned", "--out", "build/espguard-twin-1.4.0.bin");
    assert.match(run.stdout, /signed by key/);
    assert.match((await ok(dir, "ota", "verify", "--pubkey", "keys/ota-signing.pub.der", "--target", "twin", "build/espguard-twin-1.4.0.bin")).stdout,
      /OK .*twin twin-bundle 1\.4\.0, counter 7/);
    assert.match((await ok(dir, "ota", "verify", "--pubkey", "keys/ota-signing.pub.pem", "build/espguard-twin-1.4.0.bin")).stdout, /OK .*twin twin-bundle/);
    assert.ok(existsSync(join(dir, "build/espguard-twin.mjs")));
  });
});

/** GET with the device's TLS profile: TLS 1.2 only, ECDHE-RSA-AES128-GCM-SHA256, P-256, the fleet CA, SAN "localhost". */
function deviceGet(port: number, path: string, range?: string): Promise<{ status: number; body: Buffer }> {
  const ca = readFileSync(join(root, "runbook/pki/ca.pem"), "utf8");
  return within(new Promise((resolve, reject) => {
    const req = request({
      host: "127.0.0.1", port, path, servername: "localhost", ca, agent: false, headers: range === undefined ? {} : { range },
      minVersion: "TLSv1.2", maxVersion: "TLSv1.2", ciphers: "ECDHE-RSA-AES128-GCM-SHA256", ecdhCurve: "P-256",
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("end", () => resolve({ status: res.statusCode!, body: Buffer.concat(chunks) }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end();
  }), WAIT_MS, `GET ${path}`);
}

/** What a device connecting now finds retained on its OTA topic. */
async function retainedRelease(tb: TestBroker, deviceId: string): Promise<string> {
  const device = await tb.issueDevice(deviceId);
  const client = await mqtt.connectAsync({
    protocol: "mqtts", host: tb.broker.host, port: tb.broker.port, ca: tb.ca.certPem, cert: device.certPem, key: device.keyPem,
    rejectUnauthorized: true, reconnectPeriod: 0, connectTimeout: WAIT_MS,
  });
  try {
    const received = new Promise<string>((resolve) => client.on("message", (_topic, payload, packet) => {
      if (packet.retain) resolve(payload.toString());
    }));
    await client.subscribeAsync(`devices/${deviceId}/ota`, { qos: 1 });
    return await within(received, WAIT_MS, `the retained release on devices/${deviceId}/ota`);
  } finally {
    await client.endAsync(true);
  }
}
