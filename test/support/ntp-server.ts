// Tests share the SNTP responder the demo uses.
export { startNtpServer, type NtpServer } from "../../twin/runtime/sntp-server.ts";
