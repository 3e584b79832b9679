// espguard/ota-state on ESP32: the ESP-IDF app-rollback calls Moddable does not expose
// (DESIGN.md §2), as host functions in ota-state.c. The twin implements the same module in
// twin/moddable/ota-state.ts; types/moddable/ota-state.d.ts declares it.
function state() @ "xs_espguard_ota_state";
function markValid() @ "xs_espguard_ota_mark_valid";
function markInvalidAndReboot() @ "xs_espguard_ota_mark_invalid";
function restart() @ "xs_espguard_restart";
function version() @ "xs_espguard_app_version";

export default Object.freeze({ state, markValid, markInvalidAndReboot, restart, version });
