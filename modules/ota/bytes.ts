// Byte helpers the OTA format needs on XS, where there is no Buffer and no TextEncoder.
const DIGITS = "0123456789abcdef";

export function toHex(bytes: Uint8Array): string {
  let text = "";
  for (let i = 0; i < bytes.length; i++) text += DIGITS[bytes[i]! >> 4]! + DIGITS[bytes[i]! & 15]!;
  return text;
}

/** Lowercase hex only: hex strings are compared and signed as text, so one value has one spelling. */
export function isHex(text: string, byteLength: number): boolean {
  if (text.length !== 2 * byteLength) return false;
  for (let i = 0; i < text.length; i++) if (DIGITS.indexOf(text[i]!) < 0) return false;
  return true;
}

/** `text` must satisfy isHex(text, text.length / 2). */
export function fromHex(text: string): Uint8Array {
  const bytes = new Uint8Array(text.length >> 1);
  for (let i = 0; i < bytes.length; i++) bytes[i] = (DIGITS.indexOf(text[2 * i]!) << 4) | DIGITS.indexOf(text[2 * i + 1]!);
  return bytes;
}

export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export function toBytes(data: ArrayBuffer | Uint8Array): Uint8Array {
  return data instanceof Uint8Array ? data : new Uint8Array(data);
}
