// Moddable's TLS socket throws handshake and certificate failures from inside the TCP socket's
// callbacks; unhandled, they abort the VM and the board resets. The TLS socket builds its TCP
// socket from the class it is given, so a subclass whose callbacks catch is where they can be
// contained and turned into a reason.
import TCP from "embedded:io/socket/tcp";

type Callback = ((this: TCP, count: number) => void) | undefined;

export type FailureHandler = (error: unknown) => void;

/** The failure's reason: the TLS layer's `reason` when it names one, else its message. */
export function failureReason(error: unknown): string {
  const reason = (error as { reason?: unknown } | null)?.reason;
  if (typeof reason === "string") return reason;
  return error instanceof Error ? error.message : String(error);
}

export function containedTcp(onFailure: FailureHandler): typeof TCP {
  const guard = (callback: Callback): Callback =>
    callback &&
    function (this: TCP, count: number) {
      try {
        callback.call(this, count);
      } catch (error) {
        onFailure(error);
      }
    };
  return class ContainedTCP extends TCP {
    constructor(options: ConstructorParameters<typeof TCP>[0]) {
      const callbacks = options as { onReadable?: Callback; onWritable?: Callback };
      super({ ...options, onReadable: guard(callbacks.onReadable), onWritable: guard(callbacks.onWritable) } as ConstructorParameters<typeof TCP>[0]);
    }
  };
}
