"""Support console tests: one real run of the whole simulated device per session;
its collector database (written by the real collector) is what the console reads."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from console_helpers import ROOT, copy_db, ensure_chromium  # noqa: E402

import mpy as mpymod  # noqa: E402


@pytest.fixture(scope="session")
def sim_run(tmp_path_factory):
    """`ihd sim run` for 1 simulated hour at 300x (about 15 s), real-time mode asked for
    half-way: DIR/collector.sqlite holds a device, its readings, live rows and a done command."""
    out = tmp_path_factory.mktemp("console-sim") / "run"
    cmd = [*mpymod.sim_command(), "--board-defaults", "--hours", "1", "--speed", "300"]
    cmd += ["--realtime-at", "0.5:1500", "--no-record-display", "--out", str(out)]
    t = time.monotonic()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    print(f"sim run for the console tests: {time.monotonic() - t:.1f} s", file=sys.stderr)
    return out


@pytest.fixture
def sim_db(sim_run, tmp_path) -> Path:
    """A private copy of the run's database (tests queue commands into it)."""
    return copy_db(sim_run / "collector.sqlite", tmp_path / "collector.sqlite")


@pytest.fixture
def summary(sim_run) -> dict:
    return json.loads((sim_run / "summary.json").read_text())


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver = ensure_chromium()
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1100,1700"):
        opts.add_argument(a)
    b = webdriver.Chrome(options=opts, service=Service(executable_path=driver))
    b.implicitly_wait(0)
    yield b
    b.quit()
