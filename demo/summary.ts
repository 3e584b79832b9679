// The closing table: per device, the firmware it runs, what the verifier made of its telemetry and
// how each release went.
import type { DeviceTally } from "./verifier-tap.ts";

export interface DeviceRow {
  readonly device: string;
  readonly version: string;
  readonly state: string;
  readonly tally: DeviceTally;
  readonly ota: readonly string[];
}

export function summaryTable(rows: readonly DeviceRow[]): string {
  const header = ["device", "firmware", "accepted", "rejected (reason)", "OTA"];
  const body = rows.map((row) => {
    const rejects = Object.entries(row.tally.rejected).filter(([, n]) => (n ?? 0) > 0).map(([reason, n]) => `${reason} ${n}`);
    return [row.device, `${row.version} ${row.state}`, String(row.tally.accepted), rejects.length === 0 ? "0" : rejects.join(", "), row.ota.join("; ")];
  });
  const widths = header.map((title, i) => Math.max(title.length, ...body.map((cells) => cells[i]!.length)));
  const line = (cells: readonly string[]) => `  ${cells.map((cell, i) => cell.padEnd(widths[i]!)).join("  ").trimEnd()}`;
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...body.map(line)].join("\n");
}
