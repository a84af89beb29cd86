# ZCL Price cluster (0x0700, Smart Energy) client for the EZSP link: the
# GetCurrentPrice request (the one cluster-specific command the firmware may
# send; it only asks), the PublishPrice command the meter answers with or
# pushes on a tariff change, and the StandingCharge attribute (Read
# Attributes Response / Report Attributes). Results go to a
# meter.price.Tariff. Price frames are rare (one per request or tariff
# change): parsing here allocates a little (the rate label), unlike the
# Metering path.
from micropython import const

from meter.zcl_scale import is_int, str_end, type_width

PRICE = const(0x0700)
GET_CURRENT_PRICE = const(0x00)  # client -> server
PUBLISH_PRICE = const(0x00)  # server -> client
A_STANDING_CHARGE = const(0x0301)  # uint32, per day, PublishPrice's trailing digits
PRICE_ATTRS = (A_STANDING_CHARGE,)
# GetCurrentPrice Command Options bit 0: "requestor Rx on when idle": the
# meter then pushes PublishPrice to us when the price changes.
RX_ON_WHEN_IDLE = const(0x01)
_READ_RSP = const(0x01)
_REPORT = const(0x0A)
_UNSUPPORTED = const(0x86)

OK = const(0)
IGNORED = const(1)
BAD = const(2)


def build_get_current_price(buf, seq):
    # GetCurrentPrice (cluster-specific, client to server, not manufacturer
    # specific): frame control 0x01, sequence, command 0x00, options.
    buf[0] = 0x01
    buf[1] = seq & 0xFF
    buf[2] = GET_CURRENT_PRICE
    buf[3] = RX_ON_WHEN_IDLE
    return 4


def _u(buf, i, w):
    x = 0
    for k in range(w - 1, -1, -1):
        x = (x << 8) | buf[i + k]
    return x


class PriceClient:
    # handle(buf, off, n) for every Price cluster frame from the meter.
    def __init__(self, tariff):
        self.tariff = tariff
        self.frames = 0
        self.bad = 0
        self.ignored = 0
        self.scheduled = 0  # PublishPrice for a later start: not (yet) the price
        self.provider = None
        self.issuer_event = None

    def handle(self, buf, off, n):
        self.frames += 1
        if n < 3:
            self.bad += 1
            return BAD
        fc = buf[off]
        cmd = buf[off + 2]
        if fc & 0x04 or not fc & 0x08:
            self.ignored += 1  # manufacturer-specific, or client to server
            return IGNORED
        kind = fc & 0x03
        if kind == 1 and cmd == PUBLISH_PRICE:
            ok = self._publish(buf, off + 3, off + n)
        elif kind == 0 and (cmd == _READ_RSP or cmd == _REPORT):
            ok = self._attrs(buf, off + 3, off + n, cmd == _READ_RSP)
        else:
            self.ignored += 1
            return IGNORED
        if not ok:
            self.bad += 1
            return BAD
        return OK

    def _publish(self, buf, i, end):
        # ProviderId u32, RateLabel octstr, IssuerEventId u32, CurrentTime
        # UTC, UnitOfMeasure enum8, Currency u16, PriceTrailingDigit(4) |
        # PriceTier(4), NumberOfPriceTiers(4) | RegisterTier(4), StartTime
        # UTC, DurationInMinutes u16, Price u32; optional fields after it
        # (PriceRatio, GenerationPrice, ...) are not used.
        if i + 5 > end:
            return False
        provider = _u(buf, i, 4)
        ln = buf[i + 4]
        i += 5
        if ln == 0xFF:
            ln = 0  # invalid/empty octet string
        if ln > 12 or i + ln + 4 + 4 + 1 + 2 + 1 + 1 + 4 + 2 + 4 > end:
            return False
        label = bytes(buf[i : i + ln])
        i += ln
        issuer = _u(buf, i, 4)
        now = _u(buf, i + 4, 4)
        unit = buf[i + 8]
        currency = _u(buf, i + 9, 2)
        td_tier = buf[i + 11]
        start = _u(buf, i + 13, 4)
        price = _u(buf, i + 19, 4)
        if start != 0 and start != 0xFFFFFFFF and start > now:
            self.scheduled += 1  # a later price: the meter pushes it when it starts
            return True
        self.provider = provider
        self.issuer_event = issuer
        self.tariff.set_price(price, td_tier >> 4, currency, td_tier & 0x0F, unit, label)
        return True

    def _attrs(self, buf, i, end, is_rsp):
        found = None
        while i < end:
            if i + 3 > end:
                return False
            attr = buf[i] | (buf[i + 1] << 8)
            i += 2
            if is_rsp:
                st = buf[i]
                i += 1
                if st:
                    if attr == A_STANDING_CHARGE and st == _UNSUPPORTED:
                        found = -1
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
            if attr == A_STANDING_CHARGE and is_int(t) and w <= 4:
                found = _u(buf, i, w)
            i += w
        if found is not None:
            self.tariff.set_standing(found)
        return True
