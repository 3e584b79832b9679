// `espguard demo`: the whole story on loopback. Today: a fresh CA, mosquitto with the generated
// TLS-only configuration, and one provisioned twin device that boots, reaches the broker over
// mutual TLS and reads its own message back. Ctrl-C cleans up at any point.
import { Command } from "commander";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MosquittoMissingError, startTestBroker, type TestBroker } from "../broker/mosquitto.ts";
import { ConfigKey } from "../modules/link/device-config.ts";
import { createTwinDevice } from "../twin/device/provision.ts";
import type { TwinDevice } from "../twin/device/supervisor.ts";
import { bundleFirmware } from "../twin/runtime/bundle.ts";
import { CliError } from "./errors.ts";

function say(step: string): void {
  process.stdout.write(`• ${step}\n`);
}

function arrayBuffer(bytes: Uint8Array): ArrayBuffer {
  return new Uint8Array(bytes).buffer;
}

export async function runDemo(options: { timeoutMs: number }): Promise<void> {
  const stateDir = mkdtempSync(join(tmpdir(), "espguard-demo-"));
  let broker: TestBroker | undefined;
  let device: TwinDevice | undefined;
  const cleanup = async () => {
    await device?.stop();
    await broker?.stop();
    rmSync(stateDir, { recursive: true, force: true });
  };
  const interrupted = new Promise<never>((_, reject) => {
    process.once("SIGINT", () => reject(new CliError("interrupted; cleaned up", 130)));
  });
  try {
    await Promise.race([interrupted, (async () => {
      say("creating a private CA and a broker certificate, starting mosquitto (TLS 1.2 only, client certificates required)");
      try {
        broker = await startTestBroker({ echo: true });
      } catch (error) {
        if (error instanceof MosquittoMissingError) throw new CliError(error.message);
        throw error;
      }
      say(`mosquitto listening on ${broker.broker.host}:${broker.broker.port}; nothing on 1883`);
      say("building the firmware bundle from main.ts");
      const bundle = await bundleFirmware({ format: "esm" });
      const deviceId = "demo-1";
      say(`issuing ${deviceId}'s RSA-2048 certificate (CN=${deviceId}) and provisioning its flash`);
      const identity = await broker.issueDevice(deviceId);
      device = createTwinDevice({
        name: deviceId,
        stateDir: join(stateDir, deviceId),
        bundle,
        preferences: {
          [ConfigKey.deviceId]: deviceId,
          [ConfigKey.brokerHost]: broker.broker.host,
          [ConfigKey.brokerPort]: broker.broker.port,
          [ConfigKey.ca]: arrayBuffer(broker.ca.certDer),
          [ConfigKey.cert]: arrayBuffer(identity.certDer),
          [ConfigKey.key]: arrayBuffer(identity.keyPkcs8Der),
          [ConfigKey.selfTest]: true,
        },
      });
      device.on("event", (event) => say(`${deviceId}: ${event.name} ${JSON.stringify(event.detail)}`));
      device.start();
      await device.waitForEvent("broker-reached", { timeoutMs: options.timeoutMs });
      await device.waitForEvent("message", { timeoutMs: options.timeoutMs });
      say(`${deviceId} reached the broker over mutual TLS and read its own message back`);
    })()]);
  } finally {
    await cleanup();
  }
}

export function demoCommand(): Command {
  return new Command("demo")
    .description("run the twin demo on loopback: broker, provisioned device, mutual TLS")
    .option("--timeout <ms>", "how long to wait for each device step", "30000")
    .action(async (options: { timeout: string }) => {
      const timeoutMs = Number(options.timeout);
      if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) throw new CliError(`--timeout must be a positive number of milliseconds, got ${options.timeout}`);
      await runDemo({ timeoutMs });
    });
}
