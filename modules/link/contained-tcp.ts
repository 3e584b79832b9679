// Moddable's TLS socket throws handshake and certificate failures from inside the TCP socket's
// callbacks, and throws option and trust-anchor failures from its constructor, which the MQTT
// client swallows into a bare onError(). Unhandled, the first abort the VM and the board resets;
// the second lose their reason. The TLS socket builds its TCP socket from the class it is given,
// so subclasses of both are where failures are contained and recorded, along with how far the
// connection got (the MQTT client's onError says none of it).
import TCP from "embedded:io/socket/tcp";
import TLSSocket from "embedded:io/socket/tcp/tls";

type Callback = ((this: unknown, count?: number) => void) | undefined;

export class ConnectionWatch {
  /** the broker's name resolved (the TCP socket was created) */
  resolved = false;
  /** TCP connected (the socket became writable) */
  connected = false;
  /** the first TLS failure, thrown or refused at construction */
  failure: unknown = undefined;
  /** a write found the connection gone */
  writeFailure: unknown = undefined;
  /** called once the name resolved, from inside the MQTT client's DNS callback */
  onResolved: (() => void) | undefined = undefined;
  #onFailure: (error: unknown) => void;
  #onWriteFailure: (error: unknown) => void;

  /** `onWriteFailure` defaults to `onFailure`: either way the connection is unusable. */
  constructor(onFailure: (error: unknown) => void, onWriteFailure: (error: unknown) => void = onFailure) {
    this.#onFailure = onFailure;
    this.#onWriteFailure = onWriteFailure;
  }

  #resolve(): void {
    if (this.resolved) return;
    this.resolved = true;
    this.onResolved?.();
  }

  fail(error: unknown): void {
    if (this.failure !== undefined) return;
    this.failure = error;
    this.#onFailure(error);
  }

  tcp(): typeof TCP {
    const watch = this;
    const guard = (callback: Callback, connects: boolean): Callback =>
      callback &&
      function (this: unknown, count?: number) {
        if (connects) watch.connected = true;
        try {
          callback.call(this, count);
        } catch (error) {
          watch.fail(error);
        }
      };
    return class ContainedTCP extends TCP {
      constructor(options: ConstructorParameters<typeof TCP>[0]) {
        watch.#resolve();
        const callbacks = options as { onReadable?: Callback; onWritable?: Callback; onError?: Callback };
        super({
          ...options,
          onReadable: guard(callbacks.onReadable, false),
          onWritable: guard(callbacks.onWritable, true),
          onError: guard(callbacks.onError, false),
        } as ConstructorParameters<typeof TCP>[0]);
      }
    };
  }

  tls(): typeof TLSSocket {
    const watch = this;
    return class ContainedTLS extends TLSSocket {
      constructor(options: ConstructorParameters<typeof TLSSocket>[0]) {
        watch.#resolve();
        try {
          super(options);
        } catch (error) {
          watch.fail(error);
          throw error;
        }
      }

      // The MQTT client also writes from its own timers (queued acks, keepalive), where a throw
      // from a connection that died since aborts the VM. Its socket contract has an answer for a
      // failed connection: write returns undefined. The session ends on the spot, so a write
      // refused for any other reason cannot leave the client stalled either.
      override write(data: ArrayBuffer | ArrayBufferView, options?: Parameters<TLSSocket["write"]>[1]): number {
        try {
          return super.write(data, options);
        } catch (error) {
          if (watch.writeFailure === undefined) {
            watch.writeFailure = error;
            watch.#onWriteFailure(error);
          }
          return undefined as unknown as number;
        }
      }
    };
  }
}
