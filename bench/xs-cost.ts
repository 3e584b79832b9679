// Device cost on the real XS engine (xsnap metering units, not time): the compute of signing one
// telemetry message and of verifying one signed OTA image with a 1 KB payload (header checks,
// SHA-256, ECDSA P-256 in Moddable's JS ECDSA). Each figure is (run doing the work `count` times −
// the same run doing it zero times) / count, so module loading and setup cancel out.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { toHex } from "../modules/ota/bytes.ts";
import { buildUnsignedImage, signImage } from "../ota/image-build.ts";
import { generateSigningKey } from "../ota/signing-key.ts";
import { runFirmwareInXs } from "../twin/xs/xs-check.ts";
import type { Row } from "./report.ts";

const SIGN_ENTRY = (count: number) => `import { signEnvelope } from "telemetry/envelope";
import { EnvelopeKey } from "telemetry/envelope-key";
const key = new EnvelopeKey(new Uint8Array(32).fill(7));
let last = "";
for (let i = 0; i < ${count}; i++) last = signEnvelope({ dev: "esp32-01", kid: "k1", seq: i + 1, ts: 1700000000, temp: 23.5, hum: 55.2 }, key);
trace(last.length + "\\n");
`;

const VERIFY_ENTRY = (count: number, imageHex: string, spkiHex: string) => `import { ImageVerifier } from "ota/image-verifier";
import { TrustedKey } from "ota/trusted-key";
import { fromHex } from "ota/bytes";
const policy = { keys: [TrustedKey.fromSpki(fromHex("${spkiHex}"))], target: "twin", payloadTypes: ["twin-bundle"], acceptedCounter: 1 };
const image = fromHex("${imageHex}");
let version = "";
for (let i = 0; i < ${count}; i++) {
  const verifier = new ImageVerifier(policy);
  verifier.write(image.slice().buffer);
  version = verifier.finish().header.version;
}
trace(version + "\\n");
`;

async function meter(dir: string, name: string, source: string): Promise<number> {
  const entry = join(dir, `${name}.js`);
  writeFileSync(entry, source);
  const result = await runFirmwareInXs({ entry, timeoutMs: 120_000, computeLimit: 0 });
  if (!result.ok) throw new Error(`XS run ${name} failed: ${result.error?.message}`);
  return result.meter.compute;
}

export interface XsCostResult {
  readonly perMessageSigned: number;
  readonly perImageVerified: number;
  readonly rows: readonly Row[];
}

export async function runXsCostBench(quick: boolean): Promise<XsCostResult> {
  const signs = quick ? 20 : 100;
  const verifies = quick ? 2 : 10;
  const key = generateSigningKey();
  const payload = new Uint8Array(1024).fill(0x41);
  const image = signImage(buildUnsignedImage({ payload, payloadType: "twin-bundle", target: "twin", version: "2.0.0", counter: 2 }), key);
  const dir = mkdtempSync(join(tmpdir(), "espguard-bench-xs-"));
  try {
    const perMessageSigned = ((await meter(dir, "sign-n", SIGN_ENTRY(signs))) - (await meter(dir, "sign-0", SIGN_ENTRY(0)))) / signs;
    const verify = (count: number) => VERIFY_ENTRY(count, toHex(image), toHex(key.spki));
    const perImageVerified = ((await meter(dir, "verify-n", verify(verifies))) - (await meter(dir, "verify-0", verify(0)))) / verifies;
    return {
      perMessageSigned,
      perImageVerified,
      rows: [
        { suite: "XS engine cost", metric: "per telemetry message signed", value: `${Math.round(perMessageSigned)} units` },
        { suite: "XS engine cost", metric: "per OTA image verified (header, 1 KB, ECDSA)", value: `${Math.round(perImageVerified)} units` },
      ],
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
