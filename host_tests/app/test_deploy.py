"""make deploy / make flash without a board: the compiled tree and the exact commands (DRY_RUN=1)."""

import hashlib
import shlex
import struct
import subprocess
import sys

import pytest
from test_boards import _csv_partitions, _ManifestRun

import mpy as mpymod

ROOT = mpymod.ROOT
BIN = ROOT / ".venv" / "bin"
sys.path.insert(0, str(ROOT / "tools"))
from ihd.deploy import tool as deploy  # noqa: E402


def _make(*args, check=True):
    r = subprocess.run(["make", "-s", *args], cwd=ROOT, capture_output=True, text=True)
    if check:
        assert r.returncode == 0, r.stdout + r.stderr
    return r


def test_build_compiles_exactly_the_frozen_set_for_a_32_bit_target(tmp_path):
    tree = deploy.build("esp32s3_eink29", tmp_path)
    got = {p.relative_to(tree).as_posix() for p in tree.rglob("*") if p.is_file()}
    frozen = set(_ManifestRun(ROOT / "boards" / "esp32s3_eink29" / "manifest.py").files)
    want = {f if f == "main.py" else f[:-3] + ".mpy" for f in frozen}
    assert got == want
    for p in tree.rglob("*.mpy"):
        head = p.read_bytes()[:4]
        # mpy v6, small ints of 31 bits: compiled for xtensawin, not the host.
        assert head[:2] == b"M\x06" and head[3] == 31, (p, head)
    assert (tree / "main.py").read_text() == (ROOT / "firmware" / "main.py").read_text()


def test_make_deploy_dry_run_prints_the_mpremote_command():
    r = _make("deploy", "PORT=/dev/ttyACM9", "DRY_RUN=1")
    cmd = [ln for ln in r.stdout.splitlines() if ln.startswith("+ ")]
    assert len(cmd) == 1
    argv = shlex.split(cmd[0][2:])
    assert argv[:3] == [str(BIN / "mpremote"), "connect", "/dev/ttyACM9"]
    assert argv[-2:] == ["+", "reset"]
    tree = ROOT / "build" / "deploy" / "esp32s3_eink29"
    copies = " ".join(argv[3:-2]).split(" + ")
    want = [f"fs cp -r {e} :" if e.is_dir() else f"fs cp {e} :{e.name}" for e in sorted(tree.iterdir())]
    assert copies == want
    assert "fs cp -r %s :" % (tree / "app") in copies and f"fs cp {tree / 'main.py'} :main.py" in copies


def test_make_deploy_without_port_explains():
    r = _make("deploy", check=False)
    assert r.returncode != 0 and "PORT=/dev/ttyACM0" in r.stdout


def _image(tmp_path, rows, md5=True):
    # A flash image as ESP-IDF lays it out: bootloader at 0x0, table at 0x8000.
    img = bytearray(b"\xff" * 0x9000)
    img[0] = 0xE9
    pos = 0x8000
    for name, typ, sub, off, size in rows:
        e = b"\xaa\x50" + struct.pack("<BBII", typ, sub, off, size) + name.encode().ljust(16, b"\0") + b"\0" * 4
        img[pos : pos + 32] = e
        pos += 32
    if md5:
        img[pos : pos + 32] = b"\xeb\xeb" + b"\xff" * 14 + hashlib.md5(img[0x8000:pos]).digest()
    p = tmp_path / "fw.bin"
    p.write_bytes(bytes(img))
    return p


@pytest.mark.parametrize("md5", [True, False])
def test_make_flash_dry_run_checks_the_image_and_prints_esptool(tmp_path, md5):
    img = _image(tmp_path, _csv_partitions(), md5)
    r = _make("flash", "PORT=/dev/ttyUSB3", f"IMAGE={img}", "DRY_RUN=1")
    cmds = [shlex.split(ln[2:]) for ln in r.stdout.splitlines() if ln.startswith("+ ")]
    assert cmds == [
        [str(BIN / "esptool"), "--chip", "esp32s3", "--port", "/dev/ttyUSB3", "--baud", "460800"]
        + ["write-flash", "0x0", str(img)]
    ]
    assert (BIN / "esptool").exists()


def test_flash_refuses_an_image_for_another_partition_table(tmp_path, capsys):
    stock = [("nvs", 1, 2, 0x9000, 0x6000), ("phy_init", 1, 1, 0xF000, 0x1000), ("factory", 0, 0, 0x10000, 0x1F0000)]
    img = _image(tmp_path, stock)
    assert deploy.main(["flash", "--port", "/dev/null", "--image", str(img), "--dry-run"]) == 1
    assert "partition table is not boards/esp32s3_eink29/partitions.csv" in capsys.readouterr().err
    bad = tmp_path / "zero.bin"
    bad.write_bytes(b"\0" * 100)
    assert deploy.main(["flash", "--port", "/dev/null", "--image", str(bad), "--dry-run"]) == 1
    assert "not an ESP32 flash image" in capsys.readouterr().err
    img = _image(tmp_path, _csv_partitions())
    data = bytearray(img.read_bytes())
    data[0x8000 + 40] ^= 1  # damage an entry: the MD5 row catches it
    img.write_bytes(bytes(data))
    assert deploy.main(["flash", "--port", "/dev/null", "--image", str(img), "--dry-run"]) == 1
    assert "MD5 mismatch" in capsys.readouterr().err
