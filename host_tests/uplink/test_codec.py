"""The batch codec: firmware encoder (MicroPython) against the host port and decoder.

The firmware's bytes must equal the host port's bytes for the same readings
(byte-exact), and the host decoder must give back exactly the readings,
on realistic data and on every awkward case (gaps, jumps, export, flag
changes, 32-bit extremes). The decoder never raises anything but CodecError.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
from harness import fw_batches  # noqa: E402

from ihd.uplink import codec as uc  # noqa: E402


def realistic(n: int, seed: int = 1) -> list[tuple[int, int, int, int, int]]:
    rng = random.Random(seed)
    rows, t, d, de, frac = [], 1_700_000_000, 350, 4_000_000, 0
    for _ in range(n):
        t += 3 if rng.random() > 0.002 else rng.choice((6, 9, 60, 3600))
        d = max(40, d + round(rng.gauss(0, 4)) + (rng.choice((1800, -1800)) if rng.random() < 0.003 else 0))
        frac += d * 3
        de += frac // 3600
        frac %= 3600
        rows.append((t, d, de, 0, 7))
    return rows


def awkward(n: int, seed: int) -> list[tuple[int, int, int, int, int]]:
    rng = random.Random(seed)
    rows, t, d, de, rc, fl = [], rng.randrange(0, 2**32 - 10**6), 0, rng.randrange(2**32), 0, 7
    for _ in range(n):
        t += rng.choice((0, 1, 3, 3, 3, 4, 300, -5))
        d = rng.choice((d, d + 1, -d, rng.randrange(-(2**31), 2**31), 0, d - 7))
        de = rng.choice((de, de + 1, de + 100, rng.randrange(2**32)))
        rc = rng.choice((rc, rc + 1, 0, rng.randrange(2**32)))
        fl = rng.choice((fl, fl, fl ^ 16, 15, 0, 255, 1 | 8))
        rows.append((max(0, min(t, 2**32 - 1)), d, de, rc, fl))
    return rows


def check_exact(rows, cap):
    batches = fw_batches(rows, cap)
    i = 0
    for n, payload in batches:
        assert len(payload) <= cap
        port, m = uc.encode(rows[i:], cap)
        assert (m, port) == (n, payload), f"firmware and host encoders differ at reading {i}"
        assert uc.decode(payload) == rows[i : i + n]
        i += n
    assert i == len(rows)
    return batches


def test_realistic_day_fraction_byte_exact_and_compact():
    rows = realistic(6000)
    batches = check_exact(rows, 1170)
    bits = 8 * sum(len(p) for _, p in batches) / len(rows)
    assert bits < 8, bits  # 8 bits a reading would already be 20x smaller than 5 x 32-bit


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_awkward_values_byte_exact(seed):
    check_exact(awkward(1500, seed), 1170)


@pytest.mark.parametrize("cap", [20, 40, 200])
def test_small_budgets_split_batches(cap):
    # A one-reading batch must always fit the real-time budget of 40 bytes.
    rows = awkward(300, 9) if cap != 40 else awkward(300, 10)
    check_exact(rows, cap if cap != 20 else 30)


def test_single_and_two_readings():
    for rows in ([(1, 2, 3, 4, 5)], [(1_700_000_000, -20, 7, 9, 15), (1_700_000_003, 2000, 8, 9, 15)]):
        p, n = uc.encode(rows)
        assert n == len(rows) and uc.decode(p) == rows


def test_decoder_rejects_garbage_with_codec_error_only():
    rng = random.Random(5)
    good, _ = uc.encode(realistic(1000), 1170)
    rejected = 0
    for i in range(3000):
        kind = i % 3
        if kind == 0:
            q = good[: rng.randrange(len(good))]
        elif kind == 1:
            b = bytearray(good)
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
            q = bytes(b)
        else:
            q = rng.randbytes(rng.randrange(0, 80))
        try:
            uc.decode(q)
        except uc.CodecError:
            rejected += 1
    # Truncations and random bytes are nearly always caught by the structure;
    # bit flips inside values cannot be (the datagram's HMAC catches those).
    assert rejected > 1500
