// embedded:update for the XS engine check, which has no flash: opening an update fails the way
// the board's does when esp_ota_begin refuses.
export default Object.freeze({
  open(options) {
    if (typeof options !== "object" || options === null || !("partition" in options)) throw new Error("no partition");
    throw new Error("begin failed: the XS engine check has no flash to update");
  },
});
