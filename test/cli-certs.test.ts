// `espguard certs` run as a child process: openssl reads and accepts every artifact it writes,
// keys stay 0600 and out of the output, pins match openssl's, revocation reaches the CRL, and
// every bad input is refused with a clear message and nothing written.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { createCa } from "../certs/pki.ts";
import { espguard, espguardOk, treeFingerprint } from "./support/espguard-cli.ts";

const root = mkdtempSync(join(tmpdir(), "espguard-cli-certs-"));
const base = join(root, "base");
const pki = join(base, ".espguard", "pki");
const outputs: string[] = [];

function openssl(...args: string[]): string {
  return execFileSync("openssl", args, { encoding: "utf8", timeout: 20_000, stdio: ["ignore", "pipe", "pipe"] });
}

function sh(script: string): string {
  return execFileSync("sh", ["-c", script], { encoding: "utf8", timeout: 20_000 }).trim();
}

async function run(cwd: string, ...args: string[]) {
  const result = await espguardOk(cwd, args);
  outputs.push(result.stdout + result.stderr);
  return result;
}

let counter = 0;
/** A copy of the base project folder, for tests that change the store. */
function copyOfBase(): string {
  const dir = join(root, `copy-${++counter}`);
  cpSync(base, dir, { recursive: true });
  return dir;
}

before(async () => {
  mkdirSync(base);
  await run(base, "certs", "init");
  await run(base, "certs", "server", "--dns", "localhost", "broker.test", "--ip", "127.0.0.1");
  await run(base, "certs", "device", "dev-a");
  await run(base, "certs", "service", "svc.verifier");
});

after(() => rmSync(root, { recursive: true, force: true }));

describe("certs init / server / device", () => {
  test("openssl x509 reads every certificate, PEM and DER", () => {
    for (const [file, form] of [["ca.pem", "PEM"], ["ca.der", "DER"], ["server.pem", "PEM"], ["devices/dev-a/cert.pem", "PEM"], ["devices/dev-a/cert.der", "DER"],
      ["services/svc.verifier/cert.pem", "PEM"], ["services/svc.verifier/cert.der", "DER"]] as const) {
      assert.match(openssl("x509", "-in", join(pki, file), "-inform", form, "-noout", "-subject"), /subject=/, file);
    }
  });

  test("openssl pkey reads every private key, PEM and PKCS#8 DER, all RSA-2048 and mode 0600", () => {
    for (const [file, form] of [["ca.key", "PEM"], ["server.key", "PEM"], ["server-backup.key", "PEM"], ["devices/dev-a/key.pem", "PEM"], ["devices/dev-a/key.der", "DER"],
      ["services/svc.verifier/key.pem", "PEM"], ["services/svc.verifier/key.der", "DER"]] as const) {
      assert.match(openssl("pkey", "-in", join(pki, file), "-inform", form, "-noout", "-text"), /Private-Key: \(2048 bit/, file);
      assert.equal(statSync(join(pki, file)).mode & 0o777, 0o600, file);
    }
    assert.equal(statSync(join(pki, "fleet.secret")).mode & 0o777, 0o600);
    // The DER key is the PKCS#8 structure Moddable's TLS takes, not a PKCS#1 RSAPrivateKey.
    const der = readFileSync(join(pki, "devices/dev-a/key.der"));
    assert.match(openssl("asn1parse", "-in", join(pki, "devices/dev-a/key.der"), "-inform", "DER"), /rsaEncryption/);
    assert.equal(der[0], 0x30);
  });

  test("openssl verify accepts the broker and device certificates against the CA, and the chain file", () => {
    const ca = join(pki, "ca.pem");
    assert.match(openssl("verify", "-CAfile", ca, "-purpose", "sslserver", join(pki, "server.pem")), /: OK/);
    assert.match(openssl("verify", "-CAfile", ca, "-purpose", "sslclient", join(pki, "devices/dev-a/cert.pem")), /: OK/);
    assert.match(openssl("verify", "-CAfile", ca, "-purpose", "sslclient", join(pki, "services/svc.verifier/cert.pem")), /: OK/);
    assert.match(openssl("verify", "-CAfile", ca, "-crl_check", "-CRLfile", join(pki, "crl.pem"), join(pki, "devices/dev-a/cert.pem")), /: OK/);
    const chain = readFileSync(join(pki, "server-chain.pem"), "utf8");
    assert.equal(chain.match(/BEGIN CERTIFICATE/g)?.length, 2);
    assert.ok(chain.startsWith(readFileSync(join(pki, "server.pem"), "utf8")), "the chain starts with the leaf");
    assert.ok(chain.endsWith(readFileSync(join(pki, "ca.pem"), "utf8")), "and ends with the CA");
    assert.match(openssl("crl", "-in", join(pki, "crl.pem"), "-noout", "-text"), /No Revoked Certificates/);
  });

  test("the broker certificate names its DNS names and IP addresses; the device certificate is CN = id, clientAuth", () => {
    const server = openssl("x509", "-in", join(pki, "server.pem"), "-noout", "-ext", "subjectAltName,extendedKeyUsage");
    assert.match(server, /DNS:localhost, DNS:broker\.test, IP Address:127\.0\.0\.1/);
    assert.match(server, /TLS Web Server Authentication/);
    const device = openssl("x509", "-in", join(pki, "devices/dev-a/cert.pem"), "-noout", "-subject", "-ext", "extendedKeyUsage,basicConstraints");
    assert.match(device, /subject=CN = dev-a/);
    assert.match(device, /TLS Web Client Authentication/);
    assert.match(device, /CA:FALSE/);
  });

  test("no secret appears in any command's output", () => {
    const secrets = [
      readFileSync(join(pki, "fleet.secret"), "utf8").trim(),
      ...["ca.key", "server.key", "server-backup.key", "devices/dev-a/key.pem"].map((file) => readFileSync(join(pki, file), "utf8").split("\n")[1]!),
    ];
    for (const output of outputs) for (const secret of secrets) assert.ok(!output.includes(secret), "a secret was printed");
  });
});

describe("certs pins", () => {
  const opensslPin = (pubkeyCommand: string) => sh(`${pubkeyCommand} | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64`);

  test("prints the SPKI SHA-256 of the broker key and of the backup key, as openssl computes them", async () => {
    const { stdout } = await espguardOk(base, ["certs", "pins", "--json"]);
    const pins = JSON.parse(stdout) as { current: string; backup: string };
    assert.equal(pins.current, opensslPin(`openssl x509 -in ${join(pki, "server.pem")} -pubkey -noout`));
    assert.equal(pins.backup, opensslPin(`openssl pkey -in ${join(pki, "server-backup.key")} -pubout`));
    assert.notEqual(pins.current, pins.backup);
  });

  test("server --force re-issues for the same key (pins unchanged); --rotate certifies the backup key", async () => {
    const dir = copyOfBase();
    const pinsOf = async () => JSON.parse((await espguardOk(dir, ["certs", "pins", "--json"])).stdout) as { current: string; backup: string };
    const before = await pinsOf();
    const serverBefore = readFileSync(join(dir, ".espguard/pki/server.pem"), "utf8");
    await espguardOk(dir, ["certs", "server", "--dns", "mqtt.example.net", "--force"]);
    assert.notEqual(readFileSync(join(dir, ".espguard/pki/server.pem"), "utf8"), serverBefore);
    assert.deepEqual(await pinsOf(), before);
    await espguardOk(dir, ["certs", "server", "--dns", "mqtt.example.net", "--rotate"]);
    const rotated = await pinsOf();
    assert.equal(rotated.current, before.backup);
    assert.notEqual(rotated.backup, before.backup);
    assert.notEqual(rotated.backup, before.current);
  });
});

describe("certs revoke / list / device --force", () => {
  test("a revoked certificate is in the CRL, openssl refuses it, and list shows it", async () => {
    const dir = copyOfBase();
    const store = join(dir, ".espguard/pki");
    await espguardOk(dir, ["certs", "device", "dev-b"]);
    await espguardOk(dir, ["certs", "revoke", "dev-b"]);
    const serial = openssl("x509", "-in", join(store, "devices/dev-b/cert.pem"), "-noout", "-serial").trim().replace("serial=", "");
    assert.match(openssl("crl", "-in", join(store, "crl.pem"), "-noout", "-text"), new RegExp(`Serial Number: ${serial}`));
    assert.throws(
      () => openssl("verify", "-CAfile", join(store, "ca.pem"), "-crl_check", "-CRLfile", join(store, "crl.pem"), join(store, "devices/dev-b/cert.pem")),
      (error: { stdout: string; stderr: string }) => /certificate revoked/.test(error.stdout + error.stderr),
    );
    const rows = JSON.parse((await espguardOk(dir, ["certs", "list", "--json"])).stdout) as { deviceId: string; serial: string; status: string }[];
    assert.deepEqual(rows.map((row) => [row.deviceId, row.status]), [["dev-a", "valid"], ["dev-b", "revoked"], ["svc.verifier", "valid"]]);
    assert.equal(rows[1]!.serial.toUpperCase(), serial);
    const text = (await espguardOk(dir, ["certs", "list"])).stdout;
    assert.match(text, /dev-b\s+[0-9a-f]+\s+\S+\s+revoked/);

    const again = await espguard(dir, ["certs", "revoke", "dev-b"]);
    assert.notEqual(again.code, 0);
    assert.match(again.stderr, /already revoked/);
  });

  test("device --force re-issues and revokes the previous certificate as superseded", async () => {
    const dir = copyOfBase();
    const store = join(dir, ".espguard/pki");
    const oldSerial = openssl("x509", "-in", join(store, "devices/dev-a/cert.pem"), "-noout", "-serial").trim().replace("serial=", "");
    await espguardOk(dir, ["certs", "device", "dev-a", "--force"]);
    const crl = openssl("crl", "-in", join(store, "crl.pem"), "-noout", "-text");
    assert.match(crl, new RegExp(`Serial Number: ${oldSerial}[\\s\\S]*Superseded`));
    assert.match(openssl("verify", "-CAfile", join(store, "ca.pem"), "-crl_check", "-CRLfile", join(store, "crl.pem"), join(store, "devices/dev-a/cert.pem")), /: OK/);
  });
});

describe("service accounts: revoke and re-issue", () => {
  const serialOf = (pem: string) => openssl("x509", "-in", pem, "-noout", "-serial").trim().replace("serial=", "");
  const verifies = (store: string, pem: string) =>
    openssl("verify", "-CAfile", join(store, "ca.pem"), "-crl_check", "-CRLfile", join(store, "crl.pem"), pem);

  test("revoke svc.*: the CRL names it, openssl refuses it, list shows it revoked", async () => {
    const dir = copyOfBase();
    const store = join(dir, ".espguard/pki");
    const pem = join(store, "services/svc.verifier/cert.pem");
    await espguardOk(dir, ["certs", "revoke", "svc.verifier"]);
    assert.match(openssl("crl", "-in", join(store, "crl.pem"), "-noout", "-text"), new RegExp(`Serial Number: ${serialOf(pem)}`));
    assert.throws(() => verifies(store, pem), (error: { stdout: string; stderr: string }) => /certificate revoked/.test(error.stdout + error.stderr));
    const rows = JSON.parse((await espguardOk(dir, ["certs", "list", "--json"])).stdout) as { deviceId: string; status: string }[];
    assert.deepEqual(rows.find((row) => row.deviceId === "svc.verifier")?.status, "revoked");
    const again = await espguard(dir, ["certs", "revoke", "svc.verifier"]);
    assert.notEqual(again.code, 0);
    assert.match(again.stderr, /already revoked; issue a new one with: espguard certs service svc.verifier --force/);
  });

  test("service --force revokes the previous certificate as superseded: its CN keeps the account's broker rights", async () => {
    const dir = copyOfBase();
    const store = join(dir, ".espguard/pki");
    const pem = join(store, "services/svc.verifier/cert.pem");
    const oldSerial = serialOf(pem);
    await espguardOk(dir, ["certs", "service", "svc.verifier", "--force"]);
    assert.notEqual(serialOf(pem), oldSerial);
    assert.match(openssl("crl", "-in", join(store, "crl.pem"), "-noout", "-text"), new RegExp(`Serial Number: ${oldSerial}[\\s\\S]*Superseded`));
    assert.match(verifies(store, pem), /: OK/);
  });
});

describe("bad input: a clear error, a non-zero exit, and the folder unchanged", () => {
  async function refused(cwd: string, args: string[], message: RegExp): Promise<void> {
    const before = treeFingerprint(cwd);
    const result = await espguard(cwd, args);
    assert.notEqual(result.code, 0, `espguard ${args.join(" ")} succeeded:\n${result.stdout}`);
    assert.match(result.stderr, message);
    assert.equal(result.stdout, "");
    assert.equal(treeFingerprint(cwd), before, `espguard ${args.join(" ")} changed the folder`);
  }

  test("invalid device ids", async () => {
    await Promise.all(["Dev-1", "dev/1", "dev.1", "_dev", "a".repeat(33), "svc.verifier", "dév"].map((id) =>
      refused(base, ["certs", "device", id], /invalid device id .*1–32 characters from a–z, 0–9, '-' and '_'/)));
    await refused(base, ["certs", "revoke", "Dev-1"], /invalid device id/);
  });

  test("existing output without --force", async () => {
    await Promise.all([
      refused(base, ["certs", "service", "svc.verifier"], /already has a certificate.*--force/),
      refused(base, ["certs", "service", "verifier"], /invalid service account name "verifier"/),
      refused(base, ["certs", "init"], /already exist.*Pass --force/),
      refused(base, ["certs", "device", "dev-a"], /already has a certificate.*--force/),
      refused(base, ["certs", "server", "--dns", "localhost"], /already exists.*--force/),
    ]);
  });

  test("missing CA", async () => {
    const empty = join(root, "empty");
    mkdirSync(empty);
    writeFileSync(join(empty, "marker"), "x");
    await Promise.all([
      refused(empty, ["certs", "device", "dev-a"], /no CA in .*espguard certs init/),
      refused(empty, ["certs", "server", "--dns", "localhost"], /no CA in/),
      refused(empty, ["certs", "revoke", "dev-a"], /no CA in/),
      refused(empty, ["certs", "list"], /no CA in/),
      refused(empty, ["certs", "pins"], /no broker certificate/),
    ]);
  });

  test("expired CA", async () => {
    const dir = copyOfBase();
    const expired = await createCa({ commonName: "old", notBefore: new Date(Date.now() - 3 * 86_400_000), notAfter: new Date(Date.now() - 86_400_000) });
    writeFileSync(join(dir, ".espguard/pki/ca.pem"), expired.certPem);
    writeFileSync(join(dir, ".espguard/pki/ca.key"), expired.keyPem, { mode: 0o600 });
    await Promise.all([
      refused(dir, ["certs", "device", "dev-c"], /CA certificate .* expired on .*certs init --force/),
      refused(dir, ["certs", "server", "--dns", "localhost", "--force"], /expired/),
      refused(dir, ["certs", "revoke", "dev-a"], /expired/),
    ]);
  });

  test("unreadable or mismatched keys", async () => {
    const dir = copyOfBase();
    const store = join(dir, ".espguard/pki");
    writeFileSync(join(store, "ca.key"), "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n");
    await refused(dir, ["certs", "device", "dev-c"], /ca\.key is not an unencrypted RSA private key/);
    rmSync(join(store, "ca.key"));
    await refused(dir, ["certs", "device", "dev-c"], /cannot read the CA private key .*ENOENT/);
    writeFileSync(join(store, "ca.key"), readFileSync(join(store, "server.key")), { mode: 0o600 });
    await refused(dir, ["certs", "device", "dev-c"], /is not the private key of/);
    const other = copyOfBase();
    writeFileSync(join(other, ".espguard/pki/server-backup.key"), "garbage");
    await refused(other, ["certs", "pins"], /server-backup\.key is not an unencrypted RSA private key/);
  });

  test("bad arguments", async () => {
    await Promise.all([
      refused(base, ["certs", "server", "--force"], /at least one --dns or --ip/),
      refused(base, ["certs", "server", "--force", "--dns", "bad_name!"], /is not a host name/),
      refused(base, ["certs", "server", "--force", "--ip", "300.1.1.1"], /not an IPv4 or IPv6 address/),
      refused(base, ["certs", "device", "dev-z", "--days", "0"], /--days must be a whole number/),
      refused(base, ["certs", "revoke", "dev-a", "--reason", "bored"], /--reason must be one of/),
      refused(base, ["certs", "revoke", "dev-nope"], /no certificate for device dev-nope/),
      refused(base, ["certs", "revoke", "svc.nope"], /no certificate for service account svc.nope/),
      refused(base, ["certs", "revoke", "svc.Bad"], /invalid service account name/),
    ]);
  });
});
