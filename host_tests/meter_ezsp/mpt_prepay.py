# Prepayment, meter state and identity (meter/zcl_prepay.py), supplier
# messages (meter/zcl_messaging.py, meter/message.py) and the ambient
# indication (meter/ambient.py) on MicroPython, from hand-laid SE frames:
# hostile input (truncated and malformed frames, strings longer than the
# frame, bad UTF-8, control characters, absurd and invalid credit values,
# wrong attribute types) never raises and gives None ("—") or a clean text;
# message text is capped; the ambient baseline allocates nothing per reading.
# The same attribute frames built by zigpy: test_prepay_oracle.py.
import micropython

from meter import ambient, message, price, zcl_messaging, zcl_prepay
from meter.reading import F_DEMAND, F_GAS, F_SUMMATION, F_TIME_VALID

HEAP = "96k"


def _u32(v):
    return bytes((v & 0xFF, (v >> 8) & 0xFF, (v >> 16) & 0xFF, (v >> 24) & 0xFF))


def display(mid, text, start=0, mins=0xFFFF, ctl=0x04, ln=None):
    ln = len(text) if ln is None else ln
    return bytes((0x09, 1, 0)) + _u32(mid) + bytes((ctl,)) + _u32(start) + bytes((mins & 0xFF, mins >> 8, ln)) + text


def rsp(*recs):
    # Read Attributes Response: (attr, type, value bytes) or (attr, status)
    out = bytes((0x08, 1, 0x01))
    for r in recs:
        out += bytes((r[0] & 0xFF, r[0] >> 8))
        out += bytes((r[1],)) if len(r) == 2 else bytes((0, r[1])) + r[2]
    return out


def _client():
    m = message.Messages()
    return m, zcl_messaging.MessagingClient(m)


def test_display_cancel_cancel_all_and_expiry():
    m, c = _client()
    f = display(7, b"Planned work", start=1000, mins=10)
    assert c.handle(f, 0, len(f)) == zcl_messaging.OK
    assert m.current(999) is None  # not started yet
    cur = m.current(1000)
    assert cur == {"id": 7, "text": "Planned work", "importance": 1, "left_min": 10}, cur
    assert m.current(1000 + 599)["left_min"] == 1
    assert m.current(1000 + 600) is None and m.expired == 1  # ran out: dropped
    f = display(8, b"Until cancelled")
    c.handle(f, 0, len(f))
    assert m.current(None)["text"] == "Until cancelled"  # clock not set: shown
    assert m.current(5000)["left_min"] is None
    f = bytes((0x09, 2, 0x01)) + _u32(9) + b"\x00"  # CancelMessage of another id
    assert c.handle(f, 0, len(f)) == zcl_messaging.OK and m.current(5000)["id"] == 8
    f = bytes((0x09, 2, 0x01)) + _u32(8) + b"\x00"
    c.handle(f, 0, len(f))
    assert m.current(5000) is None and m.cancelled == 1
    f = display(10, b"x")
    c.handle(f, 0, len(f))
    f = bytes((0x09, 3, 0x03)) + _u32(0)  # CancelAllMessages
    assert c.handle(f, 0, len(f)) == zcl_messaging.OK and m.current(5000) is None
    # DisplayProtectedMessage (PIN-protected) is not shown; Default Response ignored
    f = bytes((0x09, 4, 0x02)) + display(11, b"secret")[3:]
    assert c.handle(f, 0, len(f)) == zcl_messaging.IGNORED and m.current(5000) is None and c.protected == 1
    f = bytes((0x18, 4, 0x0B, 0x00, 0x8B))
    assert c.handle(f, 0, len(f)) == zcl_messaging.IGNORED


def test_malformed_messages_change_nothing_or_show_clean_text():
    m, c = _client()
    good = display(7, b"Hello there")
    for n in range(0, len(good)):  # every cut of the frame
        assert c.handle(good, 0, n) == zcl_messaging.BAD, n
    assert m.id is None
    f = display(7, b"short", ln=200)  # string length past the frame
    assert c.handle(f, 0, len(f)) == zcl_messaging.BAD and m.id is None
    f = display(7, b"", ln=0xFF)  # the invalid string: shown as no text
    assert c.handle(f, 0, len(f)) == zcl_messaging.OK and m.current(1)["text"] == ""
    # client to server, manufacturer-specific: ignored
    for fc in (0x01, 0x0D, 0x1D):
        f = bytes((fc,)) + good[1:]
        assert c.handle(f, 0, len(f)) == zcl_messaging.IGNORED
    cases = (
        (b"\xc0\x80ok", "??ok"),  # overlong NUL
        (b"\xed\xa0\x80x", "???x"),  # a surrogate
        (b"\xf5\x80\x80\x80", "????"),  # above U+10FFFF
        (b"a\xe2\x82", "a??"),  # cut sequence at the end
        (b"\xc2\xa3" + b"5 \xe2\x82\xac2", "\u00a35 \u20ac2"),  # real UTF-8 kept
        (b"\x00\x01a\t\r\nb   c\x7f", "a b c"),  # controls -> single spaces, trimmed
    )
    for raw, want in cases:
        f = display(1, raw)
        c.handle(f, 0, len(f))
        assert m.current(1)["text"] == want, (raw, m.current(1)["text"])


def test_message_text_is_capped_whatever_comes():
    m, c = _client()
    seed = 12345
    for k in range(300):
        n = k % 250
        b = bytearray(n)
        for i in range(n):
            seed = (seed * 1103515245 + 12345) & 0x3FFFFFFF
            b[i] = (seed >> 8) & 0xFF if k & 1 else 0x41 + (seed >> 8) % 26
        f = display(k, bytes(b))
        assert c.handle(f, 0, len(f)) == zcl_messaging.OK
        t = m.current(1)["text"]
        assert len(t.encode()) <= message.MAX + 3, (k, len(t.encode()))
        assert t.encode().decode() == t
    assert m.cut > 100 and len(m._buf) == message.MAX  # the one preallocated buffer


def _tariff(digits=4):
    t = price.Tariff()
    t.set_price(2735, digits, 826)
    return t


def test_prepay_credit_status_and_identity():
    x = zcl_prepay.Extras()
    f = rsp(
        (0x0000, 0x19, b"\x02\x00"),
        (0x0001, 0x2B, _u32(123456)),
        (0x0002, 0x2B, _u32(50000)),
        (0x0003, 0x18, b"\x0e"),
        (0x0005, 0x2B, _u32(1520)),
        (0x0032, 0x23, _u32(20000)),
    )
    assert x.handle(zcl_prepay.PREPAYMENT, f, 0, len(f)) == zcl_prepay.OK
    p = x.prepay(_tariff())
    assert p == {
        "credit": 1235,
        "emergency": 500,
        "debt": 15,
        "low": True,
        "ec_available": True,
        "ec_in_use": False,
        "exhausted": False,
        "supply": None,
    }, p
    assert x.prepay(price.Tariff())["credit"] is None  # no tariff: no money figure
    f = rsp((0x0014, 0x30, b"\x00"), (0x0200, 0x18, b"\x01"), (0x0207, 0x30, b"\x02"))
    x.handle(0x0702, f, 0, len(f))
    assert x.prepay(_tariff())["supply"] == "off" and x.ambient == 2 and x.status == 1
    f = rsp((0x0307, 0x41, b"\x0d1200023305967"), (0x0308, 0x41, b"\x05AB\x01\xffC"))
    x.handle(0x0702, f, 0, len(f))
    f = rsp((0x0101, 0x41, b"\x0bDemo Energy"))
    x.handle(zcl_prepay.DEVICE_MGMT, f, 0, len(f))
    assert x.identity() == {"status": 1, "site_id": "1200023305967", "serial": "AB??C", "supplier": "Demo Energy"}
    # a credit meter (prepayment not enabled) and a meter without the cluster
    f = rsp((0x0000, 0x19, b"\x00\x00"))
    x.handle(zcl_prepay.PREPAYMENT, f, 0, len(f))
    assert x.prepay(_tariff()) is None
    y = zcl_prepay.Extras()
    f = rsp((0x0001, 0x86))
    y.handle(zcl_prepay.PREPAYMENT, f, 0, len(f))
    assert y.no_prepay and y.prepay(_tariff()) is None and y.identity()["site_id"] is None


def test_absurd_invalid_and_malformed_prepay_values():
    x = zcl_prepay.Extras()
    f = rsp(
        (0x0001, 0x2B, _u32(0x7FFFFFFF)),  # 214,748.3647 pounds at 4 digits: absurd
        (0x0002, 0x2B, _u32(0x80000000)),  # int32 invalid
        (0x0005, 0x23, _u32(5)),  # debt as uint32: wrong type
        (0x0003, 0x18, b"\x01"),
    )
    x.handle(zcl_prepay.PREPAYMENT, f, 0, len(f))
    p = x.prepay(_tariff())
    assert (p["credit"], p["emergency"], p["debt"]) == (None, None, None), p
    assert x.invalid == 2
    assert x.prepay(_tariff(0))["credit"] is None  # 2**31 pounds: absurd too
    f = rsp((0x0001, 0x2B, _u32(0xFFFFFF38)))  # -200 raw
    x.handle(zcl_prepay.PREPAYMENT, f, 0, len(f))
    assert x.prepay(_tariff(2))["credit"] == -200 and x.prepay(_tariff(4))["credit"] == -2
    good = rsp((0x0001, 0x2B, _u32(777)), (0x0307, 0x41, b"\x03abc"))
    for n in range(len(good)):  # every cut: never raises
        x.handle(zcl_prepay.PREPAYMENT, good, 0, n)
        x.handle(0x0702, good, 0, n)
    f = rsp((0x0307, 0x41, b"\x30abc"))  # string longer than the frame
    assert x.handle(0x0702, f, 0, len(f)) == zcl_prepay.BAD
    f = rsp((0x0307, 0x41, b"\x40" + b"9" * 0x40))  # 64 bytes: kept to STR_MAX
    x.handle(0x0702, f, 0, len(f))
    assert x.site_id == "9" * zcl_prepay.STR_MAX


def test_supply_and_ambient_sent_as_signed_are_unknown_not_on():
    # SupplyStatus / AmbientConsumptionIndicator are enum8; int8 0xFF is -1,
    # which read the name list from its end: "on" and "high"
    x = zcl_prepay.Extras()
    f = rsp((0x0014, 0x28, b"\xff"), (0x0207, 0x28, b"\xff"))
    assert x.handle(0x0702, f, 0, len(f)) == zcl_prepay.OK
    assert x.supply is None and x.ambient is None
    assert zcl_prepay.supply_name(x.supply) is None


def test_ambient_baseline_and_meter_indicator_no_allocation():
    a = ambient.Ambient()
    assert a.figures() == (None, None)  # no baseline yet: "—"
    micropython.heap_lock()
    try:
        for _ in range(ambient.WARM):
            a.reading(600, F_DEMAND | F_TIME_VALID)
            a.reading(0, F_SUMMATION | F_TIME_VALID)  # no demand: not counted
            a.reading(90000, F_DEMAND | F_GAS)  # a gas meter's: not counted
        lvl = a.ours()
        for _ in range(30):
            a.reading(4000, F_DEMAND)
        hi = a.ours()
        for _ in range(60):
            a.reading(-3000, F_DEMAND)  # export: no use
        lo = a.ours()
    finally:
        micropython.heap_unlock()
    assert (lvl, hi, lo) == (ambient.MEDIUM, ambient.HIGH, ambient.LOW)
    assert a.figures() == ("low", "baseline")
    a.meter = 2
    assert a.figures() == ("high", "meter")
