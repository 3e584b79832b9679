// The demo's v3: a signed, well-formed release with a real defect. It dials the broker one port
// off, so it never reaches it, and the boot guard gives it up at the deadline.
import { readDeviceConfig } from "link/device-config";
import { Link } from "link/link";
import { startOtaAgent } from "ota/agent";

const provisioned = readDeviceConfig();
const device = { ...provisioned, brokerPort: provisioned.brokerPort + 1 };
const link = new Link(device);
startOtaAgent(device, link);
link.start();
