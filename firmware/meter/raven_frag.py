# RAVEn XML API: what a complete fragment means (meter/raven.py parses the
# bytes and calls end_top(parser) when a top-level fragment closes; it uses
# the parser's staged fragment: _top, _have, _num, _text, _meters, _other,
# _poison, and its counters). A reading
# carries only the values of its own fragment (meter/reading.py): demand
# with F_DEMAND, or the summations with F_SUMMATION (+ F_RECEIVED); other
# fragments become events for the link (time, connection status, device
# info, meter list, price, warnings).
import micropython
from micropython import const

from meter import reading
from meter.raven_names import NAMES, scale

EV_TIME = const(1)  # a: UTC seconds or None (meter time invalid), b: local s
EV_STATUS = const(2)  # a: Status text (bytes), b: LinkStrength % or None
EV_DEVICE = const(3)  # a: {name: bytes} of DeviceInfo texts
EV_METERS = const(4)  # a: [MeterMacId bytes]
EV_PRICE = const(5)  # a: price (int, scaled by 10**b), b: trailing digits; parser.price_currency/_tier
EV_WARNING = const(6)  # a: warning text (bytes), e.g. b"Unknown command"
EV_BAD = const(7)  # a: reason (str), b: fragment name (bytes)
EV_IGNORED = const(8)  # a: fragment name (bytes): known but not used
EV_MESSAGE = const(9)  # a: {name: bytes} of MessageCluster texts (Id, Text, Queue ...), b: Text cut

# fragment numbers and numeric slots: the order of raven_names.NAMES (top
# level 0.., numeric children from 15, slot = index - 15)
_T_DEMAND = const(0)
_T_SUMM = const(1)
_T_TIME = const(2)
_T_CONN = const(3)
_T_DEVINFO = const(4)
_T_METERS = const(5)
_T_PRICE = const(6)
_T_WARNING = const(7)
_T_NETINFO = const(8)
_T_MESSAGE = const(11)
_S_TS = const(0)
_S_DEMAND = const(1)
_S_DELIV = const(2)
_S_RECV = const(3)
_S_MULT = const(4)
_S_DIV = const(5)
_S_SLZ = const(8)
_S_UTC = const(9)
_S_LOCAL = const(10)
_S_LINK = const(11)
_S_PRICE = const(12)
_S_TRAIL = const(13)
_S_CURRENCY = const(14)
_S_TIER = const(15)
_NO_TIME = const(0xFFFFFFFF)
_NONE = const(-2)
if NAMES[_T_NETINFO] != b"NetworkInfo" or NAMES[15 + _S_TRAIL] != b"TrailingDigits" or NAMES[15 + _S_TIER] != b"Tier":
    raise ImportError("raven_frag: raven_names out of step")


@micropython.native  # per fragment: machine code, state on the C stack
def _need(p, mask, t):
    if p._have & mask != mask:
        p._bad("missing element", t)
        return False
    return True


@micropython.native  # per fragment: machine code, state on the C stack
def end_top(p):
    t = p._top
    p._top = _NONE
    if p._poison is not None:
        p._bad(p._poison, t)
        return
    num = p._num
    ev = p.on_event
    if (t == _T_DEMAND or t == _T_SUMM) and p._other:
        p.ignored += 1  # another meter on the stick's network
        ev(EV_IGNORED, NAMES[t], None)
    elif t == _T_DEMAND or t == _T_SUMM:
        key = _S_DEMAND if t == _T_DEMAND else _S_DELIV
        if not _need(p, (1 << _S_TS) | (1 << key) | (1 << _S_MULT) | (1 << _S_DIV), t):
            return
        ts = num[_S_TS]  # 0xFFFFFFFF: the meter has no time
        # device seconds (meter/reading.py): ZigBee seconds minus a small
        # int, so no boxed Unix time per reading on a 32-bit port
        t_s = reading.NO_TIME if ts == _NO_TIME else ts - reading.ZB_TO_DEV
        flags = 0 if ts == _NO_TIME else reading.F_TIME_VALID
        mult = num[_S_MULT]
        div = num[_S_DIV]
        h = p._have
        if h & (1 << 6):
            p.digits_right = num[6]
        if h & (1 << 7):
            p.digits_left = num[7]
        if h & (1 << _S_SLZ):
            p.suppress_zero = num[_S_SLZ]
        p.good += 1
        dw = dwh = rwh = 0
        if t == _T_DEMAND:
            dw = p.demand_w = scale(num[_S_DEMAND], mult, div)
            flags |= reading.F_DEMAND
        else:
            p.sum_res_wh = scale(1, mult, div) or 1  # register step
            dwh = p.delivered_wh = scale(num[_S_DELIV], mult, div)
            flags |= reading.F_SUMMATION
            if h & (1 << _S_RECV):
                rwh = p.received_wh = scale(num[_S_RECV], mult, div)
                flags |= reading.F_RECEIVED
        p.on_reading(t_s, dw, dwh, rwh, flags)
    elif t == _T_TIME:
        if not _need(p, 1 << _S_UTC, t):
            return
        p.good += 1
        u = num[_S_UTC]
        lo = num[_S_LOCAL] if p._have & (1 << _S_LOCAL) else _NO_TIME
        ev(
            EV_TIME,
            None if u == _NO_TIME else u + reading.ZIGBEE_EPOCH,
            None if lo == _NO_TIME else lo + reading.ZIGBEE_EPOCH,
        )
    elif t == _T_CONN or t == _T_NETINFO:
        st = p._text.get(b"Status")
        if st is None:
            p._bad("missing element", t)
            return
        p.good += 1
        ev(EV_STATUS, st, num[_S_LINK] if p._have & (1 << _S_LINK) else None)
    elif t == _T_DEVINFO:
        p.good += 1
        ev(EV_DEVICE, p._text, None)
    elif t == _T_METERS:
        p.good += 1
        ev(EV_METERS, p._meters, None)
    elif t == _T_PRICE:
        if not _need(p, 1 << _S_PRICE, t):
            return
        p.good += 1
        h = p._have
        p.price_currency = num[_S_CURRENCY] if h & (1 << _S_CURRENCY) else None
        p.price_tier = num[_S_TIER] if h & (1 << _S_TIER) else None
        ev(EV_PRICE, num[_S_PRICE], num[_S_TRAIL] if h & (1 << _S_TRAIL) else 0)
    elif t == _T_WARNING:
        p.good += 1
        ev(EV_WARNING, p._text.get(b"Text", b""), None)
    elif t == _T_MESSAGE:
        p.good += 1
        ev(EV_MESSAGE, p._text, p._text_cut)
    else:
        p.ignored += 1
        ev(EV_IGNORED, NAMES[t], None)
    p._text = None
