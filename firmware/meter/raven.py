# RAVEn XML API (Rainforest RAVEn / EMU-2): the streaming fragment parser
# that turns the stick's pushes into readings (commands: meter/raven_cmd.py;
# what a complete fragment means: meter/raven_frag.py).
#
# The stick sends top-level XML fragments with no framing and no checksum,
# e.g. <InstantaneousDemand><TimeStamp>0x2c1a3b4d</TimeStamp>...</...>, line
# endings optional, Windows-1252 text, split anywhere across reads. The parser
# is a byte state machine with bounded buffers that never allocates per byte:
# every '<' starts a new tag, and an opening tag that names a known fragment
# starts that fragment from any state, so after garbage, dropped bytes or a
# stick reset the next intact fragment is always parsed (resync within one
# fragment). A fragment with any defect (bad hex, missing or duplicated field,
# stray text, mismatched tags, overflow) is reported bad with a reason and
# yields nothing. Values: hex "0x..." with 1..16 digits; Demand is signed and
# sign-extended by its own width (EMU-2 sends 24 bits, RAVEn 32); summations
# are unsigned. Readings are in W and Wh: the stick reports kW/kWh as
# raw * Multiplier / Divisor, where 0 means 1. TimeStamp counts seconds from
# the ZigBee epoch (2000-01-01 UTC); 0xFFFFFFFF means "no time".
import micropython
from micropython import const

# Fragment meaning and the event kinds (re-exported for the link): raven_frag
from meter.raven_frag import (  # noqa: F401
    EV_BAD,
    EV_DEVICE,
    EV_IGNORED,
    EV_MESSAGE,
    EV_METERS,
    EV_PRICE,
    EV_STATUS,
    EV_TIME,
    EV_WARNING,
    end_top,
)
from meter.raven_names import BY_HASH, HASH_MASK, NAMES, hexval

# NAMES (meter/raven_names.py) numbers the elements: 0..14 fragments, 15..30
# numeric children (slot = index - 15), 31.. text children (33 MeterMacId,
# 34 DeviceMacId). The constants below follow that order.

_N_TOP = const(15)
_FIRST_CHILD = const(15)
_FIRST_TEXT = const(31)
_N_NUM = const(16)  # numeric slots
_T_CONN = const(3)
_T_DEVINFO = const(4)
_T_METERS = const(5)
_T_PRICE = const(6)
_T_WARNING = const(7)
_T_NETINFO = const(8)
_T_MESSAGE = const(11)
_C_TEXT = const(44)  # Text: kept cut at _MAX_VALUE when longer (a message)
# numeric slot numbers (name index - _FIRST_CHILD)
_S_DEMAND = const(1)
_S_SLZ = const(8)
_UNKNOWN = const(-1)  # child with a name we do not know: value skipped
_NONE = const(-2)

_MAX_NAME = const(32)
_MAX_VALUE = const(64)
_MAX_CHILDREN = const(40)
_HASH_MASK = const(0xFFFFF)  # as raven_names.HASH_MASK (checked below)
if _HASH_MASK != HASH_MASK or NAMES[_FIRST_TEXT + 2] != b"MeterMacId" or NAMES[_C_TEXT] != b"Text":
    raise ImportError("raven: raven_names out of step")


class Parser:
    # feed(buf, n) with any split of the byte stream; results go to
    # on_reading(t_s, demand_w, delivered_wh, received_wh, flags), t_s in
    # device seconds (meter/reading.py), and on_event(kind, a, b). A reading
    # without a meter time (TimeStamp 0xFFFFFFFF) has t_s reading.NO_TIME
    # (Unix 0) and no F_TIME_VALID: the link stamps it.
    def __init__(self, on_reading, on_event=None):
        self.on_reading = on_reading
        self.on_event = on_event or (lambda k, a, b: None)
        self._name = bytearray(_MAX_NAME)
        self._val = bytearray(_MAX_VALUE)
        self._num = [0] * _N_NUM
        self._text = None  # dict while a text-bearing fragment is open
        self._text_cut = False  # the open fragment's Text was longer than kept
        self.good = 0  # fragments used
        self.bad = 0  # fragments rejected
        self.ignored = 0  # well-formed fragments of a kind we do not use
        self.skipped = 0  # bytes outside any known fragment
        # last scaled values (diagnostics); a reading carries only the
        # values of its own fragment, 0 and no flag for the others
        self.demand_w = 0
        self.delivered_wh = 0
        self.received_wh = 0
        self.sum_res_wh = 1  # Wh per summation register step
        self.price_currency = None  # Currency and Tier of the last PriceCluster
        self.price_tier = None
        # the meter to read (MeterMacId text, e.g. b"0x00135003001c2d3e"):
        # demand and summation of other meters are ignored; None: any
        self.meter = None
        self._other = False
        # display formatting from the last summation/demand fragment
        self.digits_right = 0
        self.digits_left = 0
        self.suppress_zero = 0
        self.reset()

    def reset(self):
        self._st = 0  # 0 text, 1 tag name
        self._top = _NONE
        self._child = _NONE
        self._nn = 0  # name length
        self._nh = 0  # name hash
        self._vn = 0  # value length
        self._vover = False
        self._vctl = False
        self._have = 0  # bit per numeric slot
        self._kids = 0
        self._poison = None  # first defect found in the open fragment
        self._text = None

    # -- byte loop: the hot path, locals only --------------------------------
    # native: ~1.45x the bytecode's throughput (bench/meter_raven.py) for
    # ~1.3 KB of code; the margin over the line rate matters on the ESP32
    @micropython.native
    def feed(self, buf, n=-1):
        if n < 0:
            n = len(buf)
        st = self._st
        name = self._name
        val = self._val
        nn = self._nn
        nh = self._nh
        vn = self._vn
        mode = self._mode()
        i = 0
        while i < n:
            c = buf[i]
            i += 1
            if c == 60:  # '<'
                if st == 1:
                    self._broken("'<' inside tag")
                    mode = self._mode()
                st = 1
                nn = 0
                nh = 0
            elif st == 1:
                if c == 62:  # '>'
                    self._vn = vn
                    self._tag(nn, nh)
                    mode = self._mode()
                    st = 0
                    vn = 0
                elif nn < _MAX_NAME and (65 <= c <= 90 or 97 <= c <= 122 or 48 <= c <= 57 or c == 47 or c == 95):
                    name[nn] = c
                    nn += 1
                    nh = (nh * 33 + c) & _HASH_MASK
                else:
                    self._broken("bad tag name")
                    mode = self._mode()
                    st = 0
            elif mode == 2:  # inside a child: its value
                if vn < _MAX_VALUE:
                    val[vn] = c
                    vn += 1
                else:
                    self._vover = True
                if c < 32 and c != 9 and c != 10 and c != 13:
                    self._vctl = True  # not allowed in XML text
            elif mode == 1:  # between children: whitespace only
                if not (c == 32 or c == 10 or c == 13 or c == 9):
                    self._broken("text outside element")
                    mode = 0
            else:
                self.skipped += 1
        self._st = st
        self._nn = nn
        self._nh = nh
        self._vn = vn

    def _mode(self):
        if self._child != _NONE:
            return 2
        return 1 if self._top != _NONE else 0

    # -- per tag ------------------------------------------------------------
    @micropython.native  # per tag/fragment: machine code, state on the C stack
    def _lookup(self, start, n, h):
        # Index into NAMES of name[start:start+n], or _UNKNOWN. No allocation.
        i = BY_HASH.get(h, _UNKNOWN)
        if i < 0:
            return _UNKNOWN
        ref = NAMES[i]
        if len(ref) != n:
            return _UNKNOWN
        name = self._name
        for j in range(n):
            if name[start + j] != ref[j]:
                return _UNKNOWN
        return i

    @micropython.native  # per tag/fragment: machine code, state on the C stack
    def _rehash(self, a, b):
        h = 0
        name = self._name
        for j in range(a, b):
            h = (h * 33 + name[j]) & _HASH_MASK
        return h

    @micropython.native  # per tag/fragment: machine code, state on the C stack
    def _tag(self, nn, nh):
        name = self._name
        if nn == 0:
            self._broken("empty tag")
            return
        closing = name[0] == 47
        selfclose = name[nn - 1] == 47
        if closing and selfclose:
            self._broken("bad tag")
            return
        if closing:  # hash of the name without '/'
            h = self._rehash(1, nn)
            self._close(self._lookup(1, nn - 1, h), h, nn - 1)
            return
        if selfclose:
            nn -= 1
            nh = self._rehash(0, nn)
        i = self._lookup(0, nn, nh)
        if 0 <= i < _N_TOP:
            if self._top != _NONE:
                self._broken("fragment cut short")
            if selfclose:
                return
            self._open_top(i)
        elif self._top == _NONE:
            self.skipped += nn + 2
        elif self._child != _NONE:
            self._broken("nested element")
        else:
            self._kids += 1
            if self._kids > _MAX_CHILDREN:
                self._broken("too many elements")
                return
            self._child = i
            self._ch = nh  # to match the close tag of an unknown child
            self._cn = nn
            self._vn = 0
            self._vover = False
            self._vctl = False
            if selfclose:
                self._end_child()

    @micropython.native  # per tag/fragment: machine code, state on the C stack
    def _open_top(self, i):
        self._top = i
        self._child = _NONE
        self._have = 0
        self._kids = 0
        self._poison = None
        self._other = False
        self._text_cut = False
        t = i == _T_CONN or i == _T_NETINFO or i == _T_DEVINFO or i == _T_METERS or i == _T_PRICE or i == _T_WARNING
        t = t or i == _T_MESSAGE
        self._text = {} if t else None
        self._meters = [] if i == _T_METERS else None

    @micropython.native  # per tag/fragment: machine code, state on the C stack
    def _close(self, i, h, n):
        if self._child != _NONE:
            c = self._child
            if (c == _UNKNOWN and i == _UNKNOWN and h == self._ch and n == self._cn) or (c >= 0 and c == i):
                self._end_child()
            else:
                self._broken("mismatched close tag")
        elif self._top != _NONE:
            if i == self._top:
                end_top(self)
            else:
                self._broken("mismatched close tag")
        else:
            self.skipped += n + 3

    def _broken(self, why):
        # Structural defect: report the open fragment (if any) and go idle.
        if self._top != _NONE:
            self._bad(self._poison or why, self._top)
        self._top = _NONE
        self._child = _NONE
        self._text = None

    def _bad(self, why, top):
        self.bad += 1
        self.on_event(EV_BAD, why, NAMES[top])

    @micropython.native  # per tag/fragment: machine code, state on the C stack
    def _end_child(self):
        c = self._child
        self._child = _NONE
        if c < 0:  # a child we do not know: value not needed
            return
        if self._vover:
            if c < _FIRST_TEXT:
                self._poison = self._poison or "value too long"
            if c != _C_TEXT:
                return
            # a longer Text (a supplier message) is kept cut: meter/message.py
            # shows it with an ellipsis
            self._text_cut = True
        if self._vctl:
            self._poison = self._poison or "control character"
            return
        if c == 33 or c == 34:  # MeterMacId, DeviceMacId: hex, value unused
            if self._number(-1) is None:
                self._poison = self._poison or "bad number"
                return
            if c == 33 and self.meter is not None and not self._same(self.meter):
                self._other = True
        if c < _FIRST_TEXT:
            s = c - _FIRST_CHILD
            bit = 1 << s
            if self._have & bit:
                self._poison = self._poison or "duplicate element"
                return
            v = self._number(s)
            if v is None:
                self._poison = self._poison or "bad number"
                return
            self._num[s] = v
            self._have |= bit
        elif self._text is not None:
            v = bytes(self._val[: self._vn])
            if self._meters is not None and c == 33:  # MeterMacId, repeated
                self._meters.append(v)
            else:
                self._text[NAMES[c]] = v

    @micropython.native  # per tag/fragment: machine code, state on the C stack
    def _number(self, slot):
        # "0x" + 1..16 hex digits, optional surrounding whitespace; "Y"/"N"
        # for SuppressLeadingZero. None if malformed. Slot -1: check only.
        val = self._val
        self._trim()
        a = self._a
        b = self._b
        if slot == _S_SLZ:
            if b - a == 1 and val[a] in b"YN":
                return 1 if val[a] == 89 else 0
            return None
        nd = b - a - 2
        if nd < 1 or nd > 16 or val[a] != 48 or (val[a + 1] | 32) != 120:
            return None
        v = 0
        for j in range(a + 2, b):
            d = hexval(val[j])
            if d < 0:
                return None
            if slot >= 0:
                v = (v << 4) | d
        if slot == _S_DEMAND and v >> (nd * 4 - 1):  # signed: extend by width
            v -= 1 << (nd * 4)
        return v

    @micropython.native  # per tag/fragment: machine code, state on the C stack
    def _trim(self):
        # self._a, self._b: the value without surrounding whitespace (no
        # tuple: this runs for every element, with the heap locked in tests)
        val = self._val
        a = 0
        b = self._vn
        while a < b and val[a] in b" \t\r\n":
            a += 1
        while b > a and val[b - 1] in b" \t\r\n":
            b -= 1
        self._a = a
        self._b = b

    @micropython.native  # per tag/fragment: machine code, state on the C stack
    def _same(self, ref):
        # The value just read (trimmed) equals ref, hex case ignored.
        val = self._val
        self._trim()
        a = self._a
        b = self._b
        if b - a != len(ref):
            return False
        for j in range(b - a):
            if (val[a + j] | 32) != (ref[j] | 32):
                return False
        return True
