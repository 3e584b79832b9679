// espguard command line: one verb per capability, each in its own module.
import { Command, CommanderError } from "commander";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { PROJECT_ROOT } from "../twin/runtime/manifest.ts";
import { firmwareCommand } from "./firmware.ts";
import { demoCommand } from "./demo.ts";
import { CliError } from "./errors.ts";

export function program(): Command {
  const { version } = JSON.parse(readFileSync(join(PROJECT_ROOT, "package.json"), "utf8"));
  return new Command("espguard")
    .description("Secure ESP32 firmware on Moddable: host tools and the host twin")
    .version(version)
    .addCommand(demoCommand())
    .addCommand(firmwareCommand())
    .exitOverride()
    .showHelpAfterError();
}

export async function main(argv: string[]): Promise<number> {
  try {
    await program().parseAsync(argv);
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
