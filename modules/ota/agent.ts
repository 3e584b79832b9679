// Puts the boot guard and the updater on the device's link: the guard learns when the broker is
// reached, the updater gets release messages, and both report on devices/<id>/ota/status
// (QoS 1, so a status waits in the link's outbox while the link is down).
import Timer from "timer";
import OtaState from "espguard/ota-state";
import config from "mc/config";
import { emit } from "diag/events";
import { BootGuard } from "boot/guard";
import type { DeviceConfig } from "link/device-config";
import type { Link } from "link/link";
import { toTargetChip } from "ota/image-format";
import { bootDeadlineMs, OtaConfigError, readOtaKey } from "ota/ota-config";
import { encodeStatus, type OtaStatus, otaStatusTopic } from "ota/status";
import { OtaUpdater } from "ota/updater";

/** Longest wait for the broker to take the "rebooting" status before restarting anyway. */
const REBOOT_GRACE_MS = 3000;

export function startOtaAgent(device: DeviceConfig, link: Link): void {
  const topic = otaStatusTopic(device.deviceId);
  const report = (status: OtaStatus): void => {
    emit("ota-status", status);
    link.publish(topic, encodeStatus(status), 1);
  };
  const guard = new BootGuard({ deadlineMs: bootDeadlineMs(), report });
  guard.start();
  try {
    readOtaKey();
  } catch (error) {
    if (!(error instanceof OtaConfigError)) throw error;
    emit("ota-disabled", { key: error.key, message: error.message });
    link.subscribe({ onReached: () => guard.brokerReached() });
    return;
  }
  const espguard = config.espguard as { otaTarget: string; dnsServers: string[] };
  let restarting = false;
  const restart = (): void => {
    if (restarting) return;
    restarting = true;
    link.stop();
    OtaState.restart();
  };
  const updater = new OtaUpdater({
    device,
    dnsServers: espguard.dnsServers,
    target: toTargetChip(espguard.otaTarget),
    report,
    mayUpdate: () => !guard.pending,
    onInstalled() {
      link.subscribe({ onDelivered: (delivered) => delivered === topic && link.queued === 0 && restart() });
      Timer.set(restart, REBOOT_GRACE_MS);
    },
  });
  const ota = `devices/${device.deviceId}/ota`;
  link.follow(ota);
  link.subscribe({
    onReached: () => guard.brokerReached(),
    onMessage(messageTopic, payload) {
      if (messageTopic === ota) updater.offer(payload);
    },
  });
}
