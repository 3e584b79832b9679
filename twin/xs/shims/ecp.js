// Moddable's `ecp` (ECPoint) for the XS engine check: forwards to the twin's (twin/moddable/ecp.ts).
const host = __espguardXsHost;

export default class ECPoint {
  constructor(x, y, identity) {
    host.construct("ecp", "default", this, [x, y, identity]);
  }
  get X() {
    return host.read(this, "X");
  }
  get Y() {
    return host.read(this, "Y");
  }
  isZero() {
    return host.invoke(this, "isZero", []);
  }
  static fromOctetString(os) {
    return host.invokeStatic("ecp", "default", "fromOctetString", [os]);
  }
}
Object.freeze(ECPoint.prototype);
host.register("ecp", "default", ECPoint);
