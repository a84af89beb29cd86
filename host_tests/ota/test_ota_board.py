"""Board identity: an image names the board it is for (a tag in
esp_app_desc_t's reserved bytes, written by `ihd ota make-image` or
`sign --board`, covered by the signature); the device refuses another
board's image with the same chip and project ("board-mismatch")."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ota_hosttool import tool  # noqa: E402
from test_ota_verify import code, espsecure_accepts, verdict  # noqa: E402

HERE = Path(__file__).resolve().parent
OTA = [sys.executable, "-m", "ihd.ota"]


def cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([*OTA, *map(str, args)], capture_output=True, text=True)


def esptool_info(path: Path) -> str:
    return subprocess.run(
        [str(tool.BIN / "esptool"), "--chip", "esp32s3", "image-info", str(path)], capture_output=True, text=True
    ).stdout


def test_tagging_keeps_the_image_valid_for_esptool(tmp_path):
    raw = tool.make_image(size=30_000, version="4.0", secure_version=1, board=None)
    assert tool.image_info(raw)["board"] is None
    tagged = tool.set_board(raw, "esp32s3-eink29")
    assert len(tagged) == len(raw) and tool.image_info(tagged)["board"] == "esp32s3-eink29"
    p = tmp_path / "t.bin"
    p.write_bytes(tagged)
    info = esptool_info(p)
    # esptool recomputes both: the XOR checksum and the appended SHA-256
    assert "Checksum: " in info and "(valid)" in info and "App version: 4.0" in info, info
    assert "invalid" not in info.lower(), info
    # the same image made with the tag from the start is byte-identical
    assert tagged == tool.make_image(size=30_000, version="4.0", secure_version=1, board="esp32s3-eink29")


def test_foreign_board_refused_own_board_accepted(tmp_path, keys):
    trusted = [keys.digest[keys.trusted]]
    mine = keys.sign(tool.make_image(size=40_000, secure_version=3))
    other = keys.sign(tool.make_image(size=40_000, secure_version=3, board="esp32s3-lcd35"))
    for img in (mine, other):
        assert espsecure_accepts(tmp_path, img, keys.trusted)  # signatures are fine
    assert verdict(tmp_path, mine, trusted, min_secure_version=3) == "OK"
    line = verdict(tmp_path, other, trusted, min_secure_version=3)
    assert code(line) == "board-mismatch" and "'esp32s3-lcd35'" in line, line
    # the same file is accepted by a device of that board
    assert verdict(tmp_path, other, trusted, min_secure_version=3, board="esp32s3-lcd35") == "OK"


def test_untagged_image_is_refused_by_the_device(tmp_path, keys):
    # espsecure signs anything; an image that names no board (a plain
    # MicroPython build signed without ihd ota) is not installed.
    raw = tmp_path / "raw.bin"
    raw.write_bytes(tool.make_image(size=20_000, secure_version=3, board=None))
    out = tmp_path / "s.bin"
    subprocess.run(
        [str(tool.BIN / "espsecure"), "sign-data", "--version", "2", "--keyfile", str(keys.trusted)]
        + ["--output", str(out), str(raw)],
        check=True,
        capture_output=True,
    )
    line = verdict(tmp_path, out.read_bytes(), [keys.digest[keys.trusted]], min_secure_version=3)
    assert line == "REJECT: board-mismatch: image is for board None, this is 'esp32s3-eink29'", line


def test_cli_sign_board(tmp_path, keys):
    digest = keys.digest[keys.trusted]
    assert cli("make-image", "-o", tmp_path / "u.bin", "--board", "", "--secure-version", 2).returncode == 0
    # untagged and no --board: a clear error, no traceback, nothing written
    p = cli("sign", "-k", keys.trusted, "-o", tmp_path / "s.bin", tmp_path / "u.bin")
    assert p.returncode == 2 and "names no board: give --board" in p.stderr and "Traceback" not in p.stderr
    assert not (tmp_path / "s.bin").exists()
    p = cli("sign", "-k", keys.trusted, "--board", "esp32s3-lcd35", "-o", tmp_path / "s.bin", tmp_path / "u.bin")
    assert p.returncode == 0 and "for board esp32s3-lcd35" in p.stdout, p.stderr
    assert espsecure_accepts(tmp_path, (tmp_path / "s.bin").read_bytes(), keys.trusted)
    v = cli("verify", "--trusted-key-digest", digest, "--board", "esp32s3-lcd35", tmp_path / "s.bin")
    assert v.returncode == 0 and v.stdout.splitlines()[1].startswith("image: board esp32s3-lcd35,"), v.stdout
    v = cli("verify", "--trusted-key-digest", digest, tmp_path / "s.bin")  # default board
    assert v.returncode == 1 and v.stdout.startswith("REJECT: board-mismatch: "), v.stdout
    # a tagged image is not re-tagged for another board (an unsigned one: a signed one is refused as signed)
    tagged = cli("make-image", "-o", tmp_path / "l.bin", "--board", "esp32s3-lcd35", "--secure-version", 2)
    assert tagged.returncode == 0
    p = cli("sign", "-k", keys.trusted, "--board", "esp32s3-eink29", "-o", tmp_path / "t.bin", tmp_path / "l.bin")
    assert p.returncode == 2 and "refusing to sign it for 'esp32s3-eink29'" in p.stderr, p.stderr
    p = cli("sign", "-k", keys.trusted, "--board", "bad board!", "-o", tmp_path / "t.bin", tmp_path / "u.bin")
    assert p.returncode == 2 and "board name" in p.stderr


def test_device_refuses_foreign_board_at_the_first_segment(mpy, keys, tmp_path):
    v1 = tmp_path / "v1.bin"
    v1.write_bytes(keys.sign(tool.make_image(size=12_000, version="1.0.0", secure_version=3)))
    other = tmp_path / "other.bin"
    other.write_bytes(keys.sign(tool.make_image(size=300_000, secure_version=3, board="esp32s3-lcd35")))
    out = mpy.run(
        f"""
import sys
sys.path.insert(0, {str(HERE)!r})
import binascii
import ota_devsim as D
from hal import unix_partition as UP
from ota.verify import Reject
D.factory({str(v1)!r}); D.power_on()
u = D.updater([binascii.unhexlify({keys.digest[keys.trusted]!r})])
try:
    D.install(u, {str(other)!r})
    print("installed")
except Reject as e:
    print(e.code(), u.installer.v.image.pos <= 2 * D.CHUNK, UP.ota_state())
""",
        heap="256k",
    ).stdout.split()
    assert out == ["board-mismatch", "True", "None"], out
