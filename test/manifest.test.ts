// manifest.json is the single source of module specifiers: everything else is derived from it.
import assert from "node:assert/strict";
import { readFileSync, readdirSync, mkdtempSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { test } from "node:test";
import { BUILTINS } from "../twin/moddable/builtins.ts";
import { loadManifest, ManifestError, PROJECT_ROOT } from "../twin/runtime/manifest.ts";
import { typescriptPaths } from "../twin/runtime/module-map.ts";

const manifest = loadManifest();

function firmwareSources(dir = join(PROJECT_ROOT, "modules")): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return firmwareSources(path);
    return entry.name.endsWith(".ts") && !entry.name.endsWith(".d.ts") ? [path] : [];
  });
}

function importsOf(file: string): string[] {
  const source = readFileSync(file, "utf8");
  return [...source.matchAll(/^\s*(?:import|export)\s[^"';]*?from\s+"([^"]+)"|^\s*import\s+"([^"]+)"/gm)].map((m) => m[1] ?? m[2]!);
}

test("tsconfig.base.json paths equal what manifest.json declares (run npm run sync:paths on drift)", () => {
  const tsconfig = JSON.parse(readFileSync(join(PROJECT_ROOT, "tsconfig.base.json"), "utf8"));
  assert.deepEqual(tsconfig.compilerOptions.paths, typescriptPaths(manifest));
});

test("every firmware source file is a manifest module (nothing ships unlisted)", () => {
  const listed = new Set(manifest.modules.values());
  const unlisted = [join(PROJECT_ROOT, "main.ts"), ...firmwareSources()].filter((file) => !listed.has(file));
  assert.deepEqual(unlisted.map((f) => relative(PROJECT_ROOT, f)), []);
});

test("every firmware import is a manifest module or a built-in the manifest includes and the twin implements", () => {
  const problems: string[] = [];
  for (const file of manifest.modules.values()) {
    for (const specifier of importsOf(file)) {
      if (manifest.modules.has(specifier)) continue;
      const builtin = BUILTINS[specifier];
      if (!builtin) problems.push(`${relative(PROJECT_ROOT, file)} imports unknown "${specifier}"`);
      else if (builtin.include && !manifest.include.includes(builtin.include))
        problems.push(`${relative(PROJECT_ROOT, file)} imports "${specifier}", but manifest.json does not include ${builtin.include}`);
    }
  }
  assert.deepEqual(problems, []);
});

test("the TLS configuration the device needs is in the manifest", () => {
  const tls = manifest.config.tls as Record<string, unknown>;
  assert.equal(tls.DHE_RSA, false, "DHE with a client certificate fails on Moddable (certificateVerify unimplemented)");
  assert.equal(tls.ECDHE_RSA, true);
});

test("a broken manifest fails with the file named and a fix", () => {
  const dir = mkdtempSync(join(tmpdir(), "espguard-manifest-"));
  try {
    const file = join(dir, "manifest.json");
    writeFileSync(file, "{ not json");
    assert.throws(() => loadManifest(file), (e: unknown) => e instanceof ManifestError && e.message.includes(file) && /does not parse/.test(e.message));
    writeFileSync(file, JSON.stringify({ modules: { "x/y": "./missing" } }));
    assert.throws(() => loadManifest(file), /module "x\/y" points at \.\/missing, but .* does not exist/);
    writeFileSync(file, JSON.stringify({ modules: { "*": ["./a/*"] } }));
    assert.throws(() => loadManifest(file), /wildcard lists register modules by file name only/);
    assert.throws(() => loadManifest(join(dir, "absent.json")), /file not found/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
