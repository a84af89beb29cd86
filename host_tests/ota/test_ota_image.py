"""firmware/ota/image.py (streaming app image parser) against esptool's own
image parser, the oracle, on images esptool wrote; and the 1.5 MB heap cap."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from esptool.bin_image import LoadFirmwareImage
from esptool.cmds import _parse_app_info

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ota_hosttool import tool  # noqa: E402

PARSE = """
import sys
from ota.image import AppImage
data = open(sys.argv[1], "rb").read()
steps = [int(x) for x in sys.argv[2].split(",")]
img = AppImage(0x1F0000)
mv = memoryview(data)
pos = 0
k = 0
while pos < len(data) and not img.done():
    n = steps[k % len(steps)]
    used = img.feed(mv[pos : pos + n])
    pos += used
    k += 1
print(img.chip_id, img.segments, img.end, img.secure_version, repr(img.version), repr(img.project), pos)
"""


@pytest.mark.parametrize(
    "chip,size,seed,sv,version,project,steps",
    [
        ("esp32s3", 100_000, 1, 3, "2.0.0", "micropython", "4096"),
        ("esp32s3", 300_000, 7, 0, "v1.29.0-ihd", "ihd-display", "1,7,13,4093,65536"),
        ("esp32c3", 40_000, 3, 65535, "x" * 31, "p" * 31, "3,255,256,257"),
        ("esp32", 20_000, 9, 1, "", "a", "8,24,32,1000"),
    ],
)
def test_parser_agrees_with_esptool(mpy, tmp_path, chip, size, seed, sv, version, project, steps):
    data = tool.make_image(size=size, version=version, project=project, secure_version=sv, chip=chip, seed=seed)
    p = tmp_path / "img.bin"
    p.write_bytes(data)
    out = mpy.run(PARSE, args=(p, steps), heap="4m").stdout.split("\n")[0]
    ref = LoadFirmwareImage(chip, data)
    desc = _parse_app_info(ref.segments[0].data)
    assert ref.calc_digest == ref.stored_digest and ref.checksum == ref.calculate_checksum()
    expected = [
        ref.chip_id,
        len(ref.segments),
        ref.data_length + 32,
        desc["secure_version"],
        repr(desc["version"]),
        repr(desc["project_name"]),
        ref.data_length + 32,
    ]
    assert out == " ".join(map(str, expected))
    assert ref.data_length + 32 == len(data)  # the whole file is the image


def test_verifies_1_5_mb_image_in_a_small_heap(mpy, tmp_path, keys, runtime):
    # Constant memory: the verifier never holds the image. 24 KB on mp32
    # (frozen code, 32-bit words, as the ESP32; 20 KB measured); 64 KB on the
    # 64-bit wheel, which also compiles the modules into the heap (56 KB
    # measured since key lists and board tags came in).
    big = keys.sign(tool.make_image(size=1_536 * 1024, secure_version=3, seed=5))
    assert len(big) > 1_500_000
    p = tmp_path / "big.bin"
    p.write_bytes(big)
    code = f"""
import binascii, gc
from ota.verify import Policy, verify_file
gc.collect()
v = verify_file({str(p)!r}, Policy([binascii.unhexlify({keys.digest[keys.trusted]!r})], 9, "micropython", 3))
print("accepted block", v.accepted_block, v.pos)
"""
    assert mpy.run(code, heap="24k" if runtime == "mp32" else "64k").stdout.split() == [
        "accepted",
        "block",
        "0",
        str(len(big)),
    ]
