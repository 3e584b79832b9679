// The certificate `ota serve` presents must be one a device's TLS accepts (DESIGN.md §3): Moddable
// negotiates ECDHE-RSA only, matches the name against SAN entries only, and refuses a server that
// sends its leaf without the chain. Checked at start-up, so a bad setup fails on the operator's
// terminal rather than as a TLS error on every device.
import { createPrivateKey, X509Certificate } from "node:crypto";

export class ServerCertificateError extends Error {
  readonly name = "ServerCertificateError";
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

export function checkServerCertificate(chainPem: string, keyPem: string): void {
  const pems = chainPem.match(PEM_CERT) ?? [];
  if (pems.length === 0) throw new ServerCertificateError("the --cert file holds no PEM certificate");
  const certs = pems.map((pem) => new X509Certificate(pem));
  const leaf = certs[0]!;
  if (certs.length < 2)
    throw new ServerCertificateError(`the --cert file holds only the server certificate (${leaf.subject.replace(/\n/g, ", ")}): ` +
      "devices refuse a server that does not send its chain; append the issuing CA certificate(s): cat server.pem ca.pem > server-chain.pem");
  if (!leaf.subjectAltName)
    throw new ServerCertificateError("the server certificate has no subjectAltName: devices match the host name against SAN entries only, " +
      "never the CN; reissue it with the host name (DNS) or address (IP) devices use in the release URL");
  if (leaf.publicKey.asymmetricKeyType !== "rsa")
    throw new ServerCertificateError(`the server certificate has a ${leaf.publicKey.asymmetricKeyType} key: devices negotiate ECDHE-RSA only, ` +
      "reissue it with an RSA key (2048 bits)");
  let key;
  try {
    key = createPrivateKey(keyPem);
  } catch (error) {
    throw new ServerCertificateError(`the --key file is not a readable unencrypted PEM private key (${(error as Error).message})`);
  }
  if (!leaf.checkPrivateKey(key))
    throw new ServerCertificateError("the --key file is not the private key of the server certificate (the first certificate in --cert)");
  for (let i = 1; i < certs.length; i++)
    if (!certs[i - 1]!.checkIssued(certs[i]!))
      throw new ServerCertificateError(`certificate ${i + 1} in --cert did not issue certificate ${i}: order the chain leaf first, then its issuers`);
}
