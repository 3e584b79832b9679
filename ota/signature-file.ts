// A signature made elsewhere (openssl, an HSM, a KMS) as the raw r ‖ s the image carries. Such
// tools write DER; some write the raw 64 bytes. A DER signature says its own length in its second
// byte, which tells the two apart.
import { SIGNATURE_SIZE } from "../modules/ota/trusted-key.ts";
import { rawSignatureFromDer, SignatureFormatError } from "./signature-der.ts";

export function rawSignature(bytes: Uint8Array): Uint8Array {
  const looksDer = bytes[0] === 0x30 && bytes.length >= 2 && bytes[1]! + 2 === bytes.length;
  if (looksDer) return rawSignatureFromDer(bytes);
  if (bytes.length === SIGNATURE_SIZE) return bytes;
  throw new SignatureFormatError(`a signature file holds raw r ‖ s (${SIGNATURE_SIZE} bytes) or a DER ECDSA signature; ` +
    `this one is ${bytes.length} bytes and neither (a hex or base64 text file must be decoded first)`);
}
