"""The whole device on the esp32s3_eink29 board: ihd sim --board esp32s3_eink29.

The real hal/esp32.py over the ESP32 port emulation (mp32 only), booted as
the port boots (_esp32emu.boot: littlefs on the "vfs" partition at "/"),
with /config.json provisioned into that littlefs by the simulator (as
`mpremote cp`), the RTC unset at every power-on, 10% datagram loss and two
power cuts in 6 simulated hours at 1000x (about 30 s of wall time).
"""

import json
import subprocess

import pytest

import mpy as mpymod

ROOT = mpymod.ROOT
RUNTIMES = ("mp32",)  # the ESP32 port emulation is built for mp32 only


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim-esp32")
    cmd = [*mpymod.sim_command("mp32"), "--board", "esp32s3_eink29", "--protocol", "ezsp"]
    cmd += ["--hours", "6", "--speed", "1000", "--loss", "0.1", "--power-cuts", "2", "--no-record-display"]
    cmd += ["--out", str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    summary = json.loads((out / "summary.json").read_text())
    return r, summary, out


def test_the_esp32_board_passes_the_sims_verdict(sim):
    r, s, out = sim
    assert r.returncode == 0, r.stderr[-3000:] + (out / "firmware.log").read_text()[-3000:]
    assert s["board"] == "esp32s3_eink29" and s["runtime"] == "mp32"
    assert s["memory_errors"] == 0 and s["crashes"] == 0 and s["watchdog_resets"] == 0
    assert s["power_cuts"]["kill"] == 2


def test_every_committed_reading_is_stored_at_the_collector(sim):
    _, s, _ = sim
    assert s["readings_committed"] > 1000
    assert s["readings_lost"] == 0
    c = s["committed_vs_stored"]
    assert c is not None, "the store could not be read back"
    assert c["differ"] == 0 and c["missing_at_collector"] == 0, c
    # the readings committed while the final drain ran are its unsent tail
    # (uploaded at the next run with --keep-state), not lost
    assert c["compared"] == s["readings_stored"], c
    assert c["on_flash"] == c["compared"] + c["unsent_tail"] and s["readings_unsent"] == c["unsent_tail"], c
    assert c["on_flash"] == s["readings_committed"] + s["readings_unlogged"]
    assert s["readings_never_sent"] == 0


def test_config_comes_from_the_littlefs_and_the_rtc_starts_unset(sim):
    _, _, out = sim
    log = (out / "firmware.log").read_text().split("\n")
    boots = [ln for ln in log if ln.startswith("log app boot ")]
    assert boots and all("config: /config.json" in ln for ln in boots), boots
    assert "reset: power-on" in boots[0]
    first = json.loads(next(ln for ln in log if ln.startswith("status "))[7:])
    assert first["clock_valid"] is False  # power-on: the RTC reads 2000-01-01 until the meter's time
    assert first["board"] == "esp32s3-eink29"
    # the config went to the device's filesystem, not the Unix board's state file
    assert "fault C01" not in "\n".join(log)
