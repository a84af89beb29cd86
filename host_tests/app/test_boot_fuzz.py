"""Boot on damaged state, end to end (issue 13, item 6).

The fuzzing itself runs on MicroPython, one process per persisted file, with
the real boot-time loaders: host_tests/app/mpt_boot_fuzz.py (10,000 cases each
for config.json, ota.json, otakeys.bin and the store). Here the device's own
entry point (firmware/main.py, as the device and the simulator start it) boots
on a state directory holding a damaged config.json, with the simulator's heap
cap: it must come up showing C02 with the reason, and keep running (status
line, display, config re-check), not die with a traceback.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time

import pytest

import mpy as mpymod

ROOT = mpymod.ROOT
BOARD_DEFAULTS = {
    "format": 1,
    "device_id": 4097,
    "key_id": 2,
    "key": "00" * 32,
    "endpoints": ["127.0.0.1:4700"],
    "wifi_ssid": "Home",
    "wifi_key": "correct horse",
    "meter_protocol": "raven",
    "ota_keys": ["11" * 32],
}
GOOD = json.dumps(BOARD_DEFAULTS).encode()

DAMAGED = {
    "non_utf8": (GOOD[:-1] + b', "wifi_key": "\xff\xfe"}', "config: not UTF-8 text (damaged file)"),
    "deep": (b"[" * 2000 + b"]" * 2000, "config: not a configuration: nested deeper than 4 (damaged file)"),
    "huge": (b" " * 300_000 + GOOD, "config: 300"),
    "truncated": (GOOD[:40], "config: not valid JSON (damaged or truncated file)"),
}


def _boot(state, seconds=60, env=None):
    """firmware/main.py on the test's runtime with the simulator's heap cap;
    -> its output up to the first status line (the process is then stopped)."""
    # `import main`, as tools/ihd/sim/proc.py starts it: on mp32 the frozen
    # firmware in the device's 96 KB (a script path would put the source
    # tree first on sys.path); the wheel's heap also holds the code.
    heap = mpymod.MP32_SIM_HEAP if mpymod.mpruntime.is_frozen() else "512k"
    cmd = [str(mpymod.MICROPYTHON), "-X", f"heapsize={heap}", "-c", "import main\n"]
    env = mpymod.env_for(state, env)
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=state)
    lines = []
    deadline = time.monotonic() + seconds
    try:
        for raw in p.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            lines.append(line)
            if line.startswith("status ") or time.monotonic() > deadline:
                break
        alive = p.poll() is None
    finally:
        p.kill()
        p.wait()
    return lines, alive


@pytest.mark.parametrize("kind", sorted(DAMAGED))
def test_damaged_config_boots_to_c02(tmp_path, kind):
    data, reason = DAMAGED[kind]
    state = tmp_path / "state"
    state.mkdir()
    (state / "config.json").write_bytes(data)
    lines, alive = _boot(state)
    out = "\n".join(lines)
    assert "Traceback" not in out and alive, out[-3000:]
    assert any(line.startswith("log config " + reason) for line in lines), out[-3000:]
    status = json.loads(lines[-1][len("status ") :])
    assert status["fault"][1] == "C02", status
    assert [t[0] for t in status["tasks"]] == ["config", "display", "status"], status["tasks"]
    assert status["config_errors"][0].startswith(reason)


@pytest.mark.parametrize(
    "record",
    [
        b'{"min_sv": 0, "pending": [1, 2]}',
        b'{"min_sv": 0, "pending": {"slot": 7, "stage": "booting"}}',
        b'{"min_sv": "3"}',
        b'{"min_sv": 1e999}',
        b'{"min_sv": 2, "pending": {"slot": "ota_0", "stage": "\xff"}}',
    ],
    ids=["pending_list", "slot_int", "min_sv_str", "min_sv_inf", "non_utf8"],
)
def test_damaged_ota_record_boots_with_u03(tmp_path, record):
    # A valid configuration and a damaged ota.json: the whole app builds
    # (store, meter link, uplink, the OTA record judged), says U03 with the
    # reason, and runs.
    state = tmp_path / "state"
    state.mkdir()
    (state / "config.json").write_bytes(GOOD)
    (state / "ota.json").write_bytes(record)
    with socket.socket() as coproc:  # a co-processor that never answers
        coproc.bind(("127.0.0.1", 0))
        coproc.listen(1)
        lines, alive = _boot(state, env={"IHD_UART": "tcp:127.0.0.1:%d" % coproc.getsockname()[1]})
    out = "\n".join(lines)
    assert "Traceback" not in out and alive, out[-3000:]
    assert any(line.startswith("log ota after boot: failed record-damaged: ") for line in lines), out[-3000:]
    status = json.loads(lines[-1][len("status ") :])
    assert 52 in status["faults"], status  # faults.OTA_FAILED, U03
    assert [t[0] for t in status["tasks"]][:4] == ["meter", "flush", "uplink", "health"], status["tasks"]
    # the damaged record was replaced by a clean one
    rec = json.loads((state / "ota.json").read_text())
    assert rec["pending"] is None and isinstance(rec["min_sv"], int)
