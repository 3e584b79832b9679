// The emulated ESP32 flash (NOR semantics, operation counting, power cuts) and the partition table
// parser, against gen_esp32part.py's rules and Moddable's own tables.
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import {
  deviceFlash,
  FlashError,
  FlashFile,
  MemoryFlash,
  NoDeviceFlashError,
  PowerCut,
  PROGRAM_PAGE_SIZE,
  SECTOR_SIZE,
  type EmulatedFlash,
} from "../twin/flash/flash-file.ts";
import { DEFAULT_PARTITIONS_CSV, PartitionTable, PartitionTableError, SUBTYPES, TYPES } from "../twin/flash/partition-table.ts";

const dir = mkdtempSync(join(tmpdir(), "espguard-flash-"));
after(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;
const newFile = (size = 16 * SECTOR_SIZE) => FlashFile.create(join(dir, `flash-${files++}.bin`), size);

const kinds: [string, () => EmulatedFlash][] = [
  ["MemoryFlash", () => new MemoryFlash(16 * SECTOR_SIZE)],
  ["FlashFile", () => newFile()],
];

for (const [kind, make] of kinds) {
  describe(kind, () => {
    test("starts erased and writes only clear bits", () => {
      const flash = make();
      assert.deepEqual(flash.read(100, 4), Uint8Array.of(0xff, 0xff, 0xff, 0xff));
      flash.write(100, Uint8Array.of(0xf0, 0x0f, 0xaa, 0x00));
      flash.write(100, Uint8Array.of(0x0f, 0xff, 0x55, 0xff));
      assert.deepEqual(flash.read(100, 4), Uint8Array.of(0x00, 0x0f, 0x00, 0x00));
    });

    test("erase works on whole sectors and sets them to 0xFF", () => {
      const flash = make();
      flash.write(SECTOR_SIZE - 2, Uint8Array.of(1, 2, 3, 4));
      flash.erase(SECTOR_SIZE, SECTOR_SIZE);
      assert.deepEqual(flash.read(SECTOR_SIZE - 2, 4), Uint8Array.of(1, 2, 0xff, 0xff));
      assert.throws(() => flash.erase(100, SECTOR_SIZE), /not sector aligned: flash erases whole 4096-byte sectors/);
      assert.throws(() => flash.erase(0, 100), FlashError);
      assert.throws(() => flash.erase(0, flash.size + SECTOR_SIZE), /outside/);
      assert.throws(() => flash.read(flash.size - 1, 2), /outside/);
      assert.throws(() => flash.write(-1, Uint8Array.of(0)), /outside/);
    });

    test("counts every sector erase and every 256-byte program page", () => {
      const flash = make();
      assert.equal(flash.operations, 0);
      flash.write(0, new Uint8Array(10));
      assert.equal(flash.operations, 1);
      flash.write(PROGRAM_PAGE_SIZE - 10, new Uint8Array(20)); // crosses one page boundary
      assert.equal(flash.operations, 3);
      flash.write(0, new Uint8Array(3 * PROGRAM_PAGE_SIZE)); // three whole pages
      assert.equal(flash.operations, 6);
      flash.erase(0, 3 * SECTOR_SIZE);
      assert.equal(flash.operations, 9);
      flash.read(0, 100);
      assert.equal(flash.operations, 9, "reads are not operations");
    });

    test("a power cut stops operation n before it touches the medium, and everything after it", () => {
      const flash = make();
      flash.write(0, Uint8Array.of(0x0f));
      flash.cutPowerBefore(flash.operations + 1);
      flash.write(1, Uint8Array.of(0x0f));
      assert.throws(() => flash.write(2, Uint8Array.of(0x0f)), (error: unknown) => error instanceof PowerCut && error.operation === 2);
      assert.equal(flash.poweredOff, true);
      assert.throws(() => flash.erase(0, SECTOR_SIZE), PowerCut);
      assert.deepEqual(flash.read(0, 3), Uint8Array.of(0x0f, 0x0f, 0xff));
      assert.equal(flash.operations, 2);
      assert.throws(() => flash.cutPowerBefore(1), /operation 2 is the next one/);
    });

    test("a cut in the middle of a long write tears it at a program page", () => {
      const flash = make();
      flash.cutPowerBefore(1);
      assert.throws(() => flash.write(0, new Uint8Array(2 * PROGRAM_PAGE_SIZE)), PowerCut);
      assert.equal(flash.read(PROGRAM_PAGE_SIZE - 1, 1)[0], 0);
      assert.equal(flash.read(PROGRAM_PAGE_SIZE, 1)[0], 0xff);
    });

    test("a cut in the middle of a long erase leaves the first sectors erased", () => {
      const flash = make();
      flash.write(0, new Uint8Array(2 * SECTOR_SIZE));
      flash.cutPowerBefore(flash.operations + 1);
      assert.throws(() => flash.erase(0, 2 * SECTOR_SIZE), PowerCut);
      assert.equal(flash.read(0, 1)[0], 0xff);
      assert.equal(flash.read(SECTOR_SIZE, 1)[0], 0);
    });

    test("strict bits refuse a write that would set a bit, before programming anything", () => {
      const flash = make();
      const strict = kind === "MemoryFlash" ? new MemoryFlash(flash.size, { strictBits: true }) : FlashFile.open((flash as FlashFile).path, { strictBits: true });
      strict.write(0, new Uint8Array(PROGRAM_PAGE_SIZE + 1).fill(0x0f));
      const data = new Uint8Array(PROGRAM_PAGE_SIZE + 1).fill(0x0f);
      data[PROGRAM_PAGE_SIZE] = 0x1f;
      assert.throws(() => strict.write(0, data), /write at 0x100 would set bits \(0x0f -> 0x1f\); NOR flash can only clear bits: erase the sector first/);
      assert.equal(strict.operations, 2);
      strict.write(0, new Uint8Array(4).fill(0x03));
      assert.deepEqual(strict.read(0, 4), new Uint8Array(4).fill(0x03));
    });

    test("a region is a window with its own bounds; operations count on the flash", () => {
      const flash = make();
      const region = flash.region(2 * SECTOR_SIZE, 2 * SECTOR_SIZE);
      region.write(0, Uint8Array.of(0x12));
      assert.equal(flash.read(2 * SECTOR_SIZE, 1)[0], 0x12);
      region.erase(0, SECTOR_SIZE);
      assert.equal(flash.read(2 * SECTOR_SIZE, 1)[0], 0xff);
      assert.equal(flash.operations, 2);
      assert.throws(() => region.read(2 * SECTOR_SIZE - 1, 2), /region read .* outside/);
      assert.throws(() => region.erase(2 * SECTOR_SIZE, SECTOR_SIZE), /region erase/);
      assert.throws(() => flash.region(100, SECTOR_SIZE), /whole, non-empty sectors/);
    });
  });
}

describe("FlashFile", () => {
  test("writes are in the file when a killed process never got to close it", () => {
    const path = join(dir, "killed.bin");
    FlashFile.create(path, 2 * SECTOR_SIZE).close();
    const script =
      `import { FlashFile } from ${JSON.stringify(new URL("../twin/flash/flash-file.ts", import.meta.url).href)};` +
      `const f = FlashFile.open(${JSON.stringify(path)}); f.write(5000, Uint8Array.of(0x42)); process.kill(process.pid, "SIGKILL");`;
    const child = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script]);
    assert.equal(child.signal, "SIGKILL", child.stderr.toString());
    assert.equal(readFileSync(path)[5000], 0x42);
    const flash = FlashFile.open(path);
    assert.equal(flash.read(5000, 1)[0], 0x42);
    assert.equal(flash.size, 2 * SECTOR_SIZE);
    flash.close();
    assert.throws(() => flash.read(0, 1), /closed/);
  });

  test("create refuses an existing file; open refuses a file that is not whole sectors", () => {
    const path = join(dir, "exists.bin");
    FlashFile.create(path, SECTOR_SIZE).close();
    assert.throws(() => FlashFile.create(path, SECTOR_SIZE), /cannot create flash file .*FlashFile.open opens an existing one/);
    assert.throws(() => FlashFile.create(join(dir, "odd.bin"), 1000), /not a positive multiple of the 4096-byte sector/);
    writeFileSync(join(dir, "short.bin"), new Uint8Array(100));
    assert.throws(() => FlashFile.open(join(dir, "short.bin")), /holds 100 bytes, not whole 4096-byte sectors/);
    assert.throws(() => FlashFile.open(join(dir, "missing.bin")), /cannot open flash file/);
  });

  test("deviceFlash opens ESPGUARD_TWIN_FLASH once, strict about bits, and explains itself when unset", () => {
    const saved = process.env.ESPGUARD_TWIN_FLASH;
    try {
      delete process.env.ESPGUARD_TWIN_FLASH;
      assert.throws(() => deviceFlash("preference"), (error: unknown) => error instanceof NoDeviceFlashError && /preference works only inside a twin device: ESPGUARD_TWIN_FLASH is not set/.test(error.message));
      const path = join(dir, "device.bin");
      FlashFile.create(path, SECTOR_SIZE).close();
      process.env.ESPGUARD_TWIN_FLASH = path;
      const flash = deviceFlash("test");
      assert.equal(deviceFlash("test"), flash);
      assert.equal(flash.strictBits, true);
    } finally {
      if (saved === undefined) delete process.env.ESPGUARD_TWIN_FLASH;
      else process.env.ESPGUARD_TWIN_FLASH = saved;
    }
  });
});

describe("PartitionTable", () => {
  const MODDABLE = "/work/.mirror/Moddable-OpenSource+moddable/repo";
  const moddable = (path: string): string | undefined => {
    try {
      return execFileSync("git", ["--git-dir", MODDABLE, "show", `HEAD:${path}`], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
    } catch {
      return undefined;
    }
  };

  test("the project's table: nvs at 0x9000, otadata, two equal OTA slots of at least 1.5 MB, inside 4 MB", () => {
    const table = PartitionTable.load();
    const nvs = table.require("nvs");
    assert.deepEqual([nvs.type, nvs.subtype, nvs.offset], [TYPES.data, SUBTYPES.data.nvs, 0x9000]);
    assert.ok(nvs.size >= 0x6000);
    const otadata = table.findBySubtype("data", "ota")!;
    assert.equal(otadata.size, 0x2000);
    const ota0 = table.findBySubtype("app", "ota_0")!;
    const ota1 = table.findBySubtype("app", "ota_1")!;
    assert.equal(ota0.size, ota1.size);
    assert.ok(ota0.size >= 1.5 * 1024 * 1024);
    assert.equal(table.findBySubtype("app", "factory"), undefined, "no factory slot: mcconfig would split it");
    assert.ok(table.findBySubtype("data", "phy"));
    assert.equal(table.find("xs"), undefined, "no mods partition");
    for (const p of table.partitions) assert.ok(p.offset + p.size <= 4 * 1024 * 1024 && p.offset % (p.type === TYPES.app ? 0x10000 : 0x1000) === 0);
    assert.match(readFileSync(DEFAULT_PARTITIONS_CSV, "utf8"), /^# /m, "the file explains its choices");
  });

  test("Moddable's own tables parse, with offsets computed as gen_esp32part.py does", (t) => {
    const base = moddable("build/devices/esp32/xsProj-esp32/partitions.csv");
    const ota = moddable("examples/network/http/httpota/sdkconfig/partitions.csv");
    if (base === undefined || ota === undefined) return t.skip("Moddable mirror not available");
    assert.deepEqual(
      PartitionTable.parse(base).partitions.map((p) => [p.name, p.offset, p.size]),
      [["nvs", 0x9000, 0x6000], ["phy_init", 0xf000, 0x1000], ["factory", 0x10000, 0x3f0000]],
    );
    assert.deepEqual(
      PartitionTable.parse(ota).partitions.map((p) => [p.name, p.type, p.subtype, p.offset]),
      [
        ["nvs", 1, 2, 0x9000],
        ["otadata", 1, 0, 0xd000],
        ["phy_init", 1, 1, 0xf000],
        ["ota_0", 0, 0x10, 0x10000],
        ["ota_1", 0, 0x11, 0x200000], // after 0x1f8000, rounded up to 64 KB
        ["xs", 0x40, 1, 0x3e8000],
        ["settings", 1, 1, 0x3f0000],
      ],
    );
  });

  test("numbers: hex, decimal, K and M suffixes; flags", () => {
    const table = PartitionTable.parse(
      "a, data, nvs, 36K, 24K,\nb, data, 0x99, , 4096, encrypted:readonly\nc, app, ota_0, 1M, 0x10000\nd, data, ota, , 8K\n",
    );
    assert.deepEqual(table.partitions.map((p) => [p.offset, p.size]), [[0x9000, 0x6000], [0xf000, 0x1000], [0x100000, 0x10000], [0x110000, 0x2000]]);
    assert.deepEqual([table.require("b").encrypted, table.require("b").readonly, table.require("a").encrypted], [true, true, false]);
    assert.equal(table.findBySubtype("data", 0x99)?.name, "b");
  });

  const errors: [string, string, RegExp][] = [
    ["overlap", "a, data, nvs, 0x9000, 0x6000\nb, data, phy, 0xe000, 0x1000", /:2: partition "b" at 0xe000 overlaps the previous partition, which ends at 0xf000/],
    ["over the table", "a, data, nvs, 0x8000, 0x1000", /overlaps the partition table/],
    ["misaligned app", "a, app, factory, 0x11000, 0x10000", /offset 0x11000 is not aligned to 0x10000 \(app partitions are 64 KB aligned\)/],
    ["misaligned data", "a, data, nvs, 0x9100, 0x1000", /not aligned to 0x1000/],
    ["partial sector", "a, data, nvs, 0x9000, 0x1800", /not a positive multiple of the 4096-byte flash sector/],
    ["no size", "a, data, nvs, 0x9000,", /the size is empty/],
    ["bad number", "a, data, nvs, 0x9000, 12Q", /size "12Q" is not a number/],
    ["leading zero", "a, data, nvs, 0x9000, 0100", /not a number/],
    ["duplicate name", "a, data, nvs, , 0x1000\na, data, phy, , 0x1000", /:2: partition name "a" is used twice/],
    ["long name", "abcdefghijklmnopq, data, nvs, , 0x1000", /longer than 16 bytes/],
    ["unknown flag", "a, data, nvs, , 0x1000, secret", /unknown flag "secret"/],
    ["unknown app subtype", "a, app, constructor, , 0x10000", /subtype "constructor" is not a number/],
    ["reserved type", "a, 0x20, 0, , 0x1000", /type 0x20 is reserved/],
    ["too many fields", "a, data, nvs, , 0x1000, , extra", /too many fields/],
    ["beyond flash", "a, app, factory, 0x10000, 0x400000", /ends at 0x410000, beyond the 0x400000-byte flash/],
    ["otadata size", "o, data, ota, , 0x1000", /otadata must be 0x2000 bytes/],
    ["ota without otadata", "a, app, ota_0, 0x10000, 0x10000", /"a" is an OTA slot, but there is no otadata partition/],
    ["same app subtype", "a, app, ota_0, , 0x10000\nb, app, ota_0, , 0x10000\no, data, ota, , 0x2000", /app partitions "a" and "b" have the same subtype/],
    ["empty", "# nothing\n", /no partitions/],
  ];
  for (const [name, csv, message] of errors)
    test(`rejects: ${name}`, () => {
      assert.throws(() => PartitionTable.parse(csv, { source: "t.csv" }), (error: unknown) => error instanceof PartitionTableError && message.test(error.message));
    });

  test("require names what is there; findBySubtype rejects unknown names", () => {
    const table = PartitionTable.load();
    assert.throws(() => table.require("spiffs"), /no partition named "spiffs" \(the table has nvs, phy_init, ota_0, ota_1, otadata\)/);
    assert.throws(() => table.findBySubtype("app", "ota_16"), /unknown subtype "ota_16"/);
    assert.throws(() => PartitionTable.load(join(dir, "none.csv")), /cannot read partition table/);
  });
});
