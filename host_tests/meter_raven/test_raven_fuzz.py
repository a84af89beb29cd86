"""Fuzz the firmware's RAVEn parser on the Unix port with > 1,000,000 bytes.

* mutated stream: ~2,600 realistic fragments (tools/ihd/emulators/raven_xml.py), half of them
  damaged (bytes flipped, inserted, deleted, cut short, garbage between). Every
  fragment is judged on its own by an oracle the firmware shares no code with:
  Python's expat pull parser set up as aioraven sets it up, plus the RAVEn
  value rules written out independently below. Checks: no exception escapes;
  every undamaged fragment gives exactly its reading, even right after a damaged
  one (resynchronisation within one fragment); a damaged fragment gives a
  reading only if the oracle accepts it too, with the oracle's values (a hex
  digit changed inside a value is undetectable: RAVEn has no checksum).
* random streams: uniformly random bytes, and random runs of XML-ish tokens
  (tag names, '<', '/', '>', hex digits) that drive the state machine through
  every state: no exception, no reading.
"""

from __future__ import annotations

import random
import re
import xml.etree.ElementTree as ET
from fractions import Fraction

import pytest
from ravenlib import F_DEMAND, F_RECEIVED, F_SUMMATION, F_TIME_VALID, Stick, firmware_decode

pytestmark = pytest.mark.slow

START = 1767225600
HEX = re.compile(r"\s*0[xX]([0-9a-fA-F]{1,16})\s*\Z")


def _hex(text: str | None, signed: bool = False) -> int | None:
    m = HEX.match(text or "")
    if not m:
        return None
    digits = m.group(1)
    v = int(digits, 16)
    bits = 4 * len(digits)
    if signed and v >= 1 << (bits - 1):
        v -= 1 << bits
    return v


def _kilo(raw: int, mult: int, div: int) -> int:
    """raw * mult / div kilo-units in units, rounded half away from zero."""
    x = Fraction(raw * (mult or 1) * 1000, div or 1)
    n = int(abs(x) + Fraction(1, 2))
    return n if x >= 0 else -n


def oracle(frag: bytes):
    """The reading one fragment must give, or None. Independent of the firmware."""
    p = ET.XMLPullParser(events=("end",))
    p.feed(b'<?xml version="1.0" encoding="Windows-1252"?><root>')
    tops = []
    try:
        p.feed(frag)
        for _, el in p.read_events():
            tops.append(el)
    except (ET.ParseError, UnicodeError, LookupError):
        return None
    tops = [e for e in tops if e.tag in ("InstantaneousDemand", "CurrentSummationDelivered")]
    if len(tops) != 1:
        return None
    el = tops[0]
    if el.attrib or (el.text or "").strip() or any(len(c) or c.attrib or (c.tail or "").strip() for c in el):
        return None
    fields: dict[str, str] = {}
    for c in el:
        if c.tag in fields:
            return None
        fields[c.tag] = c.text or ""
    for mac in ("DeviceMacId", "MeterMacId"):
        if mac in fields and _hex(fields[mac]) is None:
            return None
    key = "Demand" if el.tag == "InstantaneousDemand" else "SummationDelivered"
    ts, val = _hex(fields.get("TimeStamp")), _hex(fields.get(key), key == "Demand")
    mult, div = _hex(fields.get("Multiplier")), _hex(fields.get("Divisor"))
    if None in (ts, val, mult, div):
        return None
    for opt in ("DigitsRight", "DigitsLeft", "SummationReceived"):
        if opt in fields and _hex(fields[opt]) is None:
            return None
    if "SuppressLeadingZero" in fields and fields["SuppressLeadingZero"].strip() not in ("Y", "N"):
        return None
    utc, flags = (0, 0) if ts == 0xFFFFFFFF else (ts + 946684800, F_TIME_VALID)
    if key == "Demand":
        return ("D", utc, _kilo(val, mult, div), flags | F_DEMAND)
    recv = fields.get("SummationReceived")
    flags |= F_SUMMATION | (F_RECEIVED if recv is not None else 0)
    r = _kilo(_hex(recv), mult, div) if recv is not None else None
    return ("S", utc, _kilo(val, mult, div), r, flags)


def _mutate(rng: random.Random, frag: bytes) -> bytes:
    b = bytearray(frag)
    for _ in range(rng.randint(1, 3)):
        op = rng.randrange(5)
        i = rng.randrange(len(b)) if b else 0
        if op == 0 and b:
            b[i] = rng.randrange(256)
        elif op == 1:
            b[i:i] = bytes(rng.choice((60, 62, 47, 0, 38, rng.randrange(256))) for _ in range(rng.randint(1, 4)))
        elif op == 2 and b:
            del b[i : i + rng.randint(1, 8)]
        elif op == 3:
            del b[i:]  # cut short, as by a stick reset
        else:
            b[i:i] = bytes(rng.choice(b"0123456789abcdefx ") for _ in range(rng.randint(1, 3)))
    return bytes(b)


def _fragments(rng: random.Random, n: int):
    out = []
    for i in range(n):
        style = rng.choice(("raven", "emu2"))
        eol = rng.choice(("\r\n", "", "\n"))
        mult, div = rng.choice(((1, 1000), (1, 1), (0, 0), (3, 7), (10, 1), (1, 3600000)))
        st = Stick(style, eol, mult, div, mult, div)
        t = START + 7 * i
        if rng.random() < 0.5:
            lim = 1 << (23 if style == "emu2" else 31)
            out.append(st.demand(rng.choice((t, None)), rng.randrange(-lim, lim)))
        elif rng.random() < 0.8:
            out.append(st.summation(t, rng.randrange(1 << 31), rng.randrange(1 << 24)))
        else:
            out.append(rng.choice((st.time(t), st.connection_status("Connected", 50), st.meter_list())))
    return out


def _as_oracle(reading):
    utc, d, dl, r, fl = reading
    if fl & F_DEMAND:
        return ("D", utc, d, fl)
    return ("S", utc, dl, r if fl & F_RECEIVED else None, fl)


def test_mutated_fragments(mpy, tmp_path):
    rng = random.Random(20261122)
    frags = _fragments(rng, 2600)
    stream, expect = [], []  # expect: (required?, oracle reading or None)
    for f in frags:
        if rng.random() < 0.1:
            stream.append(bytes(rng.randrange(256) for _ in range(rng.randint(1, 30))).replace(b"<", b"."))
        damaged = rng.random() < 0.5
        g = _mutate(rng, f) if damaged else f
        stream.append(g)
        want = oracle(g)
        if not damaged:
            assert want is not None or not f.startswith((b"<Inst", b"<Curr"))
        if want is not None:
            expect.append((not damaged, want))
    data = b"".join(stream)
    assert len(data) > 750_000
    got, _, bad, _, counters = firmware_decode(mpy, data, tmp_path, chunk=0, seed=5)
    got = [_as_oracle(r) for r in got]
    i = 0
    accepted_damaged = 0
    for required, want in expect:
        if i < len(got) and got[i] == want:
            i += 1
            accepted_damaged += not required
        elif required:
            raise AssertionError(f"undamaged fragment lost: {want}, firmware gave {got[i : i + 2]}")
    assert i == len(got), f"firmware produced readings the oracle rejects: {got[i : i + 3]}"
    assert counters[1] == len(bad) > 900  # every rejected fragment reported with a reason
    print(f"{len(data)} bytes, {len(got)} readings, {accepted_damaged} damaged-but-valid accepted, {len(bad)} bad")


def test_random_bytes(mpy, tmp_path):
    rng = random.Random(99)
    data = rng.randbytes(300_000)
    got, _, _, _, counters = firmware_decode(mpy, data, tmp_path, chunk=0, seed=3)
    assert got == [] and counters[0] == 0


def test_random_xml_tokens(mpy, tmp_path):
    rng = random.Random(100)
    names = [b"InstantaneousDemand", b"CurrentSummationDelivered", b"TimeStamp", b"Demand", b"Multiplier"]
    names += [b"Divisor", b"TimeCluster", b"UTCTime", b"MeterList", b"MeterMacId", b"Status", b"x" * 40]
    toks = [b"<", b"</", b">", b"/>", b"0x", b"00", b"ff", b"\r\n", b"  ", b"Y", b"&amp;", b"\x00", b"\x80"]
    parts = []
    size = 0
    while size < 250_000:
        t = rng.choice(names) if rng.random() < 0.3 else rng.choice(toks)
        parts.append(t)
        size += len(t)
    data = b"".join(parts)
    got, _, bad, _, counters = firmware_decode(mpy, data, tmp_path, chunk=0, seed=4)
    # a valid demand/summation needs four well-formed children in a row:
    # check that whatever the firmware accepted the oracle accepts too
    for r in got:
        raise AssertionError(f"reading from random tokens: {r}")
    assert counters[0] + counters[1] > 0  # the tokens did reach fragment states
