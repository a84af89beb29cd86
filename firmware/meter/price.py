# The tariff and today's cost, shared by both meter links: the price the
# meter published (EZSP PublishPrice, RAVEn PriceCluster), its currency,
# tier and standing charge, and an accumulator of today's energy per price
# that gives today's cost exactly, in integers.
#
# Units: ZCL and RAVEn give prices in MAJOR units of the currency (pounds,
# euros) per kWh as an integer `raw` with `digits` trailing digits:
# raw / 10**digits major units per kWh, i.e. raw / 10**(digits+1) minor
# units per Wh (every currency here has 100 minor units). The standing
# charge (ZCL StandingCharge, a daily amount) uses the same trailing digits.
# Money is never a float: the cost of closed price periods is one integer
# count of 10**-k minor units (every denominator is a power of ten, so the
# sum stays exact), rounded half up to the minor unit only when shown. A
# float appears only in the price shown (`figures()["price"]` when it is not
# a whole number of minor units), never in a sum.
#
# Hot path: reading() runs for every reading and allocates nothing (small
# ints only). Price changes, day changes and figures() are rare and may.
import micropython
from micropython import const

from meter.reading import F_GAS, F_SUMMATION, F_TIME_VALID

# ISO 4217 number -> (symbol, minor-unit letter); all have 2 minor digits.
# A currency not listed gives no money figures ("—"): its minor unit and
# symbol would be guesses.
CURRENCIES = {
    826: ("\u00a3", "p"),  # GBP
    978: ("\u20ac", "c"),  # EUR
    840: ("$", "c"),  # USD
    124: ("$", "c"),  # CAD
    36: ("$", "c"),  # AUD
    554: ("$", "c"),  # NZD
}
KWH = const(0)  # ZCL UnitOfMeasure of an electricity price
NO_STANDING = const(-1)  # the meter offers none (RAVEn has no such field)
_DAY = const(86400)
# Between two summation readings a register step above this is not a
# household's energy (a register replaced, a wrong reading): not costed.
_MAX_STEP_WH = const(200_000)
_F_NEED = const(37)  # F_SUMMATION | F_TIME_VALID | F_GAS
_F_WANT = const(5)  # F_SUMMATION | F_TIME_VALID
if _F_NEED != F_SUMMATION | F_TIME_VALID | F_GAS or _F_WANT != F_SUMMATION | F_TIME_VALID:
    raise ImportError("price: meter.reading flags changed")


class Tariff:
    def __init__(self, standing=None):
        self.raw = None  # price: raw / 10**digits major units per kWh; None unknown
        self.digits = 0
        self.currency = None  # ISO 4217 number
        self.tier = None  # price tier (1.. ; Economy 7: 1 night / 2 day ...)
        self.label = None  # rate label (bytes), when given
        # standing charge raw (same trailing digits as the price), per day:
        # None not known yet, NO_STANDING the meter has none
        self.standing = standing
        self.updates = 0  # price publications taken
        self.changes = 0  # ... that changed the price
        self.rejected = 0  # not an electricity price (unit), invalid value
        self.jumps = 0  # register steps not costed (_MAX_STEP_WH, backwards)
        # accumulator (device seconds; day = (t_s + off) // 86400, local
        # days: off is the UTC offset, set by the app from the link's zone)
        self.off = 0
        self.day = -1
        self.seeded = False  # energy before the first reading of the day known
        self._last = -1  # last delivered register, Wh
        self._wh = 0  # today's energy at the current price (open period)
        self._day_wh = 0  # today's energy seen by reading()
        self._pre = 0  # today's energy before our first reading (seed())
        self._first = None  # (raw, digits): the day's first known price
        self._cn = 0  # closed periods today: _cn * 10**-_ck minor units
        self._ck = 0
        # the day that closed last (meter/history.py takes its cost)
        self.closed_day = -1
        self.closed_wh = -1  # the energy it charged, Wh (-1 unknown)
        self.closed_cost = None  # minor units, standing charge included
        self._sc = standing  # the standing charge at the last reading,
        self._scd = 0  # in these trailing digits

    # -- the meter's figures -------------------------------------------------
    def set_price(self, raw, digits, currency, tier=None, unit=KWH, label=None):
        # A price publication. Electricity in kWh only: a gas price per m3
        # does not cost kWh.
        if unit != KWH or raw is None or raw < 0 or raw == 0xFFFFFFFF or not 0 <= digits <= 15:
            self.rejected += 1
            return False
        self.updates += 1
        if self.raw is not None and (raw != self.raw or digits != self.digits):
            self._close()
            self.changes += 1
        self.raw = raw
        self.digits = digits
        self.currency = currency
        self.tier = tier
        if label is not None:
            self.label = label
        if self._first is None:
            self._first = (raw, digits)
        return True

    def set_standing(self, raw):
        # StandingCharge attribute (raw, same trailing digits as the price),
        # or NO_STANDING when the meter says it has none.
        if raw is None or raw < 0 or raw == 0xFFFFFFFF:
            raw = NO_STANDING
        self.standing = raw

    # -- energy --------------------------------------------------------------
    @micropython.native  # per reading: no heap frame
    def reading(self, t_s, delivered_wh, flags):
        # Every reading of the link; only electricity summations with a
        # valid time count. Allocates nothing.
        if flags & _F_NEED != _F_WANT:
            return
        day = (t_s + self.off) // _DAY
        if day != self.day:
            if day < self.day:
                return  # a late reading of yesterday: yesterday is closed
            self._new_day(day)
        self._sc = self.standing
        self._scd = self.digits
        last = self._last
        self._last = delivered_wh
        if last < 0:
            return
        d = delivered_wh - last
        if d < 0 or d > _MAX_STEP_WH:
            self.jumps += 1
            return
        self._wh += d
        self._day_wh += d

    def _new_day(self, day):
        # Seen through midnight (the last reading was yesterday's): today is
        # all ours. After a boot or a longer gap the energy before our first
        # reading comes from seed().
        if self.day >= 0:
            # the standing charge of the day that ends: a new one read
            # after its last reading belongs to the new day
            self.closed_day = self.day
            self.closed_cost = self.cost_today(self._sc, self._scd)
            self.closed_wh = self._pre + self._day_wh if self.seeded else -1
        self.seeded = self.day >= 0 and day == self.day + 1 and self._last >= 0
        self.day = day
        self._wh = self._day_wh = self._pre = 0
        self._cn = self._ck = 0
        self._first = None if self.raw is None else (self.raw, self.digits)

    def seed(self, day, today_wh):
        # today_wh: the store's energy since midnight of `day`, up to the
        # latest reading (which reading() has seen too): what is not ours
        # was used before our first reading today (a reboot) and is charged
        # at the day's first known price.
        if day != self.day or self.seeded:
            return
        pre = today_wh - self._day_wh
        self._pre = pre if pre > 0 else 0
        self.seeded = True

    def _add(self, n, k):
        # closed += n * 10**-k minor units, exactly
        if k > self._ck:
            self._cn *= 10 ** (k - self._ck)
            self._ck = k
        else:
            n *= 10 ** (self._ck - k)
        self._cn += n

    def _close(self):
        # The open period ends (price change): its energy at the old price.
        if self._wh and self.raw is not None:
            self._add(self._wh * self.raw, self.digits + 1)  # minor per Wh = raw / 10**(digits+1)
        self._wh = 0

    # -- what the app shows ----------------------------------------------------
    def cost_exact(self, standing=None, sdigits=0):
        # Today's cost, standing charge included: (n, k) meaning n * 10**-k
        # minor units, or None when any part is unknown. standing, sdigits:
        # the day's standing charge and its trailing digits when not the
        # present ones (a tariff change at midnight, before the day closed).
        if standing is None:
            standing = self.standing
            sdigits = self.digits
        if self.raw is None or self.day < 0 or not self.seeded or standing is None:
            return None
        if self.currency not in CURRENCIES:
            return None
        save = (self._cn, self._ck)
        self._add(self._wh * self.raw, self.digits + 1)
        if self._pre:
            f = self._first or (self.raw, self.digits)
            self._add(self._pre * f[0], f[1] + 1)
        if standing > 0:
            self._add(standing * 100, sdigits)
        out = (self._cn, self._ck)
        self._cn, self._ck = save
        return out

    def cost_today(self, standing=None, sdigits=0):
        # Minor units, rounded half up; None when unknown.
        c = self.cost_exact(standing, sdigits)
        if c is None:
            return None
        d = 10 ** c[1]
        return (2 * c[0] + d) // (2 * d)

    def figures(self, demand_w=None):
        # The status snapshot's money fields (docs/display.md); None when
        # unknown, never guessed.
        known = self.raw is not None and self.currency in CURRENCIES
        cost_h = None
        if known and demand_w is not None and demand_w >= 0:
            d = 10 ** (self.digits + 1)
            cost_h = (2 * demand_w * self.raw + d) // (2 * d)  # W for 1 h = Wh
        return {
            "price": _minor(self.raw, self.digits) if known else None,
            "currency": CURRENCIES[self.currency][0] if known else None,
            "currency_iso": self.currency,
            "price_tier": self.tier,
            "standing_charge": _minor(self.standing, self.digits) if known and _has(self.standing) else None,
            "cost_today": self.cost_today(),
            # the energy cost_today charges (Wh since midnight), for support
            "cost_wh": self._pre + self._day_wh if self.seeded and self.day >= 0 else None,
            "cost_per_hour": cost_h,
        }


def _has(standing):
    return standing is not None and standing >= 0


def _minor(raw, digits):
    # raw / 10**digits major units -> minor units: an int when whole, else
    # a float for display only.
    if raw is None:
        return None
    if digits <= 2:
        return raw * 10 ** (2 - digits)
    d = 10 ** (digits - 2)
    return raw // d if raw % d == 0 else raw / d
