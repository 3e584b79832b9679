import assert from "node:assert/strict";
import { test } from "node:test";
import { loadManifest } from "../twin/runtime/manifest.ts";

test("placeholder", () => {
  assert.ok(loadManifest().modules.size >= 0);
});
