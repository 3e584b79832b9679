// `npm start` as a new user runs it: the real `espguard demo` in a child process, start to end, and
// once more interrupted with SIGINT half way, which must leave no process and no folder behind.
import assert from "node:assert/strict";
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { requireMosquitto } from "../broker/mosquitto.ts";
import { PROJECT_ROOT } from "../twin/runtime/manifest.ts";

const BIN = join(PROJECT_ROOT, "bin", "espguard.js");

interface Run {
  readonly child: ChildProcess;
  output(): string;
  /** resolves once the output matches */
  until(pattern: RegExp, timeoutMs: number): Promise<void>;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

// Its own process group, so the test can tell whether anything the demo started outlived it.
function runDemo(): Run {
  const child = spawn(process.execPath, [BIN, "demo"], { cwd: PROJECT_ROOT, detached: true, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  const waiters = new Set<() => void>();
  const append = (chunk: Buffer) => {
    output += chunk.toString("utf8");
    for (const waiter of waiters) waiter();
  };
  child.stdout!.on("data", append);
  child.stderr!.on("data", append);
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once("close", (code, signal) => resolve({ code, signal })));
  return {
    child,
    output: () => output,
    exit,
    until: (pattern, timeoutMs) => new Promise((resolve, reject) => {
      const check = () => {
        if (!pattern.test(output)) return;
        waiters.delete(check);
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`demo output never matched ${pattern}:\n${output}`));
      }, timeoutMs);
      waiters.add(check);
      check();
    }),
  };
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string, run: Run): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([promise, new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      try {
        process.kill(-run.child.pid!, "SIGKILL");
      } catch {
        // already gone
      }
      reject(new Error(`${what} within ${ms} ms:\n${run.output()}`));
    }, ms);
  })]).finally(() => clearTimeout(timer));
}

function folders(output: string): string[] {
  return [...output.matchAll(/folder (\/\S+) \(removed at exit\)/g)].map((m) => m[1]!);
}

/** Live processes in the group; a zombie has already exited (an orphan waits for a PID 1 that may never reap it). */
function processGroup(pgid: number): string[] {
  return execFileSync("ps", ["-eo", "pgid=,pid=,stat=,args="], { encoding: "utf8" }).split("\n")
    .filter((line) => {
      const [group, , stat] = line.trim().split(/\s+/);
      return group === String(pgid) && !stat?.startsWith("Z");
    });
}

test("npm start: 3 devices on v2 valid, injected messages rejected, v3 rolled back, summary", { timeout: 150_000 }, async () => {
  requireMosquitto();
  const run = runDemo();
  const { code } = await withTimeout(run.exit, 140_000, "the demo did not finish", run);
  const out = run.output();
  assert.equal(code, 0, out);
  assert.match(out, /all 3 devices report v2\.0\.0 valid/);
  assert.match(out, /rejected the tampered message: bad-sig \(/);
  assert.match(out, /rejected the replayed message: replay \(/);
  assert.match(out, /boot deadline of 10\.0 s/);
  assert.match(out, /all 3 devices gave v3 up at the deadline and run v2\.0\.0 again/);
  assert.equal([...out.matchAll(/rolled back to 2\.0\.0 \(broker-unreachable\)/g)].length, 3);
  const summary = out.slice(out.indexOf("[8/8] summary"));
  for (const id of ["demo-1", "demo-2", "demo-3"]) {
    assert.match(summary, new RegExp(`${id}\\s+2\\.0\\.0 valid\\s+[1-9]\\d*\\s+.*v2 installed, valid; v3 rolled back \\(broker-unreachable\\)`));
  }
  assert.match(summary, /demo-2 .*bad-sig 1, replay 1/);
  const dirs = folders(out);
  assert.equal(dirs.length, 2, out);
  for (const dir of dirs) assert.ok(!existsSync(dir), `${dir} removed`);
  assert.deepEqual(processGroup(run.child.pid!), []);
});

test("Ctrl-C midway stops every process the demo started and removes its folders", { timeout: 90_000 }, async () => {
  requireMosquitto();
  const run = runDemo();
  await withTimeout(run.until(/demo-\d: booted 1\.0\.0/, 60_000), 70_000, "no device booted", run);
  const running = processGroup(run.child.pid!);
  assert.ok(running.some((line) => /mosquitto/.test(line)) && running.some((line) => /boot\.ts/.test(line)), running.join("\n"));
  process.kill(run.child.pid!, "SIGINT");
  const { code } = await withTimeout(run.exit, 20_000, "the demo did not stop after SIGINT", run);
  assert.notEqual(code, 0);
  assert.match(run.output(), /SIGINT: stopping/);
  assert.deepEqual(processGroup(run.child.pid!), []);
  const dirs = folders(run.output());
  assert.equal(dirs.length, 2, run.output());
  for (const dir of dirs) assert.ok(!existsSync(dir), `${dir} removed`);
});
