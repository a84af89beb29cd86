# The screens (live, diagnostics; history in display/screen_history.py),
# drawn on any framebuf canvas with .width/.height (the panel drivers),
# from a plain status snapshot (a dict; fields in docs/display.md). Layout
# scales between 296x128 and 250x122. The screens never invent a value: a
# missing field is drawn as "—" or its state word.
from display import fmt
from display import font_big as BIG
from display import font_mid as MID
from display.text import draw, small, width

LIVE = "live"
DIAG = "diag"
HISTORY = "history"
STALE_S = 60  # a demand older than this is labelled "last known"
_LEVELS = ("low", "medium", "high")


def _get(st, key, sub=None):
    v = st.get(key)
    if sub is None:
        return v
    return v.get(sub) if isinstance(v, dict) else None


def _figure(fb, fig, unit, x, y):
    # Big digits with the unit in the mid font on the same baseline.
    x = draw(fb, BIG, fig, x, y)
    if unit:
        draw(fb, MID, unit, x + 2, y + BIG.BASELINE - MID.BASELINE)


def _fault_tag(fb, st):
    # Top-right: the current fault code, white on black, or nothing.
    f = st.get("fault")
    if not f:
        return
    code = f[1]
    w = width(MID, code) + 6
    x = fb.width - w
    fb.fill_rect(x, 0, w, MID.HEIGHT, 1)
    draw(fb, MID, code, x + 3, 0, 0)


def live(fb, st):
    if isinstance(st.get("prepay"), dict):
        # a prepayment meter: the balance is the headline (screen_prepay.py)
        from display import screen_prepay

        screen_prepay.live_prepay(fb, st, _right, _fault_tag)
        return
    fb.fill(0)
    W, H = fb.width, fb.height
    col = W // 2  # left column: figures; right column: chart
    demand = st.get("demand_w")
    age = st.get("last_reading_age_s")
    if demand is None:
        head = "Demand"
    else:
        head = "Exporting" if demand < 0 else "Using"
        head += " (last known)" if age is not None and age > STALE_S else " now"
    draw(fb, MID, head, 0, 0)
    _fault_tag(fb, st)
    fig, unit = fmt.power(demand)
    _figure(fb, fig, unit, 0, MID.HEIGHT + 2)

    y = MID.HEIGHT + BIG.HEIGHT + 6
    today = st.get("today_wh")
    draw(fb, MID, "Today", 0, y)
    fig, unit = fmt.energy(today)
    _figure(fb, fig, unit, 0, y + MID.HEIGHT + 1)

    y += MID.HEIGHT + BIG.HEIGHT + 4
    draw(fb, MID, _cost(st, today, col), 0, y)
    # Reading age only when it matters: a ticking "4s ago" would force a
    # refresh on every update.
    if age is None:
        small(fb, "No reading yet", 0, H - 8)
    elif age > STALE_S:
        small(fb, "Reading " + fmt.age(age) + " old", 0, H - 8)
    else:
        ambient_gauge(fb, st, 0, H - 8)  # low/medium/high use
    _right(fb, st, col + 4, MID.HEIGHT + 2, W - col - 4, H - MID.HEIGHT - 2)


def _right(fb, st, x, y, w, h):
    # The live screens' right column: the supplier's message while one is
    # on show (display/screen_prepay.py), else the chart of recent hours.
    m = st.get("message")
    if isinstance(m, dict) and m.get("text") is not None:
        from display import screen_prepay

        screen_prepay.message_box(fb, m, x, y, w, h)
    else:
        _chart(fb, st.get("hourly_wh"), x, y, w, h, _gas(st))


def _gas(st):
    # The gas meter's line above the chart, where there is one (EZSP,
    # meter/gas.py): today's gas in kWh, "Gas —" when not known.
    g = st.get("gas")
    if not isinstance(g, dict):
        return None
    wh = g.get("today_wh")
    if wh is None and g.get("today_kwh") is not None:
        wh = int(g["today_kwh"] * 1000 + 0.5)
    fig, unit = fmt.energy(wh)
    return "Gas " + fig + unit


def ambient_gauge(fb, st, x, y):
    # "Use" and three boxes filled up to the level, and its word; "Use —"
    # when unknown. Returns False when there is nothing to draw.
    if "ambient" not in st:
        return False  # an older snapshot: no indication at all
    a = st.get("ambient")
    if a not in _LEVELS:
        small(fb, "Use " + fmt.DASH, x, y)
        return True
    n = _LEVELS.index(a) + 1
    x = small(fb, "Use", x, y) + 2
    for i in range(3):
        if i < n:
            fb.fill_rect(x, y + 1, 8, 6, 1)
        else:
            fb.rect(x, y + 1, 8, 6, 1)
        x += 10
    small(fb, a, x + 2, y)
    return True


def _cost(st, today, col):
    # "£2.06 at 24.5p/kWh": today's cost from the meter's tariff
    # (cost_today: integer minor units, standing charge included) or, in a
    # snapshot without it, today's energy at the price.
    price = st.get("price")
    sym = st.get("currency") or "\u00a3"
    minor = "p" if sym == "\u00a3" else "c"
    if "cost_today" in st:  # the app's figure; None: not known (yet)
        c = st["cost_today"]
        money = fmt.DASH if c is None else fmt.money_minor(c, sym)
    elif price is None or today is None:
        return "Cost " + fmt.DASH
    else:
        money = fmt.cost(today, price, sym)
    if price is None:
        return "Cost " + money
    cost = "%s%s at %s%s/kWh" % ("Cost " if money == fmt.DASH else "", money, _price(price), minor)
    if width(MID, cost) > col:  # narrow panel: just the cost
        cost = "Cost " + money
    return cost


def _price(p):
    # 24.5, 27.35, 30: up to two decimals, trailing zeros dropped
    if p == int(p):
        return "%d" % p
    s = "%.2f" % p
    return s.rstrip("0")


def _chart(fb, hours, x0, y0, w, h, title=None):
    # Bars of energy per hour, oldest left; an unknown hour is a dotted
    # baseline so "no data" never looks like "used nothing". title: the
    # gas line in place of "Last 24h" (the axis still says "-24h").
    if hours and len(hours) > w // 3:
        hours = hours[-(w // 3) :]  # bars at least 3 px wide: the latest hours
    n = len(hours) if hours else 0
    small(fb, title or ("Last %dh" % n if n else "Last hours"), x0, y0)
    base = y0 + h - 10  # baseline row; 8x8 labels below it
    top = y0 + 20
    fb.hline(x0, base, w, 1)
    if not n:
        small(fb, "no history", x0 + 4, (top + base) // 2 - 4)
        return
    known = [v for v in hours if v is not None]
    peak = max(known) if known else 0
    scale = max(peak, 100)  # Wh: a quiet day is not drawn as full bars
    label = "max " + "".join(fmt.energy(peak)) if known else "max " + fmt.DASH
    small(fb, label, x0 + w - 8 * len(label), y0 + 10)
    bw = w // n
    gap = 1 if bw > 2 else 0
    for i in range(n):
        v = hours[i]
        bx = x0 + i * bw
        if v is None:
            for px in range(bx, bx + bw - gap, 2):
                fb.pixel(px, base + 2, 1)
            continue
        bh = (v * (base - top) + scale - 1) // scale if v > 0 else 0
        if bh:
            fb.fill_rect(bx, base - bh, bw - gap, bh, 1)
    small(fb, "-%dh" % n, x0, base + 2)
    small(fb, "now", x0 + w - 24, base + 2)


def _wrap(font, s, w):
    # Greedy word wrap to pixel width w.
    lines = []
    line = ""
    for word in s.split(" "):
        t = word if not line else line + " " + word
        if width(font, t) <= w or not line:
            line = t
        else:
            lines.append(line)
            line = word
    if line:
        lines.append(line)
    return lines


def diag(fb, st):
    fb.fill(0)
    W = fb.width
    f = st.get("fault")
    fb.fill_rect(0, 0, W, MID.HEIGHT, 1)
    if f:
        more = st.get("fault_count") or 1
        x = draw(fb, MID, "FAULT " + f[1] + (" +%d" % (more - 1) if more > 1 else ""), 2, 0, 0)
        sentence = f[2]
    elif "fault" in st:  # present and None: the fault table has nothing active
        x = draw(fb, MID, "OK", 2, 0, 0)
        sentence = "No fault: everything is working."
    else:
        x = draw(fb, MID, "FAULT " + fmt.DASH, 2, 0, 0)
        sentence = "Fault state unknown: the app gave none."
    ver = "v" + fmt.text(st.get("version"))
    if width(MID, ver) + x + 8 < W:
        draw(fb, MID, ver, W - width(MID, ver) - 2, 0, 0)
    y = MID.HEIGHT + 1
    for line in _wrap(MID, sentence, W - 2):
        draw(fb, MID, line, 0, y)
        y += MID.HEIGHT - 2
    y += 3
    m = st.get("meter") or {}
    wf = st.get("wifi") or {}
    c = st.get("cloud") or {}
    s = st.get("store") or {}
    rt = fmt.flag(c.get("realtime"), "on", "off")
    lines = (
        "Meter %s LQI %s RSSI %s" % (fmt.text(m.get("state")), fmt.num(m.get("lqi")), fmt.num(m.get("rssi"))),
        "WiFi %s RSSI %s" % (fmt.flag(wf.get("connected"), "up", "down"), fmt.num(wf.get("rssi"))),
        "Cloud ack %s queued %s" % (_ago(c.get("last_ack_age_s")), fmt.num(c.get("pending"))),
        "Realtime %s Clock %s" % (rt, fmt.flag(st.get("clock_valid"), "ok", "NOT SET")),
        "Reading %s" % _ago(st.get("last_reading_age_s")),
        "Store %s %s" % (fmt.pct(s.get("fill_pct")), fmt.text(s.get("health"))),
        "FW %s build %s" % (fmt.text(st.get("version")), fmt.text(st.get("build"))),
        "Up %s Reset %s" % (fmt.uptime(st.get("uptime_s")), fmt.text(st.get("reset_cause"))),
    )
    idn = st.get("identity")
    if isinstance(idn, dict):
        # support identity: MPAN (site id), meter status, serial (RAVEn:
        # the meter's MAC id), supplier; "—" for what the meter gave none
        ms = idn.get("status")
        lines += (
            "MPAN %s St %s" % (fmt.text(idn.get("site_id")), fmt.DASH if not isinstance(ms, int) else "%02X" % ms),
            "Serial %s %s" % (fmt.text(idn.get("serial") or idn.get("meter_mac")), fmt.text(idn.get("supplier"))),
        )
    if y + 8 * len(lines) > fb.height + 1:
        # the identity lines and a two-line sentence on the 250x122 panel:
        # real-time mode, clock and reading age share one line
        lines = (
            lines[:3]
            + (
                "RT %s Clock %s Read %s"
                % (rt, fmt.flag(st.get("clock_valid"), "ok", "NOT SET"), _ago(st.get("last_reading_age_s"))),
            )
            + lines[5:]
        )
    pitch = 9 if y + 9 * len(lines) <= fb.height + 1 else 8
    for line in lines:
        small(fb, line[: W // 8], 0, y)
        y += pitch


def _ago(s):
    return fmt.DASH if s is None else fmt.age(s) + " ago"


def history(fb, st):
    # display/screen_history.py: imported for the draw, dropped after it
    from display import screen_history

    screen_history.draw_screen(fb, st, _fault_tag)


SCREENS = {LIVE: live, DIAG: diag, HISTORY: history}
