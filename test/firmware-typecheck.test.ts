// The firmware type-check is the guard that keeps Node APIs out of code that runs on XS.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, test } from "node:test";
import { PROJECT_ROOT } from "../twin/runtime/manifest.ts";

const scratch = join(PROJECT_ROOT, ".espguard", `typecheck-${process.pid}`);
mkdirSync(scratch, { recursive: true });
after(() => rmSync(scratch, { recursive: true, force: true }));

const base = JSON.parse(readFileSync(join(PROJECT_ROOT, "tsconfig.firmware.json"), "utf8"));
const tsc = join(PROJECT_ROOT, "node_modules", ".bin", "tsc");

function typecheckFirmwareWith(name: string, source: string): { ok: boolean; output: string } {
  const file = join(scratch, `${name}.ts`);
  writeFileSync(file, source);
  const config = join(scratch, `tsconfig.${name}.json`);
  writeFileSync(config, JSON.stringify({
    extends: "../../tsconfig.firmware.json",
    files: [...base.files.map((f: string) => `../../${f}`), `./${name}.ts`],
  }));
  const result = spawnSync(tsc, ["-p", config], { cwd: PROJECT_ROOT, encoding: "utf8" });
  return { ok: result.status === 0, output: `${result.stdout}${result.stderr}` };
}

test("npm run typecheck:firmware passes on the firmware as it is", () => {
  const result = spawnSync(tsc, ["-p", "tsconfig.firmware.json"], { cwd: PROJECT_ROOT, encoding: "utf8" });
  assert.equal(result.status, 0, result.stdout + result.stderr);
});

test("host code (tools, twin, tests) type-checks with Node types", () => {
  const result = spawnSync(tsc, ["-p", "tsconfig.json"], { cwd: PROJECT_ROOT, encoding: "utf8" });
  assert.equal(result.status, 0, result.stdout + result.stderr);
});

test("firmware using Moddable APIs type-checks (the fixture harness itself works)", () => {
  const result = typecheckFirmwareWith("clean", `
import Timer from "timer";
import Preference from "preference";
import { emit } from "diag/events";
Timer.set(() => emit("tick", { value: String(Preference.get("espguard", "device_id")) }), 10);
trace(String.fromArrayBuffer(ArrayBuffer.fromString("ok")));
export {};
`);
  assert.ok(result.ok, result.output);
});

const forbidden: [string, string, RegExp][] = [
  ["buffer", `export const b = Buffer.from("x");`, /Cannot find name 'Buffer'/],
  ["set-timeout", `setTimeout(() => {}, 10); export {};`, /Cannot find name 'setTimeout'/],
  ["process", `export const env = process.env.HOME;`, /Cannot find name 'process'/],
  ["node-import", `import { createHash } from "node:crypto"; export const h = createHash;`, /Cannot find (module|name) 'node:crypto'/],
  ["require", `export const fs = require("fs");`, /Cannot find name 'require'/],
];

for (const [name, source, expected] of forbidden) {
  test(`firmware type-check fails on ${name}`, () => {
    const result = typecheckFirmwareWith(name, source);
    assert.equal(result.ok, false, `expected a type error for ${name}`);
    const ownErrors = result.output.split("\n").filter((line) => line.includes(`${name}.ts(`));
    assert.ok(ownErrors.some((line) => expected.test(line)), result.output);
  });
}
