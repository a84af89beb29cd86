"""A mirrored gas meter on the ESI's second Metering endpoint, for the EZSP NCP emulator.

GB-style: MeteringDeviceType Mirrored Gas (128), UnitofMeasure m3 with
Divisor 1000 (the register counts litres), a report of CurrentSummation-
Delivered every 30 simulated minutes on the half hour, and on the same
endpoint the Price cluster's ConversionFactor (1.02264, 5 trailing digits)
and CalorificValue (39.5 MJ/m3, 1 trailing digit), SE 1.1+ ids 0x0302-0x0306.

The household's gas flow follows the time of day (heating mornings and
evenings, a little hot water otherwise), deterministic. The meter's own
figures are the test oracle: `register(t)` (litres), and `today_wh(day_start,
t)`, today's kWh x 1000 from the register at the day's first report, in
exact fractions (kWh = m3 x CF x CV / 3.6).
"""

from __future__ import annotations

from fractions import Fraction

GAS_EP = 2
REPORT_S = 1800
CF, CF_DIGITS = 102264, 5
CV, CV_DIGITS, CV_MJ_M3 = 395, 1, 1
# litres per hour by UTC hour: heating 06-09 and 17-22, hot water otherwise
FLOW_LH = [40] * 6 + [900, 1200, 700] + [60] * 8 + [800, 1000, 900, 700, 400] + [40] * 2


class GasMeter:
    def __init__(self, start: int, litres: int = 1_234_567):
        self.start = start
        self.base = litres

    def register(self, t: float) -> int:
        """Litres at simulated time t: the start register plus the flow since (minus before) the start, floored."""
        a, b = sorted((int(self.start), int(t)))
        total = Fraction(0)
        s = a
        while s < b:
            nxt = min(b, (s // 3600 + 1) * 3600)
            total += Fraction(FLOW_LH[(s // 3600) % 24] * (nxt - s), 3600)
            s = nxt
        return self.base + (int(total) if t >= self.start else -int(total))

    def current_day(self, t: float, midnight: int) -> int:
        """CurrentDayConsumptionDelivered (0x0401): litres since the local midnight."""
        return self.register(t) - self.register(midnight)

    def next_report(self, now: int) -> int:
        return (now // REPORT_S + 1) * REPORT_S

    @staticmethod
    def wh(litres: int) -> int:
        """Wh of a volume in litres with the meter's CF and CV, rounded half up (exact)."""
        x = Fraction(litres * CF * CV, 10 ** (CF_DIGITS + CV_DIGITS)) / Fraction(36, 10)
        return int(x + Fraction(1, 2))
