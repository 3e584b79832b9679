// `ota serve`: the HTTPS file server devices download images from. Range requests (206 / 416) let
// an updater resume after link loss; a strong ETag and If-Range make sure a resumed download
// continues the same file. The TLS setup is the device's (DESIGN.md §3): TLS 1.2 offered, ECDHE
// with RSA, and the certificate chain sent.
import { createHash } from "node:crypto";
import { createReadStream, readFileSync, realpathSync, statSync } from "node:fs";
import { createServer, type Server } from "node:https";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { join, sep } from "node:path";
import { answerRange } from "./http-range.ts";
import { checkServerCertificate } from "./serve-cert.ts";

export interface OtaServerOptions {
  /** Serve every regular file below this folder, by its relative path. */
  readonly dir?: string;
  /** Or exactly these files: URL path (e.g. "/fw/1.4.0.bin") → file. */
  readonly files?: Readonly<Record<string, string>>;
  /** PEM: the server certificate, then the CA certificates that issued it. */
  readonly cert: string;
  /** PEM private key of the server certificate. */
  readonly key: string;
  /** Default 0: any free port. */
  readonly port?: number;
  /** Default 127.0.0.1; "0.0.0.0" for devices on the network. */
  readonly host?: string;
  /** Called once per finished request with a one-line summary. */
  readonly log?: (line: string) => void;
}

export interface ServedRequest {
  readonly method: string;
  readonly path: string;
  readonly range: string | undefined;
  readonly status: number;
  /** Body bytes read from the file for this response; less than announced when the client went away. */
  readonly bytes: number;
}

export interface OtaServer {
  readonly host: string;
  readonly port: number;
  /** Every request answered so far, oldest first. */
  readonly requests: readonly ServedRequest[];
  /** https://host:port + path */
  url(path: string): string;
  /** Cuts every open connection, as a link loss would (the server keeps listening). */
  dropConnections(): void;
  close(): Promise<void>;
}

export class OtaServeError extends Error {
  readonly name = "OtaServeError";
}

// Only ECDHE suites: no DHE (Moddable's client fails it) and no static RSA key exchange.
const CIPHERS = [
  "ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-RSA-CHACHA20-POLY1305",
  "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384",
].join(":");

interface FileInfo {
  readonly path: string;
  readonly size: number;
  readonly etag: string;
}

export async function startOtaServer(options: OtaServerOptions): Promise<OtaServer> {
  if ((options.dir === undefined) === (options.files === undefined))
    throw new OtaServeError("give either dir (serve a folder) or files (serve a fixed list), not both or neither");
  checkServerCertificate(options.cert, options.key);
  const lookup = options.dir !== undefined ? folderLookup(options.dir) : listLookup(options.files!);
  const etags = new Map<string, { mtimeMs: number; size: number; etag: string }>();
  const requests: ServedRequest[] = [];
  const sockets = new Set<Socket>();

  const fileInfo = (path: string): FileInfo | undefined => {
    let stat;
    try {
      stat = statSync(path);
    } catch {
      return undefined;
    }
    if (!stat.isFile()) return undefined;
    const known = etags.get(path);
    if (known && known.mtimeMs === stat.mtimeMs && known.size === stat.size) return { path, size: stat.size, etag: known.etag };
    // A content hash, not size + time: a resumed download must never splice two different images.
    const etag = `"${createHash("sha256").update(readFileSync(path)).digest("hex").slice(0, 32)}"`;
    etags.set(path, { mtimeMs: stat.mtimeMs, size: stat.size, etag });
    return { path, size: stat.size, etag };
  };

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const method = req.method ?? "";
    const path = (req.url ?? "/").split("?")[0]!;
    const range = req.headers.range;
    let bytes = 0;
    res.once("close", () => {
      const entry = { method, path, range, status: res.statusCode, bytes };
      requests.push(entry);
      options.log?.(`${req.socket.remoteAddress ?? "?"} ${method} ${path}${range ? ` (${range})` : ""} → ${res.statusCode}, ` +
        `${bytes} bytes${res.writableFinished ? "" : ", client went away"}`);
    });
    if (method !== "GET" && method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD", "content-length": 0 }).end();
      return;
    }
    const target = lookup(path);
    const file = target === undefined ? undefined : fileInfo(target);
    if (file === undefined) {
      res.writeHead(404, { "content-type": "text/plain", "content-length": 10 }).end("not found\n");
      return;
    }
    const common = { "accept-ranges": "bytes", etag: file.etag, "content-type": "application/octet-stream", "cache-control": "no-cache" };
    const ifRange = req.headers["if-range"];
    const answer = ifRange !== undefined && ifRange !== file.etag ? { kind: "whole" as const } : answerRange(range, file.size);
    if (answer.kind === "unsatisfiable") {
      res.writeHead(416, { ...common, "content-range": `bytes */${file.size}`, "content-length": 0 }).end();
      return;
    }
    const [start, end] = answer.kind === "partial" ? [answer.start, answer.end] : [0, file.size - 1];
    const length = end - start + 1;
    res.writeHead(answer.kind === "partial" ? 206 : 200, {
      ...common,
      "content-length": length,
      ...(answer.kind === "partial" ? { "content-range": `bytes ${start}-${end}/${file.size}` } : {}),
    });
    if (method === "HEAD" || length === 0) {
      res.end();
      return;
    }
    const stream = createReadStream(file.path, { start, end });
    stream.on("data", (chunk) => (bytes += chunk.length));
    stream.on("error", () => res.destroy());
    res.once("close", () => stream.destroy());
    stream.pipe(res);
  };

  const server: Server = createServer({
    cert: options.cert,
    key: options.key,
    minVersion: "TLSv1.2",
    ciphers: CIPHERS,
    honorCipherOrder: true,
  }, handle);
  // A device that cannot connect shows up here, not as a request: say why on the operator's terminal.
  server.on("tlsClientError", (error: Error, socket: Socket) => {
    options.log?.(`${socket.remoteAddress ?? "?"} TLS handshake failed: ${error.message}`);
  });
  server.on("connection", (socket: Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  });
  const host = options.host ?? "127.0.0.1";
  await new Promise<void>((resolve, reject) => {
    server.once("error", (error: NodeJS.ErrnoException) =>
      reject(error.code === "EADDRINUSE" ? new OtaServeError(`port ${options.port} on ${host} is in use: choose another with --port`)
        : error.code === "EACCES" ? new OtaServeError(`port ${options.port} needs privileges on this system: use a port above 1023`)
        : error));
    server.listen(options.port ?? 0, host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    host,
    port,
    requests,
    url: (path) => `https://${host.includes(":") ? `[${host}]` : host}:${port}${path.startsWith("/") ? "" : "/"}${path}`,
    dropConnections: () => {
      for (const socket of sockets) socket.destroy();
    },
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      for (const socket of sockets) socket.destroy();
    }),
  };
}

/** URL path → file below `dir`: nothing outside it (no "..", no symlink out), and no dot files, which include half-written outputs. */
function folderLookup(dir: string): (urlPath: string) => string | undefined {
  let root: string;
  try {
    root = realpathSync(dir);
  } catch {
    throw new OtaServeError(`--dir ${dir} does not exist: give the folder that holds the signed images`);
  }
  if (!statSync(root).isDirectory()) throw new OtaServeError(`--dir ${dir} is a file, not a folder`);
  return (urlPath) => {
    let decoded: string;
    try {
      decoded = decodeURIComponent(urlPath);
    } catch {
      return undefined;
    }
    const parts = decoded.split("/").filter((part) => part !== "");
    if (parts.length === 0 || parts.some((part) => part.startsWith(".") || part.includes("\\") || part.includes("\0"))) return undefined;
    try {
      const real = realpathSync(join(root, ...parts));
      return real.startsWith(root + sep) ? real : undefined;
    } catch {
      return undefined;
    }
  };
}

function listLookup(files: Readonly<Record<string, string>>): (urlPath: string) => string | undefined {
  const table = new Map(Object.entries(files));
  return (urlPath) => table.get(urlPath);
}
