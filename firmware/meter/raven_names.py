# RAVEn XML vocabulary for meter/raven.py: the element names the parser
# knows, in the order that numbers them (the parser's constants follow it),
# the hash it finds them by without allocating, hex digits, and the scaling
# of the stick's kW/kWh values (raw * Multiplier / Divisor) to W/Wh.
from micropython import const

NAMES = (
    # 0..14 top-level: 0-7 used, 8 NetworkInfo reads as ConnectionStatus,
    # 9-14 known fragments that are parsed and ignored
    b"InstantaneousDemand", b"CurrentSummationDelivered", b"TimeCluster", b"ConnectionStatus",
    b"DeviceInfo", b"MeterList", b"PriceCluster", b"Warning", b"NetworkInfo", b"MeterInfo",
    b"ScheduleInfo", b"MessageCluster", b"CurrentPeriodUsage", b"LastPeriodUsage", b"ProfileData",
    # 15..30 numeric children, slot = index - 15
    b"TimeStamp", b"Demand", b"SummationDelivered", b"SummationReceived", b"Multiplier",
    b"Divisor", b"DigitsRight", b"DigitsLeft", b"SuppressLeadingZero", b"UTCTime", b"LocalTime",
    b"LinkStrength", b"Price", b"TrailingDigits", b"Currency", b"Tier",
    # 31.. text children, kept only in fragments that need text (33 MeterMacId)
    b"Status", b"Description", b"MeterMacId", b"DeviceMacId", b"FWVersion", b"HWVersion",
    b"ImageType", b"Manufacturer", b"ModelId", b"DateCode", b"InstallCode", b"TierLabel",
    b"RateLabel", b"Text", b"Id", b"Queue", b"ConfirmationRequired", b"Confirmed",
)  # fmt: skip
HASH_MASK = const(0xFFFFF)  # keeps h * 33 + c a small int on the ESP32


def name_hash(name):
    h = 0
    for c in name:
        h = (h * 33 + c) & HASH_MASK
    return h


BY_HASH = {}
for _i, _n in enumerate(NAMES):
    if name_hash(_n) in BY_HASH:  # a collision would make two names one
        raise ValueError("raven: name hash collision")
    BY_HASH[name_hash(_n)] = _i


def hexval(c):
    # Value of an ASCII hex digit, or -1.
    if 48 <= c <= 57:
        return c - 48
    c |= 0x20
    if 97 <= c <= 102:
        return c - 87
    return -1


def scale(raw, mult, div):
    # raw * mult / div kilo-units -> units (W, Wh), rounded half away from
    # zero. Multiplier or Divisor 0 means 1 (ZCL and RAVEn both say so).
    if not mult:
        mult = 1
    if not div:
        div = 1
    # q * m + round(r * m / div), r = raw mod div: no intermediate above the
    # result or 2 * div * m (raw * m * 1000 of a summation in Wh with
    # Divisor 1000 would pass 2**30: a boxed int per reading on 32 bits)
    m = mult * 1000
    if raw < 0:
        return -scale(-raw, mult, div)
    q = raw // div
    return q * m + (2 * (raw - q * div) * m + div) // (2 * div)
