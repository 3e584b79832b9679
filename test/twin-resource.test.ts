// The twin's Resource serves exactly the files manifest.json's "resources" section names.
import assert from "node:assert/strict";
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import Resource, { ResourceError } from "../twin/moddable/resource.ts";
import { loadManifest, ManifestError } from "../twin/runtime/manifest.ts";

test("a resource the manifest does not list is refused, naming the fix", () => {
  assert.equal(Resource.exists("no-such.der"), false);
  assert.throws(() => new Resource("no-such.der"), (e: unknown) => e instanceof ResourceError && /list it under "resources"/.test((e as Error).message));
});

test("the manifest's resources are registered by file name; bad entries are refused", () => {
  const dir = mkdtempSync(join(tmpdir(), "espguard-resources-"));
  try {
    mkdirSync(join(dir, "data"));
    writeFileSync(join(dir, "data", "ca.der"), Uint8Array.of(1, 2, 3));
    const file = join(dir, "manifest.json");
    writeFileSync(file, JSON.stringify({ resources: { "*": ["./data/ca.der"] } }));
    assert.equal(loadManifest(file).resources.get("ca.der"), join(dir, "data", "ca.der"));
    writeFileSync(file, JSON.stringify({ resources: { "*": ["./data/missing.der"] } }));
    assert.throws(() => loadManifest(file), ManifestError);
    writeFileSync(file, JSON.stringify({ resources: { esp32: ["./data/ca.der"] } }));
    assert.throws(() => loadManifest(file), /resource target "esp32" is not supported/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
