# Time-based queries for the display: readings in a UTC range, energy since
# a time, energy per hour. Streamed: at most one flash sector is decoded to
# find a point in time (sector headers carry the UTC of the reading before
# them), and hour boundaries once final are cached, so hourly_wh costs about
# one sector decode per new hour.
#
# UTC is assumed non-decreasing along seq (the meter link only stores
# readings with a valid clock or marks them; a clock stepped backwards
# makes range and energy answers approximate, never crash).
from micropython import const

_F_SUMMATION = const(4)  # meter/reading.py F_SUMMATION (not imported: saves heap)
_F_SUM_GAS = const(36)  # F_SUMMATION | F_GAS: the gas meter's readings are not electricity
_HOUR = 3600
# Readings searched for one with a known summation. F_SUMMATION marks only
# readings made from a summation report (meter/reading.py), and a RAVEn
# stick may send one every few minutes between demand reports every 4 s:
# 256 readings reach back about 17 minutes. Answers are cached per
# boundary, so a long search is paid once.
_LOOK = 256


def first_seq_at(st, t):
    # Smallest seq with utc >= t (committed or pending), or None if every
    # reading is older than t.
    ram = st.ram
    if ram.hi >= ram.lo and ram.utc_at(ram.lo) < t:
        return ram.first_utc_ge(t)
    log = st.log
    x = -1
    for s in log.live:
        if log.butc[s] >= t:
            break
        x = s
    rd = st._rd
    r = rd.get(log.first[x] if x >= 0 else 1)
    while r is not None and r[1] < t:
        r = rd.get(r[0] + 1)
    if r is not None:
        return r[0]
    return ram.lo if ram.hi >= ram.lo else None


def summation(st, seq, step):
    # delivered_wh of the reading at seq, or of the nearest one within _LOOK
    # readings (step -1: earlier, +1: later) whose summation is known (the
    # meter link stores 0 with F_SUMMATION clear when it is not). None if
    # there is none.
    for _ in range(_LOOK):
        if seq < 1:
            return None
        r = st.get(seq)
        if r is None:
            return None
        if step > 0:
            seq = r[0]  # the next reading held
        if r[0] == seq and r[5] & _F_SUM_GAS == _F_SUMMATION:
            return r[3]
        seq += step
    return None


def latest_summation(st):
    r = st.latest()
    return None if r is None else summation(st, r[0], -1)


def delivered_before(st, t):
    # delivered_wh of the last reading with utc < t; None if there is none.
    v = _before(st, t)
    return None if v == _NONE else v


def _before(st, t):
    # delivered_before(), with _NONE when no reading before t is held (that
    # stays so: readings are only ever evicted from the old end).
    q = first_seq_at(st, t)
    if q is None:
        return latest_summation(st)
    old = st.oldest_seq()
    if old is None or q <= old:
        return _NONE
    v = summation(st, q - 1, -1)
    return _NONE if v is None else v  # looked back over readings already held


_NONE = -1  # cached "no answer": delivered Wh are never negative


def _cached(marks, key, final, fn, st, t):
    # fn(st, t) through the cache: the display asks for the same boundaries
    # every few minutes and each miss may cost a sector decode on flash.
    # Once `final` (a reading at/after t exists, so no later reading can
    # fall before t) an answer never changes. fn returns _NONE for a final
    # "none" (cached too) and None for "none yet" (asked again next time).
    v = marks.get(key)
    if v is None:
        v = fn(st, t)
        if final and v is not None:
            marks[key] = v
    return None if v == _NONE else v


def _first_summation_at(st, t):
    # delivered_wh of the first reading at/after t with a known summation.
    q = first_seq_at(st, t)
    return None if q is None else summation(st, q, 1)


def energy_since(st, utc):
    # Wh delivered since utc (e.g. local midnight for "today"); counted from
    # the oldest reading after utc when the log does not reach back so far.
    last = st.latest()
    lastwh = latest_summation(st)
    if lastwh is None:
        return 0
    final = last[1] >= utc
    marks = st._marks
    b = _cached(marks, utc, final, _before, st, utc)
    if b is None:
        # The log starts after utc (its first day): from its first reading.
        b = _first_summation_at(st, utc)
        if b is None:
            return 0
    d = lastwh - b
    return d if d > 0 else 0


def hourly_wh(st, now_utc, hours=24):
    # List of `hours` values, oldest first: Wh delivered in each whole UTC
    # hour, the last being the hour containing now_utc (so far). None for an
    # hour the log does not cover.
    last = st.latest()
    lastwh = latest_summation(st)
    h1 = now_utc // _HOUR
    h0 = h1 - hours + 1
    marks = st._marks
    starts = st._starts
    for d in (marks, starts):
        for t in list(d):
            if t < h0 * _HOUR - 86400:  # kept a day longer: energy_since(midnight)
                del d[t]
    out = []
    if last is None:
        return [None] * hours
    newest = last[1]
    t = h0 * _HOUR
    a = _cached(marks, t, newest >= t, _before, st, t)
    for h in range(h0, h1 + 1):
        t = (h + 1) * _HOUR
        b = lastwh if t > newest else _cached(marks, t, True, _before, st, t)
        if a is None:
            # the log starts inside this hour: count from its first reading
            a = _cached(starts, h * _HOUR, newest >= t, _start_in, st, h * _HOUR)
        if a is None or b is None:
            out.append(None)
        else:
            out.append(b - a if b > a else 0)
        a = b
    return out


def _start_in(st, t0):
    # First known summation of the hour starting at t0 (None: not yet known),
    # or _NONE when no reading held falls in that hour.
    q = first_seq_at(st, t0)
    r = st.get(q) if q is not None else None
    if r is not None and r[1] < t0 + _HOUR:
        return summation(st, q, 1)
    return _NONE


def range_utc(st, t0, t1, pending=True):
    # Iterator of readings with t0 <= utc < t1, streamed.
    q = first_seq_at(st, t0)
    if q is None:
        return
    for r in st.readings_from(q, pending):
        if r[1] >= t1:
            return
        yield r
