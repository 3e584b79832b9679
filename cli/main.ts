// espguard command line: one verb per capability, each in its own module. A run loads only the
// module of the verb it names (help loads them all), so every command starts quickly.
import { Command, CommanderError } from "commander";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { PROJECT_ROOT } from "../twin/runtime/manifest.ts";
import { CliError } from "./errors.ts";

const COMMANDS: Readonly<Record<string, () => Promise<Command>>> = {
  demo: async () => (await import("./demo.ts")).demoCommand(),
  certs: async () => (await import("./certs.ts")).certsCommand(),
  device: async () => (await import("./device.ts")).deviceCommand(),
  broker: async () => (await import("./broker.ts")).brokerCommand(),
  firmware: async () => (await import("./firmware.ts")).firmwareCommand(),
  ota: async () => (await import("./ota.ts")).otaCommand(),
  telemetry: async () => (await import("./telemetry.ts")).telemetryCommand(),
  verify: async () => (await import("./verify.ts")).verifyCommand(),
};

/** The program with the verbs `argv` needs: the one it names, or all of them. */
export async function program(argv: readonly string[] = []): Promise<Command> {
  const { version } = JSON.parse(readFileSync(join(PROJECT_ROOT, "package.json"), "utf8"));
  const root = new Command("espguard")
    .description("Secure ESP32 firmware on Moddable: host tools and the host twin")
    .version(version)
    .enablePositionalOptions()
    .exitOverride()
    .showHelpAfterError();
  const named = argv.find((arg) => !arg.startsWith("-"));
  const verbs = named !== undefined && named in COMMANDS ? [named] : Object.keys(COMMANDS);
  for (const verb of verbs) root.addCommand(await COMMANDS[verb]!());
  return root;
}

export async function main(argv: string[]): Promise<number> {
  try {
    await (await program(argv.slice(2))).parseAsync(argv);
    return 0;
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode;
    if (error instanceof Error && error.name !== "Error") {
      process.stderr.write(`espguard: ${error.message}\n`);
      return error instanceof CliError ? error.exitCode : 1;
    }
    throw error;
  }
}
