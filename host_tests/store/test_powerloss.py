"""Power-loss sweep of the store (host_tests/store/powerloss.py) on MicroPython.

The workload is replayed once per cut point: the power is cut after every
single program and erase operation in turn, once cleanly and once torn.
The sweep is split over two MicroPython processes (stride 2) to use both
CI cores; each process loops over its cut points, re-creating NorFlash
objects, which is far faster than a process per cut point.
"""

import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import mpy

HERE = Path(__file__).resolve().parent
PROCS = 2


def test_power_cut_after_every_operation(tmp_path):
    def one(i):
        d = tmp_path / f"p{i}"
        d.mkdir()
        env = {"MICROPYPATH": mpy.module_path() + ":" + str(HERE)}
        return mpy.run(path=HERE / "powerloss.py", args=(d, i, PROCS), heap="128k", env=env, timeout=900).stdout

    with ThreadPoolExecutor(PROCS) as ex:
        outs = list(ex.map(one, range(PROCS)))
    tried = 0
    double = 0
    ops = set()
    for out in outs:
        m = re.search(r"powerloss ops=(\d+) tried=(\d+) erases=(\d+) sectors=(\d+) readings=(\d+) double=(\d+)", out)
        assert m, out
        ops.add(int(m[1]))
        tried += int(m[2])
        erases, sectors = int(m[3]), int(m[4])
        double += int(m[6])
    assert len(ops) == 1, "processes disagree on the workload"
    total = ops.pop()
    print(
        f"power-loss: {total} operations, {tried} cut points tried (clean + torn), "
        f"{double} of them with a second cut while recovering, {erases / sectors:.1f} rotations"
    )
    # every operation of the workload was cut, once clean and once torn
    assert tried == 2 * total
    assert double >= total // 4
    # the workload wraps the ring several times
    assert erases >= 3 * sectors
