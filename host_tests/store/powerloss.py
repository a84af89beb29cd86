# Power-loss runner for the store, in the spirit of littlefs' test runner:
# one scripted workload (appends, flushes, cursor updates, wrap-around,
# reboots) is replayed once per cut point with the power cut after program
# or erase operation N (counted across reboots), clean or torn. After each
# cut the flash is "rebooted" (new NorFlash on the same file, new Store) and
# checked: every committed reading present and equal to gen(seq), nothing
# never appended, seqs contiguous, cursor between its last committed and
# last set value, no corruption reported; then the log must accept new
# writes that survive one more reboot. Every fourth clean cut is followed by
# a second cut during the recovery boot and its first writes.
#
# micropython powerloss.py DIR START STRIDE
#   runs cut points START, START+STRIDE, ... and prints one line
#   "powerloss ops=T tried=K" (T: operations of the whole workload).
import gc
import sys

from storetest import Clock, Lcg, check_log, flash, gen, remove

from hal.norflash import PowerCut
from store import Store

NSECT = 4
RAM = 400
STEPS = 800
TORN = (1, 3, 6, 40, 300, 3000)  # bytes of the cut operation that land


class Run:
    # One replay of the workload; cut=None is the reference run.
    def __init__(self, path, cut=None, torn=None):
        self.path = path
        self.cut = cut
        self.torn = torn
        self.ops_before = 0  # ops of earlier boots
        self.f = None
        self.clock = Clock()
        self.calls = 0  # store calls that may touch flash
        self.oldest = []  # reference run: oldest seq after each such call
        self.top = 0  # highest seq appended
        self.committed = 0
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
        self.f, part = flash(self.path, NSECT, cut=c, torn=self.torn)
        st = Store(part, clock=self.clock, ram_size=RAM)
        self.done(st)
        return st

    def done(self, st):
        self.calls += 1
        if self.cut is None:
            self.oldest.append(st.oldest_seq() or 1)

    def ops(self):
        return self.ops_before + self.f.ops


def workload(run):
    rng = Lcg(20240601)
    st = run.boot()
    for _ in range(STEPS):
        r = rng.next(100)
        if r < 55:
            for _ in range(1 + rng.next(60)):
                s = st.append(*gen(st.seq + 1))
                if s > run.top:
                    run.top = s
            if st.pending() > RAM - 70:
                st.flush()
                run.committed = st.committed()
                assert not st.cursors_pending()
                run.cur_commit = run.cur_set
                run.done(st)
        elif r < 80:
            run.clock.ms += 1000 * rng.next(90)
            st.tick()
            run.committed = st.committed()
            if not st.cursors_pending():
                run.cur_commit = run.cur_set
            run.done(st)
        elif r < 95:
            if rng.next(6) == 0:
                # other consumers' cursors: names the sector header may not
                # list yet go out as by-name records
                st.set_cursor("aux%d" % rng.next(3), max(0, run.committed - rng.next(500)))
            c = run.committed - rng.next(30)
            if c > run.cur_set:
                run.cur_set = c
                sync = rng.next(2) == 0
                st.set_cursor("uploaded", c, sync=sync)
                if sync:
                    run.committed = st.committed()
                    assert not st.cursors_pending()
                    run.cur_commit = c
            run.done(st)
        else:
            st = None
            st = run.boot()
            run.committed = st.committed()
            run.cur_set = run.cur_commit = st.cursor("uploaded")
    return st


def second_cut(path, run, c2):
    # A second power cut while recovering from the first: boot, append and
    # flush with the power cut after operation c2 of that boot (torn).
    # Returns the oldest seq this boot may legitimately evict up to.
    f, part = flash(path, NSECT, cut=c2, torn=3)
    bound = 0
    try:
        st = Store(part, clock=Clock(), ram_size=RAM)
        live = st.log.live
        # opening a sector evicts at most the oldest one
        bound = st.log.first[live[1]] if len(live) > 1 else 0
        for _ in range(120):
            s = st.append(*gen(st.seq + 1))
            if s > run.top:
                run.top = s
        st.flush()
        run.committed = st.committed()
    except PowerCut:
        pass
    f.close()
    return bound


def after_cut(path, run, bound2=0):
    f, part = flash(path, NSECT)
    st = Store(part, clock=Clock(), ram_size=RAM)
    s = st.stats()
    assert s["corrupt_records"] == 0 and s["quarantined"] == 0, "power cut reported as damage: %r" % s
    assert s["health"] == "ok", s
    bound = run.ref_oldest[run.calls] if run.calls < len(run.ref_oldest) else run.ref_oldest[-1]
    bound = max(bound, bound2)
    check_log(st, run.top, bound, run.committed)
    c = st.cursor("uploaded")
    assert run.cur_commit <= c <= run.cur_set, "cursor %d not in [%d, %d]" % (c, run.cur_commit, run.cur_set)
    # the log takes new writes, and they survive a reboot
    for _ in range(50):
        st.append(*gen(st.seq + 1))
    st.set_cursor("uploaded", st.seq - 10)
    st.flush()
    want = st.seq
    f.close()
    f, part = flash(path, NSECT)
    st = Store(part, clock=Clock(), ram_size=RAM)
    check_log(st, want, None, want)
    assert st.cursor("uploaded") == want - 10
    f.close()


def main():
    d, start, stride = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    path = d + "/pl.bin"
    remove(path)
    ref = Run(path)
    workload(ref)
    total = ref.ops()
    erases = sum(ref.f.erase_counts())
    ref.f.close()
    tried = 0
    double = 0
    for n in range(start, total, stride):
        for torn in (None, TORN[n % len(TORN)]):
            remove(path)
            run = Run(path, cut=n, torn=torn)
            run.ref_oldest = ref.oldest
            try:
                workload(run)
                assert False, "cut %d never happened" % n
            except PowerCut:
                pass
            run.f.close()
            c2 = None
            try:
                bound2 = 0
                if torn is None and n % 4 == 0:
                    c2 = (n // 4) % 4
                    bound2 = second_cut(path, run, c2)
                    double += 1
                after_cut(path, run, bound2)
            except AssertionError as e:
                print("FAIL cut=%d torn=%r second cut=%r: %s" % (n, torn, c2, e))
                raise
            tried += 1
    print(
        "powerloss ops=%d tried=%d erases=%d sectors=%d readings=%d double=%d"
        % (total, tried, erases, NSECT, ref.top, double)
    )


main()
