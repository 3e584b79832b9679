// The twin's crypt / hmac / ber / curve / ecp / ecdsa against node:crypto, published vectors,
// and every input on which Moddable would hang, accept laxly or compute garbage.
import assert from "node:assert/strict";
import { createHash, createHmac, generateKeyPairSync, type KeyObject, sign as nodeSign, verify as nodeVerify } from "node:crypto";
import { describe, test } from "node:test";
import fc from "fast-check";
import cryptDefault, { Digest } from "../twin/moddable/crypt.ts";
import HMAC from "../twin/moddable/hmac.ts";
import BER from "../twin/moddable/ber.ts";
import Curve from "../twin/moddable/curve.ts";
import ECPoint from "../twin/moddable/ecp.ts";
import ECDSA from "../twin/moddable/ecdsa.ts";
import { DOMAINS, invert } from "../twin/moddable/ec-arith.ts";
import { BERError, CryptStateError, ECKeyError, ModdableBugError, UncheckedSignatureError } from "../twin/moddable/crypt-support.ts";

const ALGORITHMS = [
  ["MD5", "md5", 64, 16],
  ["SHA1", "sha1", 64, 20],
  ["SHA224", "sha224", 64, 28],
  ["SHA256", "sha256", 64, 32],
  ["SHA384", "sha384", 128, 48],
  ["SHA512", "sha512", 128, 64],
] as const;
type Algorithm = (typeof ALGORITHMS)[number][0];
const NODE_NAME: Record<string, string> = Object.fromEntries(ALGORITHMS.map(([name, node]) => [name, node]));

const P256_N = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n;

const hex = (buffer: ArrayBuffer | Uint8Array) => Buffer.from(buffer instanceof ArrayBuffer ? new Uint8Array(buffer) : buffer).toString("hex");
const fromHex = (text: string) => Uint8Array.from(Buffer.from(text, "hex")).buffer;
const arrayBuffer = (bytes: Uint8Array) => Uint8Array.from(bytes).buffer;
const bigIntBytes = (value: bigint, size: number) => Uint8Array.from(Buffer.from(value.toString(16).padStart(size * 2, "0"), "hex"));

/** Splits `bytes` at the given fractions: chunked writes must equal one write. */
const chunked = fc.tuple(fc.uint8Array({ maxLength: 600 }), fc.array(fc.nat({ max: 600 }), { maxLength: 6 }))
  .map(([bytes, cuts]) => {
    const points = [...new Set(cuts.map((c) => Math.min(c, bytes.length)))].sort((a, b) => a - b);
    const pieces: Uint8Array[] = [];
    let from = 0;
    for (const at of [...points, bytes.length]) {
      pieces.push(bytes.subarray(from, at));
      from = at;
    }
    return { bytes, pieces };
  });

test("firmware specifiers resolve to these twins", async () => {
  const load = (specifier: string) => import(specifier) as Promise<Record<string, unknown>>;
  assert.equal((await load("crypt")).Digest, Digest);
  assert.equal((await load("hmac")).default, HMAC);
  assert.equal((await load("ber")).default, BER);
  assert.equal((await load("curve")).default, Curve);
  assert.equal((await load("ecp")).default, ECPoint);
  assert.equal((await load("ecdsa")).default, ECDSA);
});

describe("crypt Digest", () => {
  test("exports Digest by name and in a frozen default object, like modules/crypt/digest/crypt.js", async () => {
    assert.deepEqual(Object.keys(cryptDefault), ["Digest"]);
    assert.equal(cryptDefault.Digest, Digest);
    assert.ok(Object.isFrozen(cryptDefault));
    assert.ok(Object.isFrozen(Digest.prototype));
    const names = Object.keys(await import("../twin/moddable/crypt.ts")).sort();
    assert.deepEqual(names, ["Digest", "default"]);
  });

  test("knows Moddable's names, block and output sizes", () => {
    for (const [name, , blockSize, outputSize] of ALGORITHMS) {
      const digest = new Digest(name);
      assert.equal(digest.blockSize, blockSize, name);
      assert.equal(digest.outputSize, outputSize, name);
    }
    for (const name of ["sha256", "SHA-256", "GHASH", "SHA3-256"])
      assert.throws(() => new Digest(name as Algorithm), /crypt: unsupported digest/);
  });

  test("equals node:crypto, and chunked writes equal one write", () => {
    fc.assert(fc.property(fc.constantFrom(...ALGORITHMS.map(([name]) => name)), chunked, (name, { bytes, pieces }) => {
      const expected = createHash(NODE_NAME[name]!).update(bytes).digest("hex");
      const digest = new Digest(name);
      for (const piece of pieces) digest.write(piece);
      assert.equal(hex(digest.close()), expected);
      assert.equal(hex(new Digest(name).process(arrayBuffer(bytes))), expected);
    }), { numRuns: 200 });
  });

  test("reads strings as UTF-8 and any byte view at its offset", () => {
    const bytes = Uint8Array.from([0, 1, 2, 250, 251, 252, 253]);
    const view = bytes.subarray(2, 6);
    const expected = createHash("sha256").update(view).digest("hex");
    for (const data of [view, new DataView(bytes.buffer, 2, 4), new Int8Array(bytes.buffer, 2, 4), new Uint8ClampedArray(bytes.buffer, 2, 4), arrayBuffer(view)])
      assert.equal(hex(new Digest("SHA256").process(data)), expected, data.constructor.name);
    assert.equal(hex(new Digest("SHA256").process("héllo ✓ 😀")), createHash("sha256").update("héllo ✓ 😀", "utf8").digest("hex"));
  });

  test("refuses input the board would hash differently or reject", () => {
    const digest = new Digest("SHA256");
    assert.throws(() => digest.write("a\u0000b"), { name: "TypeError", message: /U\+0000/ });
    assert.throws(() => digest.write("lone \ud800 surrogate"), { name: "TypeError", message: /surrogate/ });
    assert.throws(() => digest.write(new Uint16Array(4)), { name: "TypeError", message: /Uint16Array/ });
    assert.throws(() => digest.write(42 as unknown as string), { name: "TypeError" });
    assert.throws(() => digest.write(new SharedArrayBuffer(4) as unknown as ArrayBuffer), { name: "TypeError" });
  });

  test("close() does not reset: writing or closing again throws until reset()", () => {
    const digest = new Digest("SHA256");
    digest.write("abc");
    const first = digest.close();
    assert.throws(() => digest.write("more"), CryptStateError);
    assert.throws(() => digest.close(), CryptStateError);
    assert.throws(() => digest.update("more"), CryptStateError);
    digest.reset();
    digest.write("abc");
    assert.deepEqual(digest.close(), first);
    assert.throws(() => digest.close(), /reset\(\)/);
    assert.equal(hex(digest.process("abc")), hex(first));
  });

  test("close(true) returns the digest so far and keeps hashing", () => {
    const digest = new Digest("SHA512");
    digest.write("part one");
    assert.equal(hex(digest.close(true)), createHash("sha512").update("part one").digest("hex"));
    digest.write(", part two");
    assert.equal(hex(digest.close()), createHash("sha512").update("part one, part two").digest("hex"));
  });
});

describe("hmac", () => {
  // RFC 4231 §4.2–4.8: [key, data, SHA-224, SHA-256, SHA-384, SHA-512]; case 5 is truncated to 128 bits.
  const largeKey = "aa".repeat(131);
  const vectors: [string, string, string, string, string, string][] = [
    ["0b".repeat(20), Buffer.from("Hi There").toString("hex"),
      "896fb1128abbdf196832107cd49df33f47b4b1169912ba4f53684b22",
      "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
      "afd03944d84895626b0825f4ab46907f15f9dadbe4101ec682aa034c7cebc59cfaea9ea9076ede7f4af152e8b2fa9cb6",
      "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cdedaa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854"],
    [Buffer.from("Jefe").toString("hex"), Buffer.from("what do ya want for nothing?").toString("hex"),
      "a30e01098bc6dbbf45690f3a7e9e6d0f8bbea2a39e6148008fd05e44",
      "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
      "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e8e2240ca5e69e2c78b3239ecfab21649",
      "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737"],
    ["aa".repeat(20), "dd".repeat(50),
      "7fb3cb3588c6c1f6ffa9694d7d6ad2649365b0c1f65d69d1ec8333ea",
      "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
      "88062608d3e6ad8a0aa2ace014c8a86f0aa635d947ac9febe83ef4e55966144b2a5ab39dc13814b94e3ab6e101a34f27",
      "fa73b0089d56a284efb0f0756c890be9b1b5dbdd8ee81a3655f83e33b2279d39bf3e848279a722c806b485a47e67c807b946a337bee8942674278859e13292fb"],
    ["0102030405060708090a0b0c0d0e0f10111213141516171819", "cd".repeat(50),
      "6c11506874013cac6a2abc1bb382627cec6a90d86efc012de7afec5a",
      "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
      "3e8a69b7783c25851933ab6290af6ca77a9981480850009cc5577c6e1f573b4e6801dd23c4a7d679ccf8a386c674cffb",
      "b0ba465637458c6990e5a8c5f61d4af7e576d97ff94b872de76f8050361ee3dba91ca5c11aa25eb4d679275cc5788063a5f19741120c4f2de2adebeb10a298dd"],
    ["0c".repeat(20), Buffer.from("Test With Truncation").toString("hex"),
      "0e2aea68a90c8d37c988bcdb9fca6fa8", "a3b6167473100ee06e0c796c2955552b",
      "3abf34c3503b2a23a46efc619baef897", "415fad6271580a531d4179bc891d87a6"],
    [largeKey, Buffer.from("Test Using Larger Than Block-Size Key - Hash Key First").toString("hex"),
      "95e9a0db962095adaebe9b2d6f0dbce2d499f112f2d2b7273fa6870e",
      "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
      "4ece084485813e9088d2c63a041bc5b44f9ef1012a2b588f3cd11f05033ac4c60c2ef6ab4030fe8296248df163f44952",
      "80b24263c7c1a3ebb71493c1dd7be8b49b46d1f41b4aeec1121b013783f8f3526b56d037e05f2598bd0fd2215d6a1e5295e64f73f63f0aec8b915a985d786598"],
    [largeKey, Buffer.from("This is a test using a larger than block-size key and a larger than block-size data. " +
      "The key needs to be hashed before being used by the HMAC algorithm.").toString("hex"),
      "3a854166ac5d9f023f54d517d0b39dbd946770db9c2b95c9f6f565d1",
      "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
      "6617178e941f020d351e2f254e8fd32c602420feb0b8fb9adccebb82461e99c5a678cc31e799176d3860e6110c46523e",
      "e37b6a775dc87dbaa4dfa9f96e5e3ffddebd71f8867289865df5a32d20cdc944b6022cac3c4982b10d5eeb55c3e4de15134676fb6de0446065c97440fa8c6a58"],
  ];

  test("RFC 4231 vectors", () => {
    vectors.forEach(([key, data, ...expected], index) => {
      (["SHA224", "SHA256", "SHA384", "SHA512"] as const).forEach((name, k) => {
        const mac = new HMAC(new Digest(name), fromHex(key)).process(fromHex(data));
        assert.equal(hex(mac).slice(0, expected[k]!.length), expected[k], `case ${index + 1} ${name}`);
      });
    });
  });

  test("equals node:crypto over random keys (shorter and longer than a block) and chunked updates", () => {
    fc.assert(fc.property(fc.constantFrom(...ALGORITHMS.map(([name]) => name)), fc.uint8Array({ maxLength: 300 }), chunked,
      (name, key, { bytes, pieces }) => {
        const expected = createHmac(NODE_NAME[name]!, key).update(bytes).digest("hex");
        const hmac = new HMAC(new Digest(name), key);
        hmac.update(...pieces);
        assert.equal(hex(hmac.close()), expected);
        hmac.reset();
        for (const piece of pieces) hmac.update(arrayBuffer(piece));
        assert.equal(hex(hmac.close()), expected);
        assert.equal(hex(hmac.process(bytes)), expected);
      }), { numRuns: 200 });
  });

  test("process(string) equals node:crypto over its UTF-8, on every padding boundary and past the ASCII fast path", () => {
    const key = Uint8Array.from({ length: 32 }, (_, i) => i * 13);
    const hmac = new HMAC(new Digest("SHA256"), key);
    const expected = (text: string) => createHmac("sha256", key).update(text, "utf8").digest("hex");
    for (let length = 0; length <= 200; length++) {
      const text = "{\"a\": 1}".repeat(30).slice(0, length);
      assert.equal(hex(hmac.process(text)), expected(text), `${length} ASCII characters`);
    }
    fc.assert(fc.property(fc.string({ unit: fc.constantFrom("a", "~", "\u007f", "\u0080", "\u00e9", "\u2028", "\u{1F600}"), maxLength: 150 }),
      (text) => assert.equal(hex(hmac.process(text)), expected(text))), { numRuns: 500 });
    assert.throws(() => hmac.process("a\u0000b"), /U\+0000/);
  });

  test("close() does not reset: update or close again throws until reset() or process()", () => {
    const hmac = new HMAC(new Digest("SHA256"), fromHex("00112233"));
    hmac.update("message");
    const tag = hmac.close();
    assert.throws(() => hmac.update("message"), CryptStateError);
    assert.throws(() => hmac.close(), /reset\(\) first or use process\(\)/);
    hmac.reset();
    hmac.update("message");
    assert.deepEqual(hmac.close(), tag);
    assert.deepEqual(hmac.process("message"), tag);
    assert.deepEqual(hmac.process("message"), tag);
  });

  test("init() re-keys", () => {
    const hmac = new HMAC(new Digest("SHA256"), fromHex("01"));
    hmac.init(fromHex("02"));
    assert.equal(hex(hmac.process("x")), createHmac("sha256", Buffer.from([2])).update("x").digest("hex"));
  });

  test("sign and verify are broken on Moddable and throw", () => {
    const hmac = new HMAC(new Digest("SHA256"), fromHex("01"));
    assert.throws(() => hmac.sign(), ModdableBugError);
    assert.throws(() => hmac.verify(), { name: "ModdableBugError", message: /process/ });
  });

  test("the Digest belongs to the HMAC from then on", () => {
    const digest = new Digest("SHA256");
    const hmac = new HMAC(digest, fromHex("01"));
    for (const use of [() => digest.write("x"), () => digest.close(), () => digest.reset(), () => digest.process("x")])
      assert.throws(use, { name: "CryptStateError", message: /belongs to an HMAC/ });
    assert.throws(() => new HMAC(digest, fromHex("02")), /another HMAC/);
    assert.equal(hex(hmac.process("x")), createHmac("sha256", Buffer.from([1])).update("x").digest("hex"));
  });

  test("keys the board would silently mangle are refused", () => {
    for (const key of ["secret", new DataView(new ArrayBuffer(4)), new Uint16Array(2), undefined])
      assert.throws(() => new HMAC(new Digest("SHA256"), key as unknown as ArrayBuffer), { name: "TypeError", message: /HMAC key/ });
    assert.throws(() => new HMAC({} as Digest, fromHex("01")), /must be a Digest/);
  });
});

/** What firmware does with a bare SPKI (DESIGN §3): BER, then ECPoint.fromOctetString. */
function importSpki(spki: ArrayBuffer | Uint8Array): ECPoint {
  const info = new BER(new BER(spki).getSequence());
  const algorithm = new BER(info.getSequence());
  assert.deepEqual([...algorithm.getObjectIdentifier()], [1, 2, 840, 10045, 2, 1]);
  const curve = [...algorithm.getObjectIdentifier()];
  assert.ok(curve.join(".") === "1.2.840.10045.3.1.7" || curve.join(".") === "1.3.132.0.34", curve.join("."));
  return ECPoint.fromOctetString(info.getBitString());
}

function keyPair(namedCurve: "P-256" | "P-384") {
  const { publicKey, privateKey } = generateKeyPairSync("ec", { namedCurve });
  const spki = publicKey.export({ type: "spki", format: "der" });
  const d = BigInt("0x" + Buffer.from(privateKey.export({ format: "jwk" }).d!, "base64url").toString("hex"));
  return { publicKey, privateKey, spki, d };
}

const p256 = keyPair("P-256");
const curve256 = new Curve("secp256r1");
const verifier = new ECDSA(importSpki(p256.spki), curve256);
const sha256 = (message: Uint8Array | string) => new Digest("SHA256").process(message);

function nodeSignature(privateKey: KeyObject, message: Uint8Array | string, dsaEncoding: "der" | "ieee-p1363", hash = "sha256") {
  return Uint8Array.from(nodeSign(hash, Buffer.from(message), { key: privateKey, dsaEncoding }));
}

function rawSig(r: bigint, s: bigint): ArrayBuffer {
  const raw = new Uint8Array(64);
  raw.set(bigIntBytes(r, 32));
  raw.set(bigIntBytes(s, 32), 32);
  return raw.buffer;
}

test("invert agrees with Fermat's a^(m−2) on both curves' primes and orders, and refuses what has no inverse", () => {
  const power = (base: bigint, exponent: bigint, m: bigint) => {
    let result = 1n;
    for (base %= m; exponent > 0n; exponent >>= 1n, base = base * base % m) if (exponent & 1n) result = result * base % m;
    return result;
  };
  const moduli = Object.values(DOMAINS).flatMap((d) => [d.p, d.n]);
  fc.assert(fc.property(fc.constantFrom(...moduli), fc.bigInt({ min: 1n, max: 2n ** 384n }), (m, a) => {
    fc.pre(a % m !== 0n);
    assert.equal(invert(a, m), power(a, m - 2n, m));
  }), { numRuns: 400 });
  for (const m of moduli) for (const a of [1n, 2n, m - 1n, m + 1n]) assert.equal(invert(a, m), power(a, m - 2n, m));
  assert.throws(() => invert(0n, P256_N), /not invertible/);
  assert.throws(() => invert(6n, 9n), /not invertible/);
});

describe("ecdsa key import", () => {
  test("a bare SPKI from node:crypto parses with BER into the right point", () => {
    const point = importSpki(p256.spki);
    const jwk = p256.publicKey.export({ format: "jwk" });
    assert.equal(point.X, BigInt("0x" + Buffer.from(jwk.x!, "base64url").toString("hex")));
    assert.equal(point.Y, BigInt("0x" + Buffer.from(jwk.y!, "base64url").toString("hex")));
    assert.equal(point.isZero(), false);
  });

  test("a raw uncompressed point works as well", () => {
    const raw = Uint8Array.from(p256.spki.subarray(p256.spki.length - 65));
    const ecdsa = new ECDSA(ECPoint.fromOctetString(raw), curve256);
    assert.equal(ecdsa.verify(sha256("m"), arrayBuffer(nodeSignature(p256.privateKey, "m", "ieee-p1363"))), true);
  });

  test("fromOctetString refuses what the board would misread", () => {
    const raw = Uint8Array.from(p256.spki.subarray(p256.spki.length - 65));
    assert.throws(() => ECPoint.fromOctetString(arrayBuffer(raw) as unknown as Uint8Array), TypeError);
    assert.throws(() => ECPoint.fromOctetString(Uint8Array.of(0x02, ...raw.subarray(1, 33))), /unsupported format/);
    assert.throws(() => ECPoint.fromOctetString(raw.subarray(0, 64)), RangeError);
  });

  test("an off-curve point, the identity or a foreign curve object is refused", () => {
    const raw = Uint8Array.from(p256.spki.subarray(p256.spki.length - 65));
    raw[64]! ^= 1;
    assert.throws(() => new ECDSA(ECPoint.fromOctetString(raw), curve256), ECKeyError);
    assert.throws(() => new ECDSA(new ECPoint(0n, 0n, true), curve256), ECKeyError);
    assert.throws(() => new ECDSA(importSpki(p256.spki), { orderSize: 32 } as Curve), /must be a Curve/);
    assert.throws(() => new ECDSA("key" as unknown as bigint, curve256), TypeError);
    assert.throws(() => new Curve("secp256k1" as "secp256r1"), /knows only secp256r1 and secp384r1/);
    assert.equal(curve256.orderSize, 32);
    assert.equal(new Curve("secp384r1").orderSize, 48);
  });
});

describe("ecdsa verify", () => {
  test("accepts node:crypto signatures, raw r‖s and (asn1) DER, as ArrayBuffer or Uint8Array", () => {
    const H = sha256("firmware image");
    const raw = nodeSignature(p256.privateKey, "firmware image", "ieee-p1363");
    const der = nodeSignature(p256.privateKey, "firmware image", "der");
    assert.equal(verifier.verify(H, arrayBuffer(raw)), true);
    assert.equal(verifier.verify(H, raw), true);
    assert.equal(verifier.verify(H, arrayBuffer(der), true), true);
    assert.equal(verifier.verify(H, der, true), true);
    assert.equal(verifier.verify(sha256("other image"), raw), false);
  });

  test("agrees with node:crypto on valid and corrupted signatures", () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), fc.option(fc.nat({ max: 511 }), { freq: 2 }), (message, flip) => {
      const sig = nodeSignature(p256.privateKey, message, "ieee-p1363");
      if (flip !== null) sig[flip >> 3]! ^= 1 << (flip & 7);
      const r = BigInt("0x" + hex(sig.subarray(0, 32)));
      const s = BigInt("0x" + hex(sig.subarray(32)));
      fc.pre(r > 0n && r < P256_N && s > 0n && s < P256_N);
      const expected = nodeVerify("sha256", message, { key: p256.publicKey, dsaEncoding: "ieee-p1363" }, sig);
      assert.equal(verifier.verify(sha256(message), arrayBuffer(sig)), expected);
      if (flip === null) assert.equal(expected, true);
    }), { numRuns: 60 });
  });

  test("edge cases of R = u1·G + u2·Q: e ≡ 0 mod n, Q added to itself, and R at infinity", () => {
    const n = P256_N;
    const hash = (e: bigint) => arrayBuffer(bigIntBytes(e, 32));
    const signer = new ECDSA(p256.d, curve256);
    for (const zero of [0n, n]) assert.equal(verifier.verify(hash(zero), signer.sign(hash(zero))), true);
    // With e = d·r the verifier computes r/s·(Q + Q); s = 2·d·r/k makes (r, s) valid with R = k·G.
    const nonce = keyPair("P-256");
    const r = BigInt("0x" + Buffer.from(nonce.publicKey.export({ format: "jwk" }).x!, "base64url").toString("hex"));
    assert.ok(r < n, "x(k·G) ≥ n: probability 2^-32, run again");
    const d = p256.d;
    const s = (2n * d * r % n) * invert(nonce.d, n) % n;
    assert.equal(verifier.verify(hash(d * r % n), rawSig(r, s)), true);
    assert.equal(verifier.verify(hash(d * r % n), rawSig(r, (s + 1n) % n)), false);
    // With e = −d·r, Q + (e/r)·G is the point at infinity: no signature verifies.
    assert.equal(verifier.verify(hash((n - d) * r % n), rawSig(r, s)), false);
  });

  test("works on secp384r1 with SHA-384", () => {
    const p384 = keyPair("P-384");
    const ecdsa = new ECDSA(importSpki(p384.spki), new Curve("secp384r1"));
    const H = new Digest("SHA384").process("m");
    assert.equal(ecdsa.verify(H, nodeSignature(p384.privateKey, "m", "ieee-p1363", "sha384")), true);
    assert.equal(ecdsa.verify(H, nodeSignature(p384.privateKey, "m", "der", "sha384"), true), true);
    assert.equal(ecdsa.verify(new Digest("SHA384").process("n"), nodeSignature(p384.privateKey, "m", "ieee-p1363", "sha384")), false);
  });

  test("the hash must be an ArrayBuffer of at most orderSize bytes", () => {
    const raw = nodeSignature(p256.privateKey, "m", "ieee-p1363");
    const H = sha256("m");
    assert.throws(() => verifier.verify(new Uint8Array(H) as unknown as ArrayBuffer, raw), { name: "TypeError", message: /ArrayBuffer/ });
    assert.throws(() => verifier.verify(Buffer.from(H) as unknown as ArrayBuffer, raw), TypeError);
    assert.throws(() => verifier.verify(new ArrayBuffer(0), raw), RangeError);
    assert.throws(() => verifier.verify(new Digest("SHA384").process("m"), raw), { name: "RangeError", message: /does not truncate/ });
    assert.throws(() => verifier.verify(H, new DataView(raw.buffer) as unknown as Uint8Array), TypeError);
  });

  describe("throws UncheckedSignatureError where Moddable would hang or accept", () => {
    const H = sha256("m");
    const raw = nodeSignature(p256.privateKey, "m", "ieee-p1363");
    const r = BigInt("0x" + hex(raw.subarray(0, 32)));
    const s = BigInt("0x" + hex(raw.subarray(32)));
    const derInt = (v: bigint) => {
      const bytes = [...bigIntBytes(v, Math.ceil(v.toString(16).length / 2))];
      return bytes[0]! & 0x80 ? [0, ...bytes] : bytes;
    };
    const der = (rBytes: number[], sBytes: number[]) => {
      const body = [0x02, rBytes.length, ...rBytes, 0x02, sBytes.length, ...sBytes];
      return [0x30, body.length, ...body];
    };
    const good = der(derInt(r), derInt(s));
    test("(the well-formed DER these cases corrupt verifies)", () => assert.equal(verifier.verify(H, Uint8Array.from(good), true), true));

    const cases: [string, ArrayBuffer | Uint8Array, boolean, RegExp][] = [
      ["raw s = 0", rawSig(r, 0n), false, /s = 0/],
      ["raw r = 0", rawSig(0n, s), false, /r = 0/],
      ["raw s = 2^256 − 1", rawSig(r, (1n << 256n) - 1n), false, /s ≥ n/],
      ["raw s = n", rawSig(r, P256_N), false, /s ≥ n/],
      ["raw r = n", rawSig(P256_N, s), false, /r ≥ n/],
      ["raw 63 bytes", raw.subarray(0, 63), false, /63 bytes/],
      ["raw 65 bytes", Uint8Array.of(...raw, 0), false, /65 bytes/],
      ["raw empty", new ArrayBuffer(0), false, /0 bytes/],
      ["DER trailing byte", Uint8Array.of(...good, 0), true, /trailing/],
      ["DER bytes after s inside the sequence", Uint8Array.from(der(derInt(r), derInt(s)).concat([0x05, 0x00]).map((b, i) => (i === 1 ? b + 2 : b))), true, /after s/],
      ["DER non-minimal integer", Uint8Array.from(der([0, ...derInt(r)], derInt(s))), true, /non-minimal INTEGER/],
      ["DER non-minimal length", Uint8Array.from([0x30, 0x81, good[1]!, ...good.slice(2)]), true, /non-minimal length/],
      ["DER negative integer", Uint8Array.from(der(derInt(r), [0x80 | 0x01, 0x02])), true, /negative/],
      ["DER s = 0", Uint8Array.from(der(derInt(r), [0])), true, /s = 0/],
      ["DER empty integer", Uint8Array.from(der(derInt(r), [])), true, /empty INTEGER/],
      ["DER s + n", Uint8Array.from(der(derInt(r), derInt(s + P256_N))), true, /s ≥ n/],
      ["DER truncated", Uint8Array.from(good.slice(0, -1)), true, /truncated/],
      ["DER indefinite length", Uint8Array.from([0x30, 0x80, ...good.slice(2), 0, 0]), true, /indefinite/],
      ["DER not a sequence", Uint8Array.from([0x31, ...good.slice(1)]), true, /SEQUENCE/],
      ["raw bytes passed as DER", raw, true, /SEQUENCE|length|INTEGER|trailing|truncated/],
    ];
    for (const [name, sig, asn1, message] of cases)
      test(name, () => assert.throws(() => verifier.verify(H, sig, asn1), (error: unknown) => {
        assert.ok(error instanceof UncheckedSignatureError, `${name}: ${String(error)}`);
        assert.match(error.message, message);
        assert.match(error.message, /check the signature before calling verify/);
        return true;
      }));
  });
});

describe("ecdsa sign", () => {
  test("signatures verify in node:crypto (raw and DER) and in the twin", () => {
    const signer = new ECDSA(p256.d, curve256);
    for (const message of ["", "telemetry", "x".repeat(1000)]) {
      const H = sha256(message);
      const raw = signer.sign(H);
      assert.equal(raw.byteLength, 64);
      assert.ok(nodeVerify("sha256", Buffer.from(message), { key: p256.publicKey, dsaEncoding: "ieee-p1363" }, new Uint8Array(raw)));
      const der = signer.sign(H, true);
      assert.ok(nodeVerify("sha256", Buffer.from(message), { key: p256.publicKey, dsaEncoding: "der" }, new Uint8Array(der)));
      assert.equal(verifier.verify(H, raw), true);
      assert.equal(verifier.verify(H, der, true), true);
    }
  });

  test("key kinds are not interchangeable and private keys must be in range", () => {
    assert.throws(() => verifier.sign(sha256("m")), /holds a public key/);
    assert.throws(() => new ECDSA(p256.d, curve256).verify(sha256("m"), new Uint8Array(64)), /holds a private key/);
    assert.throws(() => new ECDSA(0n, curve256), ECKeyError);
    assert.throws(() => new ECDSA(P256_N, curve256), ECKeyError);
  });
});

describe("ber", () => {
  test("reads integers, octet strings, sequences and OIDs like the board", () => {
    const bytes = Uint8Array.from([0x30, 0x0f, 0x02, 0x02, 0x00, 0x80, 0x02, 0x01, 0xff, 0x04, 0x02, 0xab, 0xcd, 0x06, 0x02, 0x2a, 0x03]);
    const outer = new BER(arrayBuffer(bytes));
    const inner = new BER(outer.getSequence());
    assert.equal(outer.readable, 0);
    assert.equal(inner.getInteger(), 128n);
    assert.equal(inner.getInteger(), -1n);
    assert.equal(inner.peek(), 0x04);
    assert.equal(hex(inner.getOctetString()), "abcd");
    assert.deepEqual([...inner.getObjectIdentifier()], [1, 2, 3]);
    assert.equal(inner.readable, 0);
    assert.equal(inner.peek(), undefined);
  });

  test("getBitString leaves the board's cursor one past the end: readable is −1, later reads throw", () => {
    const last = new BER(Uint8Array.of(0x03, 0x03, 0x00, 0x0a, 0x0b));
    assert.equal(hex(last.getBitString()), "0a0b");
    assert.equal(last.readable, -1);
    const middle = new BER(Uint8Array.of(0x03, 0x02, 0x00, 0x0a, 0x05, 0x00));
    middle.getBitString();
    assert.throws(() => middle.getTag(), { name: "BERError", message: /one byte past the bit string/ });
  });

  test("throws BERError where the board would read garbage", () => {
    const cases: [string, number[], (ber: BER) => unknown, RegExp][] = [
      ["truncated tag", [], (b) => b.getTag(), /past the end/],
      ["sequence longer than the data", [0x30, 0x05, 0x02, 0x01, 0x01], (b) => b.getSequence(), /runs past the end/],
      ["indefinite length", [0x30, 0x80, 0x00, 0x00], (b) => b.getSequence(), /indefinite/],
      ["4-byte length", [0x04, 0x84, 0, 0, 0, 1, 0], (b) => b.getOctetString(), /32-bit/],
      ["empty integer", [0x02, 0x00, 0x05], (b) => b.getInteger(), /empty integer/],
      ["wrong tag", [0x02, 0x01, 0x00], (b) => b.getSequence(), /not a sequence/],
      ["bit string with unused bits", [0x03, 0x02, 0x04, 0xf0], (b) => b.getBitString(), /unused bits/],
      ["OID 2.40+", [0x06, 0x02, 0x78, 0x01], (b) => b.getObjectIdentifier(), /first two arcs/],
      ["OID ending inside an arc", [0x06, 0x02, 0x2a, 0x86], (b) => b.getObjectIdentifier(), /ends inside an arc/],
      ["OID arc ≥ 2^32", [0x06, 0x06, 0x2a, 0x90, 0x80, 0x80, 0x80, 0x00], (b) => b.getObjectIdentifier(), /2\^32/],
      ["chunk past the end of a view (the board reads on into the buffer)", [0x01, 0x02], (b) => b.getChunk(3), /runs past the end/],
    ];
    for (const [name, bytes, read, message] of cases)
      assert.throws(() => read(new BER(Uint8Array.from(bytes))), (error: unknown) => {
        assert.ok(error instanceof BERError, `${name}: ${String(error)}`);
        assert.match(error.message, message, name);
        return true;
      });
    assert.throws(() => new BER("30 00" as unknown as ArrayBuffer), TypeError);
  });
});
