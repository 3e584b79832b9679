// Device events as one JSON object per trace line: readable on a serial console, and parsed by
// the twin supervisor and tests.
export type EventValue = string | number | boolean;

export function emit(event: string, detail: Readonly<Record<string, EventValue>> = {}): void {
  trace(JSON.stringify({ espguard: event, ...detail }) + "\n");
}
