// The link's pure parts: SPKI pins (checked against openssl), the backoff schedule and the QoS 1
// outbox.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { describe, test } from "node:test";
import fc from "fast-check";
import { createCa, issueServerCert } from "../certs/pki.ts";
import { Backoff, BackoffError } from "../modules/link/backoff.ts";
import { Outbox } from "../modules/link/outbox.ts";
import { CertificateRefused, pinnedCertificateManager, type X509Api } from "../modules/link/pinned-cert.ts";
import { tlsReason } from "../modules/link/reasons.ts";
import { PinError, parsePins, spkiPin } from "../modules/pins/spki-pin.ts";
import { TlsError } from "../twin/moddable/tls-profile.ts";

function opensslPin(certPem: string): string {
  const spki = execFileSync("openssl", ["x509", "-pubkey", "-noout"], { input: certPem });
  const der = execFileSync("openssl", ["pkey", "-pubin", "-outform", "der"], { input: spki });
  return execFileSync("openssl", ["dgst", "-sha256", "-binary"], { input: der }).toString("base64");
}

describe("SPKI pins", () => {
  test("equal openssl's pin for a CA and a server certificate", async () => {
    const ca = await createCa({ commonName: "pins CA" });
    const server = await issueServerCert(ca, { commonName: "localhost", dnsNames: ["localhost"], ipAddresses: ["127.0.0.1"] });
    assert.equal(spkiPin(ca.certDer), opensslPin(ca.certPem));
    assert.equal(spkiPin(server.certDer), opensslPin(server.certPem));
    assert.notEqual(spkiPin(server.certDer), spkiPin(ca.certDer));
  });

  test("provisioned pin lists: primary then backups; malformed pins are refused with a fix-it message", () => {
    const a = Buffer.alloc(32, 1).toString("base64");
    const b = Buffer.alloc(32, 2).toString("base64");
    assert.deepEqual(parsePins(`${a} ${b}`), [a, b]);
    assert.deepEqual(parsePins(`${a},${b}\n`), [a, b]);
    assert.throws(() => parsePins(""), PinError);
    assert.throws(() => parsePins(Buffer.alloc(20).toString("base64")), /SHA-256/);
    assert.throws(() => parsePins(`${a} sha256/${b}`), PinError);
  });

  test("a truncated certificate is refused, not misread", async () => {
    const ca = await createCa({ commonName: "pins CA" });
    assert.throws(() => spkiPin(ca.certDer.subarray(0, 120)), PinError);
  });
});

// What x509.js decodes, from node's parser: enough to drive the board subclass on the host.
const hostX509: X509Api = {
  decode: (certificate) => ({ tbs: certificate }),
  decodeTBS: (tbs) => {
    const cert = new X509Certificate(Buffer.from(tbs));
    return { validity: { from: Date.parse(cert.validFrom), to: Date.parse(cert.validTo) } };
  },
  decodeSAN: (certificate) => (new X509Certificate(Buffer.from(certificate)).subjectAltName ?? "").split(", ").map((entry) => {
    const [kind, value = ""] = entry.split(":");
    return kind === "DNS" ? { tag: 2, value } : { tag: 7, value: new Uint8Array(value.split(".").map(Number)).buffer };
  }),
};

describe("the board's pinned certificate manager (ssl/cert)", () => {
  function manager(chainOk: boolean, pins?: readonly string[]) {
    class Base {
      constructor(_options: object) {}
      verify(): boolean {
        return chainOk;
      }
    }
    const Pinned = pinnedCertificateManager(Base, hostX509);
    return new Pinned(pins ? { pins } : {});
  }
  const refusedFor = (reason: string) => (error: unknown) => error instanceof CertificateRefused && error.reason === reason;

  test("after the chain check, accepts only a leaf whose key is pinned; without pins the chain decides", async () => {
    const ca = await createCa({ commonName: "pins CA" });
    const server = await issueServerCert(ca, { commonName: "localhost", dnsNames: ["localhost"], ipAddresses: ["127.0.0.1"] });
    const chain = [server.certDer, ca.certDer];
    const options = { tls_server_name: "localhost" };
    assert.equal(manager(true, [Buffer.alloc(32).toString("base64"), spkiPin(server.certDer)]).verify(chain, options), true);
    assert.throws(() => manager(true, [spkiPin(ca.certDer)]).verify(chain, options), refusedFor("pin-mismatch"));
    assert.equal(manager(true).verify(chain, options), true);
  });

  test("a chain refusal says why: dates, then name, else the chain", async () => {
    const ca = await createCa({ commonName: "pins CA" });
    const day = 86_400_000;
    const expired = await issueServerCert(ca, { commonName: "localhost", dnsNames: ["localhost"], ipAddresses: [], notBefore: new Date(Date.now() - 3 * day), notAfter: new Date(Date.now() - day) });
    const future = await issueServerCert(ca, { commonName: "localhost", dnsNames: ["localhost"], ipAddresses: [], notBefore: new Date(Date.now() + day) });
    const good = await issueServerCert(ca, { commonName: "localhost", dnsNames: ["*.example.net"], ipAddresses: ["10.0.0.1"] });
    assert.throws(() => manager(false).verify([expired.certDer, ca.certDer], { tls_server_name: "localhost" }), refusedFor("expired"));
    assert.throws(() => manager(false).verify([future.certDer, ca.certDer], { tls_server_name: "localhost" }), refusedFor("not-yet-valid"));
    assert.throws(() => manager(false).verify([good.certDer, ca.certDer], { tls_server_name: "localhost" }), refusedFor("name-mismatch"));
    assert.throws(() => manager(false).verify([good.certDer, ca.certDer], { tls_server_name: "broker.example.net" }), refusedFor("untrusted-chain"));
    assert.throws(() => manager(false).verify([good.certDer, ca.certDer], { tls_server_name: "10.0.0.1" }), refusedFor("untrusted-chain"));
    assert.equal(tlsReason(new CertificateRefused("not-yet-valid", "x")), "clock-unknown");
  });
});

describe("TLS failure reasons", () => {
  test("map each twin TLS failure onto the link's reasons", () => {
    const cases: [ConstructorParameters<typeof TlsError>[0], string][] = [
      ["pin-mismatch", "pin-mismatch"], ["untrusted-chain", "untrusted-chain"], ["leaf-only-chain", "untrusted-chain"],
      ["expired", "expired"], ["not-yet-valid", "clock-unknown"], ["name-mismatch", "name-mismatch"], ["handshake", "refused"],
    ];
    for (const [failure, reason] of cases) assert.equal(tlsReason(new TlsError(failure, "x")), reason);
    assert.equal(tlsReason(new Error("certificate: auth err")), "untrusted-chain");
  });
});

describe("backoff", () => {
  test("full jitter within a window that doubles up to the cap, never below the floor", () => {
    fc.assert(fc.property(fc.array(fc.double({ min: 0, max: 0.999999, noNaN: true }), { minLength: 1, maxLength: 40 }), (draws) => {
      let i = 0;
      const backoff = new Backoff({ baseMs: 1000, capMs: 60000, floorMs: 100 }, () => draws[i++ % draws.length]!);
      for (let attempt = 0; attempt < draws.length; attempt++) {
        const window = Math.min(60000, 1000 * 2 ** attempt);
        assert.equal(backoff.window(), window);
        const delay = backoff.next();
        assert.ok(delay >= 100 && delay < Math.max(window, 101), `attempt ${attempt}: ${delay} outside [100, ${window})`);
      }
    }));
  });

  test("reset returns to the first window", () => {
    const backoff = new Backoff({ baseMs: 500, capMs: 4000, floorMs: 0 }, () => 0.5);
    for (let i = 0; i < 10; i++) backoff.next();
    assert.equal(backoff.window(), 4000);
    backoff.reset();
    assert.equal(backoff.next(), 250);
  });

  test("refuses a policy that would retry in a tight loop", () => {
    assert.throws(() => new Backoff({ baseMs: 0, capMs: 1000, floorMs: 0 }), BackoffError);
    assert.throws(() => new Backoff({ baseMs: 1000, capMs: 500, floorMs: 0 }), BackoffError);
  });
});

describe("outbox", () => {
  const bytes = (n: number): ArrayBuffer => new Uint8Array([n]).buffer;

  test("bounded: drops the oldest, counts every drop", () => {
    const box = new Outbox(3);
    for (let n = 1; n <= 5; n++) box.add("t", bytes(n), false);
    assert.equal(box.size, 3);
    assert.equal(box.dropped, 2);
    assert.deepEqual(box.entries().map((e) => new Uint8Array(e.payload)[0]), [3, 4, 5]);
  });

  test("packet ids wrap within 1–65535 and skip ids still waiting", () => {
    const box = new Outbox(2);
    box.add("t", bytes(0), false); // id 1 stays waiting
    const kept = box.entries()[0]!.id;
    for (let n = 0; n < 65533; n++) {
      box.add("t", bytes(1), false);
      box.acknowledge(box.entries()[1]!.id);
    }
    box.add("t", bytes(2), false);
    const last = box.entries()[1]!.id;
    assert.equal(kept, 1);
    assert.ok(last >= 1 && last <= 65535 && last !== kept, `id ${last}`);
    assert.equal(box.acknowledge(kept), true);
    assert.equal(box.acknowledge(kept), false);
  });
});
