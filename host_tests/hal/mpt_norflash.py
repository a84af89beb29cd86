# NOR flash emulation (hal/norflash.py), run on MicroPython.
import os

from hal.norflash import SECTOR, FlashError, NorFlash, PowerCut

HEAP = "96k"


def _fresh(name, size=4 * SECTOR, **kw):
    d = os.getenv("IHD_STATE")
    try:
        os.mkdir(d)
    except OSError:
        pass
    return NorFlash(d + "/" + name, size, **kw)


def _read(f, addr, n):
    b = bytearray(n)
    f.read(addr, b)
    return bytes(b)


def test_blank_flash_reads_ff():
    f = _fresh("a.bin")
    assert _read(f, 0, 16) == b"\xff" * 16
    assert _read(f, 4 * SECTOR - 4, 4) == b"\xff" * 4


def test_program_clears_bits_only():
    f = _fresh("b.bin")
    f.program(10, b"\x0f\xf0")
    assert _read(f, 10, 2) == b"\x0f\xf0"
    f.program(10, b"\x07\x70")  # clearing more bits is allowed
    assert _read(f, 10, 2) == b"\x07\x70"
    try:
        f.program(10, b"\x0f\x70")  # 0->1 on bit 3 of byte 10
        assert False, "0->1 program accepted"
    except FlashError as e:
        assert "0->1" in str(e)
    assert _read(f, 10, 2) == b"\x07\x70"  # rejected program changed nothing


def test_erase_sets_sector_ff_and_is_counted():
    f = _fresh("c.bin")
    f.program(SECTOR + 5, b"\x00" * 300)
    f.program(5, b"\x00")
    f.erase(1)
    f.erase(1)
    assert _read(f, SECTOR, SECTOR) == b"\xff" * SECTOR
    assert _read(f, 5, 1) == b"\x00"  # other sector untouched
    assert f.erase_counts() == [0, 2, 0, 0]
    assert f.programs == 2 and f.erases == 2


def test_out_of_range_rejected():
    f = _fresh("d.bin")
    for op in (lambda: f.program(4 * SECTOR - 1, b"ab"), lambda: f.erase(4), lambda: f.read(-1, bytearray(1))):
        try:
            op()
            assert False, "out of range accepted"
        except FlashError:
            pass


def test_persists_across_reopen():
    f = _fresh("e.bin")
    f.program(100, b"hello")
    f.erase(3)
    f.close()
    g = _fresh("e.bin")
    assert _read(g, 100, 5) == b"hello"
    assert g.erase_count(3) == 1


def test_power_cut_after_n_operations():
    f = _fresh("f.bin", cut_after=2)
    f.program(0, b"\x01")
    f.erase(1)
    try:
        f.program(1, b"\x02")
        assert False, "third op ran"
    except PowerCut:
        pass
    assert _read(f, 1, 1) == b"\xff"  # untorn: nothing landed
    try:
        f.program(2, b"\x00")
        assert False, "dead flash accepted a program"
    except PowerCut:
        pass
    f.close()
    g = _fresh("f.bin")  # reboot: power is back
    assert _read(g, 0, 3) == b"\x01\xff\xff"
    g.program(1, b"\x02")
    assert _read(g, 1, 1) == b"\x02"


def test_power_cut_is_not_an_exception_firmware_can_swallow():
    f = _fresh("g.bin", cut_after=0)
    try:
        try:
            f.erase(0)
        except Exception:
            assert False, "PowerCut caught by except Exception"
    except PowerCut:
        pass


def test_torn_program_writes_prefix():
    f = _fresh("h.bin", cut_after=0, torn=3)
    try:
        f.program(40, b"\x00\x01\x02\x03\x04\x05")
        assert False
    except PowerCut:
        pass
    f.close()
    g = _fresh("h.bin")
    assert _read(g, 40, 6) == b"\x00\x01\x02\xff\xff\xff"


def test_torn_erase_erases_prefix():
    f = _fresh("i.bin")
    f.program(0, b"\x00" * SECTOR)
    f.close()
    f = _fresh("i.bin", cut_after=0, torn=1000)
    try:
        f.erase(0)
        assert False
    except PowerCut:
        pass
    f.close()
    g = _fresh("i.bin")
    assert _read(g, 0, 1000) == b"\xff" * 1000
    assert _read(g, 1000, SECTOR - 1000) == b"\x00" * (SECTOR - 1000)
    assert g.erase_count(0) == 0  # an interrupted erase is not counted as done
