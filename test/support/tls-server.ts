// A node:tls server on 127.0.0.1 standing in for the broker in TLS tests: echoes what it
// receives, records what each handshake negotiated, and resumes sessions by id (the only kind
// a Moddable device offers) so session-cache behaviour can be tested.
import { createServer, type Server, type TlsOptions } from "node:tls";
import type { AddressInfo, Socket } from "node:net";

export interface Handshake {
  /** CN of the client certificate, if one was presented */
  clientCommonName: string | undefined;
  protocol: string | null;
  cipher: string;
  resumed: boolean;
}

export interface TlsServer {
  readonly port: number;
  readonly handshakes: Handshake[];
  /** client handshake failures the server saw */
  readonly clientErrors: Error[];
  close(): Promise<void>;
}

export async function startTlsServer(options: TlsOptions): Promise<TlsServer> {
  const sessions = new Map<string, Buffer>();
  const handshakes: Handshake[] = [];
  const clientErrors: Error[] = [];
  const open = new Set<Socket>();
  const server: Server = createServer(options, (socket) => {
    const peer = socket.getPeerCertificate();
    const commonName = peer && "subject" in peer ? peer.subject?.CN : undefined;
    handshakes.push({
      clientCommonName: Array.isArray(commonName) ? commonName[0] : commonName,
      protocol: socket.getProtocol(),
      cipher: socket.getCipher().name,
      resumed: socket.isSessionReused(),
    });
    socket.on("error", () => {});
    socket.pipe(socket);
  });
  server.on("connection", (socket: Socket) => {
    open.add(socket);
    socket.on("close", () => open.delete(socket));
    socket.on("error", () => {});
  });
  server.on("tlsClientError", (error) => clientErrors.push(error));
  server.on("newSession", (id: Buffer, data: Buffer, done: () => void) => {
    sessions.set(id.toString("hex"), data);
    done();
  });
  server.on("resumeSession", (id: Buffer, done: (error: Error | null, data: Buffer | null) => void) => {
    done(null, sessions.get(id.toString("hex")) ?? null);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as AddressInfo).port,
    handshakes,
    clientErrors,
    close() {
      for (const socket of open) socket.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
