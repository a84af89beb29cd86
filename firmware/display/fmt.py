# Text for the screens: figures, ages and states as short strings, with
# "—" wherever the status snapshot has no value (never a guessed one).
DASH = "\u2014"


def power(w):
    # Demand magnitude -> (figure, unit): 850 W, 1.23 kW, 12.3 kW, 123 kW.
    if w is None:
        return DASH, ""
    w = abs(w)
    if w < 1000:
        return "%d" % w, "W"
    if w < 9995:
        return "%.2f" % (w / 1000), "kW"
    if w < 99950:
        return "%.1f" % (w / 1000), "kW"
    return "%d" % ((w + 500) // 1000), "kW"


def energy(wh):
    # Energy -> (figure, unit) in kWh with three significant digits.
    if wh is None:
        return DASH, ""
    if wh < 9995:
        return "%.2f" % (wh / 1000), "kWh"
    if wh < 99950:
        return "%.1f" % (wh / 1000), "kWh"
    return "%d" % ((wh + 500) // 1000), "kWh"


def money(minor, symbol):
    # Minor units (pence, cents) -> "£1.23".
    if minor is None:
        return DASH
    minor = int(minor + 0.5)
    return "%s%d.%02d" % (symbol, minor // 100, minor % 100)


def age(s):
    # Seconds -> "12s", "5m", "3h", "2d"; None -> "—".
    if s is None:
        return DASH
    if s < 120:
        return "%ds" % s
    if s < 7200:
        return "%dm" % (s // 60)
    if s < 172800:
        return "%dh" % (s // 3600)
    return "%dd" % (s // 86400)


def uptime(s):
    if s is None:
        return DASH
    d, s = divmod(s, 86400)
    return "%dd %02d:%02d" % (d, s // 3600, s % 3600 // 60)


def num(v):
    return DASH if v is None else "%d" % v


def pct(v):
    return DASH if v is None else "%d%%" % v


def flag(v, yes, no):
    return DASH if v is None else (yes if v else no)


def text(v):
    return DASH if v is None or v == "" else str(v)
