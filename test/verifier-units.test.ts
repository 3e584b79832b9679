// The verifier's checks one message at a time: each way a message can be wrong is refused with its
// own reason and leaves the replay state and the accepted count as they were; the reorder window;
// and the file store shared by several processes (each seq accepted exactly once).
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import fc from "fast-check";
import { deriveTelemetryKey } from "../certs/telemetry-key.ts";
import { EnvelopeKey } from "../modules/telemetry/envelope-key.ts";
import { signEnvelope, type EnvelopeBody } from "../modules/telemetry/envelope.ts";
import { PROJECT_ROOT } from "../twin/runtime/manifest.ts";
import { Keyring } from "../verifier/keyring.ts";
import { FileReplayStore, MemoryReplayStore, type ReplayStore } from "../verifier/replay-store.ts";
import { TelemetryVerifier } from "../verifier/verifier.ts";

const root = mkdtempSync(join(tmpdir(), "espguard-verifier-"));
// Locks live outside the state folder (on tmpfs): remove every lock folder a store here made.
const lockDirs = new Set<string>();
function fileStore(dir: string, window: number): FileReplayStore {
  const store = new FileReplayStore(dir, window);
  lockDirs.add(store.lockDir);
  return store;
}
after(() => {
  for (const dir of [...lockDirs, root]) rmSync(dir, { recursive: true, force: true });
});

const fleet = randomBytes(32);
const NOW = 1_800_000_000;
const keyOf = (dev: string, kid = "k1") => new EnvelopeKey(deriveTelemetryKey(fleet, dev, kid));
const sign = (fields: Record<string, unknown>, dev = "dev-1", kid = "k1") =>
  signEnvelope({ dev, kid, ...fields } as EnvelopeBody, keyOf(dev, kid));
const TOPIC = "devices/dev-1/telemetry";

let stores = 0;
function setup(kind: "memory" | "file" = "file"): { verifier: TelemetryVerifier; store: ReplayStore } {
  const store = kind === "memory" ? new MemoryReplayStore(8) : fileStore(join(root, `store-${stores++}`), 8);
  const verifier = new TelemetryVerifier({ keys: new Keyring(fleet, ["k1", "k2"]).lookup, replay: store, maxSkewS: 60, now: () => NOW });
  return { verifier, store };
}

function reason(verifier: TelemetryVerifier, wire: string, topic = TOPIC): string {
  const verdict = verifier.check(topic, wire);
  return verdict.ok ? "accepted" : verdict.reason;
}

describe("verifier rejects", () => {
  const good = sign({ seq: 10, ts: NOW, temp: 23.5 });
  const cases: [string, string, string?][] = [
    ["tampered value", good.replace("23.5", "23.6"), "bad-sig"],
    ["replayed seq", good, "replay"],
    ["seq reused with a new reading", sign({ seq: 10, ts: NOW, temp: 99 }), "replay"],
    ["seq below the reorder window", sign({ seq: 1, ts: NOW }), "replay"],
    ["unknown kid", sign({ seq: 11, ts: NOW }, "dev-1", "k9"), "unknown-kid"],
    ["dev is not the topic's device", sign({ seq: 11, ts: NOW }, "dev-2"), "dev-mismatch"],
    ["missing sig", JSON.stringify({ dev: "dev-1", kid: "k1", seq: 11 }), "missing-sig"],
    ["malformed JSON", good.slice(0, -1), "malformed"],
    ["oversize", sign({ seq: 11, pad: "x".repeat(900) }).replace("}", `,"more":"${"y".repeat(200)}"}`), "oversize"],
    ["non-canonical spacing", good.replace(",", ", "), "non-canonical"],
    ["ts too far ahead", sign({ seq: 11, ts: NOW + 61 }), "skew"],
    ["ts too far behind", sign({ seq: 11, ts: NOW - 61 }), "skew"],
  ];
  for (const kind of ["memory", "file"] as const) {
    test(`each with its reason and no state change (${kind} store)`, () => {
      const { verifier, store } = setup(kind);
      assert.equal(reason(verifier, good), "accepted");
      for (const [what, wire, expected] of cases) {
        const before = JSON.stringify(store.state("dev-1"));
        const accepted = verifier.accepted;
        assert.equal(reason(verifier, wire), expected, what);
        assert.equal(JSON.stringify(store.state("dev-1")), before, `${what}: replay state unchanged`);
        assert.equal(verifier.accepted, accepted, `${what}: not counted as accepted`);
      }
      assert.equal(reason(verifier, good, "devices/dev-1/status"), "bad-topic");
      assert.equal(reason(verifier, sign({ seq: 11 })), "accepted", "a message without ts (untrusted clock) is accepted");
      assert.equal(verifier.accepted, 2);
      assert.equal(verifier.rejected.replay, 3);
      assert.equal(verifier.rejected["bad-sig"], 1);
    });
  }

  test("the reorder window lets a late message in once, nothing older", () => {
    const { verifier, store } = setup();
    for (const seq of [20, 15, 13, 18]) assert.equal(reason(verifier, sign({ seq })), "accepted", `seq ${seq}`);
    assert.deepEqual(store.state("dev-1"), { last: 20, seen: [13, 15, 18, 20] });
    assert.equal(reason(verifier, sign({ seq: 15 })), "replay");
    assert.equal(reason(verifier, sign({ seq: 12 })), "replay", "20 − 8 = 12 is outside the window");
    assert.equal(reason(verifier, sign({ seq: 25 })), "accepted");
    assert.deepEqual(store.state("dev-1"), { last: 25, seen: [18, 20, 25] });
  });

  test("the state survives a restart: a new verifier on the same folder refuses what the old one accepted", () => {
    const dir = join(root, "restart");
    const first = new TelemetryVerifier({ keys: new Keyring(fleet, ["k1"]).lookup, replay: fileStore(dir, 8), maxSkewS: 60 });
    const wire = sign({ seq: 7 });
    assert.equal(reason(first, wire), "accepted");
    const second = new TelemetryVerifier({ keys: new Keyring(fleet, ["k1"]).lookup, replay: fileStore(dir, 8), maxSkewS: 60 });
    assert.equal(reason(second, wire), "replay");
  });

  test("never accepts a modified message, never throws (2,000 mutations)", () => {
    const { verifier } = setup("memory");
    const wire = sign({ seq: 5, temp: 23.5, hum: 55.2, loc: "lab" });
    fc.assert(fc.property(fc.nat(wire.length - 1), fc.integer({ min: 0, max: 127 }), fc.nat(3), (at, code, op) => {
      const ch = String.fromCharCode(code);
      const mutated = op === 0 ? wire.slice(0, at) + ch + wire.slice(at + 1)
        : op === 1 ? wire.slice(0, at) + ch + wire.slice(at) : op === 2 ? wire.slice(0, at) + wire.slice(at + 1) : wire.slice(0, at);
      fc.pre(mutated !== wire);
      assert.equal(verifier.check(TOPIC, mutated).ok, false, mutated);
    }), { numRuns: 2000 });
    assert.equal(verifier.accepted, 0);
  });
});

describe("file replay store shared by processes", () => {
  test("two processes claiming the same 250 seqs: each seq accepted exactly once", async () => {
    const dir = join(root, "shared");
    fileStore(dir, 256);
    const script = `import { FileReplayStore } from ${JSON.stringify(join(PROJECT_ROOT, "verifier", "replay-store.ts"))};
      const store = new FileReplayStore(${JSON.stringify(dir)}, 256);
      const won = [];
      for (let seq = 1; seq <= 250; seq++) if (store.claim("dev-x", seq).ok) won.push(seq);
      process.stdout.write(JSON.stringify(won));`;
    const run = async () => {
      const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], { stdio: ["ignore", "pipe", "inherit"] });
      let out = "";
      child.stdout.on("data", (chunk) => (out += chunk));
      const [code] = await once(child, "exit");
      assert.equal(code, 0);
      return JSON.parse(out) as number[];
    };
    const [x, y] = await Promise.all([run(), run()]);
    const all = [...x, ...y].sort((p, q) => p - q);
    assert.deepEqual(all, Array.from({ length: 250 }, (_, i) => i + 1), "every seq once, none twice");
    assert.deepEqual(readdirSync(dir).filter((name) => name !== "locks"), ["dev-x.state"]);
    assert.deepEqual(readdirSync(fileStore(dir, 256).lockDir, { recursive: true }).filter((name) => String(name).endsWith(".lock")), [], "no lock left behind");
  });

  test("a lock left by a process that died is broken; a corrupt state file is refused, not reset", () => {
    const dir = join(root, "orphan");
    const store = fileStore(dir, 8);
    symlinkSync("999999999", store.lockPath("dev-1"));
    assert.deepEqual(store.claim("dev-1", 3), { ok: true });
    assert.equal(existsSync(store.lockPath("dev-1")), false, "the orphaned lock is gone");
    writeFileSync(join(dir, "dev-2.state"), "{\"last\":\"x\"}");
    assert.throws(() => store.claim("dev-2", 1), /not replay state/);
    assert.equal(readFileSync(join(dir, "dev-2.state"), "utf8"), "{\"last\":\"x\"}");
    assert.throws(() => fileStore(dir, 257), /1–256/);
  });
});
