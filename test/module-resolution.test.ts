// Firmware specifiers resolve only through manifest.json and the twin's built-ins; anything else
// fails with the specifier named and the fix, in the bundler and in the twin's resolve hook alike.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { pathToFileURL } from "node:url";
import { FirmwareBundleError, bundleFirmware } from "../twin/runtime/bundle.ts";
import { PROJECT_ROOT } from "../twin/runtime/manifest.ts";

const dir = mkdtempSync(join(tmpdir(), "espguard-resolve-"));
after(() => rmSync(dir, { recursive: true, force: true }));

function firmwareFile(name: string, source: string): string {
  const file = join(dir, name);
  writeFileSync(file, source);
  return file;
}

/** Runs `entry` as firmware in a fresh Node process with the twin's resolve hook. */
function runAsFirmware(entry: string): { status: number | null; stderr: string } {
  const script = `
    const { registerFirmwareModules } = await import(${JSON.stringify(pathToFileURL(join(PROJECT_ROOT, "twin/runtime/register.ts")).href)});
    registerFirmwareModules([${JSON.stringify(dir + "/")}]);
    await import(${JSON.stringify(pathToFileURL(entry).href)});`;
  const result = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], { cwd: PROJECT_ROOT, encoding: "utf8" });
  return { status: result.status, stderr: result.stderr };
}

test("the bundler refuses an unknown specifier, naming it and the fix", async () => {
  const entry = firmwareFile("unknown.ts", `import thing from "no/such-module";\nexport default thing;\n`);
  await assert.rejects(bundleFirmware({ format: "esm", entry }), (error: unknown) =>
    error instanceof FirmwareBundleError && /unknown module specifier "no\/such-module"/.test(error.message) && /manifest\.json/.test(error.message));
});

test("the twin's resolve hook refuses an unknown specifier from firmware", () => {
  const entry = firmwareFile("unknown.mjs", `import thing from "no/such-module";\nexport default thing;\n`);
  const { status, stderr } = runAsFirmware(entry);
  assert.notEqual(status, 0);
  assert.match(stderr, /unknown module specifier "no\/such-module" imported by .*unknown\.mjs: add it to "modules" in manifest\.json/);
});

test("the twin's resolve hook refuses a node: import from firmware", () => {
  const entry = firmwareFile("node-import.mjs", `import { createHash } from "node:crypto";\nexport default createHash;\n`);
  const { status, stderr } = runAsFirmware(entry);
  assert.notEqual(status, 0);
  assert.match(stderr, /imports "node:crypto": Node modules do not exist on the ESP32/);
});

test("firmware resolves manifest modules and Moddable built-ins through the hook", () => {
  const entry = firmwareFile("ok.mjs", `import Timer from "timer";\nimport { isDeviceId } from "identity/device-id";\nif (!isDeviceId("dev-1") || typeof Timer.set !== "function") throw new Error("wrong modules");\n`);
  const { status, stderr } = runAsFirmware(entry);
  assert.equal(status, 0, stderr);
});
