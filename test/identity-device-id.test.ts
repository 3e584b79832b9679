// The device id rule (DEVICE_ID_RULE): the same ids as the regular expression that states it.
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { DeviceIdError, isDeviceId, toDeviceId } from "../modules/identity/device-id.ts";

const RULE = /^[a-z0-9][a-z0-9_-]{0,31}$/;

test("property: isDeviceId accepts exactly 1–32 of a–z 0–9 - _, not starting with - or _ (5,000 strings)", () => {
  const unit = fc.constantFrom("a", "z", "0", "9", "-", "_", "A", "Z", "/", ".", " ", "é", "`", "{", "@", ":");
  fc.assert(fc.property(fc.string({ unit, maxLength: 36 }), (text) => assert.equal(isDeviceId(text), RULE.test(text), JSON.stringify(text))),
    { numRuns: 5_000 });
  for (const id of ["a", "esp32-000", "0_x", "a".repeat(32)]) assert.equal(toDeviceId(id), id);
  for (const bad of ["", "-a", "_a", "a".repeat(33), "A1", "a/b", "a.b", "é"]) assert.throws(() => toDeviceId(bad), DeviceIdError);
});
