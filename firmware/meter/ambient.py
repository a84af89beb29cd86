# The ambient low / medium / high indication, shared by both meter links:
# the meter's own AmbientConsumptionIndicator (Metering 0x0207) when it has
# one, else ours: recent demand (an average over about the last 8
# readings, a minute or so) against a rolling baseline (an average over
# about the last 2,048 readings, a few hours).
#
#   low     recent <= 3/4 of the baseline
#   high    recent >= 3/2 of the baseline and at least 200 W above it
#   medium  otherwise
# Unknown ("—") until WARM demand readings have built a baseline. Export
# counts as no use. Integers in 1/16 W, no allocation per reading.
import micropython
from micropython import const

from meter.reading import F_DEMAND, F_GAS

LOW = const(0)
MEDIUM = const(1)
HIGH = const(2)
NAMES = ("low", "medium", "high")
WARM = const(360)  # demand readings before our own baseline counts (~30-60 min)
_SLOW = const(11)  # baseline: 1/2048 per reading
_FAST = const(3)  # recent: 1/8 per reading
_MIN_RISE = const(3200)  # 200 W in 1/16 W
_F_MASK = const(34)  # F_DEMAND | F_GAS
if _F_MASK != F_DEMAND | F_GAS:
    raise ImportError("ambient: meter.reading flags changed")


class Ambient:
    def __init__(self):
        self.meter = None  # the meter's indicator (0..2), when it has one
        self.n = 0  # demand readings seen (counts up to 2**_SLOW)
        self._base = 0  # 1/16 W
        self._fast = 0

    @micropython.native  # per reading: no heap frame
    def reading(self, demand_w, flags):
        if flags & _F_MASK != F_DEMAND:
            return  # no demand in this reading, or a gas meter's
        x = (demand_w if demand_w > 0 else 0) << 4
        n = self.n
        if n == 0:
            self._base = self._fast = x
        elif n < 2048:
            self._base += (x - self._base) // (n + 1)  # the mean while warming up
        else:
            self._base += (x - self._base) >> _SLOW
        self._fast += (x - self._fast) >> _FAST
        if n < 2048:
            self.n = n + 1

    def ours(self):
        if self.n < WARM:
            return None
        b = self._base
        f = self._fast
        if 4 * f <= 3 * b:
            return LOW
        if 2 * f >= 3 * b and f - b >= _MIN_RISE:
            return HIGH
        return MEDIUM

    def figures(self):
        # -> (level name or None, source "meter"/"baseline" or None)
        if self.meter is not None:
            return NAMES[self.meter], "meter"
        v = self.ours()
        return (None, None) if v is None else (NAMES[v], "baseline")
