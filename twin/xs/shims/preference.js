// Moddable's `preference` on ESP32 NVS, for the XS engine check. The values live host-side
// (seeded by the runner's `preferences` option, changed by firmware's set/delete) and the host
// enforces the ESP32 rules: domain and key at most 15 characters, values boolean, 32-bit integer,
// string or ArrayBuffer. Native on a board, so off XS's meter.
const host = __espguardXsHost;

function text(value, what) {
  if (typeof value !== "string") throw new TypeError(`Preference: ${what} must be a string`);
  return value;
}

const Preference = {
  get: host.native(function get(domain, key) {
    const { value, blobs } = host.call("preference.get", { domain: text(domain, "domain"), key: text(key, "key") });
    if (value === null) return undefined;
    return value.type === "bytes" ? blobs[0] : value.value;
  }),
  set: host.native(function set(domain, key, value) {
    const args = { domain: text(domain, "domain"), key: text(key, "key") };
    if (value instanceof ArrayBuffer) host.call("preference.set", { ...args, type: "bytes" }, [value]);
    else host.call("preference.set", { ...args, type: typeof value, value });
  }),
  delete: host.native(function remove(domain, key) {
    host.call("preference.delete", { domain: text(domain, "domain"), key: text(key, "key") });
  }),
  keys: host.native(function keys(domain) {
    return host.call("preference.keys", { domain: text(domain, "domain") }).value;
  }),
};

export default Preference;
