# Wrap-around and wear: more than 10 full rotations of the ring with
# reboots, cursor updates and checks of every reading along the way.
import gc

from storetest import Clock, check_log, flash, gen, remove, tmpdir

from store import Store

HEAP = "128k"
NSECT = 8
ROTATIONS = 12


def test_wrap_around_and_even_wear():
    path = tmpdir() + "/wear.bin"
    remove(path)
    f, part = flash(path, NSECT)
    st = Store(part, clock=Clock(), ram_size=300)
    boots = 1
    min_held = None
    while sum(f.erase_counts()) < ROTATIONS * NSECT:
        for _ in range(250):
            st.append(*gen(st.seq + 1))
        st.set_cursor("uploaded", st.seq - 100)
        st.flush()
        if st.seq % 5000 < 250:
            # reboot, check everything committed since the oldest held
            oldest = st.oldest_seq()
            top = st.seq
            st = None
            f.close()
            gc.collect()
            f, part = flash(path, NSECT)
            st = Store(part, clock=Clock(), ram_size=300)
            boots += 1
            first, last, n = check_log(st, top, oldest, top)
            assert st.cursor("uploaded") == top - 100
            if sum(f.erase_counts()) > NSECT:  # ring is full and wrapping
                min_held = n if min_held is None else min(min_held, n)
            s = st.stats()
            assert s["health"] == "ok" and s["corrupt_records"] == 0, s
            assert s["oldest_seq"] == first and s["newest_seq"] == last
            assert s["fill_pct"] >= 70, s
    counts = f.erase_counts()
    rotations = sum(counts) / NSECT
    # the store's own lifetime wear estimate agrees with the chip's counters
    assert abs(st.stats()["wear_cycles"] - rotations) <= 1, (st.stats()["wear_cycles"], rotations)
    print(
        "wear: rotations %.1f boots %d erase counts %r readings %d min held %d"
        % (rotations, boots, counts, st.seq, min_held)
    )
    assert rotations >= 10 and boots >= 10
    # a ring wears every sector alike: reboots must not cost extra erases
    assert max(counts) - min(counts) <= 1, counts
    # capacity: at least NSECT - 2 sectors of readings are always held
    # (head partly filled, one sector erased ahead), at < 7 bytes each
    assert min_held * 7 >= (NSECT - 2) * 4096, min_held
