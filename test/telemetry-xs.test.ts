// The device signs on XS, the verifier checks on Node: both must write the same bytes. XS formats
// numbers with its own dtoa, so thousands of doubles and values go through a real XS engine (an
// xsnap worker, via the XS engine check) and are compared with Node's output.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import fc from "fast-check";
import { canonicalJson, type JsonValue } from "../modules/telemetry/canonical-json.ts";
import { type EnvelopeBody, signEnvelope } from "../modules/telemetry/envelope.ts";
import { EnvelopeKey } from "../modules/telemetry/envelope-key.ts";
import { runFirmwareInXs } from "../twin/xs/xs-check.ts";
import { pythonFloatRepr } from "../modules/telemetry/python-float.ts";
import { HARD_DOUBLES, jsonValue, number, reading, SPECIAL_NUMBERS } from "./fixtures/telemetry/arbitraries.ts";
import { floatTag, tag } from "./fixtures/telemetry/python.ts";

const scratch = mkdtempSync(join(tmpdir(), "espguard-telemetry-xs-"));
after(() => rmSync(scratch, { recursive: true, force: true }));

const SECRET = Array.from({ length: 32 }, (_, i) => 255 - i);

// Firmware entry run in XS: rebuilds the tagged values (see fixtures/telemetry/python.ts), then
// traces repr() of each double, the canonical form of each value and the wire message for each
// body, one per line.
function entrySource(doubles: readonly number[], values: readonly JsonValue[], bodies: readonly EnvelopeBody[], repeat: number): string {
  return `import { canonicalJson } from "telemetry/canonical-json";
import { signEnvelope } from "telemetry/envelope";
import { EnvelopeKey } from "telemetry/envelope-key";
import { pythonFloatRepr } from "telemetry/python-float";
function decode(t) {
  if (Array.isArray(t)) return t.map(decode);
  if (t === null || typeof t !== "object") return t;
  if ("i" in t) return Number(t.i);
  if ("f" in t) {
    const view = new DataView(new ArrayBuffer(8));
    view.setBigUint64(0, BigInt("0x" + t.f));
    return view.getFloat64(0);
  }
  const object = {};
  for (const [key, value] of t.o) Object.defineProperty(object, key, { value: decode(value), enumerable: true, writable: true, configurable: true });
  return object;
}
const doubles = ${JSON.stringify(doubles.map(floatTag))}.map(decode);
const values = ${JSON.stringify(values.map(tag))}.map(decode);
const bodies = ${JSON.stringify(bodies.map(tag))}.map(decode);
const key = new EnvelopeKey(Uint8Array.from(${JSON.stringify(SECRET)}));
const lines = doubles.map((value) => pythonFloatRepr(value));
for (const value of values) lines.push(canonicalJson(value));
for (let round = 0; round < ${repeat}; round++) for (const body of bodies) lines.push(signEnvelope(body, key));
trace(lines.join("\\n") + "\\n");
`;
}

async function runInXs(name: string, doubles: readonly number[], values: readonly JsonValue[], bodies: readonly EnvelopeBody[], repeat = 1) {
  const entry = join(scratch, `${name}.js`);
  writeFileSync(entry, entrySource(doubles, values, bodies, repeat));
  const result = await runFirmwareInXs({ entry, timeoutMs: 20_000, computeLimit: 0 });
  assert.ok(result.ok, result.error?.message);
  return result;
}

const header = { dev: "esp32-01", kid: "k1", seq: 1, ts: 1_700_000_000 };

test("XS writes the same float reprs, canonical bytes and signatures as Node", async () => {
  const doubles = [
    ...HARD_DOUBLES,
    ...fc.sample(fc.double({ noNaN: true, noDefaultInfinity: true }), { numRuns: 3000, seed: 1 }),
    ...fc.sample(fc.double({ min: 1e-4, max: 1e17, noNaN: true }), { numRuns: 3000, seed: 2 }),
  ].flatMap((x) => [x, -x]);
  const values: JsonValue[] = [
    ...SPECIAL_NUMBERS, ...SPECIAL_NUMBERS.map((n) => -n),
    ...fc.sample(number, { numRuns: 1000, seed: 3 }),
    ...fc.sample(jsonValue, { numRuns: 1000, seed: 4 }),
  ];
  const bodies = fc.sample(reading, { numRuns: 200, seed: 5 })
    .map((fields, i) => ({ ...fields, ...header, seq: i + 1 }) as unknown as EnvelopeBody)
    .filter((body) => canonicalJson(body).length < 800);
  const key = new EnvelopeKey(Uint8Array.from(SECRET));
  const expected = [
    ...doubles.map((value) => pythonFloatRepr(value)),
    ...values.map((value) => canonicalJson(value)),
    ...bodies.map((body) => signEnvelope(body, key)),
  ];
  const { traces } = await runInXs("same-bytes", doubles, values, bodies);
  assert.equal(traces.length, expected.length);
  traces.forEach((line, i) => assert.equal(line, expected[i], `line ${i}`));
});

test("XS compute per message signed (reported, not asserted)", async (t) => {
  const typical = [{ ...header, temp: 23.5, hum: 55.2 } as unknown as EnvelopeBody];
  const idle = await runInXs("sign-none", [], [], typical, 0);
  const busy = await runInXs("sign-100", [], [], typical, 100);
  t.diagnostic(`XS compute per signed message: ${((busy.meter.compute - idle.meter.compute) / 100).toFixed(0)} units`);
});
