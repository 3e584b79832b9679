// SPKI SHA-256 pins: base64 of SHA-256 over a certificate's DER subjectPublicKeyInfo (the same
// value as `openssl x509 -pubkey | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary
// | base64`). One implementation for the board's pinned certificate manager, the twin's TLS
// socket and the host tools, so a pin computed at provisioning is the pin the device checks.
import { Digest } from "crypt";

export class PinError extends Error {
  override name = "PinError";
}

const PIN_BYTES = 32;
const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

function base64(bytes: Uint8Array): string {
  let out = "";
  for (let i = 0; i < bytes.length; i += 3) {
    const a = bytes[i]!, b = bytes[i + 1], c = bytes[i + 2];
    const n = (a << 16) | ((b ?? 0) << 8) | (c ?? 0);
    out += ALPHABET[(n >> 18) & 63]! + ALPHABET[(n >> 12) & 63]!;
    out += b === undefined ? "=" : ALPHABET[(n >> 6) & 63]!;
    out += c === undefined ? "=" : ALPHABET[n & 63]!;
  }
  return out;
}

/** A DER element's extent: where its contents start and end. */
function element(der: Uint8Array, at: number, tag: number, what: string): { start: number; end: number } {
  if (at + 2 > der.length || der[at] !== tag) throw new PinError(`certificate: expected ${what} at byte ${at}`);
  let length = der[at + 1]!;
  let start = at + 2;
  if (length & 0x80) {
    const count = length & 0x7f;
    if (count < 1 || count > 3 || start + count > der.length) throw new PinError(`certificate: bad length of ${what}`);
    length = 0;
    for (let i = 0; i < count; i++) length = (length << 8) | der[start + i]!;
    start += count;
  }
  if (start + length > der.length) throw new PinError(`certificate: ${what} runs past the end`);
  return { start, end: start + length };
}

/** Skips any one element. */
function after(der: Uint8Array, at: number, what: string): number {
  if (at >= der.length) throw new PinError(`certificate: ${what} missing`);
  return element(der, at, der[at]!, what).end;
}

/** The DER bytes of a certificate's subjectPublicKeyInfo (RFC 5280 §4.1). */
export function subjectPublicKeyInfo(certificate: ArrayBuffer | Uint8Array): Uint8Array {
  const der = certificate instanceof Uint8Array ? certificate : new Uint8Array(certificate);
  const cert = element(der, 0, 0x30, "Certificate");
  const tbs = element(der, cert.start, 0x30, "tbsCertificate");
  let at = tbs.start;
  if (der[at] === 0xa0) at = after(der, at, "version");
  at = after(der, at, "serialNumber");
  at = after(der, at, "signature");
  at = after(der, at, "issuer");
  at = after(der, at, "validity");
  at = after(der, at, "subject");
  const spki = element(der, at, 0x30, "subjectPublicKeyInfo");
  return der.subarray(at, spki.end);
}

/** The pin of a DER SubjectPublicKeyInfo: SHA-256, base64. */
export function pinOfSpki(spki: Uint8Array): string {
  return base64(new Uint8Array(new Digest("SHA256").process(new Uint8Array(spki).buffer)));
}

/** The certificate's SPKI pin, base64. */
export function spkiPin(certificate: ArrayBuffer | Uint8Array): string {
  return pinOfSpki(subjectPublicKeyInfo(certificate));
}

/** Checks a pin's form: base64 of exactly 32 bytes. */
export function checkPin(pin: string): string {
  if (!/^[A-Za-z0-9+/]{43}=$/.test(pin))
    throw new PinError(`pin ${JSON.stringify(pin)} is not base64 of a ${PIN_BYTES}-byte SHA-256 (44 characters ending in "="); compute it with espguard's spkiPin or openssl`);
  return pin;
}

/**
 * Pins as provisioned: primary first, then backups, separated by spaces or commas. A backup is
 * the key the broker rotates to next; both are accepted so rotation never strands a device.
 */
export function parsePins(text: string): readonly string[] {
  const pins = text.split(/[\s,]+/).filter((pin) => pin.length > 0).map(checkPin);
  if (pins.length === 0) throw new PinError("no pins: provision at least the broker's current SPKI pin and a backup");
  return Object.freeze(pins);
}

/** Whether the leaf certificate's public key is one of the pins. */
export function pinMatches(pins: readonly string[], leaf: ArrayBuffer | Uint8Array): boolean {
  const pin = spkiPin(leaf);
  return pins.includes(pin);
}
