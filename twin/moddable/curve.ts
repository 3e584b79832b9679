// Moddable's "curve" (modules/crypt/etc/curve.js): names a curve for ECDSA. The board returns a
// half-built object for an unknown name, which fails later and far away; the twin throws here.
import { curveDomains, DOMAINS, type CurveDomain } from "./ec-arith.ts";

export default class Curve {
  readonly #domain: CurveDomain;

  constructor(name: "secp256r1" | "secp384r1") {
    const domain = Object.hasOwn(DOMAINS, name) ? DOMAINS[name] : undefined;
    if (!domain) throw new Error(`new Curve(${JSON.stringify(name)}): Moddable knows only ${Object.keys(DOMAINS).join(" and ")}`);
    this.#domain = domain;
    curveDomains.set(this, domain);
  }

  get orderSize(): number {
    return this.#domain.orderSize;
  }
}

Object.freeze(Curve.prototype);
Object.freeze(Curve);
