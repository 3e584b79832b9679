// "ssl/cert" on the board (manifest_pins.json): Moddable's certificate manager with our pin check.
import CertificateManager from "ssl/cert-base";
import X509 from "x509";
import { pinnedCertificateManager } from "link/pinned-cert";

export default pinnedCertificateManager(CertificateManager, X509);
