# Gas over EZSP (issue 14 item 2): which Metering endpoint is which meter
# (MeteringDeviceType 0x0306), and the gas meter's own figures: its
# register (a second meter.zcl.Meter, volume in litres or energy in Wh),
# today's gas since the first reading of the local day, the age of its
# last reading, and kWh from the volume with the Price cluster's
# ConversionFactor and CalorificValue (SE 1.1+: Price 0x0302-0x0306), in
# exact integers: kWh = m3 x CF x CV (MJ/m3) / 3.6.
#
# Gas readings never reach the electricity supervision (meter silence,
# dropout: a gas meter reports every 30 minutes) nor the tariff; the link
# (meter/ezsp_link.py) routes them here. Per reading this keeps three ints;
# the conversion runs when the status snapshot asks (figures()).
from micropython import const

from meter.reading import F_GAS, F_SUMMATION, F_TIME_VALID
from meter.zcl import electric
from meter.zcl_scale import is_int, scale, str_end, type_width

# What a MeteringDeviceType is to the link (ZCL SE 1.x; zigpy's
# smartenergy.MeteringDeviceType is the test oracle).
ELECTRIC = const(1)
GAS = const(2)
OTHER = const(3)  # water, heat, generation ...: not ours to show

PRICE = const(0x0700)
A_CONV = const(0x0302)  # ConversionFactor, uint32
A_CONV_DIGITS = const(0x0303)  # ConversionFactorTrailingDigit, map8 (bits 4-7)
A_CV = const(0x0304)  # CalorificValue, uint32
A_CV_UNIT = const(0x0305)  # CalorificValueUnit: 1 MJ/m3, 2 MJ/kg
A_CV_DIGITS = const(0x0306)  # CalorificValueTrailingDigit, map8 (bits 4-7)
PRICE_ATTRS = (A_CONV, A_CONV_DIGITS, A_CV, A_CV_UNIT, A_CV_DIGITS)
_MJ_M3 = const(1)
# Bit u set: Metering unit u (low 7 bits) is a volume (meter/zcl.py's _VOLUME).
_VOLUME = const(0b10010111110)


def kind_of(device_type):
    # 0 electric, 13-15 electric phase elements, 127 mirrored electric,
    # 140-142 mirrored phase elements; 1 gas, 128 mirrored gas.
    t = device_type
    if electric(t):
        return ELECTRIC
    if t == 1 or t == 128:
        return GAS
    return OTHER


def read_ints(buf, off, n, ids, out):
    # Integer attributes of a ZCL Read Attributes Response (0x01) or Report
    # Attributes (0x0A) frame buf[off:off+n] into out (out[k] for ids[k];
    # -2 when the meter answered that it has none, unchanged when absent).
    # -> False for a malformed frame (out may then hold part of it).
    if n < 3:
        return False
    cmd = buf[off + 2]
    if cmd != 0x01 and cmd != 0x0A:
        return True
    i = off + 3
    end = off + n
    while i < end:
        if i + 3 > end:
            return False
        attr = buf[i] | (buf[i + 1] << 8)
        i += 2
        if cmd == 0x01:
            st = buf[i]
            i += 1
            if st:
                if attr in ids:
                    out[ids.index(attr)] = -2
                continue
            if i >= end:
                return False
        t = buf[i]
        i += 1
        w = type_width(t)
        if w < 0:
            i = str_end(buf, i, end, w)
            if i < 0:
                return False
            continue
        if w == 0 or i + w > end:
            return False
        if attr in ids and is_int(t) and w <= 4:
            x = 0
            for k in range(w - 1, -1, -1):
                x = (x << 8) | buf[i + k]
            out[ids.index(attr)] = x
        i += w
    return True


class Gas:
    # Gas(meter, nwk, ep, zone): meter a meter.zcl.Meter whose on_reading
    # the link points at self.reading; zone a meter.localtime.Zone (local
    # days); ticks() the device's ms ticks (the age of the last reading).
    def __init__(self, meter, nwk, ep, zone, ticks):
        self.meter = meter
        self.nwk = nwk
        self.ep = ep
        self.zone = zone
        self.ticks = ticks
        self.register = -1  # litres (volume meter) or Wh, -1 unknown
        self.base = -1  # the register at the first reading of today
        self.day = -1  # local day of the last reading
        self.at = None  # ticks of the last reading
        self.readings = 0
        # ConversionFactor, its digits, CalorificValue, its unit, its digits
        # (-1 unknown, -2 the meter has none)
        self.conv = [-1, -1, -1, -1, -1]
        self.bad = 0  # malformed Price answers
        self.on_store = None  # the app's on_gas: the store's gas stream (F_GAS)
        self.want_day = False  # ask the register with CurrentDayConsumptionDelivered
        self._cd = [-1]

    def reading(self, t_s, demand, delivered, received, flags):
        # meter.zcl.Meter's on_reading for the gas meter: no allocation.
        self.at = self.ticks()
        self.readings += 1
        if self.on_store is not None:
            self.on_store(t_s, demand, delivered, received, flags | F_GAS)
        if not flags & F_SUMMATION:
            return
        self.register = delivered
        if not flags & F_TIME_VALID:
            return  # no day without a clock
        d = self.zone.day(t_s)
        if d != self.day:
            # a new local day: today counts from its first reading, and only
            # when a reading of the day before was seen (else the part of
            # today before this boot is unknown: "—", never a guess, until
            # the meter's CurrentDayConsumptionDelivered says: want_day)
            self.base = delivered if self.day >= 0 and d == self.day + 1 else -1
            self.want_day = self.base < 0
            self.day = d

    def day_frame(self, buf, off, n):
        # An answer with CurrentDayConsumptionDelivered (0x0401, the meter's
        # unit): when the day's first reading was not seen here, today
        # starts where the meter says, from the register read with it.
        cd = self._cd
        cd[0] = -1
        if not read_ints(buf, off, n, _CD_IDS, cd) or cd[0] < 0 or cd[0] == 0xFFFFFF:
            return
        if self.base < 0 and self.day >= 0 and self.register >= 0 and self.meter.typed():
            used = self.meter.scale_sum(cd[0])
            if 0 <= used <= self.register:
                self.base = self.register - used

    def price_frame(self, buf, off, n):
        # A Price cluster frame from the gas meter's endpoint: the
        # conversion factor and calorific value (answer or report).
        if not read_ints(buf, off, n, PRICE_ATTRS, self.conv):
            self.bad += 1

    def volume(self):
        u = self.meter.unit & 0x7F
        return self.meter.unit >= 0 and u < 16 and bool(_VOLUME & (1 << u))

    def ratio(self):
        # (num, den): Wh per litre, exact; None without a usable factor.
        # Wh = l x CF x CV / 3.6 = l x cf x cv x 10 / (36 x 10^(cf digits + cv digits))
        c = self.conv
        if c[0] < 0 or c[2] < 0 or c[3] != _MJ_M3:
            return None  # MJ/kg needs a density no attribute gives
        dig = (c[1] >> 4 if c[1] >= 0 else 0) + (c[4] >> 4 if c[4] >= 0 else 0)
        n = c[0] * c[2] * 10
        d = 36 * 10**dig
        a, b = n, d
        while b:
            a, b = b, a % b
        return (n // a, d // a) if a else None

    def today_wh(self):
        # Today's gas in Wh (exact integers, rounded half up), None unknown.
        if self.base < 0 or self.register < 0:
            return None
        used = self.register - self.base
        if not self.volume():
            return used  # a meter that counts kWh itself
        r = self.ratio()
        return None if r is None else scale(used, r[0], r[1])

    def figures(self):
        # The status snapshot's "gas": today's energy (kWh and Wh), today's
        # volume in litres, the age of the last reading (s); None unknown.
        wh = self.today_wh()
        at = self.at
        age = None
        if at is not None:
            from time import ticks_diff

            age = ticks_diff(self.ticks(), at) // 1000
        vol = self.volume()
        return {
            "today_kwh": None if wh is None else wh / 1000,
            "today_wh": wh,
            "today_l": self.register - self.base if vol and self.base >= 0 and self.register >= 0 else None,
            "age_s": age,
        }


# -- the link's side (meter/ezsp_link.py calls these) ---------------------------
_DT_IDS = (0x0306,)
_SKIP = const(4)  # endpoints found to be neither meter, remembered


class Finder:
    # Which (node, endpoint) is which meter, for the EZSP link. The link's
    # own candidate (the first Metering endpoint to speak) and one other
    # endpoint at a time each feed a meter.zcl.Meter that holds its reports
    # until the MeteringDeviceType is known (asked with the scaling: probe);
    # then electricity goes to the link, gas here, anything else nowhere.
    # A gas meter that speaks first is never taken for electricity.
    def __init__(self, link):
        self.link = link
        self.gas = None  # Gas, once found
        self.cand = None  # the other endpoint's Meter while its type is unknown
        self.cand_key = -1  # its nwk << 8 | ep
        self.probe = -1  # nwk << 8 | ep to ask its type and scaling (the link's next round)
        self.setup = False  # the gas meter's scaling, price and register: ask now
        self.relink = False  # the link's meter changed: ask its scaling and type now
        self.skip = [-1] * _SKIP  # endpoints of other meters (water, heat, a second one)
        self._n = 0

    def _skip(self, key):
        if key not in self.skip:
            self.skip[self._n % _SKIP] = key
            self._n += 1

    def _found(self, m, key):
        m.on_type = None
        m.on_time = None
        if kind_of(m.device_type) == GAS and self.gas is None:
            g = self.gas = Gas(m, key >> 8, key & 0xFF, self.link.zone, self.link.ticks)
            m.on_reading = g.reading
            g.on_store = getattr(self.link, "on_gas", None)
            self.setup = True
        else:
            m.on_reading = _drop
            self._skip(key)

    def not_electric(self, m, key):
        # The link's candidate m (on key) is another kind of meter: gas
        # here, else nowhere. -> the other candidate, if any, for the link.
        self._found(m, key)
        c = self.cand
        self.cand = None
        self.probe = -1
        return c, self.cand_key

    def frame(self, cluster, nwk, ep, buf, off, n):
        # A Metering or Price frame from an endpoint that is not the link's
        # meter. -> True if it went to a meter here.
        g = self.gas
        if g is not None and nwk == g.nwk and ep == g.ep:
            if cluster == PRICE:
                g.price_frame(buf, off, n)
            else:
                g.meter.handle(cluster, buf, off, n)
                if n > 3 and buf[off + 2] == 0x01:
                    g.day_frame(buf, off, n)
            return True
        key = nwk << 8 | ep
        if cluster == PRICE or key in self.skip or (g is not None and self.link.electric()):
            return False  # nothing left to find
        if self.cand is None:
            from meter.zcl import Meter

            self.cand = Meter(_drop, self.link.meter.clock, None, self._cand_type)
            self.cand_key = key
            self.probe = key
        elif key != self.cand_key:
            return False  # one at a time
        self.cand.handle(cluster, buf, off, n)
        return True

    def _cand_type(self, m):
        # The other endpoint's device type is known.
        key = self.cand_key
        self.cand = None
        self.probe = -1
        link = self.link
        if kind_of(m.device_type) == ELECTRIC and not link.electric():
            old, okey = link.adopt(m, key)  # ours; the link's candidate is asked next
            if old is not None:
                old.on_reading = _drop
                old.on_time = None
                old.on_type = self._cand_type
                self.cand = old
                self.cand_key = self.probe = okey
            return
        self._found(m, key)

    def figures(self):
        return None if self.gas is None else self.gas.figures()

    async def reads(self):
        # The link's round: the other endpoint's type, the link's new meter's
        # scaling, the gas meter's scaling, register and conversion factors.
        await _reads(self.link, self)


async def _reads(link, f):
    if f.probe >= 0:
        k = f.probe
        f.probe = -1
        await link.read(0x0702, _SETUP, k)
    if f.relink:
        f.relink = False
        await link.read(0x0702, _SETUP)
    g = f.gas
    if g is not None and g.want_day and not f.setup:
        g.want_day = False
        await link.read(0x0702, _REGISTER, g.nwk << 8 | g.ep)
    if f.setup and g is not None:
        f.setup = False
        k = g.nwk << 8 | g.ep
        await link.read(0x0702, _SETUP, k)
        await link.read(0x0702, _REGISTER, k)
        await link.read(PRICE, PRICE_ATTRS, k)


_SETUP = (0x0300, 0x0301, 0x0302, 0x0303, 0x0304, 0x0306)  # zcl.SETUP_ATTRS
# CurrentSummationDelivered and CurrentDayConsumptionDelivered in one answer:
# today's gas from the meter's own figure when this display has not seen
# the day start (a boot mid-day)
_REGISTER = (0x0000, 0x0401)
_CD_IDS = (0x0401,)


def _drop(t_s, demand, delivered, received, flags):
    pass
