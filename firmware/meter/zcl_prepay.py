# What the EZSP link reads besides readings and the tariff, all by Read
# Attributes only: the Prepayment cluster (0x0705: credit remaining,
# emergency credit, credit status, accumulated debt, the IHD's low-credit
# level), Metering's SupplyStatus (0x0014), meter status (0x0200), ambient
# consumption indicator (0x0207), site id / MPAN (0x0307) and serial
# (0x0308), and the supplier's name (Device Management 0x0708,
# ProviderName 0x0101). Kept raw here; prepay() and identity() turn them
# into the status snapshot's fields (docs/display.md), None when unknown.
#
# Money: credit, emergency credit and debt are signed amounts in the
# tariff's currency with its PriceTrailingDigit (as the Price cluster
# publishes them); without a known tariff they are not shown. A value out
# of any household's range (_ABSURD) is shown as "—", never as a figure.
from micropython import const

from meter.zcl_scale import str_end, type_width

PREPAYMENT = const(0x0705)
DEVICE_MGMT = const(0x0708)
MESSAGING = const(0x0703)  # GetLastMessage (below); the rest: meter/zcl_messaging.py
_METERING = const(0x0702)

# Prepayment attributes
_A_PAYMENT_CONTROL = const(0x0000)  # map16, bit 1: prepayment enabled
_A_CREDIT = const(0x0001)  # int32 CreditRemaining
_A_EMERGENCY = const(0x0002)  # int32 EmergencyCreditRemaining
_A_CREDIT_STATUS = const(0x0003)  # map8
_A_DEBT = const(0x0005)  # int32 AccumulatedDebt
_A_IHD_LOW = const(0x0032)  # uint32 IHDLowCreditWarningLevel
PREPAY_ATTRS = (_A_PAYMENT_CONTROL, _A_CREDIT, _A_EMERGENCY, _A_CREDIT_STATUS, _A_DEBT, _A_IHD_LOW)
# Metering: state (polled with the prepayment) and identity (hourly)
_A_SUPPLY = const(0x0014)
_A_STATUS = const(0x0200)
_A_AMBIENT = const(0x0207)
_A_SITE_ID = const(0x0307)
_A_SERIAL = const(0x0308)
STATE_ATTRS = (_A_SUPPLY, _A_STATUS, _A_AMBIENT)
IDENTITY_ATTRS = (_A_SITE_ID, _A_SERIAL)
_A_PROVIDER_NAME = const(0x0101)
PROVIDER_ATTRS = (_A_PROVIDER_NAME,)

# CreditStatus bits (SE 1.2+)
_CS_LOW = const(0x02)
_CS_EC_AVAILABLE = const(0x08)
_CS_EC_IN_USE = const(0x20)
_CS_EXHAUSTED = const(0x40)
_PREPAY_ENABLED = const(0x02)  # PaymentControlConfiguration bit 1
_ABSURD = const(10_000_000)  # minor units (100,000 pounds): above it "—"
_INT32_INVALID = -0x80000000
STR_MAX = const(24)  # site id / serial / name bytes kept
_SUPPLY = ("off", "armed", "on")

OK = const(0)
IGNORED = const(1)
BAD = const(2)


def build_get_last_message(buf, seq):
    # Messaging GetLastMessage (cluster-specific, client to server): frame
    # control 0x01, sequence, command 0x00, no payload. It only asks; the
    # meter answers with DisplayMessage (or NOT_FOUND). Here, not in
    # meter/zcl_messaging.py, so that module loads only with a message.
    buf[0] = 0x01
    buf[1] = seq & 0xFF
    buf[2] = 0x00
    return 3


class Extras:
    def __init__(self):
        # None: not known; the prepayment figures are raw (trailing digits)
        self.payment_control = None
        self.credit = None
        self.emergency = None
        self.credit_status = None
        self.debt = None
        self.ihd_low = None
        self.no_prepay = False  # the meter said it has no CreditRemaining
        self.supply = None
        self.status = None
        self.ambient = None  # 0 low, 1 medium, 2 high (the meter's)
        self.site_id = None  # str
        self.serial = None
        self.provider = None
        self.frames = 0
        self.bad = 0
        self.invalid = 0  # values refused (ZCL invalid markers, out of range)
        self._s = bytearray(STR_MAX)
        self._ident = None

    def handle(self, cluster, buf, off, n):
        # A Read Attributes Response or Report Attributes of Metering,
        # Prepayment or Device Management. Other frames: IGNORED.
        if n < 3:
            return IGNORED
        fc = buf[off]
        cmd = buf[off + 2]
        if fc & 0x07 or not fc & 0x08 or (cmd != 0x01 and cmd != 0x0A):
            return IGNORED
        self.frames += 1
        if not self._walk(cluster, buf, off + 3, off + n, cmd == 0x01):
            self.bad += 1
            return BAD
        return OK

    def _walk(self, cluster, buf, i, end, is_rsp):
        # Records are taken as they are read: a value already taken stays
        # when a later record of the same frame is malformed (each is a
        # complete attribute value on its own).
        while i < end:
            if i + 3 > end:
                return False
            attr = buf[i] | (buf[i + 1] << 8)
            i += 2
            if is_rsp:
                st = buf[i]
                i += 1
                if st:
                    if cluster == PREPAYMENT and attr == _A_CREDIT:
                        self.no_prepay = True  # UNSUPPORTED: not a prepayment meter
                    continue
                if i >= end:
                    return False
            t = buf[i]
            i += 1
            w = type_width(t)
            if w < 0:
                j = str_end(buf, i, end, w)
                if j < 0:
                    return False
                if (t == 0x41 or t == 0x42) and buf[i] != 0xFF:  # not the invalid string
                    self._text(cluster, attr, buf, i - w, j - i + w)
                i = j
                continue
            if w == 0 or i + w > end:
                return False
            if w <= 4:
                x = 0
                for k in range(w - 1, -1, -1):
                    x = (x << 8) | buf[i + k]
                self._int(cluster, attr, t, w, x)
            i += w
        return True

    def _int(self, cluster, attr, t, w, x):
        signed = 0x28 <= t <= 0x2F
        if signed and x >> (8 * w - 1):
            x -= 1 << (8 * w)
        if cluster == PREPAYMENT:
            if attr in (_A_CREDIT, _A_EMERGENCY, _A_DEBT):
                if not signed or w != 4 or x == _INT32_INVALID:
                    self.invalid += 1
                    x = None
                if attr == _A_CREDIT:
                    self.credit = x
                    if x is not None:
                        self.no_prepay = False
                elif attr == _A_EMERGENCY:
                    self.emergency = x
                else:
                    self.debt = x
            elif attr == _A_CREDIT_STATUS:
                self.credit_status = x & 0xFF
            elif attr == _A_PAYMENT_CONTROL:
                self.payment_control = x
            elif attr == _A_IHD_LOW:
                self.ihd_low = None if x == 0xFFFFFFFF or signed else x
        elif cluster == _METERING:
            # enum8 by spec: a signed type sign-extends 0xFF to -1, which
            # indexed the names from the end ("on" for a supply we know not)
            if attr == _A_SUPPLY:
                self.supply = x if 0 <= x <= 2 else None
            elif attr == _A_STATUS:
                self.status = x & 0xFF
            elif attr == _A_AMBIENT:
                self.ambient = x if 0 <= x <= 2 else None

    def _text(self, cluster, attr, buf, i, ln):
        if cluster == _METERING and attr == _A_SITE_ID:
            self.site_id = self._clean(buf, i, ln, self.site_id)
        elif cluster == _METERING and attr == _A_SERIAL:
            self.serial = self._clean(buf, i, ln, self.serial)
        elif cluster == DEVICE_MGMT and attr == _A_PROVIDER_NAME:
            self.provider = self._clean(buf, i, ln, self.provider)

    def _clean(self, buf, i, ln, old):
        # Printable ASCII only (the 8x8 font's), at most STR_MAX bytes; a
        # new str only when the value changed. Empty: unknown.
        s = self._s
        k = 0
        for j in range(min(ln, STR_MAX)):
            c = buf[i + j]
            s[k] = c if 0x20 <= c < 0x7F else 0x3F
            k += 1
        while k and s[k - 1] == 0x20:
            k -= 1
        if not k:
            return None
        if old is not None and len(old) == k and old.encode() == s[:k]:
            return old
        return bytes(s[:k]).decode()

    # -- the snapshot's fields ------------------------------------------------
    def is_prepay(self):
        if self.credit is None and self.credit_status is None:
            return False
        pc = self.payment_control
        return pc is None or bool(pc & _PREPAY_ENABLED)

    def prepay(self, tariff):
        # -> dict (docs/display.md) on a prepayment meter, else None.
        if not self.is_prepay():
            return None
        cs = self.credit_status
        digits = tariff.digits if tariff.raw is not None else None
        credit = minor(self.credit, digits)
        low = None
        if cs is not None:
            low = bool(cs & _CS_LOW)
        if self.ihd_low is not None and self.credit is not None and not low:
            low = self.credit <= self.ihd_low
        return {
            "credit": credit,
            "emergency": minor(self.emergency, digits),
            "debt": minor(self.debt, digits),
            "low": low,
            "ec_available": None if cs is None else bool(cs & _CS_EC_AVAILABLE),
            "ec_in_use": None if cs is None else bool(cs & _CS_EC_IN_USE),
            "exhausted": None if cs is None else bool(cs & _CS_EXHAUSTED),
            "supply": supply_name(self.supply),
        }

    def identity(self):
        # made again only when a value changed (the snapshot asks every redraw)
        d = self._ident
        if (
            d is None
            or d["status"] != self.status
            or d["site_id"] is not self.site_id
            or d["serial"] is not self.serial
            or d["supplier"] is not self.provider
        ):
            d = self._ident = {
                "status": self.status,
                "site_id": self.site_id,
                "serial": self.serial,
                "supplier": self.provider,
            }
        return d


def supply_name(v):
    return None if v is None else _SUPPLY[v]


def minor(raw, digits):
    # raw / 10**digits major units -> whole minor units (half away from
    # zero), or None: unknown, no tariff, or absurd.
    if raw is None or digits is None:
        return None
    if digits <= 2:
        m = raw * 10 ** (2 - digits)
    else:
        d = 10 ** (digits - 2)
        m = (abs(raw) * 2 + d) // (2 * d)
        if raw < 0:
            m = -m
    return m if -_ABSURD <= m <= _ABSURD else None
