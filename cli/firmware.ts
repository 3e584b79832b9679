// `espguard firmware`: build the firmware bundle the twin boots.
import { Command } from "commander";
import { renameSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { bundleFirmware } from "../twin/runtime/bundle.ts";

export function firmwareCommand(): Command {
  const firmware = new Command("firmware").description("build firmware for the host twin");
  firmware
    .command("bundle")
    .description("bundle main.ts and the manifest's modules into one twin firmware module")
    .requiredOption("-o, --out <file>", "where to write the bundle")
    .action(async (options: { out: string }) => {
      const out = resolve(options.out);
      const bundle = await bundleFirmware({ format: "esm" });
      writeFileSync(`${out}.tmp`, bundle);
      renameSync(`${out}.tmp`, out);
      process.stdout.write(`wrote ${out} (${Buffer.byteLength(bundle)} bytes)\n`);
    });
  return firmware;
}
