# A failing flash chip: sectors whose erase leaves stuck bits, programs that
# do not stick, a chip that refuses every write for a while. The store must
# retire what fails, keep every reading (pending in RAM until written),
# report health and faults, and never raise out of flush().
import gc

from storetest import Clock, check_log, flash, gen, remove, tmpdir

import faults
from store import Store

HEAP = "128k"
NSECT = 8


class Failing:
    # The HAL partition with faults injected: a test double of the flash
    # chip (the store under test is real).
    def __init__(self, part):
        self.part = part
        self.stuck = ()  # sectors whose erase leaves a zero byte behind
        self.weak = ()  # sectors where programs leave one bit unprogrammed
        self.dead = False  # every write raises OSError

    def readblocks(self, b, buf, off=0):
        self.part.readblocks(b, buf, off)

    def writeblocks(self, b, buf, off=None):
        if self.dead:
            raise OSError(5)
        if b in self.weak and len(buf) > 8:
            buf = bytearray(buf)
            buf[len(buf) // 2] |= 0x01 if buf[len(buf) // 2] != 0xFF else 0
            buf[len(buf) // 2 + 1] = 0xFF
        self.part.writeblocks(b, buf, off)

    def ioctl(self, op, arg):
        if op == 6 and self.dead:
            raise OSError(5)
        r = self.part.ioctl(op, arg)
        if op == 6 and arg in self.stuck:
            self.part.writeblocks(arg, b"\x00", 1000)
        return r


def _open(path, **kw):
    gc.collect()
    f, part = flash(path, NSECT)
    bad = Failing(part)
    for k in kw:
        setattr(bad, k, kw[k])
    return f, bad, Store(bad, clock=Clock(), ram_size=300)


def _run(st, n):
    for _ in range(n):
        st.append(*gen(st.seq + 1))
        if st.seq % 100 == 0:
            st.flush()
    st.flush()


def test_sector_that_cannot_erase_is_retired():
    path = tmpdir() + "/stuck.bin"
    remove(path)
    f, bad, st = _open(path, stuck=(3,))
    _run(st, 20000)  # several rotations
    s = st.stats()
    assert s["retired"] >= 1 and s["quarantined"] >= 1 and s["health"] == "degraded", s
    assert s["pending"] == 0 and s["write_failures"] >= 1
    top = st.seq
    first, last, n = check_log(st, top, None, top)
    assert n > 3000
    f.close()
    # after a reboot the sector is tried once more and retired again
    f, bad, st = _open(path, stuck=(3,))
    check_log(st, top, first, top)
    _run(st, 8000)
    assert st.stats()["retired"] == 1
    check_log(st, st.seq, None, st.seq)


def test_program_that_does_not_stick_is_rewritten_elsewhere():
    path = tmpdir() + "/weak.bin"
    remove(path)
    f, bad, st = _open(path, weak=(2, 5))
    _run(st, 15000)
    s = st.stats()
    assert s["write_failures"] >= 2 and s["health"] == "degraded", s
    assert s["pending"] == 0
    top = st.seq
    check_log(st, top, None, top)
    f.close()
    f, bad, st = _open(path)
    check_log(st, top, None, top)


def test_dead_chip_keeps_readings_pending_and_reports_failing():
    path = tmpdir() + "/dead.bin"
    remove(path)
    f, bad, st = _open(path)
    _run(st, 2000)
    held = st.oldest_seq()
    bad.dead = True
    for _ in range(150):
        st.append(*gen(st.seq + 1))
    assert st.flush() == 0  # no exception, nothing written
    s = st.stats()
    assert s["health"] == "failing" and faults.FLASH_FAIL in s["faults"], s
    assert s["pending"] == 150
    # the flush backs off instead of hammering (and evicting) the log
    assert not st.flush_due(st.clock.ms + 60_000)
    assert st.flush() == 0
    bad.dead = False
    assert st.flush() == 150
    assert st.stats()["pending"] == 0
    top = st.seq
    first, last, n = check_log(st, top, None, top)
    assert first <= held + 1500, "a failing spell evicted most of the log"
    f.close()
    f, bad, st = _open(path)
    check_log(st, top, first, top)
