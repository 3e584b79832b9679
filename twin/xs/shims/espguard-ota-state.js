// espguard/ota-state for the XS engine check: no otadata there, so the running image is a
// confirmed one ("valid"), and a restart, which the check cannot perform, throws.
const OtaState = {
  state() {
    return "valid";
  },
  markValid() {},
  markInvalidAndReboot() {
    throw new Error("esp_ota_mark_app_invalid_rollback_and_reboot: the XS engine check cannot reboot");
  },
  restart() {
    throw new Error("esp_restart: the XS engine check cannot reboot");
  },
  version() {
    return "0.0.0-xs";
  },
};
export default Object.freeze(OtaState);
