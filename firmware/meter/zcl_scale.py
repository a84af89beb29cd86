# ZCL attribute values for meter/zcl.py: ZCL data type widths, the unit of
# measure table, packed BCD, exact integer scaling, and the meter's own
# presentation of a value (Summation/DemandFormatting). Pure functions and
# tables, no state: meter/zcl.py's Meter keeps the registers and the
# scaling it has read and calls these per attribute.

# Unit of measure (low 7 bits; bit 7 = BCD) -> (summation num, den,
# demand num, den) converting the meter's unit to Wh / W, or to litres /
# litres per hour for volumes. Exact ratios: 1 ft3 = 28.316846592 l,
# 1 US gal = 3.785411784 l, 1 imp gal = 4.54609 l, 1 BTU(IT) =
# 1055.05585262 J, 1 MJ = 2500/9 Wh; the spec gives MJ demand in MJ/s.
# None: not energy or volume (kPa, unitless, kvar): no reading from it.
UNITS = (
    (1000, 1, 1000, 1),  # 0x00 kWh, kW
    (1000, 1, 1000, 1),  # 0x01 m3, m3/h
    (55306341, 1953125, 55306341, 1953125),  # 0x02 ft3, ft3/h
    (221225364, 78125, 221225364, 78125),  # 0x03 ccf (100 ft3)
    (473176473, 125000000, 473176473, 125000000),  # 0x04 US gallons
    (454609, 100000, 454609, 100000),  # 0x05 imperial gallons
    (52752792631, 180000000000, 52752792631, 180000000000),  # 0x06 BTU, BTU/h
    (1, 1, 1, 1),  # 0x07 litres
    None,  # 0x08 kPa gauge
    None,  # 0x09 kPa absolute
    (442450728, 15625, 442450728, 15625),  # 0x0A mcf (1000 ft3)
    None,  # 0x0B unitless
    (2500, 9, 1000000, 1),  # 0x0C MJ, MJ/s
    None,  # 0x0D kvar, kvarh
)


def type_width(t):
    # Bytes of a fixed-size ZCL data type; -1 for a one-byte-length string,
    # -2 for a two-byte-length one, 0 for types we cannot skip (arrays,
    # structs, sets, bags, unknown codes).
    if 0x08 <= t <= 0x0F or 0x18 <= t <= 0x1F or 0x20 <= t <= 0x27 or 0x28 <= t <= 0x2F:
        return (t & 7) + 1
    if t == 0x10 or t == 0x30:
        return 1
    if t == 0x31 or t == 0x38 or t == 0xE8 or t == 0xE9:
        return 2
    if t == 0x39 or 0xE0 <= t <= 0xE2 or t == 0xEA:
        return 4
    if t == 0x3A or t == 0xF0:
        return 8
    if t == 0xF1:
        return 16
    if t == 0x41 or t == 0x42:
        return -1
    if t == 0x43 or t == 0x44:
        return -2
    return 0


def str_end(buf, i, end, w):
    # Index after the string value at i (w: type_width's -1 or -2), -1 when
    # it runs past end. A length of all ones is the invalid string: no
    # octets follow (ZCL 2.6.2, as zigpy's CharacterString reads it); taken
    # as 255 bytes it ran off the frame and lost every record in it.
    if i - w > end:
        return -1
    ln = buf[i] if w == -1 else buf[i] | (buf[i + 1] << 8)
    if ln == (0xFF if w == -1 else 0xFFFF):
        ln = 0
    i += ln - w
    return i if i <= end else -1


def is_int(t):
    # Integer-valued types: data, bitmap, (u)int, enum, UTC time.
    return 0x08 <= t <= 0x0F or 0x18 <= t <= 0x2F or t == 0x30 or t == 0x31 or t == 0xE2


def bcd(v, digits):
    # Packed BCD -> int, or -1 if a nibble is not a decimal digit. Stops at
    # the last non-zero nibble: the place value of a 12-digit register's
    # leading zeros (10**11) is a boxed int on a 32-bit port.
    r = 0
    m = 1
    for _ in range(digits):
        if not v:
            break
        d = v & 0xF
        if d > 9:
            return -1
        r += d * m
        m *= 10
        v >>= 4
    return r


def scale(raw, num, den):
    # round(raw * num / den), half away from zero, in integers. Split as
    # q * num + round(r * num / den) (r = raw mod den) so no intermediate
    # exceeds the result or 2 * den * num: raw * num of a summation in
    # 1/1000 kWh would pass 2**30 and allocate on a 32-bit port.
    if raw < 0:
        return -scale(-raw, num, den)
    q = raw // den
    return q * num + (2 * (raw - q * den) * num + den) // (2 * den)


def format_value(raw, multiplier, divisor, fmt):
    # The meter's own presentation of a value (Summation/DemandFormatting):
    # raw * multiplier / divisor with (fmt & 7) decimals, truncated as a
    # register does, integer part zero-padded to ((fmt >> 3) & 15) digits
    # unless bit 7 suppresses leading zeros; never cut (no digit is lost).
    m = multiplier or 1
    d = divisor or 1
    right = fmt & 7
    left = (fmt >> 3) & 15
    neg = raw < 0
    p = 10**right
    v = (-raw if neg else raw) * m * p // d
    ip = str(v // p)
    if not fmt & 0x80 and len(ip) < left:
        ip = "0" * (left - len(ip)) + ip
    s = ip + ("." + str(v % p + p)[1:] if right else "")
    return "-" + s if neg and v else s
