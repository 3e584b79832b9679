// espguard firmware entry: read the provisioned identity, reach the broker over mutual TLS,
// report status, and (when provisioned for burn-in) read one's own telemetry back.
import { emit } from "diag/events";
import { DeviceConfigError, readDeviceConfig } from "link/device-config";
import { LinkSession } from "link/session";

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
  emit("boot", { device: device.deviceId, broker: `${device.brokerHost}:${device.brokerPort}` });
  const session = new LinkSession(device, {
    onReached() {
      emit("broker-reached", { device: device.deviceId });
      const topics = [`devices/${device.deviceId}/cmd`, `devices/${device.deviceId}/ota`];
      if (device.selfTest) topics.push(telemetry);
      session.subscribe(topics);
    },
    onSubscribed(_id, granted) {
      emit("subscribed", { granted: granted.join(",") });
      if (device.selfTest)
        session.publish(telemetry, ArrayBuffer.fromString(JSON.stringify({ selftest: device.deviceId })), 1);
    },
    onPublished(id) {
      emit("published", { id });
    },
    onMessage(topic, payload) {
      emit("message", { topic, payload: String.fromArrayBuffer(payload) });
    },
    onDown(reason) {
      emit("link-down", { reason });
    },
  });
}

start();
