# The uplink's look at its batch needs no large block: on a heap cut into
# holes of a few hundred bytes (what 6 h of a 96 KB device looks like: the
# 8-day soak had ~9 KB free, no hole above ~300 bytes) a batch is read from
# flash, encoded, sealed and sent. Before, every look made a new flash
# Reader (a 488-byte record buffer): "MemoryError: memory allocation
# failed, allocating 488 bytes" in store/reader.py, uplink fault D01.
import gc

import hal
from meter.reading import DEV_EPOCH
from store import Store
from uplink.uplink import Uplink

HEAP = "256k"
_HOLE = 240  # bytes: more than a look's small objects, less than a record buffer


def _device():
    st = Store(hal.partition("store"), clock=hal.clock, ram_size=64)
    t = hal.clock.utc() - DEV_EPOCH - 3 * 400
    dl = 1000
    for i in range(400):  # most of them on flash only (the RAM ring holds 64)
        dl += 1
        st.append(t + 3 * i, 200 + i % 7, dl, 0, 7)
        if i % 50 == 49:
            st.flush()
    st.flush()
    up = Uplink(st, 4097, 0, bytes(32), [("127.0.0.1", 4700)], health_source=None)
    up.head = st.seq
    return st, up


def _fragment():
    # Fill the heap with _HOLE-byte blocks, then free every other one.
    gc.collect()
    blocks = [None] * (gc.mem_free() // _HOLE + 16)
    n = 0
    try:
        while n < len(blocks):
            blocks[n] = bytearray(_HOLE)
            n += 1
    except MemoryError:
        pass
    for i in range(0, n, 2):
        blocks[i] = None
    gc.collect()
    return blocks


def test_batch_look_on_a_fragmented_heap():
    st, up = _device()
    now = hal.clock.ticks_ms()
    up._try_batch(now)  # a look that waits for more (the batch is not full)
    assert up.inflight == 0 and up.enc.count() > 0
    keep = _fragment()
    up.flush_req = True
    for _ in range(3):  # looks that continue the batch, then send it
        up._try_batch(now)
        if up.inflight:
            break
    assert up.inflight == 400, up.inflight
    assert up.first == 1
    keep = None  # noqa: F841
    gc.collect()
    # the batch holds what the store holds
    r = next(st.readings_from(1))
    assert r[2] == 200 and r[3] == 1001, r
