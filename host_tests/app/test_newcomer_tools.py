"""The host tools as a newcomer meets them (issue 15): they run as written
in the docs whatever Python starts them, protect keys, and answer a mistake
with what was wrong and what to do (non-zero exit, no traceback)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

RUNTIMES = ()  # host tools only (CPython)
ROOT = Path(__file__).resolve().parents[2]
VENV_PY = sys.executable
SIM_KEY = ROOT / "boards" / "unix" / "sim_ota_signing_key.pem"
RAVEN = ("--protocol", "raven")  # no install code needed
# `ihd provision make`, a valid RAVEn device config (-o FILE follows)
MAKE = ("make", "--device-id", "77", "--endpoint", "c.example:4700", "--wifi-ssid", "Home", "--generate-key", *RAVEN)


def run(*args, py=VENV_PY, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([py, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=300)


def user_error(p: subprocess.CompletedProcess, *words: str) -> None:
    assert p.returncode != 0, p.stdout + p.stderr
    assert "Traceback" not in p.stderr and "[Errno" not in p.stderr, p.stderr
    for w in words:
        assert w in p.stderr, p.stderr


IHD = Path(VENV_PY).parent / "ihd"


def test_the_documented_command_runs_on_the_venvs_python():
    # before: tools/*.py were not executable, lacked a shebang and ran on whatever
    # `python3` the shell found; the documented command is now `ihd`, a console
    # script whose #! line is the venv's Python
    first = IHD.read_text().splitlines()[0]
    assert first.startswith("#!") and Path(first[2:]).resolve() == Path(VENV_PY).resolve(), first
    assert IHD.stat().st_mode & stat.S_IXUSR, oct(IHD.stat().st_mode)


def test_ihd_runs_from_a_shell_without_the_venv(tmp_path):
    # before, the old panel script run with the system Python: ModuleNotFoundError: PIL.
    # Now `.venv/bin/ihd panel` from a shell whose PATH and environment know no venv.
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    p = subprocess.run([str(IHD), "panel", "--help"], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert p.returncode == 0 and "usage: ihd panel" in p.stdout, p.stderr
    p = subprocess.run([str(IHD), "ota", "keygen", tmp_path / "k.pem"], capture_output=True, text=True, env=env)
    assert p.returncode == 0 and (tmp_path / "k.pem").exists(), p.stderr


def test_keys_and_configs_are_written_owner_only(tmp_path):
    # before: 0644, readable by every user of the machine
    key = tmp_path / "k.pem"
    assert run("-m", "ihd.ota", "keygen", key).returncode == 0
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    cfg = tmp_path / "c.json"
    p = run("-m", "ihd.provision", *MAKE, "--ota-key", SIM_KEY, "-o", cfg)
    assert p.returncode == 0, p.stderr
    assert stat.S_IMODE(cfg.stat().st_mode) == 0o600 and len(json.loads(cfg.read_text())["key"]) == 64


def test_ota_sign_refuses_what_it_must_not_sign(tmp_path):
    img, signed = tmp_path / "a.bin", tmp_path / "s.bin"
    assert run("-m", "ihd.ota", "make-image", "-o", img, "--size", 20000).returncode == 0
    assert run("-m", "ihd.ota", "sign", "-k", SIM_KEY, "-o", signed, img).returncode == 0
    # before: a signed image was signed again (a second signature sector appended)
    again = run("-m", "ihd.ota", "sign", "-k", SIM_KEY, "-o", tmp_path / "s2.bin", signed)
    user_error(again, "already signed")
    assert not (tmp_path / "s2.bin").exists()
    empty, text = tmp_path / "empty.bin", tmp_path / "notes.txt"
    empty.write_bytes(b"")
    text.write_text("hello\n")
    for f in (empty, text):
        p = run("-m", "ihd.ota", "sign", "-k", SIM_KEY, "-o", tmp_path / "x.bin", f)
        user_error(p, "not an ESP-IDF app image")
    bad = tmp_path / "bad.pem"
    bad.write_text("garbage\n")
    user_error(run("-m", "ihd.ota", "sign", "-k", bad, "-o", tmp_path / "x.bin", img), "not a PEM private key")
    user_error(run("-m", "ihd.ota", "digest", tmp_path / "nokey.pem"), "no key file", "ihd ota keygen")
    user_error(run("-m", "ihd.ota", "keygen", tmp_path / "no" / "dir" / "k.pem"), "no folder")
    user_error(run("-m", "ihd.ota", "sign", "-k", SIM_KEY, "-o", tmp_path / "x.bin", tmp_path / "none.bin"))


def test_capture_decode_of_something_else_says_so(tmp_path):
    # before: a CSV header, "0 frames used" and exit 0
    f = tmp_path / "notes.txt"
    f.write_text("not a capture\n" * 20)
    p = run("-m", "ihd.capture", "decode", "--protocol", "ezsp", f)
    user_error(p, "no ezsp frame decoded", "--protocol raven")


def test_a_missing_serial_port_is_named_as_missing(tmp_path):
    # before: mpremote's "failed to access /dev/... (it may be in use by another program)"
    port = "/dev/ttyIHD-not-plugged-in"
    user_error(run("-m", "ihd.deploy", "deploy", "--port", port), f"no serial port {port}", "plugged in")
    cfg = tmp_path / "c.json"
    assert run("-m", "ihd.provision", *MAKE, "--ota-key", SIM_KEY, "-o", cfg).returncode == 0
    user_error(run("-m", "ihd.provision", "push", cfg, "--port", port), f"no serial port {port}")
    if os.path.exists("/dev/null"):  # exists, but no serial port: mpremote's own error then
        assert "no serial port" not in run("-m", "ihd.deploy", "deploy", "--port", "/dev/null", "--dry-run").stderr


def test_collector_commands_need_an_existing_database(tmp_path):
    # before: `ihd collector stats` in any folder made an empty collector.sqlite there
    p = run("-m", "ihd.collector", "stats", cwd=tmp_path)
    user_error(p, "no database collector.sqlite", "--db")
    assert list(tmp_path.iterdir()) == []
    junk = tmp_path / "notes.txt"
    junk.write_text("not a database\n" * 100)
    user_error(run("-m", "ihd.collector", "--db", junk, "stats"), "is not a collector database")
    db = tmp_path / "c.sqlite"
    assert run("-m", "ihd.collector", "--db", db, "add-device", "5").returncode == 0  # makes one
    assert run("-m", "ihd.collector", "--db", db, "stats").returncode == 0


def ihd(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([str(IHD), *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_one_ihd_command_runs_every_part(tmp_path):
    # a console script in .venv/bin (pyproject.toml), as esptool and mpremote
    assert IHD.exists(), "make venv installs it (pip install -e .)"
    top = ihd("--help")
    assert top.returncode == 0
    for part in ("sim", "collector", "ota", "provision", "capture", "panel", "deploy", "flash", "emulator"):
        assert f"ihd {part}" in top.stdout, part
    assert "usage: ihd sim" in ihd("sim", "--help").stdout
    assert "usage: ihd panel" in ihd("panel", "--help").stdout
    key = tmp_path / "k.pem"
    assert ihd("ota", "keygen", key).returncode == 0 and key.exists()
    db = tmp_path / "c.sqlite"
    assert ihd("collector", "add-device", "5", "--db", db).returncode == 0  # --db after the sub-command too
    s = ihd("collector", "stats", "--db", db, "--json")
    assert s.returncode == 0 and '"5"' in s.stdout, s.stdout + s.stderr
    user_error(ihd("collector", "stats", cwd=tmp_path), "no database")
    user_error(ihd("nosuchpart"), "no part 'nosuchpart'")
    user_error(ihd("capture", "decode", "--protocol", "ezsp", tmp_path / "none.bin"), "no such file")
    c = ihd("collector", "console", "--help")
    assert c.returncode == 0 and "--db" in c.stdout, c.stdout + c.stderr
