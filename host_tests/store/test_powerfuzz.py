"""Randomised power-loss fuzz of the store (host_tests/store/powerfuzz.py).

Complements the exhaustive sweep (test_powerloss.py): 40 workloads with
different sector counts (3..7), RAM sizes and operation mixes, a cursor
allowed to pass pending readings, and 8 random cuts each (clean or torn by
1..4095 bytes). Split over two MicroPython processes.
"""

import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import mpy

HERE = Path(__file__).resolve().parent
SEEDS = 40
CUTS = 8


def test_random_power_cuts_over_many_workloads(tmp_path):
    def one(i):
        d = tmp_path / f"f{i}"
        d.mkdir()
        env = {"MICROPYPATH": mpy.module_path() + ":" + str(HERE)}
        half = SEEDS // 2
        return mpy.run(path=HERE / "powerfuzz.py", args=(d, i * half, half, CUTS), heap="192k", env=env).stdout

    with ThreadPoolExecutor(2) as ex:
        outs = list(ex.map(one, range(2)))
    runs = bumps = rotations = 0
    for out in outs:
        m = re.search(r"powerfuzz runs=(\d+) workloads=(\d+) ops=(\d+) bumps=(\d+) rotations=(\d+)", out)
        assert m, out
        runs += int(m[1])
        bumps += int(m[4])
        rotations += int(m[5])
    print(f"power fuzz: {runs} cuts, {bumps} reboots past a cursor, {rotations} ring rotations")
    assert runs == SEEDS * CUTS
    assert bumps > 0  # the cursor-past-pending case really happened
    assert rotations >= SEEDS  # and the ring wrapped, about once per workload or more
