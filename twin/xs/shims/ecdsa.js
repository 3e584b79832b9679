// Moddable's `ecdsa` for the XS engine check: forwards to the twin's ECDSA (twin/moddable/ecdsa.ts),
// which refuses every signature the board's verify would hang on or wrongly accept. On a board the
// curve arithmetic is native C (modules/crypt/arith), so XS's meter leaving it out matches.
const host = __espguardXsHost;

export default class ECDSA {
  constructor(key, curve) {
    host.construct("ecdsa", "default", this, [key, curve]);
  }
  verify(H, sig, asn1) {
    return host.invoke(this, "verify", [H, sig, asn1]);
  }
  sign(H, asn1) {
    return host.invoke(this, "sign", [H, asn1]);
  }
}
Object.freeze(ECDSA.prototype);
host.register("ecdsa", "default", ECDSA);
