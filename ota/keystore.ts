// OTA signing keys on disk: `ota keygen` writes them, the other commands load them. A private key
// is a PKCS#8 PEM file of mode 0600; a public key is given to devices as DER SubjectPublicKeyInfo,
// and its key id (SHA-256 of that DER) is what images and releases name.
import { statSync } from "node:fs";
import { join } from "node:path";
import { generateSigningKey, privateKeyPem, publicKeyPem, publicKeySpki, type SigningKey, signingKeyFromPem, SigningKeyError } from "./signing-key.ts";
import { checkOutput, readInput, readTextInput, writeOutput } from "./files.ts";

export interface KeyFiles {
  readonly privatePem: string;
  readonly publicPem: string;
  readonly publicDer: string;
  readonly keyId: string;
}

export function keyFiles(dir: string, name: string): KeyFiles {
  return {
    privatePem: join(dir, `${name}.key.pem`),
    publicPem: join(dir, `${name}.pub.pem`),
    publicDer: join(dir, `${name}.pub.der`),
    keyId: join(dir, `${name}.kid`),
  };
}

/** Makes a P-256 key pair and writes its four files; nothing is written if any of them exists (without force). */
export function writeNewKey(files: KeyFiles, force: boolean): SigningKey {
  for (const path of Object.values(files)) checkOutput(path, force, "ota keygen");
  const key = generateSigningKey();
  writeOutput(files.privatePem, privateKeyPem(key), "ota keygen", { force, mode: 0o600 });
  writeOutput(files.publicPem, publicKeyPem(key.spki), "ota keygen", { force });
  writeOutput(files.publicDer, key.spki, "ota keygen", { force });
  writeOutput(files.keyId, `${key.keyId}\n`, "ota keygen", { force });
  return key;
}

/**
 * The signing key in `path`. Like ssh, refuses a key file others can read: a signing key that leaked
 * once can sign firmware for the whole fleet until every device is re-provisioned.
 */
export function loadSigningKey(path: string, what: string): SigningKey {
  const pem = readTextInput(path, what);
  const mode = statSync(path).mode & 0o777;
  if ((mode & 0o077) !== 0)
    throw new SigningKeyError(`${what}: ${path} is readable by other users (mode ${mode.toString(8).padStart(4, "0")}); ` +
      `a signing key must be private: chmod 600 ${path}`);
  try {
    return signingKeyFromPem(pem);
  } catch (error) {
    throw new SigningKeyError(`${what}: ${path}: ${(error as Error).message}`);
  }
}

/** DER SubjectPublicKeyInfo of the P-256 public key in `path`, given as PEM or DER. */
export function loadPublicKey(path: string, what: string): Uint8Array {
  const bytes = readInput(path, what);
  const text = new TextDecoder("latin1").decode(bytes);
  try {
    return publicKeySpki(text.includes("-----BEGIN ") ? text : bytes);
  } catch (error) {
    throw new SigningKeyError(`${what}: ${path}: ${(error as Error).message}`);
  }
}
