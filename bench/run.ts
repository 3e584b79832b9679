// `npm run bench [-- --quick] [-- --fleet N] [-- --only name,…]`: every benchmark, each against a
// baseline measured in the same run (TARGETS.md), one table of ratios at the end, the raw numbers
// in bench/results/<timestamp>.json (git-ignored). --quick: fewer trials and a small fleet, for a
// smoke run; the default run takes a few minutes.
//
// Each suite runs in a process of its own (this file again, with --suite), as benchmark harnesses
// fork per benchmark: one suite's heap and compiled code must not weigh on the next one's figures.
import { spawn } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { PROJECT_ROOT } from "../twin/runtime/manifest.ts";
import { printTable, type Row } from "./report.ts";

const SUITES = ["telemetry", "scaling", "otaVerify", "otaTwin", "fleet", "xs"] as const;
type Suite = (typeof SUITES)[number];
const TITLES: Record<Suite, string> = {
  telemetry: "telemetry verifier, one core",
  scaling: "verifier scaling, two instances sharing replay state",
  otaVerify: "OTA verify path, in process",
  otaTwin: "OTA download-to-verified and boot-to-valid, twin device",
  fleet: "fleet through mosquitto over mutual TLS",
  xs: "XS engine cost (xsnap metering)",
};
const RESULT = "bench-result ";

const { values: flags } = parseArgs({
  options: { quick: { type: "boolean", default: false }, fleet: { type: "string" }, only: { type: "string" }, suite: { type: "string" } },
});
const quick = flags.quick!;

function isSuite(name: string): name is Suite {
  return (SUITES as readonly string[]).includes(name);
}

interface SuiteResult {
  readonly rows: readonly Row[];
}

async function runSuite(suite: Suite): Promise<SuiteResult> {
  // Benchmarks import firmware modules by their manifest names: install the twin's resolver first.
  await import("../twin/register.ts");
  const say = (line: string) => console.log(`  ${line}`);
  switch (suite) {
    case "telemetry": {
      const { runTelemetryVerifierBench } = await import("./telemetry-verifier.ts");
      const result = runTelemetryVerifierBench();
      for (const { name, msgPerS } of result.rates) say(`${name.padEnd(46)} ${String(msgPerS).padStart(9)} msg/s`);
      return result;
    }
    case "scaling": {
      const { runVerifierScalingBench } = await import("./verifier-scaling.ts");
      return runVerifierScalingBench(quick ? 20_000 : 60_000, quick ? 3 : 7);
    }
    case "otaVerify": {
      const { runOtaVerifyBench } = await import("./ota-verify.ts");
      return runOtaVerifyBench(quick ? 10 : 40);
    }
    case "otaTwin": {
      const { runOtaTwinBench } = await import("./ota-twin.ts");
      return runOtaTwinBench(quick ? 3 : 8, say);
    }
    case "fleet": {
      const { runFleetBench } = await import("./fleet.ts");
      const devices = flags.fleet === undefined ? (quick ? 50 : 500) : Number(flags.fleet);
      return runFleetBench({ devices, messagesPerDevice: quick ? 10 : 20, rounds: quick ? 1 : 3, workers: 2, baselinePublishers: 4 }, say);
    }
    case "xs": {
      const { runXsCostBench } = await import("./xs-cost.ts");
      return runXsCostBench(quick);
    }
  }
}

/** Runs `suite` in a fresh process, passing its progress lines through; its result. */
function forkSuite(suite: Suite): Promise<SuiteResult> {
  const args = ["--import", "tsx", join(PROJECT_ROOT, "bench", "run.ts"), "--suite", suite, ...(quick ? ["--quick"] : []),
    ...(flags.fleet === undefined ? [] : ["--fleet", flags.fleet])];
  const child = spawn(process.execPath, args, { cwd: PROJECT_ROOT, stdio: ["ignore", "pipe", "inherit"] });
  let result: SuiteResult | undefined;
  createInterface({ input: child.stdout }).on("line", (line) => {
    if (line.startsWith(RESULT)) result = JSON.parse(line.slice(RESULT.length)) as SuiteResult;
    else console.log(line);
  });
  return new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code) => (code === 0 && result ? resolve(result) : reject(new Error(`the ${suite} benchmark failed (exit ${code})`))));
  });
}

/** The child's side: one suite, its result as the last line on stdout. */
async function runOne(name: string): Promise<void> {
  if (!isSuite(name)) throw new Error(`--suite ${name}: one of ${SUITES.join(", ")}`);
  const result = await runSuite(name);
  // exit once the line is out (a pipe is written asynchronously): a suite may leave handles open
  process.stdout.write(`${RESULT}${JSON.stringify(result)}\n`, () => process.exit(0));
}

async function runAll(): Promise<void> {
  const only = flags.only === undefined ? [...SUITES] : flags.only.split(",");
  const unknown = only.filter((name) => !isSuite(name));
  if (unknown.length > 0) {
    console.error(`--only ${unknown.join(",")}: the suites are ${SUITES.join(", ")}`);
    process.exit(2);
  }
  const chosen = SUITES.filter((suite) => only.includes(suite));
  const rows: Row[] = [];
  const results: Record<string, unknown> = { node: process.version, quick, started: new Date().toISOString() };
  for (const [index, suite] of chosen.entries()) {
    console.log(`${index + 1}/${chosen.length} ${TITLES[suite]}`);
    const result = await forkSuite(suite);
    results[suite] = result;
    rows.push(...result.rows);
  }
  console.log("");
  printTable(rows);
  const dir = join(PROJECT_ROOT, "bench", "results");
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${new Date().toISOString().replace(/[:.]/g, "-")}.json`);
  writeFileSync(file, `${JSON.stringify({ ...results, rows }, null, 2)}\n`);
  console.log(`results: ${file}`);
}

await (flags.suite === undefined ? runAll() : runOne(flags.suite));
