// `startOtaServer` (ota/serve.ts) over real HTTPS, with a client set up like the device's TLS
// (DESIGN.md §3): TLS 1.2 only, ECDHE-RSA-AES128-GCM-SHA256, P-256, the CA as the only root and
// the name checked against the certificate's SAN.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { request, type RequestOptions } from "node:https";
import type { TLSSocket } from "node:tls";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { chainPem, createCa, type Issued, issueServerCert } from "../certs/pki.ts";
import { answerRange } from "../ota/http-range.ts";
import { type OtaServer, startOtaServer } from "../ota/serve.ts";
import { ServerCertificateError } from "../ota/serve-cert.ts";
import { within } from "./support/mqtt-peer.ts";

const WAIT_MS = 10_000;
const dir = mkdtempSync(join(tmpdir(), "espguard-ota-serve-"));
const image = randomBytes(5000);
let ca: Issued;
let server: Issued;
let ota: OtaServer;

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  protocol: string | null;
  cipher: string;
}

/** One request with the device's TLS settings; bounded by WAIT_MS. */
function fetchLikeDevice(path: string, headers: Record<string, string> = {}, method = "GET", port = ota.port): Promise<Answer> {
  const options: RequestOptions = {
    host: "127.0.0.1", port, path, method, headers, servername: "localhost", ca: ca.certPem,
    minVersion: "TLSv1.2", maxVersion: "TLSv1.2", ciphers: "ECDHE-RSA-AES128-GCM-SHA256", ecdhCurve: "P-256",
    agent: false, timeout: WAIT_MS,
  };
  return new Promise((resolve, reject) => {
    const req = request(options, (res) => {
      const chunks: Buffer[] = [];
      const socket = res.socket as TLSSocket;
      const protocol = socket.getProtocol();
      const cipher = socket.getCipher().standardName;
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks), protocol, cipher }));
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error(`no answer within ${WAIT_MS} ms`)));
    req.on("error", reject);
    req.end();
  });
}

before(async () => {
  ca = await createCa({ commonName: "espguard OTA test CA" });
  server = await issueServerCert(ca, { commonName: "ota", dnsNames: ["localhost"], ipAddresses: ["127.0.0.1"] });
  mkdirSync(join(dir, "fw"));
  writeFileSync(join(dir, "fw", "1.4.0.bin"), image);
  writeFileSync(join(dir, "fw", ".1.5.0.bin.123.tmp"), "half written");
  writeFileSync(join(tmpdir(), "espguard-ota-serve-outside"), "secret");
  symlinkSync(join(tmpdir(), "espguard-ota-serve-outside"), join(dir, "fw", "escape.bin"));
  ota = await startOtaServer({ dir, cert: chainPem(server, ca), key: server.keyPem });
});

after(async () => {
  await ota?.close();
  rmSync(dir, { recursive: true, force: true });
  rmSync(join(tmpdir(), "espguard-ota-serve-outside"), { force: true });
});

describe("ota serve: HTTPS a device can use", () => {
  test("a full GET over TLS 1.2 with ECDHE-RSA-AES128-GCM-SHA256 returns the file, its length, a strong ETag and Accept-Ranges", async () => {
    const answer = await fetchLikeDevice("/fw/1.4.0.bin");
    assert.equal(answer.status, 200);
    assert.equal(answer.protocol, "TLSv1.2");
    assert.equal(answer.cipher, "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256");
    assert.deepEqual(answer.body, image);
    assert.equal(answer.headers["content-length"], String(image.length));
    assert.equal(answer.headers["accept-ranges"], "bytes");
    assert.match(String(answer.headers.etag), /^"[0-9a-f]{32}"$/);
  });

  test("Range 0-99 → 206 with the first 100 bytes and Content-Range", async () => {
    const answer = await fetchLikeDevice("/fw/1.4.0.bin", { range: "bytes=0-99" });
    assert.equal(answer.status, 206);
    assert.equal(answer.headers["content-range"], `bytes 0-99/${image.length}`);
    assert.deepEqual(answer.body, image.subarray(0, 100));
  });

  test("an open-ended range resumes from its start to the end", async () => {
    const answer = await fetchLikeDevice("/fw/1.4.0.bin", { range: "bytes=4000-" });
    assert.equal(answer.status, 206);
    assert.equal(answer.headers["content-range"], `bytes 4000-4999/${image.length}`);
    assert.deepEqual(answer.body, image.subarray(4000));
  });

  test("a suffix range returns the last bytes; a range past the end is clamped", async () => {
    const suffix = await fetchLikeDevice("/fw/1.4.0.bin", { range: "bytes=-128" });
    assert.equal(suffix.status, 206);
    assert.deepEqual(suffix.body, image.subarray(image.length - 128));
    const clamped = await fetchLikeDevice("/fw/1.4.0.bin", { range: "bytes=4990-999999" });
    assert.equal(clamped.headers["content-range"], `bytes 4990-4999/${image.length}`);
    assert.deepEqual(clamped.body, image.subarray(4990));
  });

  test("a range starting at or past the end → 416 with Content-Range bytes */size", async () => {
    for (const range of [`bytes=${image.length}-`, "bytes=999999-1000000", "bytes=-0"]) {
      const answer = await fetchLikeDevice("/fw/1.4.0.bin", { range });
      assert.equal(answer.status, 416, range);
      assert.equal(answer.headers["content-range"], `bytes */${image.length}`);
      assert.equal(answer.body.length, 0);
    }
  });

  test("HEAD gives the headers of a GET and no body", async () => {
    const answer = await fetchLikeDevice("/fw/1.4.0.bin", {}, "HEAD");
    assert.equal(answer.status, 200);
    assert.equal(answer.headers["content-length"], String(image.length));
    assert.equal(answer.body.length, 0);
  });

  test("If-Range with another ETag gets the whole file, so a resume never splices two images", async () => {
    const { headers } = await fetchLikeDevice("/fw/1.4.0.bin", {}, "HEAD");
    const same = await fetchLikeDevice("/fw/1.4.0.bin", { range: "bytes=100-", "if-range": String(headers.etag) });
    assert.equal(same.status, 206);
    const other = await fetchLikeDevice("/fw/1.4.0.bin", { range: "bytes=100-", "if-range": '"0000"' });
    assert.equal(other.status, 200);
    assert.deepEqual(other.body, image);
  });

  test("nothing outside the folder, no dot files (half-written outputs), no folders, only GET and HEAD", async () => {
    for (const path of ["/fw/../../etc/passwd", "/fw/%2e%2e/%2e%2e/etc/passwd", "/fw/.1.5.0.bin.123.tmp", "/fw/escape.bin", "/fw", "/", "/fw/2.0.0.bin"])
      assert.equal((await fetchLikeDevice(path)).status, 404, path);
    assert.equal((await fetchLikeDevice("/fw/1.4.0.bin", {}, "PUT")).status, 405);
  });

  test("a download cut half-way resumes with Range and the pieces make the file", async () => {
    const first = await fetchLikeDevice("/fw/1.4.0.bin", { range: "bytes=0-2499" });
    const rest = await fetchLikeDevice("/fw/1.4.0.bin", { range: "bytes=2500-", "if-range": String(first.headers.etag) });
    assert.deepEqual(Buffer.concat([first.body, rest.body]), image);
    const logged = ota.requests.filter((r) => r.range === "bytes=2500-");
    assert.equal(logged.at(-1)?.status, 206);
    assert.equal(logged.at(-1)?.bytes, 2500);
  });

  test("dropConnections cuts a download in flight, as a link loss does; Range then fetches the rest", async () => {
    const big = randomBytes(4 * 1024 * 1024);
    writeFileSync(join(dir, "fw", "big.bin"), big);
    const received: Buffer[] = [];
    const cut = await within(new Promise<Error | undefined>((resolve) => {
      const req = request({
        host: "127.0.0.1", port: ota.port, path: "/fw/big.bin", servername: "localhost", ca: ca.certPem, agent: false,
        minVersion: "TLSv1.2", maxVersion: "TLSv1.2", ciphers: "ECDHE-RSA-AES128-GCM-SHA256", ecdhCurve: "P-256",
      }, (res) => {
        res.once("data", () => ota.dropConnections());
        res.on("data", (chunk: Buffer) => received.push(chunk));
        res.on("end", () => resolve(undefined));
        res.on("error", resolve);
        res.on("aborted", () => resolve(new Error("aborted")));
      });
      req.on("error", resolve);
      req.end();
    }), WAIT_MS, "the cut download to end");
    assert.ok(cut, "the download should have been cut");
    const have = Buffer.concat(received);
    assert.ok(have.length < big.length);
    const rest = await fetchLikeDevice("/fw/big.bin", { range: `bytes=${have.length}-` });
    assert.equal(rest.status, 206);
    assert.ok(Buffer.concat([have, rest.body]).equals(big));
  });

  test("files mode serves exactly the listed files", async () => {
    const listed = await startOtaServer({ files: { "/v2.bin": join(dir, "fw", "1.4.0.bin") }, cert: chainPem(server, ca), key: server.keyPem });
    try {
      assert.deepEqual((await fetchLikeDevice("/v2.bin", {}, "GET", listed.port)).body, image);
      assert.equal((await fetchLikeDevice("/fw/1.4.0.bin", {}, "GET", listed.port)).status, 404);
    } finally {
      await listed.close();
    }
  });
});

describe("ota serve refuses a certificate devices would refuse", () => {
  test("a leaf without its chain", async () => {
    await assert.rejects(startOtaServer({ dir, cert: server.certPem, key: server.keyPem }),
      (error: Error) => error instanceof ServerCertificateError && /does not send its chain/.test(error.message));
  });

  test("a certificate without subjectAltName", async () => {
    const noSan = await issueServerCert(ca, { commonName: "localhost", dnsNames: [], ipAddresses: [] });
    await assert.rejects(startOtaServer({ dir, cert: chainPem(noSan, ca), key: noSan.keyPem }),
      (error: Error) => error instanceof ServerCertificateError && /subjectAltName/.test(error.message));
  });

  test("a key that is not the certificate's", async () => {
    await assert.rejects(startOtaServer({ dir, cert: chainPem(server, ca), key: ca.keyPem }),
      (error: Error) => error instanceof ServerCertificateError && /not the private key/.test(error.message));
  });
});

describe("Range header answers (RFC 9110 §14)", () => {
  test("single ranges are served, anything else is the whole file or 416", () => {
    assert.deepEqual(answerRange("bytes=0-0", 10), { kind: "partial", start: 0, end: 0 });
    assert.deepEqual(answerRange("bytes=-20", 10), { kind: "partial", start: 0, end: 9 });
    assert.deepEqual(answerRange("bytes=0-1,5-6", 10), { kind: "whole" });
    assert.deepEqual(answerRange("items=0-1", 10), { kind: "whole" });
    assert.deepEqual(answerRange("bytes=5-2", 10), { kind: "whole" });
    assert.deepEqual(answerRange("bytes=-", 10), { kind: "whole" });
    assert.deepEqual(answerRange(undefined, 10), { kind: "whole" });
    assert.deepEqual(answerRange("bytes=10-", 10), { kind: "unsatisfiable" });
  });
});
