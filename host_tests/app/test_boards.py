"""Board definitions: partition tables agree, the freeze manifest ships exactly the device firmware."""

import csv
import os
from pathlib import Path

import pytest

import mpy as mpymod

ROOT = mpymod.ROOT
FIRMWARE = ROOT / "firmware"
BOARD = ROOT / "boards" / "esp32s3_eink29"

# ESP-IDF partition CSV names (esp-idf gen_esp32part.py: TYPES and SUBTYPES).
TYPES = {"app": 0, "data": 1}
SUBTYPES = {
    0: {"factory": 0x00, "test": 0x20, **{f"ota_{i}": 0x10 + i for i in range(16)}},
    1: {"ota": 0x00, "phy": 0x01, "nvs": 0x02, "coredump": 0x03, "nvs_keys": 0x04, "fat": 0x81, "spiffs": 0x82},
}


def _csv_partitions() -> tuple:
    rows = []
    with open(BOARD / "partitions.csv") as f:
        lines = [ln for ln in f if ln.strip() and not ln.lstrip().startswith("#")]
    for row in csv.reader(lines):
        name, typ, sub, off, size = (c.strip() for c in row[:5])
        t = TYPES[typ]
        st = SUBTYPES[t].get(sub)
        rows.append((name, t, st if st is not None else int(sub, 0), int(off, 0), int(size, 0)))
    return tuple(rows)


def _board_attr(mpy, board: str, expr: str):
    env = {"MICROPYPATH": mpymod.module_path(board)}
    return mpy.run(f"import board\nprint(repr({expr}))", heap="128k", env=env).stdout.strip()


@pytest.mark.parametrize("board", ["unix", "esp32s3_eink29"])
def test_board_partitions_equal_the_partition_csv(mpy, board):
    got = _board_attr(mpy, board, "board.PARTITIONS")
    assert got == repr(_csv_partitions())


def test_partition_table_is_a_valid_esp_idf_layout(mpy):
    parts = _csv_partitions()
    flash = int(_board_attr(mpy, "esp32s3_eink29", "board.FLASH_SIZE"))
    end = 0x9000  # bootloader and the table itself sit below
    for name, typ, _sub, off, size in sorted(parts, key=lambda p: p[3]):
        assert off >= end, f"{name} overlaps the previous partition"
        assert off % (0x10000 if typ == 0 else 0x1000) == 0, f"{name} misaligned"
        assert size % 0x1000 == 0
        end = off + size
    assert end <= flash
    by = {p[0]: p for p in parts}
    assert by["ota_0"][4] == by["ota_1"][4] >= 0x180000  # two equal OTA slots for a ~1.5 MB image
    assert by["otadata"][4] == 0x2000
    assert by["store"][4] == 256 * 1024


class _ManifestRun:
    """Records what a MicroPython manifest freezes, per tools/manifestfile.py's rules."""

    def __init__(self, path: Path):
        self.dir = path.parent
        self.files: dict[str, Path] = {}  # frozen module path -> source
        self.includes: list[str] = []
        g = {"include": self.include, "package": self.package, "module": self.module, "freeze": self.freeze}
        exec(compile(path.read_text(), str(path), "exec"), g)

    def include(self, path, **kw):
        self.includes.append(path)

    def _add(self, src: Path, target: str):
        assert src.is_file(), f"manifest names missing file {src}"
        assert target not in self.files, f"{target} frozen twice"
        self.files[target] = src

    def package(self, package_path, files=None, base_path=".", opt=None):
        base = self.dir / base_path
        if files is not None:
            for f in files:
                self._add(base / package_path / f, f"{package_path}/{f}")
            return
        for dirpath, _, names in os.walk(base / package_path):
            for n in names:
                if n.endswith(".py"):
                    p = Path(dirpath) / n
                    self._add(p, str(p.relative_to(base)))

    def module(self, module_path, base_path=".", opt=None):
        self._add(self.dir / base_path / module_path, module_path)

    def freeze(self, path, script=None, opt=None):
        raise AssertionError("use package()/module() so excluded files stay visible")


def test_manifest_freezes_all_device_firmware_and_no_emulation():
    run = _ManifestRun(BOARD / "manifest.py")
    want = {str(p.relative_to(FIRMWARE)) for p in FIRMWARE.rglob("*.py")}
    emulation = {"hal/unix.py", "hal/unix_partition.py", "hal/norflash.py"}
    assert emulation <= want
    want = (want - emulation) | {"board.py"}
    assert set(run.files) == want
    assert run.files["board.py"] == BOARD / "board.py"
    assert run.includes == ["$(PORT_DIR)/boards/manifest.py"]  # asyncio etc. from the port
