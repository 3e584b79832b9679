// Moddable's `ber` reader for the XS engine check: forwards to the twin's BER (twin/moddable/ber.ts),
// which throws wherever the board's reader would read garbage. What it returns are copies, so a
// view it hands out no longer shares bytes with the buffer it came from.
const host = __espguardXsHost;

export default class BER {
  constructor(buffer) {
    host.construct("ber", "default", this, [buffer]);
  }
  get readable() {
    return host.read(this, "readable");
  }
  getTag() {
    return host.invoke(this, "getTag", []);
  }
  getLength() {
    return host.invoke(this, "getLength", []);
  }
  peek() {
    return host.invoke(this, "peek", []);
  }
  getChunk(n) {
    return host.invoke(this, "getChunk", [n]);
  }
  getSequence() {
    return host.invoke(this, "getSequence", []);
  }
  getInteger() {
    return host.invoke(this, "getInteger", []);
  }
  getBitString() {
    return host.invoke(this, "getBitString", []);
  }
  getOctetString() {
    return host.invoke(this, "getOctetString", []);
  }
  getObjectIdentifier() {
    return host.invoke(this, "getObjectIdentifier", []);
  }
}
Object.freeze(BER.prototype);
host.register("ber", "default", BER);
