// Runs a real mosquitto with the generated configuration: used by the tests, the smoke test and
// the demo, so what they exercise is the broker a deployment gets.
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { accessSync, chownSync, constants, readFileSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import type { SuiteContext, TestContext } from "node:test";
import { delimiter, join } from "node:path";
import { chainPem, createCa, createCrl, issueDeviceCert, issueServerCert, issueServiceCert, serialNumberHex } from "../certs/pki.ts";
import type { Issued, Validity } from "../certs/pki.ts";
import { DEFAULT_PORT, mosquittoConfig } from "./mosquitto-config.ts";
import type { MosquittoConfigOptions } from "./mosquitto-config.ts";

export const INSTALL_COMMAND = "apt-get update && apt-get install -y mosquitto";

export class MosquittoMissingError extends Error {
  override name = "MosquittoMissingError";
  constructor(detail = "") {
    super(`mosquitto is not installed (looked for it on PATH and in /usr/sbin, /usr/local/sbin). ${detail}` +
      `Install it with: ${INSTALL_COMMAND}`);
  }
}

export class MosquittoStartError extends Error {
  override name = "MosquittoStartError";
  constructor(message: string, readonly logs: string) {
    super(`${message}\n--- mosquitto output ---\n${logs.trimEnd() || "(none)"}`);
  }
}

/** mosquitto could not bind its port: another process holds it. */
export class MosquittoPortInUseError extends MosquittoStartError {
  override name = "MosquittoPortInUseError";
}

export interface RunningBroker {
  /** Where clients connect: the listener's address, 127.0.0.1 when it listens on all interfaces. */
  host: string;
  port: number;
  /** The CA client certificates chain to (the listener's `cafile`). */
  caPem: string;
  stop(): Promise<void>;
  /** Stops and starts the same configuration again, re-reading every file (e.g. a new CRL). */
  restart(): Promise<void>;
  /** Everything mosquitto has printed so far. */
  logs(): string;
  /** The mosquitto process id while it runs. */
  pid(): number | undefined;
}

export interface StartMosquittoOptions {
  /** Folder for mosquitto.conf and openssl.cnf; the ACL goes to `config.files.aclFile`. */
  dir: string;
  config: MosquittoConfigOptions;
  /** Bound on start-up, default 10 s. */
  startTimeoutMs?: number;
}

const SEARCH_DIRS = ["/usr/sbin", "/usr/local/sbin"];
const STOP_TIMEOUT_MS = 5_000;
const MAX_LOG_CHARS = 1_000_000;

/** The mosquitto executable, or MosquittoMissingError. */
export function findMosquitto(): string {
  const dirs = [...(process.env.PATH ?? "").split(delimiter).filter((dir) => dir !== ""), ...SEARCH_DIRS];
  for (const dir of dirs) {
    const candidate = join(dir, "mosquitto");
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      continue;
    }
  }
  throw new MosquittoMissingError();
}

/**
 * For broker tests: returns the mosquitto executable, or fails the test with the install command.
 * A missing broker is never a skip, in CI or out of it: a suite that passes without its broker
 * has proven nothing.
 */
export function requireMosquitto(t?: TestContext | SuiteContext): string {
  try {
    return findMosquitto();
  } catch (error) {
    if (!(error instanceof MosquittoMissingError)) throw error;
    const missing = process.env.CI === "true"
      ? new MosquittoMissingError("CI=true, so .ci/run must install it before running the tests. ")
      : error;
    if (t !== undefined && "diagnostic" in t) t.diagnostic(missing.message);
    throw missing;
  }
}

export async function startMosquitto(opts: StartMosquittoOptions): Promise<RunningBroker> {
  findMosquitto();
  const text = mosquittoConfig(opts.config);
  const confPath = join(opts.dir, "mosquitto.conf");
  const opensslPath = join(opts.dir, "openssl.cnf");
  await writeFile(confPath, text.conf);
  await writeFile(opts.config.files.aclFile, text.acl);
  await writeFile(opensslPath, text.opensslConf);
  const host = opts.config.host === undefined || opts.config.host === "0.0.0.0" ? "127.0.0.1"
    : opts.config.host === "::" ? "::1" : opts.config.host;
  return launchMosquitto({
    confPath,
    opensslConfPath: opensslPath,
    host,
    port: opts.config.port ?? DEFAULT_PORT,
    cafile: opts.config.files.cafile,
    brokerFiles: [opts.dir, confPath, opensslPath, ...Object.values(opts.config.files), opts.config.persistenceDir],
    ...(opts.startTimeoutMs === undefined ? {} : { startTimeoutMs: opts.startTimeoutMs }),
  });
}

export interface LaunchMosquittoOptions {
  /** A mosquitto.conf as written, e.g. by `espguard broker config`. */
  confPath: string;
  /** Exported as OPENSSL_CONF: what keeps the broker at exactly TLS 1.2 (see `mosquittoConfig`). */
  opensslConfPath: string;
  /** Where the listener accepts connections. */
  host: string;
  port: number;
  cafile: string;
  /** Folders and files the broker reads after dropping root (handed to its account when run as root). */
  brokerFiles: (string | undefined)[];
  /** Bound on start-up, default 10 s. */
  startTimeoutMs?: number;
}

/** Runs mosquitto on a configuration already on disk and waits until its listener accepts connections. */
export async function launchMosquitto(opts: LaunchMosquittoOptions): Promise<RunningBroker> {
  const binary = findMosquitto();
  handFilesToBrokerAccount(opts.brokerFiles);
  const { host, port, confPath } = opts;
  const caPem = await readFile(opts.cafile, "utf8");
  const timeoutMs = opts.startTimeoutMs ?? 10_000;
  let logs = "";
  let child: ChildProcess | undefined;

  const start = async (): Promise<void> => {
    const proc = spawn(binary, ["-c", confPath], {
      env: { ...process.env, OPENSSL_CONF: opts.opensslConfPath },
      stdio: ["ignore", "pipe", "pipe"],
    });
    // Readiness is judged on this run's output alone: after a restart, the previous run's
    // "running" line is still in `logs`.
    let thisRun = "";
    const append = (chunk: Buffer): void => {
      const text = chunk.toString("utf8");
      logs += text;
      if (logs.length > MAX_LOG_CHARS) logs = logs.slice(-MAX_LOG_CHARS);
      if (thisRun.length < MAX_LOG_CHARS) thisRun += text;
    };
    proc.stdout!.on("data", append);
    proc.stderr!.on("data", append);
    child = proc;
    live.add(proc);
    proc.once("exit", () => live.delete(proc));
    try {
      await waitUntilReady(proc, host, port, timeoutMs, () => thisRun);
    } catch (error) {
      await kill(proc);
      child = undefined;
      throw error;
    }
  };
  const stop = async (): Promise<void> => {
    const proc = child;
    child = undefined;
    if (proc !== undefined) await kill(proc);
  };

  await start();
  return {
    host,
    port,
    caPem,
    stop,
    restart: async () => {
      await stop();
      await start();
    },
    logs: () => logs,
    pid: () => child?.pid,
  };
}

export interface TestBrokerOptions {
  /** Reuse a CA (saves an RSA key generation); a fresh one otherwise. */
  ca?: Issued;
  /** Let devices read their own telemetry back. */
  echo?: boolean;
  services?: MosquittoConfigOptions["services"];
  /** Names in the broker certificate; default `localhost` and `127.0.0.1`. Both empty: no SAN at all. */
  dnsNames?: string[];
  ipAddresses?: string[];
}

export interface TestBroker {
  broker: RunningBroker;
  ca: Issued;
  /** The broker's own certificate and key. */
  server: Issued;
  dir: string;
  issueDevice(deviceId: string, validity?: Validity): Promise<Issued>;
  issueService(name: string, validity?: Validity): Promise<Issued>;
  /** Adds the certificates to the broker's CRL and restarts it (a restart, unlike a reload, also cuts open sessions). */
  revoke(...certs: Issued[]): Promise<void>;
  /** Stops the broker and removes its folder. */
  stop(): Promise<void>;
}

/**
 * A private CA, a broker certificate with its chain, a CRL, and mosquitto with the generated
 * configuration on a free loopback port, all in a fresh temporary folder.
 */
export async function startTestBroker(opts: TestBrokerOptions = {}): Promise<TestBroker> {
  findMosquitto();
  const dir = await mkdtemp(join(tmpdir(), "espguard-broker-"));
  try {
    const ca = opts.ca ?? await createCa({ commonName: "espguard test CA" });
    const server = await issueServerCert(ca, {
      commonName: "localhost",
      dnsNames: opts.dnsNames ?? ["localhost"],
      ipAddresses: opts.ipAddresses ?? ["127.0.0.1"],
    });
    const files = {
      cafile: join(dir, "ca.pem"),
      certfile: join(dir, "server-chain.pem"),
      keyfile: join(dir, "server.key"),
      aclFile: join(dir, "acl"),
      crlfile: join(dir, "crl.pem"),
    };
    const revoked: string[] = [];
    let crlNumber = 1;
    const writeCrl = async (): Promise<void> => {
      const { crlPem } = await createCrl(ca, { revoked: revoked.map((serialNumber) => ({ serialNumber })), crlNumber: crlNumber++ });
      await writeFile(files.crlfile, crlPem);
    };
    await writeFile(files.cafile, ca.certPem);
    await writeFile(files.certfile, chainPem(server, ca));
    await writeFile(files.keyfile, server.keyPem, { mode: 0o600 });
    await writeCrl();

    const broker = await startOnFreePort(dir, {
      host: "127.0.0.1",
      files,
      echo: opts.echo ?? false,
      ...(opts.services === undefined ? {} : { services: opts.services }),
    });
    return {
      broker,
      ca,
      server,
      dir,
      issueDevice: (deviceId, validity = {}) => issueDeviceCert(ca, { deviceId, ...validity }),
      issueService: (name, validity = {}) => issueServiceCert(ca, { name, ...validity }),
      revoke: async (...certs) => {
        revoked.push(...certs.map((cert) => serialNumberHex(cert)));
        await writeCrl();
        handFilesToBrokerAccount([files.crlfile]);
        await broker.restart();
      },
      stop: async () => {
        try {
          await broker.stop();
        } finally {
          await rm(dir, { recursive: true, force: true });
        }
      },
    };
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
}

/** A TCP port on 127.0.0.1 that nothing listens on right now. */
export function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => {
        if (address === null || typeof address === "string") reject(new Error("the OS returned no TCP port for 127.0.0.1"));
        else resolve(address.port);
      });
    });
  });
}

// Another process may take the port between our probe and mosquitto's bind: pick again then.
async function startOnFreePort(dir: string, config: Omit<MosquittoConfigOptions, "port">): Promise<RunningBroker> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startMosquitto({ dir, config: { ...config, port: await freeLoopbackPort() } });
    } catch (error) {
      if (!(error instanceof MosquittoPortInUseError) || attempt === 3) throw error;
    }
  }
}

async function waitUntilReady(proc: ChildProcess, host: string, port: number, timeoutMs: number, logs: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let exited: string | undefined;
  // "close", not "exit": it comes after mosquitto's last words have been read from its pipes.
  proc.once("close", (code, signal) => {
    exited = signal === null ? `exit code ${code}` : `signal ${signal}`;
  });
  const spawnFailed = new Promise<never>((_, reject) => {
    proc.once("error", (error) => reject(new MosquittoStartError(`could not run mosquitto: ${error.message}`, logs())));
  });
  spawnFailed.catch(() => undefined);
  // The "running" line comes after every listener is bound; probing the port only after it means a
  // stranger already holding the port cannot pass for our broker.
  while (!/mosquitto version \S+ running/.test(logs())) {
    if (exited !== undefined) {
      const message = `mosquitto exited during start-up (${exited})`;
      throw /Address already in use/.test(logs()) ? new MosquittoPortInUseError(`${message}: port ${port} is taken`, logs()) : new MosquittoStartError(message, logs());
    }
    if (Date.now() > deadline) throw new MosquittoStartError(`mosquitto did not report running within ${timeoutMs} ms`, logs());
    await Promise.race([delay(25), spawnFailed]);
  }
  while (!(await accepts(host, port))) {
    if (exited !== undefined) throw new MosquittoStartError(`mosquitto exited during start-up (${exited})`, logs());
    if (Date.now() > deadline) throw new MosquittoStartError(`mosquitto did not accept connections on ${host}:${port} within ${timeoutMs} ms`, logs());
    await delay(25);
  }
}

function accepts(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port, timeout: 1_000 });
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
    socket.once("timeout", () => done(false));
  });
}

async function kill(proc: ChildProcess): Promise<void> {
  if (proc.pid === undefined || proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
  proc.kill("SIGTERM");
  const timer = setTimeout(() => proc.kill("SIGKILL"), STOP_TIMEOUT_MS);
  try {
    await exited;
  } finally {
    clearTimeout(timer);
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// A test that crashes must not leave brokers running: kill whatever is still alive on exit.
const live = new Set<ChildProcess>();
process.once("exit", () => {
  for (const proc of live) proc.kill("SIGKILL");
});

// Started as root, mosquitto switches to the "mosquitto" account (or "nobody" when that does
// not exist) before it reads its ACL, certificates and keys, so they must belong to that account.
function handFilesToBrokerAccount(paths: (string | undefined)[]): void {
  if (process.geteuid?.() !== 0) return;
  const account = brokerAccount();
  for (const path of paths) {
    if (path === undefined) continue;
    try {
      chownSync(path, account.uid, account.gid);
    } catch (error) {
      // A missing file is mosquitto's to report, in its own words, when it fails to load it.
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
    }
  }
}

function brokerAccount(): { uid: number; gid: number } {
  const entries = new Map(readFileSync("/etc/passwd", "utf8").split("\n").map((line) => {
    const [name = "", , uid = "", gid = ""] = line.split(":");
    return [name, { uid: Number(uid), gid: Number(gid) }] as const;
  }));
  const account = entries.get("mosquitto") ?? entries.get("nobody");
  if (account === undefined) {
    throw new MosquittoStartError(`running as root, mosquitto drops to the "mosquitto" user, and neither it nor "nobody" exists in /etc/passwd; reinstall with: ${INSTALL_COMMAND}`, "");
  }
  return account;
}
