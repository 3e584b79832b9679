import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { X509Certificate, createPrivateKey } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  createCa, issueServerCert, issueDeviceCert, issueServiceCert, chainPem, createCrl, serialNumberHex,
  InvalidServiceNameError, PkiError,
} from "../certs/pki.ts";
import { DeviceIdError } from "../modules/identity/device-id.ts";
import type { Issued } from "../certs/pki.ts";

const CLIENT_AUTH = "1.3.6.1.5.5.7.3.2";
const SERVER_AUTH = "1.3.6.1.5.5.7.3.1";

let dir: string;
let ca: Issued;
let server: Issued;
let device: Issued;
let service: Issued;
let bareServer: Issued;
let otherCa: Issued;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "espguard-pki-"));
  ca = await createCa({ commonName: "espguard test CA" });
  [server, device, service, bareServer, otherCa] = await Promise.all([
    issueServerCert(ca, { commonName: "broker.test", dnsNames: ["localhost", "broker.test"], ipAddresses: ["127.0.0.1", "::1"] }),
    issueDeviceCert(ca, { deviceId: "dev-001" }),
    issueServiceCert(ca, { name: "svc.verifier" }),
    issueServerCert(ca, { commonName: "localhost", dnsNames: [], ipAddresses: [] }),
    createCa({ commonName: "someone else's CA" }),
  ]);
});

after(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, content: string | Uint8Array): string {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
}

function openssl(...args: string[]): string {
  return execFileSync("openssl", args, { encoding: "utf8", timeout: 20_000, stdio: ["ignore", "pipe", "pipe"] });
}

function opensslFails(...args: string[]): string {
  try {
    openssl(...args);
  } catch (error) {
    const { stdout, stderr } = error as { stdout: string; stderr: string };
    return `${stdout}${stderr}`;
  }
  assert.fail(`openssl ${args.join(" ")} unexpectedly succeeded`);
}

test("openssl reads every certificate, PEM and DER alike", () => {
  for (const [name, issued] of Object.entries({ ca, server, device, service, bareServer })) {
    const text = openssl("x509", "-noout", "-text", "-in", file(`${name}.pem`, issued.certPem));
    assert.match(text, /Signature Algorithm: sha256WithRSAEncryption/);
    assert.match(text, /Public-Key: \(2048 bit\)/);
    const fromDer = openssl("x509", "-inform", "DER", "-noout", "-fingerprint", "-sha256", "-in", file(`${name}.der`, issued.certDer));
    const fromPem = openssl("x509", "-noout", "-fingerprint", "-sha256", "-in", join(dir, `${name}.pem`));
    assert.equal(fromDer, fromPem);
  }
});

test("openssl reads every private key, PEM and PKCS#8 DER, and it matches its certificate", () => {
  for (const [name, issued] of Object.entries({ ca, server, device, service })) {
    assert.match(issued.keyPem, /^-----BEGIN PRIVATE KEY-----\n/);
    const keyText = openssl("pkey", "-noout", "-text", "-in", file(`${name}.key`, issued.keyPem));
    assert.match(keyText, /Private-Key: \(2048 bit, 2 primes\)/);
    const pubFromKey = openssl("pkey", "-inform", "DER", "-pubout", "-in", file(`${name}.key.der`, issued.keyPkcs8Der));
    const pubFromCert = openssl("x509", "-noout", "-pubkey", "-in", file(`${name}.crt`, issued.certPem));
    assert.equal(pubFromKey, pubFromCert);
    const key = createPrivateKey({ key: Buffer.from(issued.keyPkcs8Der), format: "der", type: "pkcs8" });
    assert.equal(key.asymmetricKeyType, "rsa");
    assert.ok(new X509Certificate(issued.certPem).checkPrivateKey(key));
  }
});

test("openssl verify accepts each leaf against the CA for its purpose", () => {
  const caFile = file("ca-verify.pem", ca.certPem);
  assert.match(openssl("verify", "-CAfile", caFile, "-purpose", "sslserver", file("v-server.pem", server.certPem)), /: OK/);
  assert.match(openssl("verify", "-CAfile", caFile, "-purpose", "sslclient", file("v-device.pem", device.certPem)), /: OK/);
  assert.match(openssl("verify", "-CAfile", caFile, "-purpose", "sslclient", file("v-service.pem", service.certPem)), /: OK/);
  assert.match(openssl("verify", "-CAfile", caFile, file("v-ca.pem", ca.certPem)), /: OK/);
  // The EKUs are enforced, not decoration: a device certificate cannot serve as a broker.
  assert.match(opensslFails("verify", "-CAfile", caFile, "-purpose", "sslserver", join(dir, "v-device.pem")), /unsuitable certificate purpose/);
  assert.match(opensslFails("verify", "-CAfile", file("other-ca.pem", otherCa.certPem), join(dir, "v-device.pem")), /unable to get local issuer certificate/);
});

test("the chain file is leaf then CA, and verifies as an untrusted chain", () => {
  const chain = chainPem(server, ca);
  assert.equal(chain, `${server.certPem}${ca.certPem}`);
  assert.equal(chain.match(/-----BEGIN CERTIFICATE-----/g)?.length, 2);
  const chainFile = file("chain.pem", chain);
  assert.match(openssl("verify", "-CAfile", join(dir, "ca-verify.pem"), "-untrusted", chainFile, chainFile), /: OK/);
});

test("node's X509Certificate agrees on names, extensions and signatures", () => {
  const caX = new X509Certificate(ca.certPem);
  assert.equal(caX.subject, "CN=espguard test CA");
  assert.equal(caX.ca, true);
  assert.ok(caX.verify(caX.publicKey));
  const caLife = Date.parse(caX.validTo) - Date.parse(caX.validFrom);
  assert.ok(caLife > 9 * 365 * 86_400_000, `CA lifetime ${caLife} ms should be about ten years`);

  const serverX = new X509Certificate(server.certPem);
  assert.equal(serverX.subject, "CN=broker.test");
  assert.equal(serverX.issuer, caX.subject);
  assert.equal(serverX.ca, false);
  assert.deepEqual(serverX.keyUsage, [SERVER_AUTH]);
  assert.equal(serverX.subjectAltName, "DNS:localhost, DNS:broker.test, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1");
  assert.equal(serverX.checkHost("localhost"), "localhost");
  assert.equal(serverX.checkIP("127.0.0.1"), "127.0.0.1");
  assert.ok(serverX.checkIssued(caX));
  assert.ok(serverX.verify(caX.publicKey));

  const deviceX = new X509Certificate(device.certPem);
  assert.equal(deviceX.subject, "CN=dev-001");
  assert.deepEqual(deviceX.keyUsage, [CLIENT_AUTH]);
  assert.equal(deviceX.subjectAltName, undefined);
  assert.ok(deviceX.verify(caX.publicKey));
  assert.equal(deviceX.publicKey.asymmetricKeyType, "rsa");
  const deviceLife = Date.parse(deviceX.validTo) - Date.parse(deviceX.validFrom);
  assert.ok(deviceLife > 364 * 86_400_000 && deviceLife < 367 * 86_400_000, `device lifetime ${deviceLife} ms should be about a year`);

  const serviceX = new X509Certificate(service.certPem);
  assert.equal(serviceX.subject, "CN=svc.verifier");
  assert.deepEqual(serviceX.keyUsage, [CLIENT_AUTH]);
});

test("a server certificate without names carries no SAN extension at all", () => {
  const bare = new X509Certificate(bareServer.certPem);
  assert.equal(bare.subject, "CN=localhost");
  assert.equal(bare.subjectAltName, undefined);
  const text = openssl("x509", "-noout", "-text", "-in", join(dir, "bareServer.pem"));
  assert.doesNotMatch(text, /Subject Alternative Name/);
});

test("serial numbers are random, positive and 16 bytes long", () => {
  const all = [ca, server, device, service, bareServer, otherCa];
  const serials = all.map((issued) => serialNumberHex(issued));
  assert.equal(new Set(serials).size, serials.length);
  for (const [i, serial] of serials.entries()) {
    assert.match(serial, /^[0-7][0-9a-f]{31}$/);
    assert.equal(new X509Certificate(all[i]!.certPem).serialNumber.toLowerCase(), serial);
  }
});

test("explicit validity dates are honoured, so tests can mint expired certificates", async () => {
  const notBefore = new Date(Date.UTC(2020, 0, 1));
  const notAfter = new Date(Date.UTC(2020, 0, 2));
  const expired = await issueDeviceCert(ca, { deviceId: "old-device", notBefore, notAfter });
  const x = new X509Certificate(expired.certPem);
  assert.equal(Date.parse(x.validFrom), notBefore.getTime());
  assert.equal(Date.parse(x.validTo), notAfter.getTime());
  assert.match(opensslFails("verify", "-CAfile", join(dir, "ca-verify.pem"), file("expired.pem", expired.certPem)), /certificate has expired/);
});

test("a CRL signed by the CA revokes exactly the listed certificates", async () => {
  const { crlPem, crlDer } = await createCrl(ca, { revoked: [{ serialNumber: serialNumberHex(device) }], crlNumber: 7 });
  const crlFile = file("crl.pem", crlPem);
  const text = openssl("crl", "-noout", "-text", "-CAfile", join(dir, "ca-verify.pem"), "-in", crlFile);
  assert.match(text, new RegExp(`Serial Number: ${serialNumberHex(device).toUpperCase()}`));
  assert.match(text, /X509v3 CRL Number: \n\s+7\n/);
  assert.match(text, /Key Compromise/);
  assert.equal(openssl("crl", "-inform", "DER", "-noout", "-hash", "-in", file("crl.der", crlDer)),
    openssl("crl", "-noout", "-hash", "-in", crlFile));
  const both = file("ca-and-crl.pem", ca.certPem + crlPem);
  assert.match(opensslFails("verify", "-crl_check", "-CAfile", both, join(dir, "v-device.pem")), /certificate revoked/);
  assert.match(openssl("verify", "-crl_check", "-CAfile", both, join(dir, "v-service.pem")), /: OK/);
});

test("bad input is refused with typed errors that say how to fix it", async () => {
  for (const bad of ["", "a/b", "dev+1", "dev#", "-lead", "svc.verifier", "Dev", "é", "x".repeat(33)]) {
    await assert.rejects(issueDeviceCert(ca, { deviceId: bad }), DeviceIdError);
  }
  await assert.rejects(issueServiceCert(ca, { name: "verifier" }), InvalidServiceNameError);
  await assert.rejects(issueServerCert(ca, { commonName: "x", dnsNames: ["bad name"], ipAddresses: [] }), /is not a host name/);
  await assert.rejects(issueServerCert(ca, { commonName: "x", dnsNames: [], ipAddresses: ["300.1.1.1"] }), /not an IPv4 or IPv6 address/);
  await assert.rejects(createCa({ commonName: "" }), PkiError);
  await assert.rejects(issueDeviceCert(ca, { deviceId: "d", notBefore: new Date(2000), notAfter: new Date(1000) }), /is not after notBefore/);
  await assert.rejects(issueDeviceCert({ ...ca, keyPkcs8Der: new Uint8Array([1, 2, 3]) }, { deviceId: "d" }), /CA private key is not an RSA PKCS#8 key/);
  await assert.rejects(createCrl(ca, { revoked: [{ serialNumber: "zz" }] }), /not a hex serial number/);
});
