// DER ECDSA signatures (what openssl, HSMs and KMS return) to the raw r ‖ s the image and release
// formats carry. Strict DER only (one encoding per signature, nothing after it), as DESIGN.md §3
// asks of every signature the device sees.
import { SIGNATURE_SIZE } from "../modules/ota/trusted-key.ts";

const SCALAR_SIZE = SIGNATURE_SIZE / 2;

export class SignatureFormatError extends Error {
  readonly name = "SignatureFormatError";
}

function fail(problem: string): never {
  throw new SignatureFormatError(`not a strict DER ECDSA P-256 signature: ${problem}`);
}

function readInteger(der: Uint8Array, at: number): { value: Uint8Array; next: number } {
  if (der[at] !== 0x02) fail(`expected an INTEGER at byte ${at}`);
  const length = der[at + 1];
  if (length === undefined || length === 0 || length > SCALAR_SIZE + 1) fail(`INTEGER length ${length} at byte ${at}`);
  const content = der.subarray(at + 2, at + 2 + length);
  if (content.length !== length) fail("truncated inside an INTEGER");
  if (content[0]! & 0x80) fail("negative INTEGER");
  if (content[0] === 0 && length > 1 && !(content[1]! & 0x80)) fail("INTEGER with a redundant leading zero");
  const value = content[0] === 0 && length > 1 ? content.subarray(1) : content;
  if (value.length > SCALAR_SIZE) fail("INTEGER longer than 32 bytes");
  return { value, next: at + 2 + length };
}

/** Raw r ‖ s from DER `SEQUENCE { INTEGER r, INTEGER s }`; the range of r and s is left to the verifier. */
export function rawSignatureFromDer(der: Uint8Array): Uint8Array {
  if (der[0] !== 0x30) fail("does not start with a SEQUENCE");
  // Two P-256 INTEGERs fit in at most 70 bytes, so the length is always one short-form byte.
  const length = der[1];
  if (length === undefined || length >= 0x80) fail("SEQUENCE length is not a short-form length");
  if (2 + length !== der.length) fail(`SEQUENCE of ${length} bytes in ${der.length} bytes of input`);
  const r = readInteger(der, 2);
  const s = readInteger(der, r.next);
  if (s.next !== der.length) fail("bytes after s inside the SEQUENCE");
  const raw = new Uint8Array(SIGNATURE_SIZE);
  raw.set(r.value, SCALAR_SIZE - r.value.length);
  raw.set(s.value, SIGNATURE_SIZE - s.value.length);
  return raw;
}
