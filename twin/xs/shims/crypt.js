// Moddable's `crypt` for the XS engine check. Digest is native C on a board, so this one forwards
// every call to the twin's Digest (twin/moddable/crypt.ts) on the host: same results, same refusals,
// and XS's meter counts only the firmware's own JavaScript around it. Only Digest is stood in
// for, like the twin: an import of another `crypt` export fails at bundle time, naming it.
const host = __espguardXsHost;

export class Digest {
  constructor(type) {
    host.construct("crypt", "Digest", this, [type]);
  }
  write(data) {
    host.invoke(this, "write", [data]);
  }
  update(data) {
    host.invoke(this, "update", [data]);
  }
  close(more) {
    return host.invoke(this, "close", [more]);
  }
  reset() {
    host.invoke(this, "reset", []);
  }
  process(...data) {
    return host.invoke(this, "process", data);
  }
  get blockSize() {
    return host.read(this, "blockSize");
  }
  get outputSize() {
    return host.read(this, "outputSize");
  }
}
Object.freeze(Digest.prototype);
host.register("crypt", "Digest", Digest);

export default Object.freeze({ Digest });
