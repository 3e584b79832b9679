// QoS 1 messages waiting for their PUBACK. They stay here across link loss and are sent again
// (DUP set) on the next session, so a broker restart loses nothing; the box is bounded, and when
// it is full the oldest message is dropped and counted, never silently. Packet ids are ours and
// wrap within 1–65535: Moddable's client counts its own ids up without wrapping.
export interface OutboxEntry {
  readonly id: number;
  readonly topic: string;
  readonly payload: ArrayBuffer;
  readonly retain: boolean;
  /** sent at least once (the next send sets DUP) */
  sent: boolean;
}

export class OutboxError extends Error {
  override name = "OutboxError";
}

const MAX_ID = 0xffff;

export class Outbox {
  #entries: OutboxEntry[] = [];
  #capacity: number;
  #nextId = 1;
  #dropped = 0;

  constructor(capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1 || capacity >= MAX_ID)
      throw new OutboxError(`outbox capacity ${capacity}: an integer 1–65534 (config.espguard.outbox)`);
    this.#capacity = capacity;
  }

  get size(): number {
    return this.#entries.length;
  }

  /** Messages dropped because the box was full, since boot. */
  get dropped(): number {
    return this.#dropped;
  }

  /** Queues a message; returns the entry it had to drop to make room, if any. */
  add(topic: string, payload: ArrayBuffer, retain: boolean): OutboxEntry | undefined {
    const dropped = this.#entries.length >= this.#capacity ? this.#entries.shift() : undefined;
    if (dropped) this.#dropped++;
    this.#entries.push({ id: this.#allocate(), topic, payload, retain, sent: false });
    return dropped;
  }

  /** Takes a message off on its PUBACK; false for an id not waiting (a late or duplicate ack). */
  acknowledge(id: number): boolean {
    const index = this.#entries.findIndex((entry) => entry.id === id);
    if (index < 0) return false;
    this.#entries.splice(index, 1);
    return true;
  }

  /** Messages in order, oldest first. */
  entries(): readonly OutboxEntry[] {
    return this.#entries;
  }

  /** A packet id for another packet of this session (a SUBSCRIBE) that no waiting message holds. */
  allocateId(): number {
    return this.#allocate();
  }

  #allocate(): number {
    for (;;) {
      const id = this.#nextId;
      this.#nextId = id === MAX_ID ? 1 : id + 1;
      if (!this.#entries.some((entry) => entry.id === id)) return id;
    }
  }
}
