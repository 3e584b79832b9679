// Keys and signatures at the OTA boundary: the device's P-256 key import and signature pre-check,
// the tools' signing keys, and strict DER → raw conversion for signatures made elsewhere.
import assert from "node:assert/strict";
import { createHash, generateKeyPairSync, sign } from "node:crypto";
import { describe, test } from "node:test";
import fc from "fast-check";
import { fromHex } from "../modules/ota/bytes.ts";
import { isCheckedSignature, keyIdOf, OtaKeyError, toKeyId, TrustedKey } from "../modules/ota/trusted-key.ts";
import { rawSignatureFromDer, SignatureFormatError } from "../ota/signature-der.ts";
import {
  generateSigningKey, privateKeyPem, publicKeyPem, publicKeySpki, signingKeyFromPem, SigningKeyError, signMessage,
} from "../ota/signing-key.ts";
import { signer } from "./fixtures/ota/images.ts";

const N_MINUS_1 = fromHex("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632550");
const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest();
const digestOf = (bytes: Uint8Array) => Uint8Array.from(sha256(bytes)).buffer;

describe("TrustedKey (device side)", () => {
  test("imports a DER SubjectPublicKeyInfo; its id is the SHA-256 of those bytes", () => {
    const key = TrustedKey.fromSpki(signer.spki);
    assert.equal(key.id, sha256(signer.spki).toString("hex"));
    assert.equal(key.id, keyIdOf(signer.spki));
    assert.equal(TrustedKey.fromSpki(signer.spki.slice().buffer).id, key.id);
    const message = new TextEncoder().encode("hello");
    assert.equal(key.verify(digestOf(message), signMessage(signer, message)), true);
    assert.equal(key.verify(digestOf(message), signMessage(generateSigningKey(), message)), false);
  });

  const edit = (at: number, value: number) => {
    const copy = Uint8Array.from(signer.spki);
    copy[at] = value;
    return copy;
  };
  const p384 = generateKeyPairSync("ec", { namedCurve: "P-384" }).publicKey.export({ type: "spki", format: "der" });
  const compressed = new Uint8Array(59);
  const refused: [string, Uint8Array, RegExp][] = [
    ["a P-384 key", new Uint8Array(p384), /91-byte DER SubjectPublicKeyInfo, got 120 bytes/],
    ["a compressed point", compressed, /got 59 bytes/],
    ["another algorithm", edit(12, 0x03), /not an EC public key/],
    ["another curve", edit(22, 0x08), /not a P-256 key/],
    ["a compressed-point marker", edit(26, 0x02), /not an uncompressed P-256 point/],
    ["a point off the curve", edit(60, signer.spki[60]! ^ 1), /not a usable P-256 public key/],
    ["a broken outer length", edit(1, 0x58), /not a (DER SubjectPublicKeyInfo|usable P-256 public key)/],
    ["a bit string with unused bits", edit(25, 0x01), /not a DER SubjectPublicKeyInfo/],
  ];
  for (const [name, spki, pattern] of refused) {
    test(`refuses ${name}, saying why`, () => {
      assert.throws(() => TrustedKey.fromSpki(spki), (error: unknown) => error instanceof OtaKeyError && pattern.test(error.message));
    });
  }

  test("the signature pre-check admits exactly 64 bytes with 1 ≤ r, s < n", () => {
    const one = fromHex("01".padStart(64, "0"));
    const raw = (r: Uint8Array, s: Uint8Array) => Uint8Array.from([...r, ...s]);
    assert.equal(isCheckedSignature(raw(one, one)), true);
    assert.equal(isCheckedSignature(raw(N_MINUS_1, N_MINUS_1)), true);
    const n = Uint8Array.from(N_MINUS_1);
    n[31]! += 1;
    assert.equal(isCheckedSignature(raw(n, one)), false);
    assert.equal(isCheckedSignature(raw(one, n)), false);
    assert.equal(isCheckedSignature(raw(new Uint8Array(32), one)), false);
    assert.equal(isCheckedSignature(raw(one, new Uint8Array(32))), false);
    assert.equal(isCheckedSignature(raw(one, one).subarray(0, 63)), false);
    assert.equal(isCheckedSignature(Uint8Array.from([...raw(one, one), 0])), false);
  });

  test("key ids are 64 lowercase hex digits", () => {
    assert.equal(toKeyId(signer.keyId), signer.keyId);
    assert.throws(() => toKeyId(signer.keyId.toUpperCase()), OtaKeyError);
    assert.throws(() => toKeyId(signer.keyId.slice(2)), /64 lowercase hex/);
  });
});

describe("signing keys (tools)", () => {
  test("PEM round trip keeps the key id; PKCS#8 and SEC 1 both load", () => {
    const key = generateSigningKey();
    assert.equal(signingKeyFromPem(privateKeyPem(key)).keyId, key.keyId);
    const sec1 = key.privateKey.export({ type: "sec1", format: "pem" }).toString();
    assert.equal(signingKeyFromPem(sec1).keyId, key.keyId);
    assert.deepEqual(publicKeySpki(publicKeyPem(key.spki)), key.spki);
    assert.deepEqual(publicKeySpki(key.spki), key.spki);
  });

  test("anything but an unencrypted P-256 key is refused with what to do", () => {
    const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const p384 = generateKeyPairSync("ec", { namedCurve: "P-384" });
    const ed = generateKeyPairSync("ed25519");
    const pem = (k: typeof rsa.privateKey) => k.export({ type: "pkcs8", format: "pem" }).toString();
    assert.throws(() => signingKeyFromPem(pem(rsa.privateKey)), /a rsa key; OTA signing uses ECDSA P-256/);
    assert.throws(() => signingKeyFromPem(pem(p384.privateKey)), /an EC key on secp384r1/);
    assert.throws(() => signingKeyFromPem(pem(ed.privateKey)), SigningKeyError);
    const encrypted = signer.privateKey.export({ type: "pkcs8", format: "pem", cipher: "aes-256-cbc", passphrase: "x" }).toString();
    assert.throws(() => signingKeyFromPem(encrypted), /encrypted key must be decrypted/);
    assert.throws(() => publicKeySpki(p384.publicKey.export({ type: "spki", format: "pem" }).toString()), SigningKeyError);
    assert.throws(() => publicKeySpki(new Uint8Array(10)), /not a readable public key/);
  });
});

describe("DER signatures to raw r ‖ s", () => {
  test("node's DER signatures convert to raw ones the device verifies", () => {
    const key = TrustedKey.fromSpki(signer.spki);
    fc.assert(fc.property(fc.uint8Array({ maxLength: 64 }), (message) => {
      const der = new Uint8Array(sign("sha256", message, { key: signer.privateKey, dsaEncoding: "der" }));
      assert.equal(key.verify(digestOf(message), rawSignatureFromDer(der)), true);
    }), { numRuns: 100 });
  });

  const good = Uint8Array.of(0x30, 0x08, 0x02, 0x02, 0x00, 0x80, 0x02, 0x02, 0x01, 0x02);
  test("small integers are right-aligned, a sign byte is dropped", () => {
    const raw = rawSignatureFromDer(good);
    assert.equal(raw[31], 0x80);
    assert.equal(raw[62], 0x01);
    assert.equal(raw[63], 0x02);
    assert.equal(raw.filter((b) => b !== 0).length, 3);
  });

  const lax: [string, number[]][] = [
    ["not a SEQUENCE", [0x31, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01]],
    ["a trailing byte", [0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01, 0x00]],
    ["a long-form length", [0x30, 0x81, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01]],
    ["a short SEQUENCE", [0x30, 0x07, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01]],
    ["a non-minimal integer", [0x30, 0x07, 0x02, 0x02, 0x00, 0x01, 0x02, 0x01, 0x01]],
    ["a negative integer", [0x30, 0x06, 0x02, 0x01, 0x81, 0x02, 0x01, 0x01]],
    ["an empty integer", [0x30, 0x05, 0x02, 0x00, 0x02, 0x01, 0x01]],
    ["an extra element", [0x30, 0x09, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01]],
    ["one integer", [0x30, 0x03, 0x02, 0x01, 0x01]],
    ["a 33-byte integer without a sign byte", [0x30, 0x26, 0x02, 0x21, 0x01, ...new Array(32).fill(0), 0x02, 0x01, 0x01]],
    ["empty input", []],
  ];
  for (const [name, bytes] of lax) {
    test(`refuses ${name}`, () => {
      assert.throws(() => rawSignatureFromDer(Uint8Array.from(bytes)), SignatureFormatError);
    });
  }
});
