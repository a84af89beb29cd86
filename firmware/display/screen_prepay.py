# The prepayment live screen (a prepay meter: the balance is the headline
# figure, a banner for low credit, emergency credit and supply off) and the
# supplier's message box the live screens show instead of the chart.
# Imported by display/screens.py only when a snapshot has either, so a
# build that compiles at run time (the wheel) pays for it only then. Fields: docs/display.md (prepay,
# message, ambient). Every figure "—" when unknown, never guessed.
from display import fmt
from display import font_big as BIG
from display import font_mid as MID
from display.screens import ambient_gauge
from display.text import draw, small, width

_BIG_SYMBOLS = "\u00a3\u20ac"  # currency symbols font_big has; others in font_mid


def balance(fb, minor, sym, x, y):
    # "£12.34" in the big font ("-£1.20" in debt); a symbol font_big lacks
    # ("$") in the mid font on the same baseline.
    if minor is None:
        return draw(fb, BIG, fmt.DASH, x, y)
    s = fmt.money_minor(minor, sym)
    neg = s[0] == "-"
    if neg:
        x = draw(fb, BIG, "-", x, y)
        s = s[1:]
    if sym and s.startswith(sym) and sym not in _BIG_SYMBOLS:
        x = draw(fb, MID, sym, x + 1, y + BIG.BASELINE - MID.BASELINE) + 1
        s = s[len(sym) :]
    return draw(fb, BIG, s, x, y)


def _money(v, sym):
    return fmt.DASH if v is None else fmt.money_minor(v, sym)


def banner(p):
    # The most urgent prepayment state in words, or None.
    if p.get("supply") == "off":
        return "Supply off: top up to restore"
    if p.get("exhausted"):
        return "Credit used up: top up now"
    if p.get("ec_in_use"):
        return "Using emergency credit: top up"
    if p.get("low"):
        return "Low credit: top up soon"
    if p.get("ec_available"):
        return "Emergency credit available"
    return None


def live_prepay(fb, st, chart, fault_tag):
    fb.fill(0)
    W, H = fb.width, fb.height
    col = W // 2
    p = st.get("prepay") or {}
    sym = st.get("currency") or "\u00a3"
    head = "Emergency credit" if p.get("ec_in_use") else "Credit"
    draw(fb, MID, head, 0, 0)
    fault_tag(fb, st)
    x_end = balance(fb, p.get("credit"), sym, 0, MID.HEIGHT + 2)
    # a balance wider than its column (250-px panel): the column starts below it
    top = MID.HEIGHT + 2 if x_end < col else MID.HEIGHT + BIG.HEIGHT + 4
    y = MID.HEIGHT + BIG.HEIGHT + 4
    pitch = MID.HEIGHT - 1
    lines = ["Emergency " + _money(p.get("emergency"), sym)]
    if p.get("debt"):
        lines.append("Debt " + _money(p.get("debt"), sym))
    fig, unit = fmt.power(st.get("demand_w"))
    lines.append("Using " + fig + (" " + unit if unit else ""))
    c = st.get("cost_today")
    lines.append("Today " + _money(c, sym))
    text = banner(p)
    bottom = H - MID.HEIGHT - 1 if text else H
    for line in lines:
        if y + MID.HEIGHT > bottom:
            break
        if width(MID, line) > col:
            line = line.split(" ")[-1]  # narrow panel: the figure alone
        draw(fb, MID, line, 0, y)
        y += pitch
    if y + 8 <= bottom:
        ambient_gauge(fb, st, 0, y + 2)
    if text:
        fb.fill_rect(0, H - MID.HEIGHT, W, MID.HEIGHT, 1)
        draw(fb, MID, text, max(2, (W - width(MID, text)) // 2), H - MID.HEIGHT, 0)
    chart(fb, st, col + 4, top, W - col - 4, bottom - top)


def message_box(fb, m, x, y, w, h):
    # A black title bar, then the text word-wrapped in the 8x8 font; what
    # does not fit ends with "..." (the text is capped at meter/message.py's
    # MAX bytes before it gets here).
    left = m.get("left_min")
    title = "Message" + ("" if left is None else " " + fmt.age(left * 60))
    fb.fill_rect(x, y, w, 9, 1)
    small(fb, title[: w // 8], x + 1, y + 1, 0)
    fb.rect(x, y, w, h, 1)
    cols = (w - 4) // 8
    rows = (h - 12) // 9
    lines = wrap_chars(m.get("text") or fmt.DASH, cols, rows)
    ty = y + 11
    for line in lines:
        small(fb, line, x + 2, ty)
        ty += 9


def wrap_chars(s, cols, rows):
    # Greedy word wrap to `cols` characters (a longer word is split), at
    # most `rows` lines, the last ending in "..." when text is left over.
    out = []
    line = ""
    for word in s.split(" "):
        while len(word) > cols:
            if line:
                out.append(line)
                line = ""
            out.append(word[:cols])
            word = word[cols:]
        t = word if not line else line + " " + word
        if len(t) <= cols:
            line = t
        else:
            out.append(line)
            line = word
    if line:
        out.append(line)
    if len(out) > rows:
        out = out[:rows]
        last = out[-1]
        out[-1] = (last[: cols - 3] if len(last) > cols - 3 else last) + "..."
    return out
