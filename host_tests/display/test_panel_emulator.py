"""The panel emulator (ihd panel) on hand-made bus streams: it must
catch what a real controller would show wrongly or reject, otherwise the
golden and driver tests could pass on a broken driver."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
from ihd.panel import emulator as emu  # noqa: E402

PINS = emu.board_pins()


class Bus:
    def __init__(self, panel):
        self.e = emu.Emulator(panel)
        self.pin("cs", 1)
        self.pin("rst", 1)

    def pin(self, name, level):
        self.e.feed("pin", PINS[name], level)

    def reset(self):
        self.pin("rst", 0)
        self.pin("rst", 1)

    def cmd(self, c, data=b""):
        self.pin("cs", 0)
        self.pin("dc", 0)
        self.e.feed("spi", bytes([c]), None)
        if data:
            self.pin("dc", 1)
            self.e.feed("spi", bytes(data), None)
        self.pin("cs", 1)

    @property
    def ctl(self):
        return self.e.ctl


def ssd_init(b, entry=0x03):
    b.reset()
    b.cmd(0x12)
    b.cmd(0x01, b"\x27\x01\x00")
    b.cmd(0x11, bytes([entry]))
    b.cmd(0x44, b"\x00\x0f")
    b.cmd(0x45, b"\x00\x00\x27\x01")
    b.cmd(0x21, b"\x00\x80")


def ssd_frame(b, ram, fill):
    b.cmd(0x4E, b"\x00")
    b.cmd(0x4F, b"\x00\x00")
    b.cmd(ram, bytes([fill]) * (16 * 296))


def test_ssd1680_partial_with_stale_red_ram_leaves_stale_pixels():
    b = Bus("ssd1680_296x128")
    ssd_init(b)
    ssd_frame(b, 0x24, 0x00)  # all black
    b.cmd(0x22, b"\xf7")
    b.cmd(0x20)
    assert all(b.ctl.glass)
    # Driver "forgets" 0x26 (still white from power-on), then shows white
    # with a partial: only pixels differing from 0x26 move -> none.
    ssd_frame(b, 0x24, 0xFF)
    b.cmd(0x22, b"\xff")
    b.cmd(0x20)
    assert all(b.ctl.glass), "differential update must not touch pixels equal to red RAM"
    # With red RAM holding the glass image (black), the same update works.
    ssd_frame(b, 0x26, 0x00)
    b.cmd(0x22, b"\xff")
    b.cmd(0x20)
    assert not any(b.ctl.glass)
    assert (b.ctl.full, b.ctl.partial, b.ctl.errors) == (1, 2, [])


def test_ssd1680_data_entry_modes_address_ram():
    b = Bus("ssd1680_296x128")
    ssd_init(b, entry=0x03)  # X then Y, both increment
    b.cmd(0x4E, b"\x00")
    b.cmd(0x4F, b"\x00\x00")
    b.cmd(0x24, b"\x01\x02")
    assert b.ctl.bw[0:2] == b"\x01\x02"  # along X
    ssd_init(b, entry=0x07)  # Y first
    b.cmd(0x4E, b"\x00")
    b.cmd(0x4F, b"\x00\x00")
    b.cmd(0x24, b"\x03\x04")
    assert b.ctl.bw[0] == 3 and b.ctl.bw[22] == 4  # down the gates
    # Windows wrap: X window 0..1, X first: (0,0) (1,0) then (0,1).
    ssd_init(b, entry=0x03)
    b.cmd(0x44, b"\x00\x01")
    b.cmd(0x4E, b"\x00")
    b.cmd(0x4F, b"\x00\x00")
    b.cmd(0x24, b"\x05\x06\x07")
    assert (b.ctl.bw[0], b.ctl.bw[1], b.ctl.bw[22]) == (5, 6, 7)
    # Y first, Y decrement over gates 2..0, X increment: (0,2) (0,1) (0,0) (1,2).
    ssd_init(b, entry=0x05)
    b.cmd(0x45, b"\x02\x00\x00\x00")
    b.cmd(0x4E, b"\x00")
    b.cmd(0x4F, b"\x02\x00")
    b.cmd(0x24, b"\x08\x09\x0a\x0b")
    assert (b.ctl.bw[44], b.ctl.bw[22], b.ctl.bw[0], b.ctl.bw[45]) == (8, 9, 10, 11)
    assert (b.ctl.x, b.ctl.y) == (1, 1)
    assert b.ctl.errors == []


def test_ssd1680_rejects_traffic_in_deep_sleep_until_reset():
    b = Bus("ssd1680_296x128")
    ssd_init(b)
    b.cmd(0x10, b"\x01")
    b.cmd(0x24, b"\x00")
    assert any("deep sleep" in e for e in b.ctl.errors)
    n = len(b.ctl.errors)
    ssd_init(b)
    assert len(b.ctl.errors) == n


def test_ssd1680_flags_wrong_gate_count():
    b = Bus("ssd1680_250x122")
    ssd_init(b)  # MUX for 296 gates on a 250-gate glass
    b.cmd(0x22, b"\xf7")
    b.cmd(0x20)
    assert any("gates" in e for e in b.ctl.errors)


def uc_wake(b):
    b.reset()
    b.cmd(0x04)
    b.cmd(0x00, b"\x9f")
    b.cmd(0x61, b"\x80\x01\x28")
    b.cmd(0x50, b"\x97")


def test_uc8151_refresh_needs_power_and_sleep_needs_check_code():
    b = Bus("uc8151_296x128")
    b.reset()
    b.cmd(0x12)
    assert any("power is off" in e for e in b.ctl.errors)
    b.cmd(0x07, b"\x00")
    assert any("check code" in e for e in b.ctl.errors)
    assert not b.ctl.asleep


def test_uc8151_loses_sram_in_deep_sleep():
    b = Bus("uc8151_296x128")
    uc_wake(b)
    b.cmd(0x10, b"\xff" * 4736)
    b.cmd(0x13, b"\x00" * 4736)  # black
    b.cmd(0x12)
    assert all(b.ctl.glass)
    b.cmd(0x02)
    b.cmd(0x07, b"\xa5")
    uc_wake(b)
    # Partial with register LUTs, new data only: old data is garbage now,
    # so the differential update cannot give the intended all-white glass.
    b.cmd(0x00, b"\xbf")
    b.cmd(0x20, b"\x00" * 44)
    b.cmd(0x21, b"\x00" * 42)
    b.cmd(0x22, bytes([0x80, 10, 0, 0, 0, 1]) + b"\x00" * 36)
    b.cmd(0x23, bytes([0x40, 10, 0, 0, 0, 1]) + b"\x00" * 36)
    b.cmd(0x24, b"\x00" * 42)
    b.cmd(0x13, b"\xff" * 4736)
    b.cmd(0x12)
    assert any(b.ctl.glass) and not all(b.ctl.glass)
    # Re-sending the old image (what the glass shows) fixes it.
    b.cmd(0x10, b"\x00" * 4736)
    b.cmd(0x13, b"\xff" * 4736)
    b.cmd(0x12)
    assert not any(b.ctl.glass)
    assert (b.ctl.full, b.ctl.partial) == (1, 2)
    assert b.ctl.errors == []


def _record(path: Path, events) -> None:
    import struct

    out = bytearray()
    for kind, a, b in events:
        if kind == "pin":
            out += bytes((0x50, a, b))
        elif kind == "spi":
            out += b"S" + struct.pack("<I", len(a)) + a
        else:
            out += b"M" + bytes((len(a),)) + a.encode()
    path.write_bytes(bytes(out))


def _frame_events(fill: int, sleep_code: bytes):
    cs, dc, rst = PINS["cs"], PINS["dc"], PINS["rst"]
    ev = [("pin", cs, 1), ("pin", rst, 0), ("pin", rst, 1)]

    def cmd(c, data=b""):
        ev.extend([("pin", cs, 0), ("pin", dc, 0), ("spi", bytes([c]), None)])
        if data:
            ev.extend([("pin", dc, 1), ("spi", data, None)])
        ev.append(("pin", cs, 1))

    cmd(0x01, b"\x27\x01\x00")
    cmd(0x21, b"\x00\x80")
    cmd(0x24, bytes([fill]) * (22 * 296))
    cmd(0x22, b"\xf7")
    cmd(0x20)
    ev.append(("mark", "frame", None))
    cmd(0x10, sleep_code)
    cmd(0x24, b"\x00")  # traffic after deep sleep when sleep_code is valid
    return ev


def test_render_cli_writes_images_and_fails_on_controller_errors(tmp_path):
    rec = tmp_path / "ok.rec"
    _record(rec, _frame_events(0x00, b"\x00"))  # 0x10 0x00: normal mode, no sleep
    assert emu.main(["render", str(rec), "--out", str(tmp_path / "ok"), "--format", "pbm"]) == 0
    img = emu.Image.open(tmp_path / "ok" / "frame.pbm").convert("L")
    assert img.size == (296, 128) and img.histogram()[0] == 296 * 128  # all black
    bad = tmp_path / "bad.rec"
    _record(bad, _frame_events(0xFF, b"\x01"))
    assert emu.main(["render", str(bad), "--out", str(tmp_path / "bad")]) == 1
    assert (tmp_path / "bad" / "frame.png").exists()
