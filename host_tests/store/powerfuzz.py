# Randomised power-loss fuzz, complementing the exhaustive sweep of
# powerloss.py: many workloads (seed -> sector count, RAM size, mix of
# operations) with the power cut at random operations, clean or torn by a
# random byte count. Unlike the sweep, the uplink here may move its cursor
# past readings still pending in RAM (it may send uncommitted readings), so
# a reboot can skip seqs: the oracle tracks which seqs were committed, and
# checks that all of them are present (unless evicted), every reading is
# gen(seq), no seq is invented, cursors are in range, and after the reboot
# no new reading gets a seq at or below a committed cursor.
#
# micropython powerfuzz.py DIR FIRST_SEED SEEDS CUTS
#   prints "powerfuzz runs=N workloads=W ops=T"
import gc
import sys

from storetest import Clock, Lcg, flash, gen, remove

from hal.norflash import PowerCut
from store import Store


class Run:
    def __init__(self, path, seed, cut=None, torn=None):
        self.path = path
        self.seed = seed
        self.nsect = 3 + seed % 5
        self.ram = 120 + (seed * 37) % 300
        self.cut = cut
        self.torn = torn
        self.ops_before = 0
        self.f = None
        self.clock = Clock()
        self.calls = 0
        self.oldest = []
        self.top = 0
        self.ranges = []  # [first, last] runs of committed seqs
        self.cur_commit = 0
        self.cur_set = 0

    def boot(self):
        gc.collect()
        if self.f is not None:
            self.ops_before += self.f.ops
            self.f.close()
        c = None
        if self.cut is not None and self.cut >= self.ops_before:
            c = self.cut - self.ops_before
        self.f, part = flash(self.path, self.nsect, cut=c, torn=self.torn)
        st = Store(part, clock=self.clock, ram_size=self.ram)
        self.call(st)
        self.cur_set = self.cur_commit = st.cursor("uploaded")
        return st

    def call(self, st):
        self.calls += 1
        if self.cut is None:
            self.oldest.append(st.oldest_seq() or 1)

    def committed(self, st, lo):
        # readings lo..committed() are now committed (lo: first of this flush)
        c = st.committed()
        if c >= lo:
            if self.ranges and self.ranges[-1][1] == lo - 1:
                self.ranges[-1][1] = c
            else:
                self.ranges.append([lo, c])
        if not st.cursors_pending():
            self.cur_commit = self.cur_set


def workload(run):
    rng = Lcg(run.seed * 7919 + 1)
    st = run.boot()
    for _ in range(300 + run.seed % 200):
        r = rng.next(100)
        lo = st.committed() + 1
        if r < 50:
            for _ in range(1 + rng.next(run.ram // 3)):
                s = st.append(*gen(st.seq + 1))
                run.top = max(run.top, s)
            if st.pending() > run.ram * 2 // 3:
                st.flush()
                run.committed(st, lo)
                run.call(st)
        elif r < 75:
            run.clock.ms += 1000 * rng.next(90)
            st.tick()
            run.committed(st, lo)
            run.call(st)
        elif r < 93:
            c = st.seq - rng.next(40)  # may pass pending readings
            if c > run.cur_set:
                run.cur_set = c
                st.set_cursor("uploaded", c, sync=rng.next(3) == 0)
                run.committed(st, lo)
            run.call(st)
        else:
            st = None
            st = run.boot()
    return st


def check(path, run):
    f, part = flash(path, run.nsect)
    st = Store(part, clock=Clock(), ram_size=run.ram)
    s = st.stats()
    assert s["corrupt_records"] == 0 and s["quarantined"] == 0 and s["health"] == "ok", s
    bound = run.oldest[run.calls] if run.calls < len(run.oldest) else run.oldest[-1]
    bumped = st.seq > st.log.last_seq  # a cursor had passed lost readings
    prev = 0
    for r in st.readings_from(0):
        assert r[0] > prev and r[0] <= run.top, (r[0], prev, run.top)
        assert r[1:] == gen(r[0]), r
        prev = r[0]
    for a, b in run.ranges:
        want = max(a, bound)
        for r in st.readings_from(want):
            if r[0] > b or want > b:
                break
            assert r[0] == want, "committed %d lost (next %d)" % (want, r[0])
            want += 1
        assert want > b, "committed %d..%d lost from %d" % (a, b, want)
    c = st.cursor("uploaded")
    assert run.cur_commit <= c <= run.cur_set, (c, run.cur_commit, run.cur_set)
    s = st.append(*gen(st.seq + 1))
    assert s > c, "seq %d handed out again below cursor %d" % (s, c)
    st.flush()
    f.close()
    return bumped


def main():
    d, first, seeds, cuts = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    path = d + "/pf.bin"
    runs = 0
    total = 0
    bumps = 0
    rotations = 0
    for seed in range(first, first + seeds):
        remove(path)
        ref = Run(path, seed)
        workload(ref)
        ops = ref.ops_before + ref.f.ops
        rotations += sum(ref.f.erase_counts()) // ref.nsect
        ref.f.close()
        total += ops
        rng = Lcg(seed)
        for _ in range(cuts):
            n = rng.next(ops)
            torn = (None, 1, 2, 5, 17, 100, 999, 4095)[rng.next(8)]
            remove(path)
            run = Run(path, seed, cut=n, torn=torn)
            run.oldest = ref.oldest
            try:
                workload(run)
                assert False, "cut %d never happened" % n
            except PowerCut:
                pass
            run.f.close()
            try:
                bumps += check(path, run)
            except AssertionError as e:
                print("FAIL seed=%d cut=%d torn=%r: %s" % (seed, n, torn, e))
                raise
            runs += 1
    print("powerfuzz runs=%d workloads=%d ops=%d bumps=%d rotations=%d" % (runs, seeds, total, bumps, rotations))


main()
