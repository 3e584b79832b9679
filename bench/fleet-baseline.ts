// The fleet's unsigned baseline: mosquitto's own clients through the same broker and the same
// mutual-TLS listener. `publishers` mosquitto_pub processes (device certificates, QoS 1, -l: one
// message per stdin line) send the same number of messages of the same readings without the
// envelope's signature; one mosquitto_sub (a verifier-class service account, QoS 1) counts them.
import { type ChildProcess, spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import type { Credentials } from "./fleet-identities.ts";

export interface BaselineSetup {
  readonly dir: string;
  readonly port: number;
  readonly caPem: string;
  readonly subscriber: Credentials;
  readonly publishers: readonly Credentials[];
}

export interface RoundResult {
  readonly received: number;
  /** first message received to the last: process start and TLS handshakes are not counted */
  readonly seconds: number;
}

function tlsArgs(setup: BaselineSetup, who: Credentials): string[] {
  const cert = join(setup.dir, `${who.id}.crt`);
  const key = join(setup.dir, `${who.id}.key`);
  writeFileSync(cert, who.certPem);
  writeFileSync(key, who.keyPem, { mode: 0o600 });
  return ["-h", "127.0.0.1", "-p", String(setup.port), "--cafile", join(setup.dir, "ca.pem"), "--cert", cert, "--key", key, "-i", who.id, "-q", "1"];
}

function exited(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => (child.exitCode !== null ? resolve() : child.once("exit", () => resolve())));
}

export async function runBaselineRound(setup: BaselineSetup, total: number, idleMs: number): Promise<RoundResult> {
  // Written once, before any client starts: a client reading it while another write truncates it fails its handshake.
  writeFileSync(join(setup.dir, "ca.pem"), setup.caPem);
  const sub = spawn("stdbuf", ["-oL", "mosquitto_sub", ...tlsArgs(setup, setup.subscriber), "-d", "-t", "devices/+/telemetry", "-C", String(total)], { stdio: ["ignore", "pipe", "inherit"] });
  let received = 0;
  let first = 0;
  let last = 0;
  const output: string[] = [];
  let subscribed!: () => void;
  const ready = new Promise<void>((resolve) => (subscribed = resolve));
  createInterface({ input: sub.stdout! }).on("line", (line) => {
    if (line.startsWith("{")) {
      last = performance.now();
      if (received++ === 0) first = last;
      return;
    }
    output.push(line);
    if (line.includes("received SUBACK")) subscribed();
  });
  const gone = exited(sub).then(() => "exited" as const);
  if (await Promise.race([ready.then(() => "ready" as const), gone]) === "exited")
    throw new Error(`mosquitto_sub ended before subscribing:\n  ${output.slice(-10).join("\n  ")}`);
  const perPublisher = Math.ceil(total / setup.publishers.length);
  const pubs = setup.publishers.map((who, p) => {
    const pub = spawn("mosquitto_pub", [...tlsArgs(setup, who), "-t", `devices/${who.id}/telemetry`, "-l"], { stdio: ["pipe", "ignore", "inherit"] });
    const lines: string[] = [];
    const now = Date.now();
    for (let i = p * perPublisher; i < Math.min(total, (p + 1) * perPublisher); i++)
      lines.push(JSON.stringify({ dev: who.id, hum: 40 + (i % 200) / 10, kid: "k1", sent: now + i / 1000, seq: i + 1, temp: 20 + (i % 100) / 10, ts: Math.floor(now / 1000) }));
    pub.stdin!.end(`${lines.join("\n")}\n`);
    return pub;
  });
  // mosquitto drops QoS 1 messages beyond a slow subscriber's queue limit: once nothing has arrived
  // for idleMs the rest is counted as lost instead of waited for.
  const started = performance.now();
  const watchdog = setInterval(() => {
    if (performance.now() - (last || started) > idleMs) sub.kill();
  }, 250);
  await exited(sub);
  clearInterval(watchdog);
  for (const pub of pubs) pub.kill();
  await Promise.all(pubs.map(exited));
  return { received, seconds: (last - first) / 1000 };
}
