// Moddable's `curve` for the XS engine check: forwards to the twin's Curve (twin/moddable/curve.ts).
const host = __espguardXsHost;

export default class Curve {
  constructor(name) {
    host.construct("curve", "default", this, [name]);
  }
  get orderSize() {
    return host.read(this, "orderSize");
  }
}
Object.freeze(Curve.prototype);
host.register("curve", "default", Curve);
