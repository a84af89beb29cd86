# Supplier messages, shared by both meter links (EZSP: Messaging cluster,
# meter/zcl_messaging.py; RAVEn: MessageCluster, meter/raven_link.py): the
# one message on show, its id, start and expiry, and what cancels it.
#
# The text is hostile input: it is cleaned into a preallocated buffer of
# MAX bytes (control characters become spaces, bytes that are not UTF-8
# become "?", a character is never cut in half, longer text is cut at MAX)
# and turned into one str per message, never per redraw. So a message costs
# at most MAX bytes of text whatever the meter sends.
#
# Never persisted: after a reboot the EZSP link asks the meter again
# (GetLastMessage, a read) and the RAVEn stick is asked get_message, so a
# message cancelled while the display was off is never shown again.
from micropython import const

MAX = const(80)  # bytes of message text kept (SE DisplayMessage carries <= 59)
NEVER = const(-1)
_TRUNC = "\u2026"


def clean(src, i, n, out):
    # src[i:i+n] -> out (len(out) bytes at most), valid UTF-8; returns
    # (length, cut): cut when text was dropped for lack of room.
    k = 0
    end = i + n
    cap = len(out)
    while i < end:
        c = src[i]
        w = 1
        if c < 0x20 or c == 0x7F:
            c = 0x20  # a control character: a space
        elif c >= 0x80:
            w = _seq(src, i, end)
            if w == 0:
                c = 0x3F  # not UTF-8: "?"
                w = -1
        if w > 0 and k + w > cap or w < 0 and k + 1 > cap:
            return k, True
        if w <= 1:
            if not (c == 0x20 and (k == 0 or out[k - 1] == 0x20)):  # no runs of spaces
                out[k] = c
                k += 1
            i += 1
        else:
            for j in range(w):
                out[k + j] = src[i + j]
            k += w
            i += w
    while k and out[k - 1] == 0x20:
        k -= 1
    return k, False


def _seq(b, i, end):
    # Length of the valid UTF-8 sequence at b[i] (a lead byte >= 0x80), 0 if
    # none: overlong forms, surrogates and values above U+10FFFF refused.
    c = b[i]
    if 0xC2 <= c <= 0xDF:
        w, lo, hi = 2, 0x80, 0xBF
    elif 0xE0 <= c <= 0xEF:
        w = 3
        lo = 0xA0 if c == 0xE0 else 0x80
        hi = 0x9F if c == 0xED else 0xBF
    elif 0xF0 <= c <= 0xF4:
        w = 4
        lo = 0x90 if c == 0xF0 else 0x80
        hi = 0x8F if c == 0xF4 else 0xBF
    else:
        return 0
    if i + w > end or not lo <= b[i + 1] <= hi:
        return 0
    for j in range(2, w):
        if not 0x80 <= b[i + j] <= 0xBF:
            return 0
    return w


class Messages:
    # show(id, buf, off, n, start_zb, minutes, importance, cut) when the meter
    # displays one; cancel(id) / cancel_all(); current(now_zb) for the
    # status snapshot. Times in ZigBee seconds (small ints on a 32-bit
    # port); now_zb None: the clock is not set.
    def __init__(self):
        self._buf = bytearray(MAX)
        self.id = None
        self.text = None  # str, made once per message
        self.start = 0  # ZigBee s it starts; 0: when received (set on the first current())
        self.minutes = NEVER  # duration; NEVER: until cancelled or replaced
        self.importance = 0  # 0 low .. 3 critical (ZCL MessageControl bits 2-3)
        self.shown = 0  # messages taken
        self.cancelled = 0
        self.expired = 0
        self.cut = 0  # messages whose text was longer than MAX (cut)

    def show(self, mid, src, off, n, start_zb, minutes, importance=0, cut=False):
        # cut: the text was already cut before it came here (RAVEn parser)
        ln, more = clean(src, off, n, self._buf)
        cut = cut or more
        if cut:
            self.cut += 1  # shown with an ellipsis: MAX + 3 bytes at most
        self.text = bytes(self._buf[:ln]).decode() + (_TRUNC if cut else "")
        self.id = mid
        self.start = start_zb
        self.minutes = minutes
        self.importance = importance
        self.shown += 1

    def cancel(self, mid):
        if self.id is not None and self.id == mid:
            self._clear()
            self.cancelled += 1
            return True
        return False

    def cancel_all(self):
        if self.id is not None:
            self._clear()
            self.cancelled += 1

    def _clear(self):
        self.id = None
        self.text = None

    def current(self, now_zb):
        # -> {"id", "text", "importance", "left_min"} or None. A message
        # with a start in the future is not shown yet; one whose duration
        # ran out is dropped. With the clock not set no time can be judged:
        # the message shows, and its start is taken when the clock is.
        if self.id is None:
            return None
        left = None
        if now_zb is not None:
            if self.start == 0:
                self.start = now_zb
            if now_zb < self.start:
                return None
            if self.minutes != NEVER:
                left = self.start + self.minutes * 60 - now_zb
                if left <= 0:
                    self._clear()
                    self.expired += 1
                    return None
                left = (left + 59) // 60
        return {"id": self.id, "text": self.text, "importance": self.importance, "left_min": left}
