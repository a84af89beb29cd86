"""The firmware's image verifier (firmware/ota/verify.py on the MicroPython
Unix port, via `ihd ota verify`) against images signed by espsecure.

Every tampered image must be rejected, each kind with its own reason code;
where espsecure can judge the same image its verdict must agree."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, utils

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ota_hosttool import (  # noqa: E402
    SECTOR,
    craft_block,
    flip,
    pss_encode,
    put_block,
    random_salt,
    sig_block,
    tool,
)

POLICY = dict(chip="esp32s3", project="micropython", min_secure_version=3)


def verdict(tmp_path: Path, data: bytes, trusted: list[str], **kw) -> str:
    p = tmp_path / "candidate.bin"
    p.write_bytes(data)
    ok, line = tool.verify(p, trusted, **{**POLICY, **kw})
    assert ok == (line == "OK")
    return line


def code(line: str) -> str:
    assert line.startswith("REJECT: "), line
    return line[len("REJECT: ") :].split(":")[0]


def espsecure_accepts(tmp_path: Path, data: bytes, pem: Path) -> bool:
    p = tmp_path / "oracle.bin"
    p.write_bytes(data)
    proc = subprocess.run(
        [str(tool.BIN / "espsecure"), "verify-signature", "--version", "2", "--keyfile", str(pem), str(p)],
        capture_output=True,
        text=True,
    )
    return proc.returncode == 0


def digest_of(signed: bytes) -> bytes:
    return bytes(sig_block(signed)[4:36])


# Fault -> the reason code it must produce. Distinct faults, distinct codes
# (checked below); cases that are the same fault map to the same code.
EXPECTED = {
    "image": "checksum",
    "header": "image-hash",
    "padding": "padding",
    "signature": "bad-signature",
    "crc": "no-signature-block",
    "digest": "digest-mismatch",
    "untrusted": "untrusted-key",
    "exponent": "bad-exponent",
    "range": "signature-range",
    "pss-trailer": "pss-trailer",
    "pss-leftmost": "pss-leftmost-bits",
    "pss-db-padding": "pss-padding",
    "pss-separator": "pss-separator",
    "pss-salt": "pss-salt-length",
    "pss-hash": "pss-hash",
    "truncated": "truncated",
    "unsigned": "unsigned",
    "chip": "chip-mismatch",
    "project": "project-mismatch",
    "secure-version": "secure-version",
    "trailing": "trailing-data",
    "magic": "bad-magic",
    "too-large": "too-large",
}
SAME = {"untrusted-both": "untrusted", "empty": "truncated", "blank-sector": "crc"}


def expect(case: str, line: str) -> None:
    want = EXPECTED[SAME.get(case, case)]
    assert code(line) == want, f"{case}: {line}"


def test_valid_image_accepted_as_espsecure_does(tmp_path, keys, signed):
    assert espsecure_accepts(tmp_path, signed, keys.trusted)
    assert verdict(tmp_path, signed, [keys.digest[keys.trusted]]) == "OK"


def test_cli_exit_status_and_output(tmp_path, keys, signed):
    p = tmp_path / "s.bin"
    p.write_bytes(signed)
    for digest, status, out in ((keys.digest[keys.trusted], 0, "OK"), (keys.digest[keys.other], 1, "REJECT: ")):
        proc = subprocess.run(
            [sys.executable, "-m", "ihd.ota", "verify", "--trusted-key-digest", digest, str(p)]
            + ["--min-secure-version", "3"],
            capture_output=True,
            text=True,
        )
        assert proc.returncode == status, proc.stderr
        assert proc.stdout.startswith(out)


def test_rotated_keys_any_trusted_block_verifies(tmp_path, keys, image):
    two = keys.sign(image, keys.other, keys.trusted)  # blocks 0 and 1
    assert verdict(tmp_path, two, [keys.digest[keys.trusted]]) == "OK"
    assert verdict(tmp_path, two, [keys.digest[keys.other]]) == "OK"
    expect("untrusted-both", verdict(tmp_path, two, [keys.digest[keys.e3]]))


def test_byte_flipped_in_image(tmp_path, keys, signed):
    bad = flip(signed, 5000)  # inside the first segment's data
    assert not espsecure_accepts(tmp_path, bad, keys.trusted)
    expect("image", verdict(tmp_path, bad, [keys.digest[keys.trusted]]))


def test_byte_flipped_in_image_header(tmp_path, keys, signed):
    bad = flip(signed, 4)  # entry point: covered by the appended SHA-256 only
    assert not espsecure_accepts(tmp_path, bad, keys.trusted)
    expect("header", verdict(tmp_path, bad, [keys.digest[keys.trusted]]))


def test_byte_flipped_in_padding(tmp_path, keys, image, signed):
    bad = flip(signed, len(image) + 10)
    assert not espsecure_accepts(tmp_path, bad, keys.trusted)
    expect("padding", verdict(tmp_path, bad, [keys.digest[keys.trusted]]))


def test_byte_flipped_in_signature(tmp_path, keys, signed):
    blk = sig_block(signed)
    blk[812 + 100] ^= 0x40
    bad = put_block(signed, blk, fix_crc=True)
    assert not espsecure_accepts(tmp_path, bad, keys.trusted)
    expect("signature", verdict(tmp_path, bad, [keys.digest[keys.trusted]]))


def test_byte_flipped_in_signature_block_without_crc_fix(tmp_path, keys, signed):
    blk = sig_block(signed)
    blk[812 + 100] ^= 0x40
    bad = put_block(signed, blk, fix_crc=False)
    expect("crc", verdict(tmp_path, bad, [keys.digest[keys.trusted]]))


def test_byte_flipped_in_stored_digest(tmp_path, keys, signed):
    blk = sig_block(signed)
    blk[4 + 7] ^= 0x80
    bad = put_block(signed, blk)  # CRC recomputed: the block itself is well formed
    assert not espsecure_accepts(tmp_path, bad, keys.trusted)
    expect("digest", verdict(tmp_path, bad, [keys.digest[keys.trusted]]))


def test_untrusted_key_reports_espsecure_digest(tmp_path, keys, image):
    other = keys.sign(image, keys.other)
    assert espsecure_accepts(tmp_path, other, keys.other)  # a genuine signature ...
    line = verdict(tmp_path, other, [keys.digest[keys.trusted]])
    expect("untrusted", line)  # ... by a key we do not trust
    assert keys.digest[keys.other] in line  # the firmware's key digest is espsecure's


def test_exponent_other_than_65537(tmp_path, keys, image):
    e3 = keys.sign(image, keys.e3)
    assert espsecure_accepts(tmp_path, e3, keys.e3)
    expect("exponent", verdict(tmp_path, e3, [keys.digest[keys.e3]]))


def test_signature_not_below_modulus(tmp_path, keys, signed):
    blk = sig_block(signed)
    n = int.from_bytes(blk[36:420], "little")
    for s in (n, n + 1, (1 << 3072) - 1):
        blk[812:1196] = s.to_bytes(384, "little")
        expect("range", verdict(tmp_path, put_block(signed, blk), [keys.digest[keys.trusted]]))


def _crafted(tmp_path, keys, signed, em):
    bad = craft_block(signed, keys.trusted, em)
    return verdict(tmp_path, bad, [keys.digest[keys.trusted]])


def _oracle_pss(keys, em_sig_signed, mhash) -> bool:
    """cryptography's own PSS verifier on the crafted signature."""
    from cryptography.hazmat.primitives import serialization

    pub = serialization.load_pem_private_key(keys.trusted.read_bytes(), password=None).public_key()
    sig = bytes(sig_block(em_sig_signed)[812:1196])[::-1]
    try:
        pub.verify(sig, mhash, padding.PSS(padding.MGF1(hashes.SHA256()), 32), utils.Prehashed(hashes.SHA256()))
        return True
    except Exception:
        return False


def test_crafted_well_formed_pss_is_accepted(tmp_path, keys, signed):
    # Proves the crafting below is right: with no defect it verifies.
    mhash = digest_of(signed)
    good = craft_block(signed, keys.trusted, pss_encode(mhash, random_salt()))
    assert _oracle_pss(keys, good, mhash)
    assert verdict(tmp_path, good, [keys.digest[keys.trusted]]) == "OK"


@pytest.mark.parametrize(
    "case,kw",
    [
        ("trailer", dict(trailer=0xCC)),
        ("db-padding", dict(pad_byte_at=10)),
        ("separator", dict(separator=0x02)),
        ("salt", dict(salt=20)),
        ("salt", dict(salt=48)),
    ],
)
def test_malformed_pss_encodings(tmp_path, keys, signed, case, kw):
    mhash = digest_of(signed)
    kw = dict(kw)  # the parameter is shared by every runtime's run: never mutate it
    salt = random_salt(kw.pop("salt", 32))
    bad = craft_block(signed, keys.trusted, pss_encode(mhash, salt, **kw))
    assert not _oracle_pss(keys, bad, mhash)
    expect("pss-" + case, verdict(tmp_path, bad, [keys.digest[keys.trusted]]))


def test_pss_leftmost_bit_set(tmp_path, keys, signed):
    mhash = digest_of(signed)
    n = int.from_bytes(sig_block(signed)[36:420], "little")
    for _ in range(200):  # find a salt whose encoding with the top bit set is < n
        em = int.from_bytes(pss_encode(mhash, random_salt()), "big") | (1 << 3071)
        if em < n:
            break
    else:
        pytest.fail("no salt gave an encoding below n")
    bad = craft_block(signed, keys.trusted, em)
    assert not _oracle_pss(keys, bad, mhash)
    expect("pss-leftmost", verdict(tmp_path, bad, [keys.digest[keys.trusted]]))


def test_signature_over_other_data(tmp_path, keys, signed):
    em = pss_encode(b"\x55" * 32, random_salt())  # well formed, other message
    expect("pss-hash", _crafted(tmp_path, keys, signed, em))


def test_truncated_image(tmp_path, keys, image, signed):
    t = [keys.digest[keys.trusted]]
    for cut in (1, 24, 5000, len(image) - 1, len(signed) - SECTOR + 600, len(signed) - 1):
        expect("truncated", verdict(tmp_path, signed[:cut], t))
    expect("empty", verdict(tmp_path, b"", t))


def test_no_signature_sector(tmp_path, keys, image, signed):
    t = [keys.digest[keys.trusted]]
    for data in (image, signed[: len(signed) - SECTOR]):  # bare, and padded but unsigned
        expect("unsigned", verdict(tmp_path, data, t))


def test_signature_sector_without_blocks(tmp_path, keys, signed):
    blank = signed[: len(signed) - SECTOR] + b"\xff" * SECTOR
    expect("blank-sector", verdict(tmp_path, blank, [keys.digest[keys.trusted]]))


def test_trailing_data(tmp_path, keys, signed):
    expect("trailing", verdict(tmp_path, signed + b"\xff", [keys.digest[keys.trusted]]))


def test_chip_id_mismatch(tmp_path, keys):
    c3 = keys.sign(tool.make_image(size=20_000, chip="esp32c3", secure_version=3))
    assert espsecure_accepts(tmp_path, c3, keys.trusted)
    expect("chip", verdict(tmp_path, c3, [keys.digest[keys.trusted]]))


def test_project_mismatch(tmp_path, keys):
    other = keys.sign(tool.make_image(size=20_000, project="someone-else", secure_version=3))
    expect("project", verdict(tmp_path, other, [keys.digest[keys.trusted]]))


def test_lower_secure_version(tmp_path, keys):
    t = [keys.digest[keys.trusted]]
    for sv, ok in ((2, False), (3, True), (4, True)):
        img = keys.sign(tool.make_image(size=20_000, secure_version=sv))
        line = verdict(tmp_path, img, t)
        if ok:
            assert line == "OK"
        else:
            expect("secure-version", line)


def test_not_an_app_image(tmp_path, keys):
    expect("magic", verdict(tmp_path, b"\x7fELF" + b"\0" * 5000, [keys.digest[keys.trusted]]))


def test_too_large_for_partition(tmp_path, keys, signed):
    p = tmp_path / "s.bin"
    p.write_bytes(signed)
    env = {"MICROPYPATH": f"{tool.ROOT / 'firmware'}:{tool.ROOT / 'boards' / 'unix'}"}
    # Too large in the image itself, and only once the signature is counted.
    for limit in (65536, len(signed) - 1):
        code_ = (
            "from ota.verify import Policy, Reject, verify_file\n"
            f"pol = Policy([bytes.fromhex('{keys.digest[keys.trusted]}')], 9, 'micropython', 3)\n"
            "try:\n"
            f"    verify_file('{p}', pol, limit={limit})\n"
            "except Reject as e:\n"
            "    print(e.args[0])\n"
        )
        out = subprocess.run(
            [str(tool.mpruntime.binary()), "-c", code_], capture_output=True, text=True, env=env
        ).stdout
        expect("too-large", "REJECT: " + out)


def test_each_fault_has_its_own_reason():
    assert len(set(EXPECTED.values())) == len(EXPECTED)
