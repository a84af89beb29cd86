# RAVEn XML API, the host side of the wire: the read-only command writer and
# the helpers that turn fragment values into display text (Windows-1252
# decoding, DigitsRight/DigitsLeft/SuppressLeadingZero formatting). The
# streaming parser is meter/raven.py.

# -- commands -------------------------------------------------------------------
# Read-only towards the meter: only these commands can be built. Every one
# reads from the stick or asks the meter for data; none changes the meter or
# the stick's pairing (no set_*, factory_reset, confirm_message,
# close_current_period, and not even restart or initialize). get_message
# asks for the message on show; confirming it (confirm_message) is never
# possible.
READ_ONLY = (
    "get_meter_list",
    "get_connection_status",
    "get_network_info",
    "get_device_info",
    "get_meter_info",
    "get_instantaneous_demand",
    "get_current_summation_delivered",
    "get_time",
    "get_current_price",
    "get_schedule",
    "get_message",
)
_ARGS = ("MeterMacId", "Refresh", "Event")


def command(name, args=()):
    # The command as bytes, exactly as the RAVEn XML API (and aioraven's
    # writer) spells it. args: sequence of (name, value) from _ARGS with
    # values made of [0-9A-Za-z] (hex MAC ids, Y/N, event names).
    # ValueError for anything else: nothing can write to the meter.
    if name not in READ_ONLY:
        raise ValueError("raven: command not allowed: " + name)
    out = "<Command><Name>" + name + "</Name>"
    for k, v in args:
        if k not in _ARGS or not v or not _plain(v):
            raise ValueError("raven: bad argument " + k)
        out += "<" + k + ">" + v + "</" + k + ">"
    return (out + "</Command>").encode()


def _plain(v):
    for ch in v:
        if not ("0" <= ch <= "9" or "a" <= ch <= "z" or "A" <= ch <= "Z"):
            return False
    return True


# -- text helpers ---------------------------------------------------------------
_CP1252 = (
    "\u20ac\ufffd\u201a\u0192\u201e\u2026\u2020\u2021\u02c6\u2030\u0160\u2039\u0152\ufffd\u017d\ufffd"
    "\ufffd\u2018\u2019\u201c\u201d\u2022\u2013\u2014\u02dc\u2122\u0161\u203a\u0153\ufffd\u017e\u0178"
)
_ENTITIES = (("&lt;", "<"), ("&gt;", ">"), ("&quot;", '"'), ("&apos;", "'"), ("&amp;", "&"))


def text(b):
    # Windows-1252 bytes of a text element -> str, XML entities decoded.
    # For display only (never on the per-byte path).
    out = []
    for c in b:
        if c < 0x80:
            out.append(chr(c))
        elif c < 0xA0:
            out.append(_CP1252[c - 0x80])
        else:
            out.append(chr(c))
    s = "".join(out)
    if "&" in s:
        for e, r in _ENTITIES:
            s = s.replace(e, r)
    return s


def format_value(raw, mult, div, right, left=0, suppress=1):
    # The display string the RAVEn formatting fields ask for: raw * mult /
    # div (0 means 1) with `right` decimals (rounded half away from zero),
    # at least `left` integer digits zero-padded unless `suppress`.
    mult = mult or 1
    div = div or 1
    n = raw * mult
    neg = n < 0
    if neg:
        n = -n
    p = 10**right
    q = (n * p * 2 + div) // (div * 2)
    whole = str(q // p)
    if not suppress and len(whole) < left:
        whole = "0" * (left - len(whole)) + whole
    s = whole
    if right:
        frac = str(q % p)
        s += "." + "0" * (right - len(frac)) + frac
    return ("-" + s) if neg and q else s
