// Runs the real `espguard` command as a child process, and fingerprints folders so a test can
// prove a refused command wrote nothing.
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, lstatSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { PROJECT_ROOT } from "../../twin/runtime/manifest.ts";

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

const BIN = join(PROJECT_ROOT, "bin", "espguard.js");

export function espguard(cwd: string, args: string[], env: Record<string, string> = {}, timeoutMs = 60_000): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { cwd, env: { ...process.env, ...env }, timeout: timeoutMs, encoding: "utf8" }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === "number" ? error.code : -1;
      resolve({ code, stdout, stderr });
    });
  });
}

/** Like `espguard`, but a non-zero exit fails with the command's output. */
export async function espguardOk(cwd: string, args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  const result = await espguard(cwd, args, env);
  if (result.code !== 0) throw new Error(`espguard ${args.join(" ")} exited ${result.code}\n${result.stdout}${result.stderr}`);
  return result;
}

/** Paths, modes and content hashes of everything below `dir` (nothing, if it does not exist). */
export function treeFingerprint(dir: string): string {
  if (!existsSync(dir)) return "(absent)";
  const lines: string[] = [];
  const walk = (path: string, rel: string): void => {
    const stat = lstatSync(path);
    if (stat.isDirectory()) {
      lines.push(`${rel}/ ${(stat.mode & 0o7777).toString(8)}`);
      for (const name of readdirSync(path).sort()) walk(join(path, name), `${rel}/${name}`);
    } else {
      lines.push(`${rel} ${(stat.mode & 0o7777).toString(8)} ${createHash("sha256").update(readFileSync(path)).digest("hex")}`);
    }
  };
  walk(dir, ".");
  return lines.join("\n");
}
