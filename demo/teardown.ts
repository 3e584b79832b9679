// Everything the demo starts registers how to stop it here, so Ctrl-C at any moment (or a failed
// step) stops the devices, the verifier and mosquitto and removes the temp folders. A resource
// that comes up after teardown began (its start was already under way) is stopped at once.
export class DemoInterrupted extends Error {
  override name = "DemoInterrupted";
  constructor() {
    super("interrupted");
  }
}

type Step = () => Promise<unknown> | unknown;

export class Teardown {
  readonly #steps: { what: string; step: Step }[] = [];
  #closed = false;
  readonly failures: string[] = [];

  get closed(): boolean {
    return this.#closed;
  }

  /** Throws DemoInterrupted once teardown has begun: call before starting anything new. */
  check(): void {
    if (this.#closed) throw new DemoInterrupted();
  }

  add(what: string, step: Step): void {
    if (this.#closed) {
      void this.#run(what, step);
      return;
    }
    this.#steps.push({ what, step });
  }

  /** Runs every step, newest first; a step that fails does not keep the others from running. */
  async run(): Promise<void> {
    this.#closed = true;
    while (this.#steps.length > 0) {
      const { what, step } = this.#steps.pop()!;
      await this.#run(what, step);
    }
  }

  async #run(what: string, step: Step): Promise<void> {
    try {
      await step();
    } catch (error) {
      this.failures.push(`${what}: ${(error as Error).message}`);
    }
  }
}
