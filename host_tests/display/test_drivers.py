"""Panel drivers: the command sequences the firmware sends, decoded from the
real SPI/pin stream, against the controllers' datasheet sequences.

SSD1680 (Solomon Systech datasheet, "typical operating sequence"): HW reset,
SW reset 0x12, driver output control 0x01 (MUX = gates-1), data entry 0x11,
RAM X/Y windows 0x44/0x45, border 0x3C, display update control 0x21,
temperature sensor 0x18, RAM counters 0x4E/0x4F, write RAM 0x24, update
control 2 0x22 (0xF7 full / 0xFF display mode 2), master activation 0x20,
deep sleep 0x10.
UC8151/IL0373 (UltraChip/Good Display datasheets, reference program flow):
HW reset, power setting 0x01, booster soft start 0x06, power on 0x04,
panel setting 0x00, PLL 0x30, resolution 0x61, VCOM and data interval 0x50,
VCOM DC 0x82, old/new data 0x10/0x13, refresh 0x12, partial window 0x90,
partial in/out 0x91/0x92, power off 0x02, deep sleep 0x07 + check 0xA5.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
from ihd.panel import emulator as emu  # noqa: E402

SNIPPET = """
import sys
sys.path.insert(0, {here!r})
from busrec import Recorder
from display import open_panel
rec = Recorder({rec!r})
p = open_panel({panel!r})
p.fill(0)
p.text("A", 0, 0, 1)
p.show(full=True)
rec.mark("full")
p.pixel(100, 50, 1)
p.show()
rec.mark("partial")
rec.close()
print("counts", p.full_refreshes, p.partial_refreshes)
"""


def record(mpy, tmp_path, panel):
    rec = tmp_path / "bus.rec"
    out = mpy.run(SNIPPET.format(here=str(Path(__file__).parent), rec=str(rec), panel=panel), heap="128k")
    assert "counts 1 1" in out.stdout
    return emu.emulate(panel, rec)


def split(log):
    """Cut the log at reset pulses: one list of (cmd, data) per wake."""
    runs = []
    for c, data in log:
        if c == emu.RESET:
            runs.append([])
        else:
            assert runs, f"command 0x{c:02X} before the first reset"
            runs[-1].append((c, data))
    return runs


def shape(run):
    # Bulk RAM writes compared by length, parameters byte for byte.
    return [(c, len(d) if len(d) > 64 else d.hex()) for c, d in run]


def ssd1680_expected(gates, pages, update):
    g = gates - 1
    lo, hi = f"{g & 0xFF:02x}", f"{g >> 8:02x}"
    ram = [(0x4E, "00"), (0x4F, lo + hi)]
    return [
        (0x12, ""),  # SW reset
        (0x01, lo + hi + "00"),  # driver output control: MUX = gates-1, GD=SM=TB=0
        (0x11, "05"),  # data entry: X increment, Y decrement, Y first
        (0x44, "00" + f"{pages - 1:02x}"),  # RAM X window in bytes
        (0x45, lo + hi + "0000"),  # RAM Y window: gates-1 down to 0
        (0x3C, "05"),  # border waveform
        (0x21, "0080"),  # display update control 1: RAM normal, S8..S167
        (0x18, "80"),  # internal temperature sensor
        *ram,
        (0x24, gates * pages),  # B/W RAM: the frame
        (0x22, update),  # update control 2
        (0x20, ""),  # master activation
        *ram,
        (0x26, gates * pages),  # red RAM := what the glass now shows
        (0x10, "01"),  # deep sleep mode 1 (RAM kept)
    ]


@pytest.mark.parametrize("panel,gates,pages", [("ssd1680_296x128", 296, 16), ("ssd1680_250x122", 250, 16)])
def test_ssd1680_sequences(mpy, tmp_path, panel, gates, pages):
    e = record(mpy, tmp_path, panel)
    assert e.ctl.errors == []
    runs = split(e.ctl.log)
    assert len(runs) == 2, "one wake (reset) per update: deep sleep in between"
    assert shape(runs[0]) == ssd1680_expected(gates, pages, "f7")
    assert shape(runs[1]) == ssd1680_expected(gates, pages, "ff")
    assert (e.ctl.full, e.ctl.partial) == (1, 1)


UC_WAKE = [
    (0x01, "03002b2b09"),  # power setting
    (0x06, "171717"),  # booster soft start
    (0x04, ""),  # power on
    (0x00, "9f"),  # panel setting: 128x296, OTP LUT, KW, UD, SHL, SHD_N, RST_N
    (0x30, "29"),  # PLL
    (0x61, "800128"),  # resolution 128 x 296
    (0x50, "97"),  # VCOM and data interval: white border, DDX=01
    (0x82, "12"),  # VCOM DC
]


def test_uc8151_sequences(mpy, tmp_path):
    e = record(mpy, tmp_path, "uc8151_296x128")
    assert e.ctl.errors == []
    runs = split(e.ctl.log)
    assert len(runs) == 2
    assert shape(runs[0]) == UC_WAKE + [
        (0x00, "9f"),  # LUTs from OTP: full refresh
        (0x10, 4736),  # old data
        (0x13, 4736),  # new data
        (0x12, ""),  # display refresh
        (0x02, ""),  # power off
        (0x07, "a5"),  # deep sleep, check code
    ]
    # Pixel (100, 50) is gate 295 - 100 = 195 = 0xC3, source 50: a one-gate window.
    assert shape(runs[1]) == UC_WAKE + [
        (0x00, "bf"),  # LUTs from registers
        (0x20, "000a00000001" + "00" * 38),  # VCOM LUT (44 bytes)
        (0x21, "00" * 42),  # white -> white: no drive
        (0x22, "800a00000001" + "00" * 36),  # black -> white
        (0x23, "400a00000001" + "00" * 36),  # white -> black
        (0x24, "00" * 42),  # black -> black: no drive
        (0x91, ""),  # partial in
        (0x90, "007f00c300c301"),  # window: sources 0..127, gates 195..195, PT_SCAN
        (0x10, "ff" * 16),  # old data of the window: white
        (0x13, "ff" * 6 + "df" + "ff" * 9),  # new: source 50 = byte 6, bit 5, black
        (0x12, ""),  # display refresh
        (0x92, ""),  # partial out
        (0x02, ""),  # power off
        (0x07, "a5"),  # deep sleep
    ]
    assert (e.ctl.full, e.ctl.partial) == (1, 1)
