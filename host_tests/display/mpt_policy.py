# Display logic without a panel, on MicroPython: the refresh policy over a
# simulated day and a tick wrap, figure formatting, and the fault sentences
# against the narrowest screen.
from display import fmt, policy

HEAP = "96k"
# the wheel compiles the imported source into the heap, with the clone's path
# in every code object: from /work/wt-supplier (7 characters longer than
# /work/main, where 96k passes) it ran out at 96k and 112k, in an import
HEAPS = {"test_every_fault_sentence_fits_two_lines_on_the_narrowest_panel": "128k"}


def test_policy_first_full_then_partial_then_skip():
    rp = policy.RefreshPolicy()
    assert rp.decide(0, b"a") == policy.FULL
    rp.done(policy.FULL, 0, b"a")
    assert rp.decide(10, b"a") == policy.NONE
    rp.done(policy.NONE, 10, b"a")
    assert rp.decide(20, b"b") == policy.PARTIAL
    rp.done(policy.PARTIAL, 20, b"b")
    # A layout change wants a full, but not before 180 s since the last.
    assert rp.decide(100, b"c", layout_changed=True) == policy.PARTIAL
    assert rp.decide(180, b"c", layout_changed=True) == policy.FULL
    assert (rp.full, rp.partial, rp.skipped) == (1, 1, 1)


def test_policy_simulated_day():
    # A frame that changes every 10 s for 24 h, then nothing for 25 h.
    rp = policy.RefreshPolicy()
    fulls = []
    t = 0
    for i in range(8640):
        d = b"%d" % i
        k = rp.decide(t, d)
        rp.done(k, t, d)
        if k == policy.FULL:
            fulls.append(t)
        assert k != policy.NONE  # the frame changed
        t += 10
    gaps = [fulls[i + 1] - fulls[i] for i in range(len(fulls) - 1)]
    assert min(gaps) >= policy.MIN_FULL_S
    assert max(gaps) <= policy.MAX_FULL_S
    assert rp.full + rp.partial == 8640
    assert rp.full <= 86400 // policy.MIN_FULL_S
    # Unchanged frame: no refresh at all, except the 24 h full.
    last = fulls[-1]
    n0 = rp.full + rp.partial
    while t < last + policy.MAX_FULL_S + 3600:
        k = rp.decide(t, d)
        rp.done(k, t, d)
        if k != policy.NONE:
            assert k == policy.FULL and t - last >= policy.MAX_FULL_S, (k, t - last)
        t += 10
    assert rp.full + rp.partial == n0 + 1


def test_policy_survives_tick_wrap():
    rp = policy.RefreshPolicy()
    rp.done(rp.decide(1000, b"a"), 1000, b"a")
    assert rp.decide(5, b"b") == policy.PARTIAL  # clock went back: no full
    rp.done(policy.PARTIAL, 5, b"b")
    assert rp.decide(5 + 179, b"c", True) == policy.PARTIAL
    assert rp.decide(5 + 181, b"c", True) == policy.FULL


def test_formatting():
    assert fmt.power(None) == ("\u2014", "")
    assert fmt.power(99) == ("99", "W")
    assert fmt.power(352) == ("350", "W") and fmt.power(355) == ("360", "W")
    assert fmt.power(994) == ("990", "W") and fmt.power(995) == ("1.00", "kW")
    assert fmt.power(-1000) == ("1.00", "kW")
    assert fmt.power(9994) == ("9.99", "kW")
    assert fmt.power(9995) == ("10.0", "kW")
    assert fmt.power(123456) == ("123", "kW")
    assert fmt.energy(0) == ("0.00", "kWh")
    assert fmt.energy(123456) == ("123", "kWh")
    assert fmt.money(206.29, "\u00a3") == "\u00a32.06"
    assert fmt.age(None) == "\u2014"
    assert fmt.age(119) == "119s" and fmt.age(120) == "2m" and fmt.age(7200) == "2h"
    assert fmt.age(200000) == "2d"
    assert fmt.uptime(86400 + 3661) == "1d 01:01"
    assert fmt.flag(None, "on", "off") == "\u2014" and fmt.flag(False, "on", "off") == "off"


def test_every_fault_sentence_fits_two_lines_on_the_narrowest_panel():
    from display import font_mid, screens
    from display.ssd1680 import GEOMETRY
    from display.text import width
    from faults import TABLE

    w = min(g[0] for g in GEOMETRY.values()) - 2
    for row in TABLE:
        lines = screens._wrap(font_mid, row[2], w)
        assert len(lines) <= 2, (row[1], lines)
        assert max(width(font_mid, ln) for ln in lines) <= w
