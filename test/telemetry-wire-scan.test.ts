// The verifier's fast path (modules/telemetry/wire-scan.ts) against the full check it stands in
// for: whatever it accepts, the full check accepts with the same header, signed bytes and sig; and
// it does accept the messages devices send, so the speed-up is real.
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { canonicalJson, COMPACT_LAYOUT, isPlainObject, type JsonObject, type JsonValue } from "../modules/telemetry/canonical-json.ts";
import { type EnvelopeBody, EnvelopeSizeError, signEnvelope } from "../modules/telemetry/envelope.ts";
import { EnvelopeHeaderError, readHeader } from "../modules/telemetry/envelope-header.ts";
import { EnvelopeKey, isSigHex } from "../modules/telemetry/envelope-key.ts";
import { type ScannedWire, scanWire } from "../modules/telemetry/wire-scan.ts";
import { HARD_DOUBLES, jsonValue, number, reading, SPECIAL_NUMBERS } from "./fixtures/telemetry/arbitraries.ts";

const key = new EnvelopeKey(Uint8Array.from({ length: 32 }, (_, i) => 255 - i));

interface Verdict {
  readonly header: ScannedWire["header"];
  readonly signed: string;
  readonly sig: string;
}

/** The definition: a message is accepted iff it parses and is its value's canonical compact text. */
function fullCheck(wire: string): Verdict | undefined {
  let value: unknown;
  try {
    value = JSON.parse(wire);
  } catch {
    return undefined;
  }
  if (!isPlainObject(value) || !Object.hasOwn(value, "sig")) return undefined;
  const header = readHeader(value);
  const { sig, ...body } = value;
  if (header instanceof EnvelopeHeaderError || !isSigHex(sig)) return undefined;
  try {
    if (canonicalJson(value, COMPACT_LAYOUT) !== wire) return undefined;
    return { header, signed: canonicalJson(body), sig };
  } catch {
    return undefined;
  }
}

/** The fast path's result with its signed bytes as text (they are ASCII). */
function scanned(wire: string): Verdict | undefined {
  const fast = scanWire(wire);
  return fast && { header: fast.header, signed: Buffer.from(fast.signed).toString("latin1"), sig: fast.sig };
}

function agrees(wire: string): boolean {
  const fast = scanned(wire);
  if (fast !== undefined) assert.deepEqual(fast, fullCheck(wire), `fast path accepted ${JSON.stringify(wire)} differently`);
  return fast !== undefined;
}

// Plain strings only: an escape sends a message to the full check by design.
const plain = fc.string({ unit: fc.constantFrom(..." !#$%&'()*+,-./09:;<=>?@AZ[]^_`az{|}~"), maxLength: 10 });
const plainValue: fc.Arbitrary<JsonValue> = fc.letrec<{ value: JsonValue }>((tie) => ({
  value: fc.oneof(
    { depthSize: "small", maxDepth: 4 },
    fc.oneof(fc.constant(null), fc.boolean(), number, plain),
    fc.array(tie("value"), { maxLength: 4 }),
    fc.dictionary(plain, tie("value"), { maxKeys: 4 }),
  ),
})).value;

const header = fc.record({
  dev: fc.stringMatching(/^[a-z0-9][a-z0-9_-]{0,31}$/),
  kid: fc.stringMatching(/^[a-z0-9][a-z0-9._-]{0,15}$/),
  seq: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
  ts: fc.option(fc.integer({ min: 1, max: 2 ** 40 }), { nil: undefined }),
});

function signed(fields: Record<string, JsonValue>, head: { ts?: number | undefined }): string | undefined {
  const { ts, ...rest } = head;
  try {
    return signEnvelope({ ...fields, ...rest, ...(ts === undefined ? {} : { ts }) } as unknown as EnvelopeBody, key);
  } catch (error) {
    if (error instanceof EnvelopeSizeError) return undefined;
    throw error;
  }
}

test("property: every plain message a device signs takes the fast path, with the full check's result (10,000 messages)", () => {
  const readings = fc.dictionary(plain.filter((name) => !["dev", "kid", "seq", "ts", "sig"].includes(name)), plainValue, { maxKeys: 5 });
  fc.assert(fc.property(readings, header, (fields, head) => {
    const wire = signed(fields, head);
    fc.pre(wire !== undefined);
    assert.ok(agrees(wire!), `fast path refused ${wire}`);
  }), { numRuns: 10_000 });
});

test("property: on any message, escapes and hard numbers included, the fast path accepts only what the full check accepts (10,000 messages)", () => {
  fc.assert(fc.property(reading, header, (fields, head) => {
    const wire = signed(fields, head);
    fc.pre(wire !== undefined);
    agrees(wire!);
  }), { numRuns: 10_000 });
});

const SPELLINGS = [
  "0", "-0", "1", "-1", "01", "1.0", "1.50", "1.5", "-1.5", "0.5", "00.5", ".5", "5.", "1e5", "1E5", "1e+05", "1e-05", "1e-5",
  "0.0001", "0.00001", "0.000123", "1.5e+16", "1e+16", "1e16", "10000000000000000", "1000000000000000.0", "123456789012345",
  "1234567890123456", "9007199254740991", "9007199254740992", "9007199254740993", "-9007199254740991", "123456789012345.6",
  "12345678901234.5", "0.30000000000000004", "0.3", "1e999", "-1e999", "1e-400", "2.5e-324", "5e-324", "0.1e1", "1.7976931348623157e+308",
  "true", "false", "null", "tru", "nul", "-", "+1", "1e", "1e+", "0x10", "Infinity", "NaN", "1_0", " 1", "1 ",
];

test("every spelling of a number or literal: the fast path accepts only what the full check accepts, and the usual ones", () => {
  const sig = "0".repeat(64);
  for (const spelling of [...SPELLINGS, ...SPECIAL_NUMBERS.map(String), ...HARD_DOUBLES.map((d) => canonicalJson(d))]) {
    for (const wire of [
      `{"dev":"d","kid":"k","seq":1,"sig":"${sig}","v":${spelling}}`,
      `{"a":[${spelling},{"b":${spelling}}],"dev":"d","kid":"k","seq":1,"sig":"${sig}"}`,
    ]) agrees(wire);
  }
  for (const usual of ["0", "-1", "23.5", "-0.25", "0.0001", "1e-05", "1.5e+16", "9007199254740991", "0.30000000000000004", "true", "null"])
    assert.ok(scanWire(`{"dev":"d","kid":"k","seq":1,"sig":"${sig}","v":${usual}}`), usual);
});

test("property: a signed message with any textual change is never accepted differently (10,000 changes)", () => {
  const samples = fc.sample(fc.tuple(fc.dictionary(plain, plainValue, { maxKeys: 4 }), header), { numRuns: 300, seed: 7 })
    .map(([fields, head]) => signed(fields as Record<string, JsonValue>, head)).filter((wire): wire is string => wire !== undefined);
  const alphabet = fc.constantFrom("{", "}", "[", "]", "\"", ":", ",", "\\", " ", "0", "9", ".", "e", "-", "+", "a", "\u00e9", "\u0000");
  let accepted = 0;
  fc.assert(fc.property(fc.nat({ max: samples.length - 1 }), fc.nat(), fc.nat({ max: 2 }), alphabet, (index, position, kind, character) => {
    const wire = samples[index]!;
    const at = position % wire.length;
    const changed = kind === 0 ? wire.slice(0, at) + character + wire.slice(at + 1)
      : kind === 1 ? wire.slice(0, at) + character + wire.slice(at)
      : wire.slice(0, at) + wire.slice(at + 1);
    if (agrees(changed)) accepted++;
  }), { numRuns: 10_000 });
  // Some changes keep the text canonical (a digit for a digit): those must agree, not just be refused.
  assert.ok(accepted > 100, `only ${accepted} changed messages stayed canonical`);
});

test("property: nested values of any kind, with a hand-written sig, agree with the full check (10,000 values)", () => {
  fc.assert(fc.property(jsonValue, header, (value, { ts, ...head }) => {
    const fields: JsonObject = { ...head, ...(ts === undefined ? {} : { ts }), sig: "ab".repeat(32), v: value };
    let wire: string;
    try {
      wire = canonicalJson(fields, COMPACT_LAYOUT);
    } catch {
      return;
    }
    agrees(wire);
  }), { numRuns: 10_000 });
});

test("the signed bytes leave out sig wherever it sorts, and space every separator as Python does", () => {
  const sig = "0123456789abcdef".repeat(4);
  const wire = `{"a":{"x":[1,2,{"y":"p,q:r"}],"z":{}},"dev":"d-1","kid":"k1","seq":7,"sig":"${sig}","t":[],"ts":1700000000}`;
  assert.deepEqual(scanned(wire), {
    header: { dev: "d-1", kid: "k1", seq: 7, ts: 1700000000 },
    signed: `{"a": {"x": [1, 2, {"y": "p,q:r"}], "z": {}}, "dev": "d-1", "kid": "k1", "seq": 7, "t": [], "ts": 1700000000}`,
    sig,
  });
  agrees(wire);
  // Too deep for the value model: nine containers, the message's own included.
  const deep = `{"a":${"[".repeat(8)}${"]".repeat(8)},"dev":"d","kid":"k","seq":1,"sig":"${sig}"}`;
  assert.equal(scanWire(deep), undefined);
  assert.equal(fullCheck(deep), undefined);
  const limit = `{"a":${"[".repeat(7)}${"]".repeat(7)},"dev":"d","kid":"k","seq":1,"sig":"${sig}"}`;
  assert.ok(scanWire(limit));
  agrees(limit);
});
