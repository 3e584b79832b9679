// Why the link is down, as a closed set the rest of the firmware, the diagnostics and the tests
// can switch on. TLS layers name their failure in a `reason` field (the twin's TlsError, our
// pinned certificate manager); what Moddable's own TLS code throws carries only a message.
export type LinkReason =
  /** the broker's key is none of the provisioned SPKI pins */
  | "pin-mismatch"
  /** the chain does not lead to the provisioned CA (rogue CA, leaf without its chain) */
  | "untrusted-chain"
  /** a certificate's notAfter is behind the device clock */
  | "expired"
  /** no SAN of the broker certificate matches the broker host */
  | "name-mismatch"
  /** no trusted time yet, or the device clock is before a certificate's notBefore */
  | "clock-unknown"
  /** TCP refused, the TLS handshake or CONNACK refused by the broker */
  | "refused"
  /** no connection (TCP, TLS and CONNACK) within the connect deadline */
  | "timeout"
  /** the broker host name did not resolve */
  | "dns"
  /** an established session ended (broker gone, keepalive, connection reset) */
  | "lost";

const TLS_REASONS: Readonly<Record<string, LinkReason>> = Object.freeze({
  "pin-mismatch": "pin-mismatch",
  "untrusted-chain": "untrusted-chain",
  "leaf-only-chain": "untrusted-chain",
  "expired": "expired",
  "not-yet-valid": "clock-unknown",
  "name-mismatch": "name-mismatch",
  "handshake": "refused",
  "no-server-name": "refused",
  "unsupported-client-key": "refused",
  "protocol": "lost",
});

/** The link reason for an error thrown by the TLS layer. */
export function tlsReason(error: unknown): LinkReason {
  const reason = (error as { reason?: unknown } | null)?.reason;
  if (typeof reason === "string" && reason in TLS_REASONS) return TLS_REASONS[reason]!;
  const message = error instanceof Error ? error.message : String(error);
  // ssl_handshake.js: the certificate manager's verify() returned false
  if (message.includes("auth err")) return "untrusted-chain";
  return "refused";
}

export function describeFailure(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
