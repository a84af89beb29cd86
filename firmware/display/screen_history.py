# The history screen: energy per day (today and 8 before), per week (this
# and 5 before) and per month (this and 13 before) as bars, oldest left,
# from the snapshot's "history" (meter/history.py); under each chart the
# last whole period's energy and cost. An unknown period is a dotted
# baseline and "—", never a guess; the period still running is an outline
# (it is not over yet).
#
# screens.history() imports this module for a draw and it drops itself
# after: a turn in four shows it, and even frozen its functions take heap
# (~0.3 KB) that an update beside it needs (test_sim_ota at 96k).
import sys

import display
from display import fmt
from display import font_mid as MID
from display.text import draw, small, width

_CHARTS = (("days", "Days", "Yesterday"), ("weeks", "Weeks", "Last week"), ("months", "Months", "Last month"))


def draw_screen(fb, st, tag):
    try:
        _draw(fb, st, tag)
    finally:
        sys.modules.pop(__name__, None)
        if hasattr(display, "screen_history"):
            delattr(display, "screen_history")


def _draw(fb, st, tag):
    fb.fill(0)
    W, H = fb.width, fb.height
    h = st.get("history")
    if not isinstance(h, dict):
        h = {}
    draw(fb, MID, "History", 0, 0)
    tag(fb, st)  # the fault code, as on the live screen
    sym = st.get("currency")
    cw = W // 3
    base = H - 2 * MID.HEIGHT - 12  # under it: dots, a small label, energy, cost
    top = MID.HEIGHT + 10
    for k in range(3):
        key, title, last = _CHARTS[k]
        x0 = k * cw
        vals = h.get(key)
        costs = h.get(key + "_cost")
        small(fb, title, x0, MID.HEIGHT + 1)
        _bars(fb, vals, x0, top, cw - 6, base)
        small(fb, last, x0, base + 4)
        wh = _at(vals, -2)
        c = _at(costs, -2)
        draw(fb, MID, "".join(fmt.energy(wh)), x0, base + 12)
        money = fmt.DASH if c is None or not sym else fmt.money_minor(c, sym)
        if width(MID, money) <= cw - 2:
            draw(fb, MID, money, x0, base + 11 + MID.HEIGHT)


def _at(v, i):
    if not isinstance(v, list) or len(v) < -i:
        return None
    return v[i]


def _bars(fb, vals, x0, top, w, base):
    fb.hline(x0, base, w, 1)
    if not isinstance(vals, list) or not vals:
        small(fb, fmt.DASH, x0 + w // 2 - 4, (top + base) // 2 - 4)
        return
    n = len(vals)
    known = [v for v in vals if v is not None]
    scale = max(max(known) if known else 0, 100)  # Wh: a quiet period is not full bars
    bw = w // n
    gap = 1 if bw > 3 else 0
    for i in range(n):
        v = vals[i]
        bx = x0 + i * bw
        if v is None:
            for px in range(bx, bx + bw - gap, 2):
                fb.pixel(px, base + 2, 1)  # unknown: dotted, never "nothing used"
            continue
        bh = (v * (base - top) + scale - 1) // scale if v > 0 else 0
        if not bh:
            continue
        if i == n - 1:
            fb.rect(bx, base - bh, bw - gap, bh, 1)  # still running: an outline
        else:
            fb.fill_rect(bx, base - bh, bw - gap, bh, 1)
