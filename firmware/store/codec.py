# Reading codec for the flash log: one reading as a few bytes of deltas.
#
# Owns the byte format of a reading inside a flash record (docs/store.md).
# Each reading is coded against the previous one (the "state"): a tag byte
# says which fields changed and how their deltas are stored, followed only by
# the bytes the tag asks for. Realistic 4-second readings (same interval,
# summation +0..2 Wh, demand changed by tens of watts) take 2 bytes.
#
# state is a list [t, demand, delivered, received, flags, dt] updated in
# place, so encoding and decoding never allocate. t is device seconds
# (meter/reading.py), a small int on a 32-bit port until 2058; deltas do
# not depend on the epoch, so the bytes are those of Unix seconds.
#
# Tag bits:
#   0-1  delivered delta 0, 1 or 2 Wh; 3: zigzag varint delta follows
#   2    interval differs from the previous one: zigzag varint (dt - prev dt)
#   3    received delta follows as zigzag varint (else unchanged)
#   4    flags byte follows (else unchanged)
#   5-6  demand delta: 0 none, 1 int8, 2 int16 (LE), 3 zigzag varint
#   7    always 0; a set bit means corrupt data
# Extra bytes follow in the order: dt, delivered, received, flags, demand.
from micropython import const

# meter/reading.py's device-time epoch (2024-01-01T00:00:00Z), repeated
# here so the store does not import the meter package (its import costs
# heap the store's tests do not have); mpt_store.py checks they agree.
# Globals, not const(): boxed ints on a 32-bit port, built once.
DEV_EPOCH = 1704067200
NO_TIME = -DEV_EPOCH  # device seconds of Unix 0: the earliest time stored

MAXENC = const(22)  # worst case: tag, 4 varints of 5 bytes, flags
_STATE_N = const(6)


def new_state():
    # six fields plus a scratch slot for the decoder's read position
    return [0] * (_STATE_N + 1)


def set_state(st, utc, dem, dl, rc, fl, dt):
    st[0] = utc
    st[1] = dem
    st[2] = dl
    st[3] = rc
    st[4] = fl
    st[5] = dt


def copy_state(dst, src):
    for i in range(_STATE_N):
        dst[i] = src[i]


def _put(buf, p, v):
    # unsigned LEB128 varint
    while v >= 0x80:
        buf[p] = (v & 0x7F) | 0x80
        v >>= 7
        p += 1
    buf[p] = v
    return p + 1


def putz(buf, p, n):
    return _put(buf, p, n << 1 if n >= 0 else ((-n) << 1) - 1)


def encode(buf, pos, st, utc, dem, dl, rc, fl):
    # Appends one reading at buf[pos]; returns the new position. buf must
    # have MAXENC bytes free.
    tag = 0
    p = pos + 1
    dt = utc - st[0]
    if dt != st[5]:
        tag = 4
        p = putz(buf, p, dt - st[5])
    d = dl - st[2]
    if 0 <= d <= 2:
        tag |= d
    else:
        tag |= 3
        p = putz(buf, p, d)
    d = rc - st[3]
    if d:
        tag |= 8
        p = putz(buf, p, d)
    if fl != st[4]:
        tag |= 16
        buf[p] = fl
        p += 1
    d = dem - st[1]
    if d:
        if -128 <= d < 128:
            tag |= 0x20
            buf[p] = d & 0xFF
            p += 1
        elif -32768 <= d < 32768:
            tag |= 0x40
            buf[p] = d & 0xFF
            buf[p + 1] = (d >> 8) & 0xFF
            p += 2
        else:
            tag |= 0x60
            p = putz(buf, p, d)
    buf[pos] = tag
    st[0] = utc
    st[1] = dem
    st[2] = dl
    st[3] = rc
    st[4] = fl
    st[5] = dt
    return p


class CodecError(Exception):
    pass


def getz(buf, st, end):
    # zigzag varint at st[6]; advances st[6] (no tuple: decode must not allocate)
    p = st[6]
    v = 0
    sh = 0
    while True:
        if p >= end or sh > 35:
            raise CodecError("varint overruns record")
        b = buf[p]
        p += 1
        v |= (b & 0x7F) << sh
        if b < 0x80:
            break
        sh += 7
    st[6] = p
    return (v >> 1) if not v & 1 else -((v + 1) >> 1)


def decode(buf, pos, end, st):
    # Decodes one reading at buf[pos] into st; returns the new position.
    # Raises CodecError on bytes no encoder writes (a record passed its CRC
    # but is still not ours: only reachable with crafted data).
    if pos >= end:
        raise CodecError("record ends mid-reading")
    tag = buf[pos]
    st[6] = pos + 1
    if tag & 0x80:
        raise CodecError("bad tag")
    dt = st[5]
    if tag & 4:
        dt += getz(buf, st, end)
    k = tag & 3
    if k == 3:
        k = getz(buf, st, end)
    dl = st[2] + k
    rc = st[3]
    if tag & 8:
        rc += getz(buf, st, end)
    p = st[6]
    fl = st[4]
    if tag & 16:
        if p >= end:
            raise CodecError("record ends mid-reading")
        fl = buf[p]
        p += 1
    dem = st[1]
    k = tag & 0x60
    if k == 0x20:
        if p >= end:
            raise CodecError("record ends mid-reading")
        d = buf[p]
        dem += d - 256 if d > 127 else d
        p += 1
    elif k == 0x40:
        if p + 1 >= end:
            raise CodecError("record ends mid-reading")
        d = buf[p] | (buf[p + 1] << 8)
        dem += d - 65536 if d > 32767 else d
        p += 2
    elif k == 0x60:
        st[6] = p
        dem += getz(buf, st, end)
        p = st[6]
    utc = st[0] + dt
    if utc < NO_TIME or dl < 0 or rc < 0:  # before Unix 0: not ours
        raise CodecError("reading out of range")
    st[0] = utc
    st[1] = dem
    st[2] = dl
    st[3] = rc
    st[4] = fl
    st[5] = dt
    return p
