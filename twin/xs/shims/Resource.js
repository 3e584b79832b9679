// Moddable's `Resource` for the XS engine check: the resources the runner was given stand in for
// those the manifest would put in the image.
const host = __espguardXsHost;

export default class Resource {
  constructor(path) {
    if (typeof path !== "string") throw new TypeError("Resource: path must be a string");
    const [bytes] = host.call("resource.read", { path }).blobs;
    // On a board this is a read-only host buffer in flash; here it is a fresh ArrayBuffer with the
    // same bytes, so a write into it goes unnoticed rather than failing.
    return bytes;
  }
  static exists(path) {
    return host.call("resource.exists", { path: String(path) }).value;
  }
}
