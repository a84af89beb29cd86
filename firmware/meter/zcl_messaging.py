# ZCL Messaging cluster (0x0703, Smart Energy) client for the EZSP link:
# the meter's DisplayMessage, CancelMessage and CancelAllMessages into a
# meter.message.Messages, and the one request the firmware may send here,
# GetLastMessage (it only asks; the meter answers with DisplayMessage).
# MessageConfirmation (client command 0x01) is a confirmation: it is never
# built, and ezsp.send_unicast refuses it (read-only towards the meter).
# DisplayProtectedMessage (0x02) is for a display that asks for a PIN
# first: we have none, so it is counted and not shown.
from micropython import const

MESSAGING = const(0x0703)
_DISPLAY_MESSAGE = const(0x00)  # server -> client
_CANCEL_MESSAGE = const(0x01)
_DISPLAY_PROTECTED = const(0x02)
_CANCEL_ALL = const(0x03)

OK = const(0)
IGNORED = const(1)
BAD = const(2)


def _u32(b, i):
    return b[i] | (b[i + 1] << 8) | (b[i + 2] << 16) | (b[i + 3] << 24)


class MessagingClient:
    def __init__(self, messages):
        self.messages = messages
        self.frames = 0
        self.bad = 0
        self.ignored = 0
        self.protected = 0

    def handle(self, buf, off, n):
        self.frames += 1
        if n < 3:
            self.bad += 1
            return BAD
        fc = buf[off]
        cmd = buf[off + 2]
        if fc & 0x04 or not fc & 0x08 or fc & 0x03 != 1:
            # manufacturer-specific, client to server, or profile-wide (a
            # Default Response to GetLastMessage: no message): nothing to show
            self.ignored += 1
            return IGNORED
        i = off + 3
        end = off + n
        m = self.messages
        if cmd == _DISPLAY_MESSAGE:
            # MessageID u32, MessageControl map8, StartTime UTC, Duration
            # u16 minutes (0xFFFF until changed), Message char string
            # (optional ExtendedMessageControl after it: not used)
            if i + 12 > end:
                self.bad += 1
                return BAD
            mid = _u32(buf, i)
            ctl = buf[i + 4]
            start = _u32(buf, i + 5)
            dur = buf[i + 9] | (buf[i + 10] << 8)
            ln = buf[i + 11]
            if ln == 0xFF:
                ln = 0  # the invalid string: no text
            if i + 12 + ln > end:
                self.bad += 1  # the string runs past the frame
                return BAD
            if start == 0xFFFFFFFF:
                start = 0
            # a UTC above 2**30 would be a boxed int on a 32-bit port (and
            # is after 2034): taken as "now"
            if start >= 0x40000000:
                start = 0
            m.show(mid, buf, i + 12, ln, start, -1 if dur == 0xFFFF else dur, (ctl >> 2) & 3)
        elif cmd == _CANCEL_MESSAGE:
            if i + 5 > end:
                self.bad += 1
                return BAD
            m.cancel(_u32(buf, i))
        elif cmd == _CANCEL_ALL:
            # ImplementationDateTime (UTC): cancelled now whatever it says
            m.cancel_all()
        elif cmd == _DISPLAY_PROTECTED:
            self.protected += 1
            return IGNORED
        else:
            self.ignored += 1
            return IGNORED
        return OK
