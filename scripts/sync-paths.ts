// Rewrites the `paths` of tsconfig.base.json (shared by the firmware and host configs) from manifest.json (the only place module
// specifiers are declared). test/manifest.test.ts fails when the two drift.
import { readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { PROJECT_ROOT } from "../twin/runtime/manifest.ts";
import { typescriptPaths } from "../twin/runtime/module-map.ts";

const file = join(PROJECT_ROOT, "tsconfig.base.json");
const tsconfig = JSON.parse(readFileSync(file, "utf8"));
tsconfig.compilerOptions.paths = typescriptPaths();
writeFileSync(`${file}.tmp`, JSON.stringify(tsconfig, null, 2) + "\n");
renameSync(`${file}.tmp`, file);
console.log(`updated ${file}`);
