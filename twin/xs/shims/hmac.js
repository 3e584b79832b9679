// Moddable's `hmac` for the XS engine check: forwards to the twin's HMAC (twin/moddable/hmac.ts),
// which keeps the board's quirks (close() does not reset; the Digest given belongs to the HMAC
// for good) and throws where the board would silently compute a wrong MAC.
const host = __espguardXsHost;

export default class HMAC {
  constructor(h, key) {
    host.construct("hmac", "default", this, [h, key]);
  }
  init(key) {
    host.invoke(this, "init", [key]);
  }
  update(...data) {
    host.invoke(this, "update", data);
  }
  close() {
    return host.invoke(this, "close", []);
  }
  reset() {
    host.invoke(this, "reset", []);
  }
  process(...data) {
    return host.invoke(this, "process", data);
  }
  sign(...args) {
    return host.invoke(this, "sign", args);
  }
  verify(...args) {
    return host.invoke(this, "verify", args);
  }
}
Object.freeze(HMAC.prototype);
host.register("hmac", "default", HMAC);
