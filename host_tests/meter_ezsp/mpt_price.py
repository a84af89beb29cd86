# The tariff (meter/price.py) and the Price cluster client (meter/zcl_price.py)
# on MicroPython: PublishPrice and StandingCharge decoding from hand-laid SE
# frames, malformed frames changing nothing, the cost accumulator's rules
# (day change, price change, reboot seed, register jumps) and no allocation
# per reading.
import micropython

from meter import price, zcl_price
from meter.reading import F_DEMAND, F_GAS, F_SUMMATION, F_TIME_VALID

HEAP = "64k"
OK = F_SUMMATION | F_TIME_VALID


def _u32(v):
    return bytes((v & 0xFF, (v >> 8) & 0xFF, (v >> 16) & 0xFF, v >> 24))


def publish(raw, digits, tier, currency=826, unit=0, label=b"Standard", now=800000000, start=0, tsn=7):
    # PublishPrice, server to client, cluster-specific (frame control 0x19)
    return (
        bytes((0x19, tsn, 0x00))
        + _u32(0xACE)
        + bytes((len(label),))
        + label
        + _u32(42)
        + _u32(now)
        + bytes((unit, currency & 0xFF, currency >> 8, digits << 4 | tier, 0x21))
        + _u32(start)
        + b"\xff\xff"
        + _u32(raw)
        + b"\xff"  # PriceRatio (optional, ignored)
    )


def test_publish_price_fields():
    t = price.Tariff()
    c = zcl_price.PriceClient(t)
    f = publish(2735, 4, 1)
    assert c.handle(f, 0, len(f)) == zcl_price.OK
    assert (t.raw, t.digits, t.currency, t.tier, t.label) == (2735, 4, 826, 1, b"Standard")
    assert c.provider == 0xACE and c.issuer_event == 42
    fig = t.figures(2000)
    assert fig["price"] == 27.35 and fig["currency"] == "\u00a3" and fig["standing_charge"] is None
    assert fig["cost_per_hour"] == 55  # 2 kWh at 27.35p = 54.7p
    assert fig["cost_today"] is None  # no reading, standing charge not known yet
    # whole minor units stay ints: 0.245 GBP = 24.5p (float), 0.30 = 30p (int)
    f = publish(30, 2, 2, currency=978)
    c.handle(f, 0, len(f))
    assert t.figures()["price"] == 30 and type(t.figures()["price"]) is int and t.figures()["currency"] == "\u20ac"
    assert t.changes == 1


def test_malformed_or_foreign_frames_change_nothing():
    t = price.Tariff()
    c = zcl_price.PriceClient(t)
    good = publish(2735, 4, 1)
    for n in range(3, len(good) - 1):  # every cut before the Price field's end
        assert c.handle(good, 0, n) == zcl_price.BAD, n
    assert t.raw is None and c.bad == len(good) - 4
    # label longer than the SE limit (12)
    f = publish(2735, 4, 1, label=b"x" * 13)
    assert c.handle(f, 0, len(f)) == zcl_price.BAD and t.raw is None
    # client-to-server, manufacturer-specific: ignored
    f = bytearray(good)
    f[0] = 0x11
    assert c.handle(f, 0, len(f)) == zcl_price.IGNORED
    f[0] = 0x1D
    assert c.handle(f, 0, len(f)) == zcl_price.IGNORED
    # a gas price (m3) does not price kWh; a price starting later is not today's
    f = publish(2735, 4, 1, unit=1)
    assert c.handle(f, 0, len(f)) == zcl_price.OK and t.raw is None and t.rejected == 1
    f = publish(2735, 4, 1, now=1000, start=5000)
    assert c.handle(f, 0, len(f)) == zcl_price.OK and t.raw is None and c.scheduled == 1


def test_standing_charge_attribute():
    t = price.Tariff()
    c = zcl_price.PriceClient(t)
    # Read Attributes Response: 0x0301 SUCCESS uint32 5322
    f = bytes((0x18, 3, 0x01, 0x01, 0x03, 0x00, 0x23)) + _u32(5322)
    assert c.handle(f, 0, len(f)) == zcl_price.OK and t.standing == 5322
    # UNSUPPORTED_ATTRIBUTE: the meter has none
    f = bytes((0x18, 4, 0x01, 0x01, 0x03, 0x86))
    assert c.handle(f, 0, len(f)) == zcl_price.OK and t.standing == price.NO_STANDING
    # Report Attributes, with a string attribute before it that is skipped
    f = bytes((0x18, 5, 0x0A, 0x10, 0x03, 0x42, 2)) + b"ab" + bytes((0x01, 0x03, 0x23)) + _u32(100)
    assert c.handle(f, 0, len(f)) == zcl_price.OK and t.standing == 100
    # truncated: nothing changes
    assert c.handle(f, 0, len(f) - 1) == zcl_price.BAD and t.standing == 100


def test_cost_rules():
    t = price.Tariff()
    t.set_standing(5000)  # 50p a day (4 digits)
    day = 800
    t0 = day * 86400
    t.reading(t0 + 10, 1000, OK)  # first reading: the register's start
    t.set_price(2500, 4, 826, 1)  # 25p/kWh: energy before it is charged at it too
    t.reading(t0 + 70, 1400, OK)  # 400 Wh
    t.reading(t0 + 80, 1500, OK | F_GAS)  # gas: not costed
    t.reading(t0 + 90, 1500, F_SUMMATION)  # no valid time: not costed
    t.reading(t0 + 95, 99, F_DEMAND | F_TIME_VALID)  # demand only
    assert t.cost_today() is None  # not seeded: energy before the first reading unknown
    t.seed(day, 1500)  # the store: 1500 Wh since midnight, 400 of them seen here
    t.set_price(1000, 4, 826, 2)  # 10p/kWh from here
    t.reading(t0 + 130, 2400, OK)  # 1000 Wh since 1400
    # 50 + (1100 before boot + 400) Wh at 25p (37.5p) + 1000 Wh at 10p (10p) = 97.5 -> 98
    n, k = t.cost_exact()
    assert n * 10 == 975 * 10**k, (n, k)
    assert t.cost_today() == 98
    t.reading(t0 + 140, 900000, OK)  # a register jump: not energy
    assert t.jumps == 1 and t.cost_today() == 98
    t.reading(t0 + 150, 900100, OK)  # carries on from the new register
    assert t.cost_today() == 99  # + 100 Wh at 10p = 1p: 98.5
    t.reading(t0 - 10, 0, OK)  # a late reading from yesterday: ignored
    # midnight: a new day, seen through, so seeded; the first step is today's
    t.reading(t0 + 86400 + 5, 900300, OK)
    assert t.day == day + 1 and t.seeded and t.cost_today() == 52  # 50 + 200 Wh at 10p
    # a day later without readings in between (device off): seed needed again
    t.reading(t0 + 3 * 86400 + 5, 901000, OK)
    assert not t.seeded and t.cost_today() is None


def test_reading_allocates_nothing():
    t = price.Tariff()
    t.set_price(2735, 4, 826, 1)
    t.set_standing(5322)
    t0 = 700 * 86400
    t.reading(t0, 40_000_000, OK)
    micropython.heap_lock()
    try:
        wh = 40_000_000
        for i in range(1, 2000):
            wh += 37
            t.reading(t0 + i * 30, wh, OK)
            t.reading(t0 + i * 30 + 1, 0, F_DEMAND | F_TIME_VALID)
    finally:
        micropython.heap_unlock()
    t.seed(700, 0)
    assert t._wh == 1999 * 37
    assert t.cost_exact() == (1999 * 37 * 2735 + 5322 * 1000, 5)
