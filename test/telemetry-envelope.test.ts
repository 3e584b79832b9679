// The signed telemetry envelope: Python interop both ways, every rejection reason, the signer's
// refusals, and fuzzing of the verifier (never throws, never accepts a modified message).
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { type DeviceId, toDeviceId } from "../modules/identity/device-id.ts";
import { canonicalJson, CanonicalJsonError, COMPACT_LAYOUT, type JsonValue } from "../modules/telemetry/canonical-json.ts";
import {
  type EnvelopeBody, EnvelopeRejectedError, EnvelopeSizeError, MAX_WIRE_BYTES, parseEnvelope, type RejectReason,
  signEnvelope, verifyEnvelope,
} from "../modules/telemetry/envelope.ts";
import { type Counter, EnvelopeHeaderError, type KeyId, type UnixSeconds } from "../modules/telemetry/envelope-header.ts";
import { EnvelopeKey, EnvelopeKeyError } from "../modules/telemetry/envelope-key.ts";
import { reading } from "./fixtures/telemetry/arbitraries.ts";
import { runPython } from "./fixtures/telemetry/python.ts";

const SECRET = Uint8Array.from({ length: 32 }, (_, i) => i * 7 + 1);
const SECRET_HEX = Buffer.from(SECRET).toString("hex");
const key = new EnvelopeKey(SECRET);
const dev = toDeviceId("esp32-01");
const kid = "k1" as KeyId;
const header = { dev, kid, seq: 123456 as Counter, ts: 1_700_000_000 as UnixSeconds };
const lookup = (d: DeviceId, k: KeyId) => (d === dev && k === kid ? key : undefined);
const anyDevice = () => key;

function sign(fields: Record<string, unknown>): string {
  return signEnvelope({ ...header, ...fields } as EnvelopeBody, key);
}

/** A wire text built by hand: canonical and compact, with whatever fields (and sig) it is given. */
function craft(fields: Record<string, unknown>): string {
  return canonicalJson(fields, COMPACT_LAYOUT);
}

const SOME_SIG = "0".repeat(64);

const bodyArbitrary: fc.Arbitrary<EnvelopeBody> = fc.record({
  dev: fc.stringMatching(/^[a-z0-9][a-z0-9_-]{0,31}$/),
  kid: fc.stringMatching(/^[a-z0-9][a-z0-9._-]{0,15}$/),
  seq: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
  ts: fc.option(fc.integer({ min: 1, max: 2 ** 40 }), { nil: undefined }),
  reading,
}).map(({ ts, reading: fields, ...rest }) => ({ ...fields, ...rest, ...(ts === undefined ? {} : { ts }) }) as unknown as EnvelopeBody);

/** Signed wires for generated bodies, skipping the few that exceed the size cap. */
function signedSamples(count: number, seed: number): { body: EnvelopeBody; wire: string }[] {
  return fc.sample(bodyArbitrary, { numRuns: count * 2, seed })
    .flatMap((body) => {
      try {
        return [{ body, wire: signEnvelope(body, key) }];
      } catch (error) {
        if (error instanceof EnvelopeSizeError) return [];
        throw error;
      }
    })
    .slice(0, count);
}

test("a signed message verifies and carries its header, body and signed bytes", () => {
  const wire = sign({ temp: 23.5, hum: 55.2 });
  assert.match(wire, /^\{"dev":"esp32-01","hum":55\.2,"kid":"k1","seq":123456,"sig":"[0-9a-f]{64}","temp":23\.5,"ts":1700000000\}$/);
  const result = verifyEnvelope(wire, lookup);
  assert.ok(result.ok, JSON.stringify(result));
  assert.deepEqual(result.envelope.header, header);
  assert.deepEqual(result.envelope.body, { ...header, temp: 23.5, hum: 55.2 });
  assert.equal(result.envelope.signed, "{\"dev\": \"esp32-01\", \"hum\": 55.2, \"kid\": \"k1\", \"seq\": 123456, \"temp\": 23.5, \"ts\": 1700000000}");
  assert.deepEqual(parseEnvelope(wire), result.envelope);
});

test("without a trusted clock, ts is left out and the message still verifies", () => {
  const wire = signEnvelope({ dev, kid, seq: 7 as Counter, temp: 21 }, key);
  const result = verifyEnvelope(wire, lookup);
  assert.ok(result.ok);
  assert.deepEqual(result.envelope.header, { dev, kid, seq: 7 });
  assert.equal("ts" in result.envelope.header, false);
});

test("the classic Python verifier (the seed's verify_payload) accepts our messages unchanged and rejects tampered ones", () => {
  const wires = [
    sign({ temp: 23.5, hum: 55.2 }),
    sign({ note: "naïve — “quoted” 😀 \u0000\u007f\n", nested: { list: [1, 2.5, null, true, { "\uffff": 1, "\u{1F600}": 2 }] } }),
    sign({ tiny: 5e-324, huge: 1.7976931348623157e308, e21: 1e21, e16: 1e16, small: 1e-7, negzero: -0, max: 2 ** 53 - 1, big: 2 ** 53 }),
    ...signedSamples(1000, 42).map(({ wire }) => wire),
  ];
  const tampered = wires.map((wire) => wire.replace(/"seq":(\d+)/, (_, seq: string) => `"seq":${Number(seq) === 1 ? 2 : Number(seq) - 1}`));
  const verdicts = runPython("classic_hmac_json.py", ["verify", SECRET_HEX], [...wires, ...tampered]);
  assert.deepEqual(verdicts.slice(0, wires.length), wires.map(() => "accepted"));
  assert.deepEqual(verdicts.slice(wires.length), wires.map(() => "rejected"));
});

test("a Python signer following the spec produces exactly our wire bytes, which we verify", () => {
  const samples = signedSamples(500, 7);
  const pythonWires = runPython("classic_hmac_json.py", ["sign", SECRET_HEX], samples.map(({ wire }) => parseEnvelope(wire).signed));
  samples.forEach(({ wire }, i) => {
    assert.equal(pythonWires[i], wire);
    assert.ok(verifyEnvelope(pythonWires[i]!, anyDevice).ok);
  });
});

function assertRejected(wire: unknown, reason: RejectReason, detail: RegExp, withHeader: boolean, keys = lookup): void {
  const result = verifyEnvelope(wire as string, keys);
  assert.equal(result.ok, false, `accepted ${String(wire)}`);
  if (result.ok) return;
  assert.equal(result.reason, reason, `${String(wire)}: ${result.detail}`);
  assert.match(result.detail, detail);
  assert.equal(result.header !== undefined, withHeader, `header for ${String(wire)}`);
  // parseEnvelope finds every problem but those only a key reveals.
  let parsed = true;
  try {
    parseEnvelope(wire as string);
  } catch (error) {
    parsed = false;
    assert.ok(error instanceof EnvelopeRejectedError && error.reason === reason, String(error));
  }
  assert.equal(parsed, reason === "unknown-kid" || /does not match/.test(result.detail), `parseEnvelope on ${String(wire)}`);
}

test("rejected: oversize, before any parsing", () => {
  const padded = sign({ pad: "x".repeat(800) });
  assertRejected(`${padded.slice(0, -1)},"zz":"${"y".repeat(MAX_WIRE_BYTES)}"}`, "oversize", /1024-byte limit/, false);
  assertRejected("[".repeat(MAX_WIRE_BYTES + 1), "oversize", /over the 1024-byte limit/, false);
});

test("rejected: malformed JSON, non-objects and values outside the model", () => {
  assertRejected("", "malformed", /not JSON/, false);
  assertRejected("{\"dev\":", "malformed", /not JSON/, false);
  assertRejected("[1,2]", "malformed", /not a JSON object/, false);
  assertRejected("null", "malformed", /not a JSON object/, false);
  assertRejected(undefined, "malformed", /a message is a string/, false);
  assertRejected(craft({ ...header, sig: SOME_SIG }).replace("\"seq\"", "\"x\":1e400,\"seq\""), "malformed", /\$\.x is Infinity/, true);
  assertRejected(craft({ ...header, sig: SOME_SIG, text: "ok" }).replace("\"ok\"", "\"\\ud800\""), "malformed", /unpaired surrogate/, true);
  assertRejected(craft({ ...header, sig: SOME_SIG, deep: 0 }).replace(":0", `:${"[".repeat(8)}1${"]".repeat(8)}`), "malformed", /deeper than 8 levels/, true);
});

test("rejected: missing sig", () => {
  assertRejected(craft({ ...header, temp: 23.5 }), "missing-sig", /no "sig" field/, false);
});

test("rejected: a header field missing or invalid", () => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ dev: "ESP32" }, /"dev" is "ESP32": use a device id/],
    [{ dev: undefined }, /"dev" is missing/],
    [{ kid: undefined }, /"kid" is missing/],
    [{ kid: "K 1" }, /"kid" is "K 1": use a key id/],
    [{ seq: 0 }, /"seq" is 0/],
    [{ seq: 1.5 }, /"seq" is 1\.5/],
    [{ seq: "5" }, /"seq" is "5"/],
    [{ seq: 2 ** 53 }, /"seq" is 9007199254740992/],
    [{ ts: null }, /"ts" is null: .*leave ts out while the clock is not trusted/],
    [{ ts: 0 }, /"ts" is 0/],
  ];
  for (const [change, detail] of cases) {
    const fields: Record<string, unknown> = { ...header, sig: SOME_SIG, ...change };
    for (const name of Object.keys(change)) if (change[name] === undefined) delete fields[name];
    assertRejected(craft(fields), "bad-header", detail, false);
  }
});

test("rejected: valid JSON that is not the one canonical wire text", () => {
  const wire = sign({ temp: 23.5, note: "é" });
  const python = JSON.parse(wire);
  const variants: [string, string][] = [
    ["Python's default spacing (the seed's wire form)", canonicalJson(python)],
    ["keys out of order", JSON.stringify({ sig: python.sig, ...python })],
    ["a duplicate key", wire.replace("{", "{\"temp\":99,")],
    ["whitespace", ` ${wire}`],
    ["an uppercase escape", wire.replace("\\u00e9", "\\u00E9")],
    ["a raw non-ASCII character", wire.replace("\\u00e9", "é")],
    ["a needless escape", wire.replace("esp32-01", "esp32\\u002d01")],
    ["an integer written as a float", wire.replace("\"seq\":123456", "\"seq\":123456.0")],
    ["a float written with an exponent", wire.replace("23.5", "2.35e1")],
  ];
  for (const [what, variant] of variants) {
    assert.notEqual(variant, wire, what);
    assertRejected(variant, "non-canonical", /expected .* got /, true);
  }
});

test("rejected: unknown kid, with the header for logging", () => {
  const wire = sign({ temp: 1 });
  const asked: [string, string][] = [];
  assertRejected(wire, "unknown-kid", /no key "k1" for device "esp32-01"/, true, (d, k) => {
    asked.push([d, k]);
    return undefined;
  });
  assert.deepEqual(asked[0], ["esp32-01", "k1"]);
});

test("rejected: bad sig, whether malformed, from another key, or over another body", () => {
  const wire = sign({ temp: 23.5 });
  const { sig } = JSON.parse(wire) as { sig: string };
  assertRejected(wire.replace(sig, sig.toUpperCase()), "bad-sig", /64 lowercase hex digits/, true);
  assertRejected(wire.replace(sig, sig.slice(2)), "bad-sig", /64 lowercase hex digits/, true);
  assertRejected(wire.replace(sig, "1".repeat(64)), "bad-sig", /does not match/, true);
  assertRejected(wire.replace("23.5", "23.6"), "bad-sig", /does not match/, true);
  const otherKey = new EnvelopeKey(new Uint8Array(32).fill(9));
  assertRejected(wire, "bad-sig", /does not match/, true, () => otherKey);
});

test("the signer refuses NaN and Infinity, naming the path", () => {
  assert.throws(() => sign({ readings: { temps: [20.5, NaN] } }), (error: unknown) =>
    error instanceof CanonicalJsonError && error.path === "$.readings.temps[1]" && /NaN/.test(error.message));
  assert.throws(() => sign({ temp: Infinity }), (error: unknown) => error instanceof CanonicalJsonError && error.path === "$.temp");
  assert.throws(() => sign({ temp: undefined }), (error: unknown) => error instanceof CanonicalJsonError && error.path === "$.temp");
});

test("the signer refuses bad header fields, a sig field, and a body that is not a plain object", () => {
  const refused: [Record<string, unknown>, string, RegExp][] = [
    [{ dev: "Not A Device" }, "dev", /use a device id/],
    [{ kid: "" }, "kid", /use a key id/],
    [{ seq: 0 }, "seq", /from 1 to 2\^53/],
    [{ seq: 2 ** 53 }, "seq", /from 1 to 2\^53/],
    [{ seq: 10n }, "seq", /is a bigint/],
    [{ ts: undefined }, "ts", /is undefined: .*leave ts out/],
    [{ ts: 1.5 }, "ts", /is 1\.5/],
    [{ sig: "abc" }, "sig", /reserved for the signature/],
  ];
  for (const [change, field, message] of refused) {
    assert.throws(() => sign(change), (error: unknown) => error instanceof EnvelopeHeaderError && error.field === field && message.test(error.message));
  }
  class Body {
    dev = dev;
    kid = kid;
    seq = 1;
  }
  assert.throws(() => signEnvelope(new Body() as unknown as EnvelopeBody, key), (error: unknown) => error instanceof CanonicalJsonError && error.path === "$");
});

test(`the signer refuses a message over ${MAX_WIRE_BYTES} bytes on the wire, and allows one of exactly that`, () => {
  const base = sign({ pad: "" }).length;
  const exact = sign({ pad: "x".repeat(MAX_WIRE_BYTES - base) });
  assert.equal(exact.length, MAX_WIRE_BYTES);
  assert.ok(verifyEnvelope(exact, lookup).ok);
  assert.throws(() => sign({ pad: "x".repeat(MAX_WIRE_BYTES - base + 1) }), (error: unknown) =>
    error instanceof EnvelopeSizeError && error.size === MAX_WIRE_BYTES + 1);
});

test("a key shorter than 32 bytes is refused", () => {
  assert.throws(() => new EnvelopeKey(new Uint8Array(16)), EnvelopeKeyError);
});

test("bytes per message: at most 40 over the seed's format for the seed's reading", () => {
  // The seed's sign_payload on {"temp": 23.5, "hum": 55.2, "device": "esp32-01"}: insertion order,
  // Python's spacing, hex sig last. Our dev carries what its "device" field carried.
  const seed = `{"temp": 23.5, "hum": 55.2, "device": "esp32-01", "sig": "${SOME_SIG}"}`;
  const ours = signEnvelope({ dev, kid, seq: 999_999_999 as Counter, ts: 1_700_000_000 as UnixSeconds, temp: 23.5, hum: 55.2 }, key);
  assert.ok(ours.length - seed.length <= 40, `${ours.length - seed.length} bytes more than the seed`);
});

const attackInput = fc.oneof(
  fc.string({ unit: "binary", maxLength: 1100 }),
  fc.string({ unit: fc.constantFrom("{", "}", "[", "]", "\"", ":", ",", "\\", "u", "0", "1", "e", "-", ".", " ", "sig", "dev", "seq"), maxLength: 200 }),
  fc.json({ maxDepth: 12 }),
  fc.tuple(bodyArbitrary, fc.jsonValue({ maxDepth: 5 })).map(([body, extra]) => craft({ ...body, extra: extra as JsonValue, sig: SOME_SIG })),
);

test("property: verify never throws and never accepts arbitrary input (10,000 strings)", () => {
  fc.assert(fc.property(attackInput, (input) => {
    let result;
    try {
      result = verifyEnvelope(input, anyDevice);
    } catch (error) {
      if (error instanceof CanonicalJsonError) throw error;
      throw new Error(`verifyEnvelope threw on ${JSON.stringify(input)}: ${String(error)}`);
    }
    assert.equal(result.ok, false);
  }), { numRuns: 10_000 });
});

type Modification =
  | { kind: "flip"; at: number; bit: number }
  | { kind: "insert"; at: number; text: string }
  | { kind: "delete"; at: number }
  | { kind: "value"; at: number; value: JsonValue }
  | { kind: "drop"; at: number };

const modification: fc.Arbitrary<Modification> = fc.oneof(
  fc.record({ kind: fc.constant("flip" as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 15 }) }),
  fc.record({ kind: fc.constant("insert" as const), at: fc.nat(), text: fc.string({ minLength: 1, maxLength: 3 }) }),
  fc.record({ kind: fc.constant("delete" as const), at: fc.nat() }),
  fc.record({ kind: fc.constant("value" as const), at: fc.nat(), value: fc.jsonValue({ maxDepth: 2 }) as fc.Arbitrary<JsonValue> }),
  fc.record({ kind: fc.constant("drop" as const), at: fc.nat() }),
);

// Textual changes anywhere, or a changed or dropped field re-encoded canonically around the old
// sig (so the change reaches the signature check instead of failing the form check).
function modify(wire: string, change: Modification): string {
  const at = change.at % wire.length;
  switch (change.kind) {
    case "flip":
      return wire.slice(0, at) + String.fromCharCode(wire.charCodeAt(at) ^ (1 << change.bit)) + wire.slice(at + 1);
    case "insert":
      return wire.slice(0, at) + change.text + wire.slice(at);
    case "delete":
      return wire.slice(0, at) + wire.slice(at + 1);
    case "value":
    case "drop": {
      const fields = JSON.parse(wire) as Record<string, JsonValue>;
      const names = Object.keys(fields).filter((name) => name !== "sig");
      const name = names[change.at % names.length]!;
      const copy: Record<string, JsonValue> = {};
      for (const field of Object.keys(fields)) Object.defineProperty(copy, field, { value: fields[field], enumerable: true, configurable: true });
      if (change.kind === "drop") delete copy[name];
      else Object.defineProperty(copy, name, { value: change.value, enumerable: true });
      return craft(copy);
    }
  }
}

test("property: a signed message with any change is rejected (10,000 changes)", () => {
  const samples = signedSamples(200, 99);
  let reachedSignatureCheck = 0;
  fc.assert(fc.property(fc.nat({ max: samples.length - 1 }), modification, (index, change) => {
    const { wire } = samples[index]!;
    const changed = modify(wire, change);
    fc.pre(changed !== wire);
    const result = verifyEnvelope(changed, anyDevice);
    assert.equal(result.ok, false, `accepted ${JSON.stringify(changed)} (from ${JSON.stringify(wire)})`);
    if (!result.ok && result.reason === "bad-sig") reachedSignatureCheck++;
  }), { numRuns: 10_000 });
  assert.ok(reachedSignatureCheck > 2_000, `only ${reachedSignatureCheck} changes reached the signature check`);
});
