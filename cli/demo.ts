// `espguard demo` (`npm start`): runs demo/story.ts and owns its lifetime. Ctrl-C (or SIGTERM) at
// any moment stops what the story started and removes its folders before the process exits.
import { Command } from "commander";
import { MosquittoMissingError } from "../broker/mosquitto.ts";
import { runDemo } from "../demo/story.ts";
import { DemoInterrupted, Teardown } from "../demo/teardown.ts";
import { positiveInteger } from "./certs.ts";
import { CliError } from "./errors.ts";

// After teardown the story may still be waiting on a device step that will never come; give late
// starts this long to be stopped by the teardown, then leave.
const SETTLE_MS = 3000;

async function run(options: { timeout: number; deadline: number }): Promise<void> {
  const teardown = new Teardown();
  let onSignal: ((signal: NodeJS.Signals) => void) | undefined;
  // Stays installed: later writes to the closed pipe fail the same way and must not crash teardown.
  const onPipeError = (): void => onSignal?.("SIGPIPE");
  const interrupted = new Promise<NodeJS.Signals>((resolve) => {
    onSignal = resolve;
    process.once("SIGINT", resolve);
    process.once("SIGTERM", resolve);
    // `npm start | head`: the reader went away; clean up as for Ctrl-C rather than die mid-story.
    process.stdout.on("error", onPipeError);
  });
  const story = runDemo({ stepTimeoutMs: options.timeout, bootDeadlineMs: options.deadline }, teardown);
  const outcome = await Promise.race([
    story.then(() => ({ ok: true as const }), (error: unknown) => ({ ok: false as const, error })),
    interrupted.then((signal) => ({ ok: false as const, error: new DemoInterrupted(), signal })),
  ]);
  process.off("SIGINT", onSignal!);
  process.off("SIGTERM", onSignal!);
  if ("signal" in outcome) process.stdout.write(`\n${outcome.signal}: stopping devices, verifier and mosquitto, removing temp folders\n`);
  await teardown.run();
  if (teardown.failures.length > 0) process.stderr.write(`espguard demo: cleanup trouble:\n  ${teardown.failures.join("\n  ")}\n`);
  if (outcome.ok) return;
  const { error } = outcome;
  if ("signal" in outcome || error instanceof DemoInterrupted) {
    await Promise.race([story.catch(() => undefined), new Promise((resolve) => setTimeout(resolve, SETTLE_MS).unref())]);
    process.stdout.write("stopped; nothing left running\n");
    // Pending device waits hold timers for up to a step timeout; an interrupted demo exits now.
    process.exit(130);
  }
  // The failed step's siblings may still be waiting on devices that are gone; once the error is
  // reported, do not let their timers hold the process.
  setTimeout(() => process.exit(), SETTLE_MS).unref();
  if (error instanceof MosquittoMissingError) throw new CliError(error.message);
  throw error;
}

export function demoCommand(): Command {
  return new Command("demo")
    .description("the whole story on loopback: CA, mosquitto, 3 twin devices, signed telemetry and its verifier, injected attacks, OTA v2, rolled-back v3")
    .option("--timeout <ms>", "bound on each device step", positiveInteger("--timeout"), 60_000)
    .option("--deadline <ms>", "boot-guard deadline provisioned for the demo (firmware default 30000)", positiveInteger("--deadline"), 10_000)
    .action((options: { timeout: number; deadline: number }) => run(options));
}
