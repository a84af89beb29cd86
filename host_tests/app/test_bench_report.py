"""tools/bench.py: every bench runs, figures sit beside their baselines, failures are reported."""

import json
import sys

import mpy as mpymod

sys.path.insert(0, str(mpymod.ROOT / "tools"))
import bench  # noqa: E402


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
    assert bench.main(["--dir", str(d), "--out", str(out)]) == 1
    rep = json.loads(out.with_suffix(".json").read_text())
    assert rep["benches"]["good"]["result"]["screens"] == 3
    assert rep["benches"]["broken"]["ok"] is False and "boom" in rep["benches"]["broken"]["error"]
    md = out.with_suffix(".md").read_text()
    assert "| render_ms | 20 | render_ms_baseline | 80 | 4x |" in md
    assert "| screens | 3 |" in md
    assert "## broken" in md and "**FAILED**" in md
