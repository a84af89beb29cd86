# Device health to the collector: the HEALTH datagram (docs/wire-format.md,
# "HEALTH") and when it is sent (docs/uplink.md, "Device health").
#
# A report is encoded from the app's status snapshot (app/report.py) into
# the uplink's control buffer at each send, so nothing is kept between
# sends but a few small ints on the Uplink object (h_*). Sent after the
# first accepted reply of a boot, when the set of active faults changes
# (at most one a minute), and every _PERIOD_MS otherwise; retransmitted
# (a fresh seq and snapshot each time, RTO doubling) until a REPLY echoes
# it. Functions of the uplink.Uplink `up`, as in rx.py.
import time

from micropython import const

from uplink import datagram as dg

_PERIOD_MS = const(21_600_000)  # 6 h between reports when nothing changes
_DEBOUNCE_MS = const(60_000)  # at most one report a minute for fault changes
_IDLE_MS = const(3_600_000)  # nothing to do: look again within an hour
BOOTS_FILE = "uplink_boots"

# wire codes (index in the tuple; 0 / 255 unknown): the collector has the same tables
RESET_CAUSES = (
    "unknown",
    "power-on",
    "hard",
    "watchdog",
    "deep-sleep",
    "soft",
    "memory",
    "config",
    "ota",
    "ota-rollback",
)
OTA_STATES = (
    "idle",
    "downloading",
    "verifying",
    "rebooting",
    "confirming",
    "confirmed",
    "rejected",
    "failed",
    "rolled-back",
    "keys-updated",
)


def init(up, source, path):
    # source(): the status snapshot dict (app/report.py), or None: no reports.
    up.h_src = source
    # Boots so far, counted in a small file (one write per boot); lost or
    # damaged: counting starts again at 1.
    n = 0
    if source is not None:
        try:
            with open(path) as f:
                n = int(f.read(12))
        except (OSError, ValueError, UnicodeError):
            pass
        if not 0 <= n < 0x3FFFFFFF:
            n = 0
        n += 1
        try:
            with open(path, "w") as f:
                f.write(str(n))
        except OSError:
            pass
    up.h_boots = n
    up.h_mask = -1  # fault mask in the last report sent (-1: none sent)
    up.h_ok = None  # ticks of the last acknowledged report
    up.h_sent = 0  # ticks of the last report sent
    up.h_seq = -1  # seq of the report in flight (-1: none), and the one before
    up.h_prev = -1
    up.h_rto = 0
    up.status.health_sent = 0
    up.status.health_acked = 0


def step(up, now):
    # Sends a report if one is due; returns ms until the next may be.
    if up.h_src is None or up.hello_seq != -1 or up.status.last_ack_ticks is None:
        return _IDLE_MS  # not heard yet this boot (an accepted reply wakes us)
    mask = up.faults._active if up.faults is not None else 0  # the active set (faults.Faults)
    if up.h_seq == -1:
        if up.h_ok is None:
            due = now
        elif mask != up.h_mask:
            due = time.ticks_add(up.h_sent, _DEBOUNCE_MS)
        else:
            due = time.ticks_add(up.h_ok, _PERIOD_MS)
    else:
        due = time.ticks_add(up.h_sent, up.h_rto)
        if mask != up.h_mask:
            due = time.ticks_add(up.h_sent, min(up.h_rto, _DEBOUNCE_MS))
    left = time.ticks_diff(due, now)
    if left > 0:
        return left
    if up.h_seq == -1:
        up.h_rto = up.rt.rto
    else:
        up.h_rto = min(up.h_rto * 2, up.rt.hi)
        up.status.retransmits += 1
    up.h_mask = mask
    up.h_sent = now
    n, seq = send(up, up.ctl)
    up.h_prev = up.h_seq
    up.h_seq = seq
    up._send_ctl(n)
    up.status.health_sent += 1
    return up.h_rto


def acked(up, echo, now):
    # An accepted REPLY echoing `echo`: our report in flight, if it names it.
    if up.h_seq != -1 and (echo == up.h_seq or echo == up.h_prev):
        up.h_seq = up.h_prev = -1
        up.h_ok = now
        up.status.health_acked += 1


def send(up, buf):
    # HEALTH datagram in buf from a fresh snapshot; returns (length, seq).
    ses = up.session
    seq = ses.next_seq()
    n = dg.header(buf, dg.T_HEALTH, ses.dev, ses.kid, seq)
    n = encode(buf, n, up.h_src(), up.h_boots)
    return dg.seal(buf, n, ses.mac), seq


def _text(buf, p, s):
    b = s.encode() if s else b""
    k = min(len(b), 16)
    buf[p] = k
    buf[p + 1 : p + 1 + k] = b[:k]
    return p + 1 + k


def _code(table, v, none):
    for i in range(len(table)):
        if table[i] == v:
            return i
    return none


def _byte(v, lo, hi, none):
    return none if v is None else max(lo, min(hi, v))


def encode(buf, p, s, boot_count):
    # Body at buf[p:] (layout: docs/wire-format.md, "HEALTH"); returns its end.
    p = _text(buf, p, s.get("version"))
    p = _text(buf, p, s.get("build"))
    buf[p] = _code(RESET_CAUSES, s.get("reset_cause"), 0)
    dg.put32(buf, p + 1, boot_count)
    m = s.get("meter")
    buf[p + 5] = _byte(m.get("lqi") if m else None, 0, 254, 255)
    w = s.get("wifi")
    buf[p + 6] = _byte(w.get("rssi") if w else None, -127, 127, -128) & 0xFF
    st = s.get("store")
    buf[p + 7] = _byte(st.get("fill_pct") if st else None, 0, 100, 255)
    h = st.get("health") if st else None
    buf[p + 8] = 0 if h == "ok" else 1 if h == "degraded" else 2 if h == "failing" else 255
    h = s.get("heap_min")
    dg.put16(buf, p + 9, 0xFFFF if h is None else min(0xFFFE, h >> 8))
    o = s.get("ota")
    buf[p + 11] = _code(OTA_STATES, o.get("state") if o else None, 255)
    fl = s.get("faults") or ()
    k = min(len(fl), 24)
    buf[p + 12] = k
    for i in range(k):
        buf[p + 13 + i] = fl[i] & 0xFF
    return p + 13 + k
