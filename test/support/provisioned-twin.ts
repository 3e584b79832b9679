// A twin device flashed the way a factory station flashes a board with `espguard device provision`
// output: the firmware into its app slot, then the provisioned NVS image, byte for byte, at the
// nvs partition's offset.
import { FlashFile } from "../../twin/flash/flash-file.ts";
import { NvsPartition } from "../../twin/flash/nvs.ts";
import { PartitionTable } from "../../twin/flash/partition-table.ts";
import { createTwinDevice, firmwareDomain } from "../../twin/device/provision.ts";
import type { TwinDevice } from "../../twin/device/supervisor.ts";
import { OtaConfigKey } from "../../modules/ota/ota-config.ts";

export interface FactoryFlash {
  device: TwinDevice;
  /** DER SPKI of the key that signed the device's factory image: what `--ota-key` must provision. */
  otaKeySpki: Uint8Array;
  /** Replaces the nvs partition with `image`, as `esptool.py write_flash <nvs offset> <image>` does. */
  flashNvs(image: Uint8Array): void;
}

export function factoryTwin(name: string, stateDir: string, bundle: string): FactoryFlash {
  const device = createTwinDevice({ name, stateDir, bundle, preferences: {} });
  const nvs = PartitionTable.load().require("nvs");
  const flash = FlashFile.open(device.flashPath);
  let otaKeySpki: Uint8Array;
  try {
    const key = NvsPartition.open(flash.region(nvs.offset, nvs.size)).get(firmwareDomain(), OtaConfigKey.signingKey, "blob");
    if (key?.type !== "blob") throw new Error("the twin's factory flash holds no OTA signing key");
    otaKeySpki = key.value;
  } finally {
    flash.close();
  }
  return {
    device,
    otaKeySpki,
    flashNvs(image) {
      if (image.length !== nvs.size) throw new Error(`NVS image is ${image.length} bytes; the nvs partition is ${nvs.size}`);
      const target = FlashFile.open(device.flashPath);
      try {
        target.erase(nvs.offset, nvs.size);
        target.write(nvs.offset, image);
      } finally {
        target.close();
      }
    },
  };
}
