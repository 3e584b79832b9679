// embedded:storage/flash for the XS engine check: partitions can be named, not read or written
// (the check has no flash).
class FlashPartition {
  #path;
  constructor(path) {
    this.#path = path;
  }
  close() {}
  get format() {
    return "buffer";
  }
}
Object.freeze(FlashPartition.prototype);

export default Object.freeze({
  open(options) {
    if (typeof options?.path !== "string") throw new Error("no path");
    return new FlashPartition(options.path);
  },
});
