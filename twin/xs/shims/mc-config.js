// Moddable's `mc/config`: the manifest's "config" section. A preloaded module on a board, so
// read-only all the way down.
const host = __espguardXsHost;

export default Object.freeze(host.call("config", {}).value, true);
