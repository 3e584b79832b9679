#!/usr/bin/env node
// The espguard CLI. TypeScript sources run through tsx; firmware modules resolve by their
// manifest.json names on the twin's Moddable stand-ins.
import { register } from "tsx/esm/api";

register();
await import("../twin/register.ts");
const { main } = await import("../cli/main.ts");
process.exitCode = await main(process.argv);
