"""The emulated supplier's tariff: what the meter publishes, and the oracle for cost.

Shared by both co-processor emulators (tools/ihd/emulators/ezsp_ncp.py: Price cluster
PublishPrice and the StandingCharge attribute; tools/ihd/emulators/raven_session.py:
PriceCluster). Prices are in MAJOR units of the currency per kWh as ZCL and
RAVEn carry them: `raw / 10**digits` (2735 with 4 digits = £0.2735 = 27.35p).
The standing charge (per day) uses the same trailing digits, as ZCL's
StandingCharge does; None = the meter has none (the attribute is
unsupported; RAVEn never has one).

    t = Tariff(start, price=2735, digits=4, currency=826, standing=5322,
               changes=[(3600, 1450, 2)], night=None)
    t.at(unix_s) -> (raw, tier)        the price in force
    t.cost_minor(segments) -> Fraction exact cost (minor units) of [(wh, raw)]

`changes`: (offset from start s, raw, tier) from then on. `night` =
(raw, from_s, to_s): an Economy 7-style tier 1 every UTC day between those
seconds of the day (day rate: tier 2), on top of the current price.
"""

from __future__ import annotations

from fractions import Fraction

PROVIDER_ID = 0x00000ACE
RATE_LABEL = b"Standard"


class Tariff:
    def __init__(
        self,
        start: int,
        price: int = 2735,
        digits: int = 4,
        currency: int = 826,
        standing: int | None = 5322,
        changes=(),
        night: tuple[int, int, int] | None = None,
    ):
        self.start = start
        self.price = price
        self.digits = digits
        self.currency = currency
        self.standing = standing
        self.changes = sorted(changes)
        self.night = night

    def at(self, t: float) -> tuple[int, int]:
        raw, tier = self.price, 1
        for off, r, tr in self.changes:
            if t >= self.start + off:
                raw, tier = r, tr
        if self.night is not None:
            nraw, a, b = self.night
            s = int(t) % 86400
            if a <= s < b:
                return nraw, 1
            return raw, 2
        return raw, tier

    def event_id(self, t: float) -> int:
        # IssuerEventId: a new one for every price period
        off = [c[0] for c in self.changes if t >= self.start + c[0]]
        return 1 + len(off) + (int(t) // 86400) * 100 * (self.night is not None)

    def minor_per_wh(self, raw: int) -> Fraction:
        return Fraction(raw * 100, 1000 * 10**self.digits)

    def standing_minor(self) -> Fraction:
        return Fraction(0) if self.standing is None else Fraction(self.standing * 100, 10**self.digits)

    def cost_minor(self, segments) -> Fraction:
        """Exact cost in minor units of [(wh, raw), ...] plus one day's standing charge."""
        return self.standing_minor() + sum((self.minor_per_wh(raw) * wh for wh, raw in segments), Fraction(0))


def rounded(x: Fraction) -> int:
    """Half up to the minor unit, as the firmware shows it."""
    return (2 * x.numerator + x.denominator) // (2 * x.denominator)


def from_args(args) -> Tariff:
    changes = [(o, r, t) for o, r, t in getattr(args, "price_at", [])]
    night = getattr(args, "night_price", None)
    return Tariff(
        args.start,
        price=args.price,
        digits=args.price_digits,
        currency=args.currency,
        standing=None if args.standing_charge < 0 else args.standing_charge,
        changes=changes,
        night=None if night is None else (night, 30 * 60, 7 * 3600 + 30 * 60),
    )
