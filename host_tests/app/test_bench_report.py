"""ihd bench: every bench runs, figures sit beside their baselines, failures are reported."""

import json
import sys

import mpy as mpymod

sys.path.insert(0, str(mpymod.ROOT / "tools"))
from ihd.dev import bench  # noqa: E402

RUNTIMES = ()  # CPython only: the bench scripts here run no MicroPython


def test_pairs_by_name_and_explicit_map():
    r = {"wire_bytes_per_day": 900, "http_baseline_bytes_per_day": 900000, "readings": 28800}
    assert bench.pairs(r) == [("wire_bytes_per_day", "http_baseline_bytes_per_day")]
    assert bench.pairs({"cpu_s": 1.0, "cpu_s_baseline": 8.0}) == [("cpu_s", "cpu_s_baseline")]
    r = {"codec_bits": 3.1, "zlib9_bits": 9.0, "zstd19_bits": 8.0, "baselines": {"codec_bits": "zlib9_bits"}}
    assert bench.pairs(r) == [("codec_bits", "zlib9_bits")]


def test_report_from_real_bench_scripts(tmp_path):
    d = tmp_path / "bench"
    d.mkdir()
    (d / "good.py").write_text(
        "import json\nprint('warming up')\n"
        "print(json.dumps({'render_ms': 20.0, 'render_ms_baseline': 80.0, 'screens': 3}))\n"
    )
    (d / "broken.py").write_text("raise SystemExit('no panel stream: ' + 'boom')\n")
    out = tmp_path / "report"
    assert bench.main(["--dir", str(d), "--out", str(out), "--runtimes", "wheel"]) == 1
    rep = json.loads(out.with_suffix(".json").read_text())
    assert rep["benches"]["good[wheel]"]["result"]["screens"] == 3
    assert rep["benches"]["broken[wheel]"]["ok"] is False and "boom" in rep["benches"]["broken[wheel]"]["error"]
    md = out.with_suffix(".md").read_text()
    assert "| render_ms | 20 | render_ms_baseline | 80 | 4x |" in md
    assert "| screens | 3 |" in md
    assert "## broken[wheel]" in md and "**FAILED**" in md


def test_each_bench_runs_on_both_runtimes_side_by_side(tmp_path):
    d = tmp_path / "bench"
    d.mkdir()
    # a figure that depends on the runtime the bench was run for
    (d / "heap.py").write_text(
        "import json, os\nrt = os.environ['IHD_MICROPYTHON']\n"
        "print(json.dumps({'peak_kb': 40 if rt == 'mp32' else 100, 'runtime_' + rt: 1}))\n"
    )
    (d / "own.py").write_text("import json\nBOTH_RUNTIMES = True\nprint(json.dumps({'n': 1}))\n")
    out = tmp_path / "report"
    assert bench.main(["--dir", str(d), "--out", str(out), "--runtimes", "mp32,wheel"]) == 0
    rep = json.loads(out.with_suffix(".json").read_text())
    assert set(rep["benches"]) == {"heap[mp32]", "heap[wheel]", "own"}
    assert rep["benches"]["heap[mp32]"]["result"]["runtime_mp32"] == 1
    md = out.with_suffix(".md").read_text()
    assert "| heap | peak_kb | 40 | 100 | 0.4 |" in md


def test_make_bench_leaves_the_committed_report_alone():
    # before: make bench wrote bench/report.md and .json, tracked files, on every run
    import subprocess

    r = subprocess.run(["make", "-n", "bench"], cwd=mpymod.ROOT, capture_output=True, text=True, check=True)
    runs = [ln for ln in r.stdout.splitlines() if "ihd bench" in ln]
    assert runs and all("--out build/bench/report" in ln for ln in runs), r.stdout
    assert not any(ln.startswith(("cp ", "mv ")) for ln in r.stdout.splitlines()), r.stdout
