# Heap footprint of the store, run on MicroPython under a heap cap with the
# code precompiled (.mpy, as frozen code on the device, where it takes no
# heap at all). Two boots on a 256 KB partition as the board's, each in
# its own process (a real reboot, and no stale pointer keeps the first
# store alive for the conservative GC):
#   heapcheck.fill(ram): heap held by a store booted on empty flash; then
#                        fills the partition until the ring wraps;
#   heapcheck.full(ram): heap held by a store booted on the full partition,
#                        and how far the heap grows while streaming the whole
#                        log and computing the hourly aggregates.
# Each prints one line "heapcheck <json>".
import gc

from store import Store

gc.collect()
from norflash import NorFlash  # noqa: E402  (hal/norflash.py, precompiled alone)
from storetest import Clock, gen, tmpdir  # noqa: E402

NSECT = 64  # the board's store partition: 256 KB


class Part:
    # Block device over the emulated chip, as hal.partition("store") is;
    # without the rest of the HAL, whose code would crowd the Unix heap
    # (on the device all code is frozen and takes no heap).
    def __init__(self, f):
        self.f = f

    def readblocks(self, b, buf, off=0):
        self.f.read(b * 4096 + off, buf)

    def writeblocks(self, b, buf, off=0):
        self.f.program(b * 4096 + off, buf)

    def ioctl(self, op, arg):
        if op == 4:
            return NSECT
        if op == 5:
            return 4096
        if op == 6:
            self.f.erase(arg)
            return 0
        return None


def _used(ram):
    gc.collect()
    a = gc.mem_alloc()
    f = NorFlash(tmpdir() + "/heap.bin", NSECT * 4096)
    st = Store(Part(f), clock=Clock(), ram_size=ram)
    gc.collect()
    return st, gc.mem_alloc() - a


def fill(ram=900):
    st, empty = _used(ram)
    while st.log.erases < 70:  # past the end of the partition: wrapped
        for _ in range(500):
            st.append(*gen(st.seq + 1))
        st.flush()
    print(
        'heapcheck {"store_empty": %d, "top": %d, "fill_write_failures": %d}'
        % (empty, st.seq, st.stats()["write_failures"])
    )


def full(ram=900):
    st, used = _used(ram)
    held = st.seq - st.oldest_seq() + 1
    gc.collect()
    base = gc.mem_alloc()
    n = 0
    grow = 0
    for _ in st.readings_from(0):
        n += 1
        if n % 4000 == 0:
            gc.collect()
            grow = max(grow, gc.mem_alloc() - base)
    assert n == held, (n, held)
    gc.collect()
    base = gc.mem_alloc()
    h = st.hourly_wh(gen(st.seq)[0], 24)
    assert len(h) == 24 and h[-1] is not None
    gc.collect()
    agg = gc.mem_alloc() - base
    print(
        'heapcheck {"store_full": %d, "readings_on_flash": %d, "stream_growth": %d, "hourly_growth": %d, '
        '"free_after": %d}' % (used, held, grow, agg, gc.mem_free())
    )
