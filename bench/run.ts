// `npm run bench [-- --quick] [-- --fleet N]`: every benchmark, each against a baseline measured in
// the same run (TARGETS.md), one table of ratios at the end, the raw numbers in
// bench/results/<timestamp>.json (git-ignored). --quick: fewer trials and a small fleet, for a
// smoke run; the default run takes a few minutes.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { PROJECT_ROOT } from "../twin/runtime/manifest.ts";
import { printTable, type Row } from "./report.ts";

const { values: flags } = parseArgs({ options: { quick: { type: "boolean", default: false }, fleet: { type: "string" } } });
const quick = flags.quick!;

// Benchmarks import firmware modules by their manifest names: install the twin's resolver first.
await import("../twin/register.ts");
const { runTelemetryVerifierBench } = await import("./telemetry-verifier.ts");
const { runVerifierScalingBench } = await import("./verifier-scaling.ts");
const { runOtaVerifyBench } = await import("./ota-verify.ts");
const { runOtaTwinBench } = await import("./ota-twin.ts");
const { runFleetBench } = await import("./fleet.ts");
const { runXsCostBench } = await import("./xs-cost.ts");

const say = (line: string) => console.log(`  ${line}`);
const rows: Row[] = [];
const results: Record<string, unknown> = { node: process.version, quick, started: new Date().toISOString() };

console.log("1/6 telemetry verifier, one core");
const telemetry = runTelemetryVerifierBench();
results.telemetry = telemetry;
for (const { name, msgPerS } of telemetry.rates) say(`${name.padEnd(46)} ${String(msgPerS).padStart(9)} msg/s`);
rows.push(...telemetry.rows);

console.log("2/6 verifier scaling, two instances sharing replay state");
const scaling = await runVerifierScalingBench(quick ? 20_000 : 60_000, quick ? 3 : 7);
results.scaling = scaling;
rows.push(...scaling.rows);

console.log("3/6 OTA verify path, in process");
const otaVerify = await runOtaVerifyBench(quick ? 10 : 40);
results.otaVerify = otaVerify;
rows.push(...otaVerify.rows);

console.log("4/6 OTA download-to-verified and boot-to-valid, twin device");
const otaTwin = await runOtaTwinBench(quick ? 3 : 8, say);
results.otaTwin = otaTwin;
rows.push(...otaTwin.rows);

console.log("5/6 fleet through mosquitto over mutual TLS");
const devices = flags.fleet === undefined ? (quick ? 50 : 500) : Number(flags.fleet);
const fleet = await runFleetBench({ devices, messagesPerDevice: quick ? 10 : 20, rounds: quick ? 1 : 3, workers: 2, baselinePublishers: 4 }, say);
results.fleet = fleet;
rows.push(...fleet.rows);

console.log("6/6 XS engine cost (xsnap metering)");
const xs = await runXsCostBench(quick);
results.xs = xs;
rows.push(...xs.rows);

console.log("");
printTable(rows);
const dir = join(PROJECT_ROOT, "bench", "results");
mkdirSync(dir, { recursive: true });
const file = join(dir, `${new Date().toISOString().replace(/[:.]/g, "-")}.json`);
writeFileSync(file, `${JSON.stringify({ ...results, rows }, null, 2)}\n`);
console.log(`results: ${file}`);
