// espguard firmware entry: read the provisioned identity, join the provisioned Wi-Fi, reach the
// broker over mutual TLS, report status, send signed telemetry, and (when provisioned for burn-in)
// read one's own telemetry back.
import { emit } from "diag/events";
import { DeviceConfigError, readDeviceConfig } from "link/device-config";
import { Link } from "link/link";
import { readWifiNetworks, WifiCredentialsError } from "net/credentials";
import { NetManager } from "net/manager";
import { startOtaAgent } from "ota/agent";
import { startReporter } from "telemetry/reporter";

function start(): void {
  let device;
  try {
    device = readDeviceConfig();
  } catch (error) {
    if (!(error instanceof DeviceConfigError)) throw error;
    emit("unprovisioned", { key: error.key, message: error.message });
    return;
  }
  const telemetry = `devices/${device.deviceId}/telemetry`;
  emit("boot", { device: device.deviceId, broker: `${device.brokerHost}:${device.brokerPort}`, pinned: device.pins !== undefined });
  const link = new Link(device);
  if (device.selfTest) link.follow(telemetry);
  link.subscribe({
    onClock(result) {
      emit("clock", { source: result.source, now: Date.now(), ...(result.rejectedMs === undefined ? {} : { rejected: result.rejectedMs }) });
    },
    onReached() {
      emit("broker-reached", { device: device.deviceId });
    },
    onSubscribed(granted) {
      emit("subscribed", { granted: granted.join(",") });
      if (device.selfTest) link.publish(telemetry, ArrayBuffer.fromString(JSON.stringify({ selftest: device.deviceId })), 1);
    },
    onDelivered(topic) {
      emit("published", { topic });
    },
    onDropped(topic, dropped) {
      emit("outbox-dropped", { topic, dropped });
    },
    onMessage(topic, payload) {
      emit("message", { topic, payload: String.fromArrayBuffer(payload) });
    },
    onDown(reason, detail, retryMs) {
      emit("link-down", { reason, detail, retryMs });
    },
  });
  // the boot guard starts with the agent, before any network: its deadline counts from boot (docs/wifi.md)
  startOtaAgent(device, link);
  startReporter(device, link);
  let networks;
  try {
    networks = readWifiNetworks();
  } catch (error) {
    if (!(error instanceof WifiCredentialsError)) throw error;
    emit("wifi-unprovisioned", { key: error.key, message: error.message });
    return;
  }
  const net = new NetManager(networks);
  net.subscribe({
    onJoining(ssid, attempt) {
      emit("wifi-joining", { ssid, attempt });
    },
    onUp(ip, ssid) {
      emit("wifi-up", { ip, ssid });
      link.start();
      link.networkUp();
    },
    onDown(reason, ssid, retryMs) {
      emit("wifi-down", { reason, ssid, retryMs });
      link.networkDown();
    },
  });
  net.start();
}

start();
