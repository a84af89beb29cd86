# Text for the screens: figures, ages and states as short strings, with
# "—" wherever the status snapshot has no value (never a guessed one).
DASH = "\u2014"


def _three(v):
    # Integer v (W or Wh) as three significant digits of kilo-units, rounded
    # half up in integers (floats would print 995 as "0.99").
    if v < 9995:
        c = (v + 5) // 10
        return "%d.%02d" % (c // 100, c % 100)
    if v < 99950:
        d = (v + 50) // 100
        return "%d.%d" % (d // 10, d % 10)
    return "%d" % ((v + 500) // 1000)


def power(w):
    # Demand magnitude -> (figure, unit): 85 W, 850 W, 1.23 kW, 12.3 kW, 123 kW.
    if w is None:
        return DASH, ""
    w = abs(w)
    if w < 100:
        return "%d" % w, "W"
    if w < 995:
        # Three significant digits, as for kW: the last watt flickers with
        # every reading and would cost a refresh each time.
        return "%d" % ((w + 5) // 10 * 10), "W"
    return _three(w), "kW"


def energy(wh):
    # Energy -> (figure, unit) in kWh with three significant digits.
    if wh is None:
        return DASH, ""
    return _three(wh), "kWh"


def money(minor, symbol):
    # Minor units (pence, cents) -> "£1.23".
    if minor is None:
        return DASH
    minor = int(minor + 0.5)
    return "%s%d.%02d" % (symbol, minor // 100, minor % 100)


def cost(wh, price, symbol):
    # Energy in Wh at price (minor units per kWh, int or float with up to
    # two decimals) -> "£1.23", rounded half up to the minor unit. In
    # integers: wh * price / 1000 in floats misses half-penny points (35.9
    # is not a binary fraction; single precision, as on the ESP32, turns
    # 1111.4999p into 1111.5). The price goes to hundredths once, where a
    # float's error is far below 0.5, then everything is exact.
    if wh is None or price is None:
        return DASH
    c = int(price * 100 + 0.5)  # hundredths of a minor unit per kWh
    return money_minor((wh * c + 50_000) // 100_000, symbol)


def money_minor(minor, symbol):
    # Whole minor units -> "£1.23" (negative: "-£1.23").
    if minor < 0:
        return "-" + money_minor(-minor, symbol)
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
