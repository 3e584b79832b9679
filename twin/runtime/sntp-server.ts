// A local SNTP responder on a loopback UDP port: answers each client request with the time
// `now()` returns, echoing the client's transmit timestamp as RFC 4330 requires, so twin devices
// (the demo's, the tests') set their clocks without the internet, to any wall-clock time.
import { createSocket } from "node:dgram";

export interface NtpServer {
  readonly port: number;
  /** the address a device is provisioned with */
  readonly spec: string;
  /** requests answered so far */
  readonly answered: number;
  stop(): Promise<void>;
}

const NTP_TO_UNIX_S = 2208988800;

export async function startNtpServer(now: () => number = Date.now): Promise<NtpServer> {
  const socket = createSocket("udp4");
  let answered = 0;
  socket.on("message", (request, remote) => {
    if (request.length < 48 || (request[0]! & 7) !== 3) return;
    const reply = Buffer.alloc(48);
    reply[0] = (0 << 6) | (4 << 3) | 4; // no leap warning, version 4, server
    reply[1] = 2; // stratum
    const ms = now();
    const seconds = Math.floor(ms / 1000) + NTP_TO_UNIX_S;
    const fraction = Math.floor(((ms % 1000) / 1000) * 0x100000000);
    request.copy(reply, 24, 40, 48);
    for (const at of [16, 32, 40]) {
      reply.writeUInt32BE(seconds >>> 0, at);
      reply.writeUInt32BE(fraction >>> 0, at + 4);
    }
    answered++;
    socket.send(reply, remote.port, remote.address);
  });
  await new Promise<void>((resolve, reject) => {
    socket.once("error", reject);
    socket.bind(0, "127.0.0.1", () => resolve());
  });
  const port = socket.address().port;
  return {
    port,
    spec: `127.0.0.1:${port}`,
    get answered() {
      return answered;
    },
    stop: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}
