"""ihd provision and the firmware's config validator, against third-party oracles."""

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
from zigpy.util import convert_install_code

import mpy as mpymod

ROOT = mpymod.ROOT
sys.path.insert(0, str(ROOT / "tools"))
from ihd.provision import tool as provision  # noqa: E402

SIM_KEY = ROOT / "boards" / "unix" / "sim_ota_signing_key.pem"


def _board_defaults(mpy) -> dict:
    out = mpy.run("import board, json\nprint(json.dumps(board.DEFAULT_CONFIG))", heap="128k").stdout
    return json.loads(out)


def test_install_code_check_agrees_with_zigpy(mpy):
    # zigpy.util.convert_install_code accepts exactly the codes whose CRC is
    # right; the firmware validator must accept and reject the same codes.
    rng = random.Random(8)
    codes = []
    for n in (8, 10, 14, 18) * 25:
        code = bytearray(rng.randbytes(n))
        if rng.random() < 0.5:
            from crccheck.crc import CrcX25

            code[-2:] = CrcX25.calcbytes(code[:-2], byteorder="little")
        codes.append(bytes(code))
    snippet = (
        "from app import config\nimport sys\n"
        "for line in sys.stdin:\n"
        "    b = bytes.fromhex(line.strip())\n"
        "    print(int(config.crc_x25(b[:-2]) == b[-2] | b[-1] << 8))\n"
    )
    out = mpy.run(snippet, heap="128k", input="\n".join(c.hex() for c in codes).encode()).stdout.split()
    accepted_by_zigpy = []
    for c in codes:
        try:
            convert_install_code(c)
            accepted_by_zigpy.append("1")
        except ValueError:
            accepted_by_zigpy.append("0")
    assert out == accepted_by_zigpy
    assert 20 < out.count("1") < 80  # both verdicts exercised


def test_board_defaults_are_valid_and_trust_the_sim_key(mpy):
    d = _board_defaults(mpy)
    assert provision.validate_text(json.dumps(d)) == []
    # The embedded OTA digest is espsecure's digest of the committed sim key.
    assert d["ota_keys"] == [provision.ota_key_digest(SIM_KEY)]
    convert_install_code(bytes.fromhex(d["install_code"]))


def _make(tmp_path, *extra):
    out = tmp_path / "c.json"
    args = [
        "make",
        "--device-id",
        "77",
        "--endpoint",
        "collector.example:4700",
        "--wifi-ssid",
        "Home",
        "--wifi-key",
        "password1",
        "--install-code",
        "83FED3407A939723A5C639B26916D505C3B5",
        "--ota-key",
        str(SIM_KEY),
        "-o",
        str(out),
        *extra,
    ]
    return provision.main(args), out


def test_make_writes_a_config_the_firmware_boots_with(tmp_path, mpy, capsys):
    rc, out = _make(tmp_path, "--generate-key")
    assert rc == 0
    cfg = json.loads(out.read_text())
    assert len(bytes.fromhex(cfg["key"])) == 32
    assert f"key={cfg['key']}" in capsys.readouterr().out
    # The Unix board reads <IHD_STATE>/config.json at boot.
    state = mpy.state_dir
    state.mkdir(parents=True)
    (state / "config.json").write_text(out.read_text())
    r = mpy.run("from app import config\nc = config.load()\nprint(c.device_id, c.key.hex(), c.endpoints)", heap="128k")
    assert r.stdout.split() == ["77", cfg["key"], "[('collector.example',", "4700)]"]


def test_make_refuses_what_the_firmware_would_refuse(tmp_path, capsys):
    rc, out = _make(tmp_path, "--key", "ab" * 31)
    assert rc == 1 and not out.exists()
    assert "config: key: expected 64 hex digits, got 62" in capsys.readouterr().err
    rc, out = _make(tmp_path)  # neither --key nor --generate-key
    assert rc == 2 and not out.exists()


def test_check_names_each_problem(tmp_path, capsys):
    p = tmp_path / "bad.json"
    p.write_text(json.dumps({"format": 1}))
    assert provision.main(["check", str(p)]) == 1
    err = capsys.readouterr().err
    for field in ("device_id", "key_id", "key", "endpoints", "wifi_ssid", "wifi_key", "meter_protocol", "ota_keys"):
        assert f"{field}: missing" in err
    assert provision.main(["check", str(tmp_path / "absent.json")]) == 2


def test_check_lists_every_kind_of_problem_at_once(tmp_path, capsys):
    # before: with a field missing or unknown, the present fields' values
    # were not checked, so a second run found the next kind of problem
    p = tmp_path / "bad.json"
    p.write_text(json.dumps({"format": 1, "device_id": -5, "key": "zz", "wifi": 3, "meter_protocol": "zigbee"}))
    assert provision.main(["check", str(p)]) == 1
    err = capsys.readouterr().err
    for line in (
        "key_id: missing",
        "wifi: unknown field",
        "device_id: -5 out of range",
        "key: not hex",
        "meter_protocol: 'zigbee' is not one of",
    ):
        assert line in err, err
    assert "wifi_ssid: expected" not in err  # missing, said once


def test_push_dry_run_prints_exact_mpremote_commands(tmp_path):
    rc, out = _make(tmp_path, "--generate-key")
    assert rc == 0
    r = subprocess.run(
        [sys.executable, "-m", "ihd.provision", "push", str(out), "--port", "/dev/ttyUSB7", "--dry-run"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    mpremote = str(ROOT / ".venv" / "bin" / "mpremote")
    assert r.stdout.splitlines()[1:] == [
        f"+ {mpremote} connect /dev/ttyUSB7 fs cp {out} :config.json",
        f"+ {mpremote} connect /dev/ttyUSB7 reset",
    ]
    assert Path(mpremote).exists()


@pytest.mark.parametrize("field,value", [("device_id", 2**32), ("meter_protocol", "raven2")])
def test_check_rejects_out_of_range(tmp_path, mpy, field, value):
    d = _board_defaults(mpy)
    d[field] = value
    assert provision.validate_text(json.dumps(d)) != []
