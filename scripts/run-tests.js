#!/usr/bin/env node
// Runs every test/**/*.test.ts with node's test runner, TypeScript (tsx) and the firmware
// module hook loaded. Arguments narrow the run to matching file paths.
import { spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { join, relative } from "node:path";

const root = new URL("..", import.meta.url).pathname;

function findTests(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return entry.name === "fixtures" || entry.name === "support" ? [] : findTests(path);
    return entry.name.endsWith(".test.ts") ? [relative(root, path)] : [];
  });
}

const filters = process.argv.slice(2);
const files = findTests(join(root, "test")).filter((file) => filters.length === 0 || filters.some((f) => file.includes(f))).sort();
if (files.length === 0) {
  console.error(`no test files match ${filters.join(" ")}`);
  process.exit(1);
}
const result = spawnSync(process.execPath,
  ["--import", "tsx", "--import", "./twin/register.ts", "--test", "--test-concurrency=2", ...files],
  { cwd: root, stdio: "inherit" });
process.exit(result.status ?? 1);
