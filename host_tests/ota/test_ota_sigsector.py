"""The signature sector must be exactly the Secure Boot V2 block(s) plus
erased padding (firmware/ota/verify.py): bytes there are not covered by the
signature, so anything else in it is refused ("sig-sector-garbage") rather
than carried into flash unexamined.

Each case is an espsecure-signed image altered only in that sector's unsigned
bytes; espsecure itself still accepts every one (the oracle shows the signed
content and the blocks are intact), the firmware's verifier must not."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ota_hosttool import BLOCK, SECTOR, tool  # noqa: E402
from test_ota_verify import code, espsecure_accepts, verdict  # noqa: E402


def alter(signed: bytes, offset: int, data: bytes) -> bytes:
    # offset within the signature sector
    b = bytearray(signed)
    at = len(b) - SECTOR + offset
    b[at : at + len(data)] = data
    return bytes(b)


# (case, blocks signed, offset in the sector, bytes written there)
CASES = [
    ("byte-after-block", 1, BLOCK, b"\x00"),
    ("last-byte", 1, SECTOR - 1, b"\xfe"),
    ("after-three-slots", 1, 3 * BLOCK + 10, b"ihd"),
    ("block-zero-pad", 1, 1200, b"\x01"),
    ("random-slot-1", 1, BLOCK, random.Random(5).randbytes(BLOCK)),
    ("after-second-block", 2, 2 * BLOCK + 7, b"\x7f"),
    ("second-block-zero-pad", 2, BLOCK + 1215, b"\x80"),
]


@pytest.mark.parametrize("case,nblocks,offset,data", CASES, ids=[c[0] for c in CASES])
def test_unsigned_bytes_in_signature_sector_refused(tmp_path, keys, image, case, nblocks, offset, data):
    pems = [keys.trusted, keys.other][:nblocks]
    signed = keys.sign(image, *pems)
    trusted = [keys.digest[keys.trusted]]
    assert verdict(tmp_path, signed, trusted) == "OK"  # untouched: accepted
    bad = alter(signed, offset, data)
    assert bad != signed and bad[: len(bad) - SECTOR] == signed[: len(signed) - SECTOR]
    assert espsecure_accepts(tmp_path, bad, keys.trusted), case  # the oracle is unmoved
    line = verdict(tmp_path, bad, trusted)
    assert code(line) == "sig-sector-garbage", (case, line)


def test_blocks_and_erased_padding_exactly_is_accepted(tmp_path, keys, image):
    # Three blocks (the most a sector holds) and nothing else: accepted by
    # either key; the rules refuse only what is neither block nor 0xFF.
    three = keys.sign(image, keys.other, keys.e3, keys.trusted)
    assert verdict(tmp_path, three, [keys.digest[keys.trusted]]) == "OK"
    assert espsecure_accepts(tmp_path, three, keys.trusted)
    assert code(verdict(tmp_path, alter(three, 3 * BLOCK, b"\x00"), [keys.digest[keys.trusted]])) == (
        "sig-sector-garbage"
    )


def test_garbage_does_not_hide_behind_a_missing_block(tmp_path, keys, signed):
    # No well-formed block at all stays "no-signature-block" (the cause to
    # report), whatever else the sector holds.
    blank = alter(signed, 0, b"\xff" * BLOCK)
    assert code(verdict(tmp_path, blank, [keys.digest[keys.trusted]])) == "no-signature-block"
    junk = alter(blank, 2000, b"\x00")
    assert code(verdict(tmp_path, junk, [keys.digest[keys.trusted]])) == "no-signature-block"


def test_device_install_path_refuses_it_too(mpy, keys, tmp_path, signed):
    # The updater's streaming install (ota/install.py) with the same image:
    # refused before set_boot, otadata untouched.
    here = Path(__file__).resolve().parent
    v1 = tmp_path / "v1.bin"
    v1.write_bytes(keys.sign(tool.make_image(size=12_000, version="1.0.0", secure_version=3)))
    bad = tmp_path / "bad.bin"
    bad.write_bytes(alter(signed, SECTOR - 1, b"\x00"))
    out = mpy.run(
        f"""
import sys
sys.path.insert(0, {str(here)!r})
import binascii
import ota_devsim as D
from hal import unix_partition as UP
from ota.verify import Reject
D.factory({str(v1)!r}); D.power_on()
u = D.updater([binascii.unhexlify({keys.digest[keys.trusted]!r})])
try:
    D.install(u, {str(bad)!r})
    print("installed")
except Reject as e:
    print(e.code(), UP.ota_state())
""",
        heap="256k",  # as test_ota_powercut: the wheel loads the firmware from source
    ).stdout.split()
    assert out == ["sig-sector-garbage", "None"], out
